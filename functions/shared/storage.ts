import type { LifecycleRule, Tag } from '@aws-sdk/client-s3';
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
 * (their old versions, on a versioned bucket, one day after they stop being current). A bucket has one lifecycle
 * document for all tenants, so the rules are per period, not per tenant.
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
