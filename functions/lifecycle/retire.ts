import {
  type _Object,
  CopyObjectCommand,
  type CopyObjectCommandInput,
  GetObjectCommand,
  GetObjectTaggingCommand,
  HeadObjectCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import {
  DeleteSecretCommand,
  ResourceNotFoundException,
  type SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { secretPrefix, storagePrefix } from '../../schema/names.ts';
import * as z from '../../schema/zod.ts';
import { dropTenantRoles } from '../provision/roles.ts';
import { listSecretsUnder, settleAll } from '../provision/secrets.ts';
import { deleteVersionsUnder, tenantObjectListing } from '../provision/storage.ts';
import type { DataApi } from '../shared/data-api.ts';
import { ObjectTooLargeToRetainError } from '../shared/errors.ts';
import {
  type EncryptionLevel,
  MARKER_NAME,
  RETENTION_TAG,
  type RetentionDays,
  retainedObjectTags,
  taggingHeader,
  tenantEncryption,
} from '../shared/storage.ts';

/** How many objects are rewritten at once. */
const COPY_CONCURRENCY = 16;
/**
 * CopyObject's limit: "You can create a copy of your object up to 5 GB in size in a single atomic action"; a larger
 * one needs a multipart upload with UploadPartCopy.
 */
const COPY_MAX_BYTES = 5 * 1024 ** 3;

export interface RetainDeps {
  readonly s3: S3Client;
  readonly bucket: string;
  readonly stage: string;
  /** The stage's KMS key: the tenant's SSE-KMS objects are rewritten with it and the tenant's context. */
  readonly keyArn: string;
}

export interface RetainRequest {
  readonly tenantId: string;
  readonly createdAt: string;
  /** When the deletion happens, unless an earlier attempt's tombstone says when it did. */
  readonly deletedAt: string;
  readonly retentionDays: RetentionDays;
  readonly encryptionLevel: EncryptionLevel;
}

/** The tombstone marker a deletion leaves: when the tenant was deleted and how long its objects are kept. */
const Tombstone = z.object({ deletedAt: z.string(), retentionDays: z.number() });

/**
 * A deleted tenant's storage is kept as its compliance asks, not deleted, for `retentionDays` from the deletion.
 * S3 counts a lifecycle rule's days from each object's creation, so tagging objects in place would expire those
 * older than the period at the next lifecycle run: each object under `tenants/<id>/` is rewritten instead, copied
 * onto itself (a new object, created now) with the retention tag the bucket's rules expire by (TaggingDirective
 * REPLACE), its metadata, storage class and encryption kept: an SSE-KMS object under the stage key is rewritten
 * with the stage key and the tenant in the encryption context, as the key policy asks. The marker becomes a
 * tombstone saying when the tenant was deleted, written first: its `deletedAt` is the deletion's for every retry.
 * A tenant without objects is left without. Returns how many objects were rewritten and how many were already.
 *
 * Idempotent, and a retry does not extend retention: an object that already carries this retention and was
 * written at or after the deletion is the copy an earlier attempt made, and is left as it is. An object over 5 GB
 * cannot be copied in one request: the step refuses it by name ({@link ObjectTooLargeToRetainError}) rather than
 * keep it with a retention that would count from its creation.
 *
 * What is kept is the tenant's objects as they are at its deletion. On a versioned bucket the versions the copies
 * replaced, older versions and delete markers are deleted now, by version id: tags are per version, so the
 * retention rules would never reach them, and the stage's rule for noncurrent versions would keep them up to 90
 * days (prod), past a 30-day retention. The kept versions expire by their tag, go one day after (the rule's
 * NoncurrentVersionExpiration: they keep their tags), and the delete markers S3's expiry leaves are removed by the
 * `tenant-expired-delete-markers` rule.
 */
export async function retainTenantStorage(
  deps: RetainDeps,
  request: RetainRequest,
): Promise<{
  retained: number;
  alreadyRetained: number;
  retentionDays: number;
  deletedAt: string;
  noncurrentDeleted: number;
}> {
  const prefix = storagePrefix(request.tenantId);
  const marker = `${prefix}${MARKER_NAME}`;
  const tags = retainedObjectTags(request.tenantId, deps.stage, request.retentionDays);
  const pages = tenantObjectListing(deps, request.tenantId);
  const first = await pages.next();
  // A tenant that never had storage (the feature off, a failed provisioning) gets none now; what an object's
  // earlier life left (noncurrent versions, delete markers) goes in any case.
  if (first.done) {
    const { deleted } = await deleteVersionsUnder(deps, prefix, `tenant ${request.tenantId}`, 'noncurrent');
    return {
      retained: 0,
      alreadyRetained: 0,
      retentionDays: request.retentionDays,
      deletedAt: request.deletedAt,
      noncurrentDeleted: deleted,
    };
  }
  const earlier = await readTombstone(deps, marker);
  const deletedAt = earlier?.deletedAt ?? request.deletedAt;
  let retained = 0;
  if (earlier?.retentionDays !== request.retentionDays) {
    await deps.s3.send(
      new PutObjectCommand({
        Bucket: deps.bucket,
        Key: marker,
        Body: JSON.stringify({
          tenantId: request.tenantId,
          createdAt: request.createdAt,
          deletedAt,
          retentionDays: request.retentionDays,
        }),
        ContentType: 'application/json',
        Tagging: taggingHeader(tags),
        ...tenantEncryption(request.encryptionLevel, deps.keyArn, request.tenantId),
      }),
    );
    retained += 1;
  }
  // S3 keeps LastModified in whole seconds.
  const since = Math.floor(Date.parse(deletedAt) / 1000) * 1000;
  const retain = async (object: _Object): Promise<'copied' | 'already'> => {
    const Key = object.Key ?? '';
    if ((object.LastModified?.getTime() ?? 0) >= since && (await carriesRetention(deps, Key, request))) {
      return 'already';
    }
    if ((object.Size ?? 0) > COPY_MAX_BYTES) {
      throw new ObjectTooLargeToRetainError(
        `s3://${deps.bucket}/${Key} of tenant ${request.tenantId} is ${object.Size} bytes: over CopyObject's 5 GB, it cannot be rewritten to keep it ${request.retentionDays} days from the deletion; copy it by multipart upload (UploadPartCopy) with the tags ${taggingHeader(tags)}, or delete it, then retry`,
      );
    }
    await deps.s3.send(
      new CopyObjectCommand({
        Bucket: deps.bucket,
        Key,
        CopySource: `${deps.bucket}/${encodeURIComponent(Key)}`,
        TaggingDirective: 'REPLACE',
        Tagging: taggingHeader(tags),
        ...(await keptAttributes(deps, Key, request.tenantId)),
      }),
    );
    return 'copied';
  };
  let alreadyRetained = earlier?.retentionDays === request.retentionDays ? 1 : 0;
  for (let page: IteratorResult<_Object[]> = first; !page.done; page = await pages.next()) {
    const others = page.value.filter((object) => object.Key !== marker);
    for (let i = 0; i < others.length; i += COPY_CONCURRENCY) {
      const outcomes = await settleAll(others.slice(i, i + COPY_CONCURRENCY).map(retain));
      retained += outcomes.filter((outcome) => outcome === 'copied').length;
      alreadyRetained += outcomes.filter((outcome) => outcome === 'already').length;
    }
  }
  // After the copies and the tombstone, so that the versions they replaced go too.
  const { deleted } = await deleteVersionsUnder(deps, prefix, `tenant ${request.tenantId}`, 'noncurrent');
  return {
    retained,
    alreadyRetained,
    retentionDays: request.retentionDays,
    deletedAt,
    noncurrentDeleted: deleted,
  };
}

/** The tombstone an earlier attempt of the deletion wrote, if the marker is one. */
async function readTombstone(
  deps: RetainDeps,
  marker: string,
): Promise<z.infer<typeof Tombstone> | undefined> {
  let text: string;
  try {
    const output = await deps.s3.send(new GetObjectCommand({ Bucket: deps.bucket, Key: marker }));
    text = (await output.Body?.transformToString()) ?? '';
  } catch (error) {
    if (error instanceof Error && error.name === 'NoSuchKey') return undefined;
    throw error;
  }
  try {
    const parsed = Tombstone.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** Whether the object carries the tenant's retention tag already. */
async function carriesRetention(deps: RetainDeps, Key: string, request: RetainRequest): Promise<boolean> {
  const { TagSet } = await deps.s3.send(new GetObjectTaggingCommand({ Bucket: deps.bucket, Key }));
  return (TagSet ?? []).some(
    (tag) => tag.Key === RETENTION_TAG && tag.Value === String(request.retentionDays),
  );
}

/**
 * What a copy onto itself must ask for to keep the object as it is: its storage class (a copy is STANDARD unless
 * it names one) and its encryption (a copy is encrypted as it asks, or by the bucket's default). SSE-KMS under the
 * stage key: the tenant's, with its context (HeadObject does not return the context; the key policy refuses any use
 * without the tenant). SSE-KMS under another key: that key. Otherwise SSE-S3. Asking for an encryption also makes
 * the copy legal: S3 refuses to copy an object onto itself changing nothing but its tags.
 */
async function keptAttributes(
  deps: RetainDeps,
  Key: string,
  tenantId: string,
): Promise<
  Pick<
    CopyObjectCommandInput,
    'ServerSideEncryption' | 'SSEKMSKeyId' | 'SSEKMSEncryptionContext' | 'StorageClass'
  >
> {
  const head = await deps.s3.send(new HeadObjectCommand({ Bucket: deps.bucket, Key }));
  const storageClass = head.StorageClass ? { StorageClass: head.StorageClass } : {};
  const algorithm = head.ServerSideEncryption;
  if (algorithm !== 'aws:kms' && algorithm !== 'aws:kms:dsse') {
    return { ...storageClass, ServerSideEncryption: 'AES256' };
  }
  if (head.SSEKMSKeyId === deps.keyArn) {
    return {
      ...storageClass,
      ...tenantEncryption('enhanced', deps.keyArn, tenantId),
      ServerSideEncryption: algorithm,
    };
  }
  return { ...storageClass, ServerSideEncryption: algorithm, SSEKMSKeyId: head.SSEKMSKeyId };
}

/**
 * Drops the tenant's database roles (their objects and privileges first, in the database when it still exists;
 * their sessions ended) and schedules every secret under the tenant's prefix for deletion with the stage's
 * recovery window, so that a mistaken deletion can still be recovered by an operator for that long (the passwords
 * are useless by then: the roles are gone). Secrets already scheduled are left as they are. Idempotent.
 */
export async function retireRolesAndSecrets(
  deps: {
    readonly cluster: DataApi;
    readonly secrets: SecretsManagerClient;
    readonly stage: string;
    readonly recoveryWindowDays: number;
  },
  tenantId: string,
): Promise<{ roles: string[]; secrets: string[] }> {
  const roles = await dropTenantRoles(deps.cluster, tenantId);
  const secrets = (await listSecretsUnder(deps.secrets, secretPrefix(deps.stage, tenantId))).filter(
    (secret) => secret.deletedDate === undefined,
  );
  await settleAll(
    secrets.map(async (secret) => {
      try {
        await deps.secrets.send(
          new DeleteSecretCommand({ SecretId: secret.arn, RecoveryWindowInDays: deps.recoveryWindowDays }),
        );
      } catch (error) {
        if (!(error instanceof ResourceNotFoundException)) throw error;
      }
    }),
  );
  return { roles, secrets: secrets.map((secret) => secret.name) };
}
