import {
  type _Object,
  DeleteObjectsCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  type ObjectIdentifier,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { storagePrefix } from '../../schema/names.ts';
import {
  type EncryptionLevel,
  MARKER_NAME,
  taggingHeader,
  tenantEncryption,
  tenantObjectTags,
} from '../shared/storage.ts';

export interface StorageDeps {
  readonly s3: S3Client;
  readonly bucket: string;
  readonly stage: string;
  /** The stage's KMS key, for tenants whose encryption level is `enhanced`. */
  readonly keyArn: string;
}

export interface TenantStorage {
  readonly bucket: string;
  readonly prefix: string;
}

export interface StorageRequest {
  readonly tenantId: string;
  /** The tenant's creation time, so that a rerun writes the same marker. */
  readonly createdAt: string;
  readonly encryptionLevel: EncryptionLevel;
}

/**
 * The tenant's area in the stage bucket: the prefix `tenants/<id>/`, announced by a marker object
 * (`tenants/<id>/.tenant`, JSON) tagged with the tenant and the stage. No retention tag: the bucket's lifecycle
 * rules expire by it, and S3 counts their days from each object's creation, so the marker would go while the tenant
 * is active; retention is armed at deletion (`functions/lifecycle/retire.ts`). Idempotent: the marker is rewritten
 * the same.
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
      Tagging: taggingHeader(tenantObjectTags(request.tenantId, deps.stage)),
      ...tenantEncryption(request.encryptionLevel, deps.keyArn, request.tenantId),
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
 * Deletes every object under the tenant's prefix, marker included, for good: on a versioned bucket (staging, prod) a
 * DeleteObject without a version id only puts a delete marker in front of the data, so every version and every
 * delete marker is deleted by its version id (see {@link deleteVersionsUnder}). Returns how many versions went.
 */
export async function removeTenantStorage(
  deps: Pick<StorageDeps, 's3' | 'bucket'>,
  tenantId: string,
): Promise<{ deleted: number }> {
  return deleteVersionsUnder(deps, storagePrefix(tenantId), `tenant ${tenantId}`);
}

/** Which versions under a prefix {@link deleteVersionsUnder} deletes: all, or only those no longer current. */
export type VersionSelection = 'all' | 'noncurrent';

/**
 * Deletes versions under the prefix by version id (ListObjectVersions, then DeleteObjects of up to 1,000 with
 * their `VersionId`): every version and delete marker, or with `noncurrent` those that are not the current version
 * (current delete markers included: nothing is current behind them). On a bucket never versioned the listing gives
 * each object once with the version id `null`, which deletes it as DeleteObject would. A version S3 could not
 * delete fails the call, named, rather than being left silently. Returns how many went.
 *
 * Explicit deletion rather than a lifecycle rule for noncurrent versions: the promise is "nothing left" when the step
 * ends, where a rule would keep the data for the stage's noncurrent days (7 in staging, 90 in prod) and act at
 * S3's next lifecycle run; listing resumes at its markers, which stay valid as the versions before them go.
 */
export async function deleteVersionsUnder(
  deps: Pick<StorageDeps, 's3' | 'bucket'>,
  prefix: string,
  what: string,
  selection: VersionSelection = 'all',
): Promise<{ deleted: number }> {
  let deleted = 0;
  let keyMarker: string | undefined;
  let versionIdMarker: string | undefined;
  do {
    const page = await deps.s3.send(
      new ListObjectVersionsCommand({
        Bucket: deps.bucket,
        Prefix: prefix,
        KeyMarker: keyMarker,
        VersionIdMarker: versionIdMarker,
      }),
    );
    const entries = [
      ...(page.Versions ?? []).map((version) => ({ ...version, marker: false })),
      ...(page.DeleteMarkers ?? []).map((marker) => ({ ...marker, marker: true })),
    ];
    const objects: ObjectIdentifier[] = entries.flatMap((entry) =>
      entry.Key && entry.VersionId && (selection === 'all' || !entry.IsLatest || entry.marker)
        ? [{ Key: entry.Key, VersionId: entry.VersionId }]
        : [],
    );
    if (objects.length > 0) {
      const output = await deps.s3.send(
        new DeleteObjectsCommand({ Bucket: deps.bucket, Delete: { Objects: objects, Quiet: true } }),
      );
      const errors = output.Errors ?? [];
      if (errors.length > 0) {
        const first = errors[0];
        const error = new Error(
          `S3 kept ${errors.length} object version(s) of ${what}, e.g. ${first?.Key} (${first?.VersionId}): ${first?.Message ?? ''}`,
        );
        error.name = first?.Code ?? 'S3DeleteObjectsError';
        throw error;
      }
      deleted += objects.length;
    }
    keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
    versionIdMarker = page.IsTruncated ? page.NextVersionIdMarker : undefined;
  } while (keyMarker);
  return { deleted };
}
