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
/** The object tag the lifecycle rules filter on: how many days an object is kept. */
export const RETENTION_TAG = 'RetentionDays';
/** The tenant's marker object, at the root of its prefix. */
export const MARKER_NAME = '.tenant';

/**
 * One rule per allowed retention period: objects under `tenants/` tagged `RetentionDays=<n>` expire after n days
 * (on a versioned bucket expiring makes the object noncurrent behind a delete marker; the version, which keeps its
 * tags, goes one day later). A bucket has one lifecycle document for all tenants, so the rules are per period, not
 * per tenant.
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
    {
      ID: 'abort-incomplete-uploads',
      Status: 'Enabled',
      Filter: { Prefix: '' },
      AbortIncompleteMultipartUpload: { DaysAfterInitiation: 7 },
    },
    ...(options.versioned
      ? [
          {
            ID: 'tenant-expired-delete-markers',
            Status: 'Enabled' as const,
            Filter: { Prefix: TENANTS_ROOT },
            Expiration: { ExpiredObjectDeleteMarker: true },
          },
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

/** The tags of a tenant's objects: who owns it, which stage, and how long it is kept. */
export function tenantObjectTags(tenantId: string, stage: string, retentionDays: RetentionDays): Tag[] {
  return [
    { Key: 'TenantId', Value: tenantId },
    { Key: 'Stage', Value: stage },
    { Key: RETENTION_TAG, Value: String(retentionDays) },
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
