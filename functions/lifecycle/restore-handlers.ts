import { join } from 'node:path';
import { BackupId } from '../../schema/api/lifecycle.ts';
import { TENANT_ID_PATTERN } from '../../schema/names.ts';
import * as z from '../../schema/zod.ts';
import { s3Client } from '../shared/clients.ts';
import { loadMigrations } from '../shared/migrations.ts';
import { step, stepSetup } from '../shared/step.ts';
import { readManifest } from './backup.ts';
import { restoreBackup, restoreTenantSchema } from './restore.ts';
import { LIFECYCLE_ACTOR, LifecycleInput } from './step.ts';

/** RestoreSchema and LoadBackup: the restore-tenant run's own steps (the rest are provisioning's). */
const { env, cluster, registry } = stepSetup(['STORAGE_BUCKET', 'SCHEMA_DIR']);
const progress = { store: registry.progress, actor: LIFECYCLE_ACTOR };
const deps = { cluster, s3: s3Client(), bucket: env.STORAGE_BUCKET };

// Read once per container; awaited by the step, so a broken template fails the step, named.
const migrations = loadMigrations(join(env.SCHEMA_DIR, 'tenant'));
migrations.catch(() => {});

const RestoreInput = z.object({
  ...LifecycleInput.shape,
  source: z.object({ tenantId: z.string().check(z.regex(TENANT_ID_PATTERN)), backupId: BackupId }),
});

export const restoreSchema = /* @__PURE__ */ step(
  'RestoreSchema',
  { input: RestoreInput, progress, statuses: ['provisioning'] },
  async ({ tenant, input, record }) => {
    const manifest = await readManifest(deps, input.source.tenantId, input.source.backupId);
    const result = await restoreTenantSchema(cluster, tenant.id, await migrations, manifest.schemaVersion);
    record({ schemaVersion: result.version });
    return result;
  },
);

export const loadBackup = /* @__PURE__ */ step(
  'LoadBackup',
  { input: RestoreInput, progress, statuses: ['provisioning'] },
  ({ tenant, input }) => restoreBackup(deps, tenant.id, input.source),
);
