import type { LifecycleRule, PutObjectCommandInput, Tag } from '@aws-sdk/client-s3';
import { RETENTION_DAYS } from '../../schema/api/tenants.ts';

/**
 * The stage bucket's storage conventions, shared by the provisioning steps (which tag a tenant's objects) and by
 * whatever sets the bucket up once per stage (the CDK storage construct, the sandbox bootstrap), so that the
 * tags the steps write are the tags the lifecycle rules read.
 */

export { RETENTION_DAYS };
export type RetentionDays = (typeof RETENTION_DAYS)[number];

/** Every tenant prefix (`tenants/<id>/`) sits under this one. */
export const TENANTS_ROOT = 'tenants/';
/** Every backup (`backups/<tenant id>/<backup id>/`) sits under this one. */
export const BACKUPS_ROOT = 'backups/';
/**
 * The object tag the lifecycle rules filter on: how many days an object is kept, counted by S3 from the object's
 * creation. Only what is kept for a known time carries it: a deleted tenant's objects (rewritten at its deletion,
 * so that the count starts then) and backups. Nothing an active tenant owns does.
 */
export const RETENTION_TAG = 'RetentionDays';
/** The tenant's marker object, at the root of its prefix. */
export const MARKER_NAME = '.tenant';

/**
 * How long a backup may be kept, in days: the tenants' retention periods (a final backup keeps its tenant's) and
 * the plans' backup policies (basic weekly kept 14 days, professional daily 35, enterprise daily 90). A backup
 * carries one of these in its retention tag, and the bucket has a rule for each.
 */
export const BACKUP_RETENTION_DAYS = [14, 30, 35, 90, 180, 365, 730, 2555] as const;
export type BackupRetentionDays = (typeof BACKUP_RETENTION_DAYS)[number];

/** Which backup it is: taken by a plan's schedule, asked for, or taken at the tenant's deletion. */
export type BackupKind = 'scheduled' | 'on_demand' | 'final';

/** How long an on-demand backup is kept at most: as long as the longest plan policy keeps its scheduled ones. */
export const ON_DEMAND_BACKUP_DAYS = 90;

/**
 * How long a backup that no plan policy times is kept. A final backup: its tenant's `compliance.retentionDays`,
 * counted from the deletion it was taken at. An on-demand one: {@link ON_DEMAND_BACKUP_DAYS} (taken by a person
 * before a risky change, it outlives the scheduled backups around it), or the tenant's retention when that is
 * shorter, so that no copy of a tenant's data outlives the period the tenant was promised it would be gone by.
 */
export function backupRetentionDays(
  kind: 'on_demand' | 'final',
  retentionDays: RetentionDays,
): BackupRetentionDays {
  return kind === 'final'
    ? retentionDays
    : retentionDays < ON_DEMAND_BACKUP_DAYS
      ? retentionDays
      : ON_DEMAND_BACKUP_DAYS;
}

/**
 * One rule per allowed retention period: objects under `tenants/` tagged `RetentionDays=<n>` expire after n days
 * (on a versioned bucket expiring makes the object noncurrent behind a delete marker; the version, which keeps its
 * tags, goes one day later). A bucket has one lifecycle document for all tenants, so the rules are per period, not
 * per tenant. Only a deleted tenant's objects carry the tag (`functions/lifecycle/retire.ts`).
 */
export function retentionLifecycleRules(): LifecycleRule[] {
  return RETENTION_DAYS.map((days) => ({
    ID: `tenant-retention-${days}-days`,
    Status: 'Enabled',
    Filter: { And: { Prefix: TENANTS_ROOT, Tags: [{ Key: RETENTION_TAG, Value: String(days) }] } },
    Expiration: { Days: days },
    NoncurrentVersionExpiration: { NoncurrentDays: 1 },
  }));
}

