import {
  type _Object,
  DeleteObjectsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
  type ServerSideEncryption,
} from '@aws-sdk/client-s3';
import { storagePrefix } from '../shared/names.ts';
import { MARKER_NAME, type RetentionDays, taggingHeader, tenantObjectTags } from '../shared/storage.ts';

export interface StorageDeps {
  readonly s3: S3Client;
  readonly bucket: string;
  readonly stage: string;
}

export interface TenantStorage {
  readonly bucket: string;
  readonly prefix: string;
}

export interface StorageRequest {
  readonly tenantId: string;
  /** The tenant's creation time, so that a rerun writes the same marker. */
  readonly createdAt: string;
  readonly retentionDays: RetentionDays;
  readonly encryptionLevel: 'standard' | 'enhanced';
}

/** standard: S3-managed keys; enhanced: KMS (the bucket's default KMS key). */
const ENCRYPTION: Record<StorageRequest['encryptionLevel'], ServerSideEncryption> = {
  standard: 'AES256',
  enhanced: 'aws:kms',
};

/**
 * The tenant's area in the stage bucket: the prefix `tenants/<id>/`, announced by a marker object
 * (`tenants/<id>/.tenant`, JSON) tagged with the tenant, the stage and its retention; the bucket's lifecycle
 * rules (see `retentionLifecycleRules`) expire objects by that tag. Idempotent: the marker is rewritten the same.
 */
export async function configureTenantStorage(
  deps: StorageDeps,
  request: StorageRequest,
): Promise<TenantStorage> {
  const prefix = storagePrefix(request.tenantId);
  await deps.s3.send(
    new PutObjectCommand({
      Bucket: deps.bucket,
      Key: `${prefix}${MARKER_NAME}`,
      Body: JSON.stringify({ tenantId: request.tenantId, createdAt: request.createdAt }),
      ContentType: 'application/json',
      Tagging: taggingHeader(tenantObjectTags(request.tenantId, deps.stage, request.retentionDays)),
      ServerSideEncryption: ENCRYPTION[request.encryptionLevel],
    }),
  );
  return { bucket: deps.bucket, prefix };
}

/** The objects under the tenant's prefix (key, size and the rest S3 lists), a page (at most 1,000) at a time. */
export async function* tenantObjectListing(
  deps: Pick<StorageDeps, 's3' | 'bucket'>,
  tenantId: string,
  pageSize = 1000,
): AsyncGenerator<_Object[]> {
  let token: string | undefined;
  do {
    const page = await deps.s3.send(
      new ListObjectsV2Command({
        Bucket: deps.bucket,
        Prefix: storagePrefix(tenantId),
        ContinuationToken: token,
        MaxKeys: pageSize,
      }),
    );
    if (page.Contents && page.Contents.length > 0) yield page.Contents;
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
}

/** The keys under the tenant's prefix, a page (at most 1,000) at a time. */
export async function* tenantObjectPages(
  deps: Pick<StorageDeps, 's3' | 'bucket'>,
  tenantId: string,
  pageSize = 1000,
): AsyncGenerator<string[]> {
  for await (const objects of tenantObjectListing(deps, tenantId, pageSize)) {
    const keys = objects.flatMap((object) => (object.Key ? [object.Key] : []));
    if (keys.length > 0) yield keys;
  }
}

/**
 * Deletes every object under the tenant's prefix, marker included, in batches of 1,000 (DeleteObjects' maximum).
 * A key S3 could not delete fails the step, named, rather than being left silently. Returns how many went.
 */
export async function removeTenantStorage(
  deps: Pick<StorageDeps, 's3' | 'bucket'>,
  tenantId: string,
): Promise<{ deleted: number }> {
  let deleted = 0;
  for await (const keys of tenantObjectPages(deps, tenantId)) {
    const output = await deps.s3.send(
      new DeleteObjectsCommand({
        Bucket: deps.bucket,
        Delete: { Objects: keys.map((Key) => ({ Key })), Quiet: true },
      }),
    );
    const errors = output.Errors ?? [];
    if (errors.length > 0) {
      const first = errors[0];
      const error = new Error(
        `S3 kept ${errors.length} object(s) of tenant ${tenantId}, e.g. ${first?.Key}: ${first?.Message ?? ''}`,
      );
      error.name = first?.Code ?? 'S3DeleteObjectsError';
      throw error;
    }
    deleted += keys.length;
  }
  return { deleted };
}
