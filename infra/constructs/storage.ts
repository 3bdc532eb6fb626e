import type { LifecycleRule as S3LifecycleRule } from '@aws-sdk/client-s3';
import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { AccountRootPrincipal, type IRole, PolicyDocument, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { Key } from 'aws-cdk-lib/aws-kms';
import {
  BlockPublicAccess,
  Bucket,
  BucketEncryption,
  CfnBucket,
  type LifecycleRule,
  ObjectOwnership,
  StorageClass,
} from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { bucketLifecycleRules } from '../../functions/shared/storage.ts';

export interface StorageProps {
  /**
   * Keep every version of an object; old versions expire after `noncurrentVersionExpiration`.
   * @default true
   */
  readonly versioned?: boolean;
  /** @default 30 days */
  readonly noncurrentVersionExpiration?: Duration;
  /** @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * Days S3 keeps the bucket's server access logs.
   * @default 90 days
   */
  readonly accessLogsExpiration?: Duration;
}

/** Key management, for the account's administrators: everything but using the key on data. */
const KEY_ADMIN_ACTIONS = [
  'kms:Create*',
  'kms:Describe*',
  'kms:Enable*',
  'kms:List*',
  'kms:Put*',
  'kms:Update*',
  'kms:Revoke*',
  'kms:Disable*',
  'kms:Get*',
  'kms:Delete*',
  'kms:TagResource',
  'kms:UntagResource',
  'kms:ScheduleKeyDeletion',
  'kms:CancelKeyDeletion',
  'kms:RotateKeyOnDemand',
];

/**
 * The stage's tenant storage bucket: a prefix per tenant (`tenants/<id>/`), no public access, TLS only, S3-managed
 * encryption by default, ownership enforced (no ACLs), server access logs to a second bucket, and the lifecycle
 * rules of `functions/shared/storage.ts`: a tenant's objects carry a `RetentionDays` tag and expire by it. Beside
 * it, the stage's KMS key for tenants whose `encryptionLevel` is `enhanced` (SSE-KMS), rotated yearly; its policy
 * lets the account administer it and nobody use it, until {@link Storage.allowKeyUse} names the roles that may.
 */
export class Storage extends Construct {
  readonly bucket: Bucket;
  readonly accessLogs: Bucket;
  readonly key: Key;

  constructor(scope: Construct, id: string, props: StorageProps = {}) {
    super(scope, id);
    // S3 log delivery is granted by a bucket policy, not the legacy LogDeliveryWrite ACL (ACLs stay disabled).
    this.node.setContext('@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy', true);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    const versioned = props.versioned ?? true;
    const common = {
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      encryption: BucketEncryption.S3_MANAGED,
      removalPolicy,
    } as const;

    this.accessLogs = new Bucket(this, 'AccessLogs', {
      ...common,
      // The S3 log delivery service writes with ACLs disabled when the bucket owner is enforced.
      objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [
        { id: 'expire-access-logs', expiration: props.accessLogsExpiration ?? Duration.days(90) },
      ],
    });

    const lifecycleRules = bucketLifecycleRules({
      versioned,
      noncurrentVersionDays: (props.noncurrentVersionExpiration ?? Duration.days(30)).toDays(),
    }).map(toCdkRule);
    this.bucket = new Bucket(this, 'Bucket', {
      ...common,
      objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
      versioned,
      serverAccessLogsBucket: this.accessLogs,
      serverAccessLogsPrefix: 'storage/',
      lifecycleRules,
    });
    // CloudFormation types a rule's object sizes as strings (a Long), where CDK writes the number it is given.
    const cfnBucket = this.bucket.node.defaultChild;
    if (!(cfnBucket instanceof CfnBucket)) throw new Error('The storage bucket has no CfnBucket');
    lifecycleRules.forEach((rule, index) => {
      for (const [name, value] of [
        ['ObjectSizeGreaterThan', rule.objectSizeGreaterThan],
        ['ObjectSizeLessThan', rule.objectSizeLessThan],
      ] as const) {
        if (value !== undefined) {
          cfnBucket.addPropertyOverride(`LifecycleConfiguration.Rules.${index}.${name}`, String(value));
        }
      }
    });

    // Not CDK's default key policy, which gives the account kms:* and so lets any IAM policy of the account use the
    // key: here use is granted in the key policy itself, to the roles that write and read tenant objects only.
    this.key = new Key(this, 'Key', {
      description:
        'Tenant objects of encryptionLevel enhanced (SSE-KMS), tenant id in the encryption context',
      enableKeyRotation: true,
      removalPolicy,
      policy: new PolicyDocument({
        statements: [
          new PolicyStatement({
            sid: 'KeyAdministration',
            principals: [new AccountRootPrincipal()],
            actions: KEY_ADMIN_ACTIONS,
            // In a key policy `*` is the key itself.
            resources: ['*'],
          }),
        ],
      }),
    });
  }

  /**
   * Lets these roles use the key for `actions` (kms:GenerateDataKey to write, kms:Decrypt to read), only through
   * S3 in this region and only with a `tenantId` in the encryption context, which the product always sends.
   */
  allowKeyUse(roles: readonly IRole[], actions: readonly string[]): void {
    if (roles.length === 0) return;
    this.key.addToResourcePolicy(
      new PolicyStatement({
        sid: `TenantObjectsThroughS3${actions.map((action) => action.replace('kms:', '')).join('')}`,
        principals: [...roles],
        actions: [...actions],
        // In a key policy `*` is the key itself; the principals and conditions are what narrow this statement.
        resources: ['*'],
        conditions: keyUseConditions(Stack.of(this).region),
      }),
    );
  }
}

/** Where the stage key may be used: through S3 in the stack's region, for a tenant's object. */
export function keyUseConditions(region: string): Record<string, Record<string, string>> {
  return {
    StringEquals: { 'kms:ViaService': `s3.${region}.amazonaws.com` },
    Null: { 'kms:EncryptionContext:tenantId': 'false' },
  };
}

/** `functions/shared/storage.ts` speaks the S3 API's lifecycle shape; CloudFormation's is CDK's. */
function toCdkRule(rule: S3LifecycleRule): LifecycleRule {
  const filter = rule.Filter?.And ?? rule.Filter;
  const prefix = filter?.Prefix;
  const tags = Object.fromEntries(
    (rule.Filter?.And?.Tags ?? []).map((tag) => [tag.Key ?? '', tag.Value ?? '']),
  );
  const days = rule.Expiration?.Days;
  const noncurrentDays = rule.NoncurrentVersionExpiration?.NoncurrentDays;
  const abortDays = rule.AbortIncompleteMultipartUpload?.DaysAfterInitiation;
  const transitions = (rule.Transitions ?? []).map((transition) => {
    if (transition.Days === undefined || transition.StorageClass === undefined) {
      throw new Error(`Lifecycle rule ${rule.ID}: a transition needs Days and a StorageClass`);
    }
    return {
      storageClass: new StorageClass(transition.StorageClass),
      transitionAfter: Duration.days(transition.Days),
    };
  });
  return {
    ...(rule.ID ? { id: rule.ID } : {}),
    enabled: rule.Status === 'Enabled',
    ...(prefix ? { prefix } : {}),
    ...(Object.keys(tags).length > 0 ? { tagFilters: tags } : {}),
    ...(filter?.ObjectSizeGreaterThan !== undefined
      ? { objectSizeGreaterThan: filter.ObjectSizeGreaterThan }
      : {}),
    ...(filter?.ObjectSizeLessThan !== undefined ? { objectSizeLessThan: filter.ObjectSizeLessThan } : {}),
    ...(transitions.length > 0 ? { transitions } : {}),
    ...(days ? { expiration: Duration.days(days) } : {}),
    ...(rule.Expiration?.ExpiredObjectDeleteMarker ? { expiredObjectDeleteMarker: true } : {}),
    ...(noncurrentDays ? { noncurrentVersionExpiration: Duration.days(noncurrentDays) } : {}),
    ...(abortDays ? { abortIncompleteMultipartUploadAfter: Duration.days(abortDays) } : {}),
  };
}