// S3 prices (us-east-1, per GB-month and per request) that decide which backups move to STANDARD_IA.
const STANDARD_GB_MONTH = 0.023;
const STANDARD_IA_GB_MONTH = 0.0125;
const TRANSITION_REQUEST = 0.01 / 1000;
/** A lifecycle transition to STANDARD_IA may come on day 30 at the earliest, and IA bills 30 days at least. */
const IA_FROM_DAY = 30;
const IA_MINIMUM_DAYS = 30;
/** IA bills a smaller object as 128 KB, and S3 Lifecycle does not transition smaller ones by default. */
const IA_MINIMUM_BYTES = 128 * 1024;
const GB = 2 ** 30;

/**
 * The size above which moving a backup object to STANDARD_IA on day 30 costs less than keeping it in STANDARD until
 * it expires on day `days`; undefined when no object gains. Per GB the move saves what STANDARD would charge for
 * the days left (0.023 × left / 30) less what IA charges for them, at least 30 (0.0125 × max(left, 30) / 30); it
 * costs one transition request ($0.00001) per object. So no retention under 47 days gains (left ≥ 17 days before
 * 0.023 × left / 30 passes IA's 30-day minimum of $0.0125): not 14, 30 or 35. At 90 days the move saves $0.021 a GB
 * and pays its request from about 0.5 MB; at 180 from about 0.2 MB; from 365 days on from IA's 128 KB floor.
 * (A restore also pays IA's $0.01 a GB retrieval: restores are rare and read a backup once.)
 */
export function standardIaBreakEvenBytes(days: number): number | undefined {
  const left = days - IA_FROM_DAY;
  const saving =
    (STANDARD_GB_MONTH * left) / 30 - (STANDARD_IA_GB_MONTH * Math.max(left, IA_MINIMUM_DAYS)) / 30;
  if (left <= 0 || saving <= 0) return undefined;
  return Math.max(Math.ceil((TRANSITION_REQUEST / saving) * GB), IA_MINIMUM_BYTES);
}

/**
 * Backups' rules, per allowed backup retention: objects under `backups/` tagged `RetentionDays=<n>` expire n days
 * after they were written (a version S3's expiry makes noncurrent goes a day later), and, where it saves money (see
 * {@link standardIaBreakEvenBytes}), those large enough move to STANDARD_IA on day 30, by a rule of their own since
 * its filter has a size. S3 lets overlapping rules be: an object due for both is expired ("How Amazon S3 handles
 * conflicts in lifecycle configurations").
 */
export function backupLifecycleRules(): LifecycleRule[] {
  return BACKUP_RETENTION_DAYS.flatMap((days): LifecycleRule[] => {
    const tags = [{ Key: RETENTION_TAG, Value: String(days) }];
    const breakEven = standardIaBreakEvenBytes(days);
    return [
      {
        ID: `backup-retention-${days}-days`,
        Status: 'Enabled',
        Filter: { And: { Prefix: BACKUPS_ROOT, Tags: tags } },
        Expiration: { Days: days },
        NoncurrentVersionExpiration: { NoncurrentDays: 1 },
      },
      ...(breakEven === undefined
        ? []
        : [
            {
              ID: `backup-infrequent-access-${days}-days`,
              Status: 'Enabled' as const,
              Filter: { And: { Prefix: BACKUPS_ROOT, Tags: tags, ObjectSizeGreaterThan: breakEven } },
              Transitions: [{ Days: IA_FROM_DAY, StorageClass: 'STANDARD_IA' as const }],
            },
          ]),
    ];
  });
}

/**
 * The stage bucket's whole lifecycle document, for CDK and the sandbox alike: the retention rules; on a versioned
 * bucket, the delete markers that retention leaves once their versions are gone, removed ("Managing delete markers":
 * a delete marker has no tags, so the tag-filtered rules never reach it, and ExpiredObjectDeleteMarker cannot sit
 * in a rule with Days, or with a tag filter), and noncurrent versions of any object expired after
 * `noncurrentVersionDays`; incomplete multipart uploads aborted after 7 days.
 */
