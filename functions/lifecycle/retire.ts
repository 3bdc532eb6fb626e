import { PutObjectCommand, PutObjectTaggingCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  DeleteSecretCommand,
  ResourceNotFoundException,
  type SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { secretPrefix, storagePrefix } from '../../schema/names.ts';
import { dropTenantRoles } from '../provision/roles.ts';
import { listSecretsUnder, settleAll } from '../provision/secrets.ts';
import { deleteVersionsUnder, tenantObjectPages } from '../provision/storage.ts';
import type { DataApi } from '../shared/data-api.ts';
import { MARKER_NAME, type RetentionDays, taggingHeader, tenantObjectTags } from '../shared/storage.ts';

/** How many objects are tagged at once. */
const TAG_CONCURRENCY = 16;

/**
 * A deleted tenant's storage is kept as its compliance asks, not deleted: every object under `tenants/<id>/` gets
 * the retention tag (and the tenant and stage tags) that the bucket's lifecycle rules expire by, and the marker is
 * rewritten as a tombstone saying when the tenant was deleted (a new object, so it stays the whole period). S3
 * counts a rule's days from each object's creation: objects older than the period go at the next lifecycle run.
 * A tenant without objects is left without. Idempotent. Returns how many objects were tagged.
 *
 * What is kept is the tenant's objects as they are at its deletion. On a versioned bucket their older versions and
 * the delete markers are deleted now, by version id: tags are per version, so the retention rules would never reach
 * them, and the stage's rule for noncurrent versions would keep them up to 90 days (prod), past a 30-day retention.
 * The kept versions expire by their tag, go one day after (the rule's NoncurrentVersionExpiration: they keep their
 * tags), and the delete markers S3's expiry leaves are removed by the `tenant-expired-delete-markers` rule.
 */
export async function retainTenantStorage(
  deps: { readonly s3: S3Client; readonly bucket: string; readonly stage: string },
  request: { tenantId: string; createdAt: string; deletedAt: string; retentionDays: RetentionDays },
): Promise<{ tagged: number; retentionDays: number; noncurrentDeleted: number }> {
  const tags = tenantObjectTags(request.tenantId, deps.stage, request.retentionDays);
  const marker = `${storagePrefix(request.tenantId)}${MARKER_NAME}`;
  let tagged = 0;
  let sawAny = false;
  for await (const keys of tenantObjectPages(deps, request.tenantId)) {
    const others = keys.filter((key) => key !== marker);
    for (let i = 0; i < others.length; i += TAG_CONCURRENCY) {
      await settleAll(
        others
          .slice(i, i + TAG_CONCURRENCY)
          .map((Key) =>
            deps.s3.send(
              new PutObjectTaggingCommand({ Bucket: deps.bucket, Key, Tagging: { TagSet: tags } }),
            ),
          ),
      );
    }
    tagged += others.length;
    sawAny = true;
  }
  // A tenant that never had storage (the feature off, a failed provisioning) gets none now; what an object's
  // earlier life left (noncurrent versions, delete markers) goes in any case.
  if (!sawAny) {
    const { deleted } = await deleteVersionsUnder(
      deps,
      storagePrefix(request.tenantId),
      `tenant ${request.tenantId}`,
      'noncurrent',
    );
    return { tagged: 0, retentionDays: request.retentionDays, noncurrentDeleted: deleted };
  }
  await deps.s3.send(
    new PutObjectCommand({
      Bucket: deps.bucket,
      Key: marker,
      Body: JSON.stringify({
        tenantId: request.tenantId,
        createdAt: request.createdAt,
        deletedAt: request.deletedAt,
        retentionDays: request.retentionDays,
      }),
      ContentType: 'application/json',
      Tagging: taggingHeader(tags),
    }),
  );
  // After the tombstone, so that the marker it replaced goes too.
  const { deleted } = await deleteVersionsUnder(
    deps,
    storagePrefix(request.tenantId),
    `tenant ${request.tenantId}`,
    'noncurrent',
  );
  return { tagged: tagged + 1, retentionDays: request.retentionDays, noncurrentDeleted: deleted };
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
