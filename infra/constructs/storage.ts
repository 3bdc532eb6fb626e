import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import {
  BlockPublicAccess,
  Bucket,
  BucketEncryption,
  type LifecycleRule,
  ObjectOwnership,
} from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { RETENTION_TAG, retentionLifecycleRules } from '../../functions/shared/storage.ts';

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

/**
 * The stage's tenant storage bucket: a prefix per tenant (`tenants/<id>/`), no public access, TLS only, S3-managed
 * encryption, ownership enforced (no ACLs), server access logs to a second bucket, and the lifecycle rules of
 * `functions/shared/storage.ts`: a tenant's objects carry a `RetentionDays` tag and expire by it.
 */
export class Storage extends Construct {
  readonly bucket: Bucket;
  readonly accessLogs: Bucket;

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

    const lifecycleRules: LifecycleRule[] = [
      ...retentionLifecycleRules().map(toCdkRule),
      { id: 'abort-incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(7) },
    ];
    if (versioned) {
      lifecycleRules.push({
        id: 'expire-noncurrent-versions',
        noncurrentVersionExpiration: props.noncurrentVersionExpiration ?? Duration.days(30),
      });
    }
    this.bucket = new Bucket(this, 'Bucket', {
      ...common,
      objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
      versioned,
      serverAccessLogsBucket: this.accessLogs,
      serverAccessLogsPrefix: 'storage/',
      lifecycleRules,
    });
  }
}

/** `functions/shared/storage.ts` speaks the S3 API's lifecycle shape; CloudFormation's is CDK's. */
function toCdkRule(rule: ReturnType<typeof retentionLifecycleRules>[number]): LifecycleRule {
  const filter = rule.Filter?.And;
  const days = rule.Expiration?.Days;
  if (!filter?.Prefix || !days) throw new Error(`Lifecycle rule ${rule.ID} has no prefix or expiration`);
  const tags = Object.fromEntries(
    (filter.Tags ?? []).map((tag) => [tag.Key ?? RETENTION_TAG, tag.Value ?? '']),
  );
  const noncurrentDays = rule.NoncurrentVersionExpiration?.NoncurrentDays;
  return {
    ...(rule.ID ? { id: rule.ID } : {}),
    enabled: rule.Status === 'Enabled',
    prefix: filter.Prefix,
    tagFilters: tags,
    expiration: Duration.days(days),
    ...(noncurrentDays ? { noncurrentVersionExpiration: Duration.days(noncurrentDays) } : {}),
  };
}