export function bucketLifecycleRules(options: {
  readonly versioned: boolean;
  readonly noncurrentVersionDays: number;
}): LifecycleRule[] {
  return [
    ...retentionLifecycleRules(),
    ...backupLifecycleRules(),
    {
      ID: 'abort-incomplete-uploads',
      Status: 'Enabled',
      Filter: { Prefix: '' },
      AbortIncompleteMultipartUpload: { DaysAfterInitiation: 7 },
    },
    ...(options.versioned
      ? [
          ...[
            ['tenant', TENANTS_ROOT],
            ['backup', BACKUPS_ROOT],
          ].map(([what, Prefix]) => ({
            ID: `${what}-expired-delete-markers`,
            Status: 'Enabled' as const,
            Filter: { Prefix },
            Expiration: { ExpiredObjectDeleteMarker: true },
          })),
          {
            ID: 'expire-noncurrent-versions',
            Status: 'Enabled' as const,
            Filter: { Prefix: '' },
            NoncurrentVersionExpiration: { NoncurrentDays: options.noncurrentVersionDays },
          },
        ]
      : []),
  ];
}

/** The tags of an active tenant's objects: who owns it and which stage; never a retention. */
export function tenantObjectTags(tenantId: string, stage: string): Tag[] {
  return [
    { Key: 'TenantId', Value: tenantId },
    { Key: 'Stage', Value: stage },
  ];
}

/** The tags of a deleted tenant's objects: its own, and the retention the lifecycle rules expire them by. */
export function retainedObjectTags(tenantId: string, stage: string, retentionDays: RetentionDays): Tag[] {
  return [...tenantObjectTags(tenantId, stage), { Key: RETENTION_TAG, Value: String(retentionDays) }];
}

/** The tags of every object of a backup: the tenant's, the backup, its kind, and how long it is kept. */
export function backupTags(backup: {
  readonly tenantId: string;
  readonly stage: string;
  readonly backupId: string;
  readonly kind: BackupKind;
  readonly retentionDays: BackupRetentionDays;
}): Tag[] {
  return [
    ...tenantObjectTags(backup.tenantId, backup.stage),
    { Key: 'Backup', Value: backup.backupId },
    { Key: 'BackupKind', Value: backup.kind },
    { Key: RETENTION_TAG, Value: String(backup.retentionDays) },
  ];
}

/** Tags as S3's `x-amz-tagging` header wants them: a URL query string. */
export function taggingHeader(tags: readonly Tag[]): string {
  return new URLSearchParams(
    tags.map((tag): [string, string] => [tag.Key ?? '', tag.Value ?? '']),
  ).toString();
}

/** A tenant's `compliance.encryptionLevel`. */
export type EncryptionLevel = 'standard' | 'enhanced';

/**
 * How a tenant's object is encrypted, as PutObject parameters. standard: SSE-S3 (`AES256`). enhanced: SSE-KMS with
 * the stage's key, named by ARN (without it S3 would use the account's AWS managed key `aws/s3`), and the tenant in
 * the encryption context, which S3 stores with the object and passes to KMS on every read: KMS logs in CloudTrail
 * which tenant's data each use of the key was for, and the key policy refuses any use without a tenant.
 */
export function tenantEncryption(
  level: EncryptionLevel,
  keyArn: string,
  tenantId: string,
): Pick<PutObjectCommandInput, 'ServerSideEncryption' | 'SSEKMSKeyId' | 'SSEKMSEncryptionContext'> {
  if (level === 'standard') return { ServerSideEncryption: 'AES256' };
  return {
    ServerSideEncryption: 'aws:kms',
    SSEKMSKeyId: keyArn,
    // S3's x-amz-server-side-encryption-context: base64 of a UTF-8 JSON string map.
    SSEKMSEncryptionContext: Buffer.from(JSON.stringify({ tenantId }), 'utf8').toString('base64'),
  };
}
