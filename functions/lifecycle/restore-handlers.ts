import { join } from 'node:path';
import { BackupId } from '../../schema/api/lifecycle.ts';
import { stepSetup } from '../provision/step.ts';
import { s3Client } from '../shared/clients.ts';
import { loadMigrations } from '../shared/migrations.ts';
import { TENANT_ID_PATTERN } from '../shared/names.ts';
import * as z from '../shared/zod.ts';
import { readManifest } from './backup.ts';
import { restoreBackup, restoreTenantSchema } from './restore.ts';
import { LIFECYCLE_ACTOR, LifecycleInput, lifecycleStep } from './step.ts';

/** RestoreSchema and LoadBackup: the restore-tenant run's own steps (the rest are provisioning's). */
const { env, cluster, registry } = stepSetup({
  STORAGE_BUCKET: z.string().check(z.minLength(3)),
  SCHEMA_DIR: z.string().check(z.minLength(1)),
});
const deps = { cluster, s3: s3Client(), bucket: env.STORAGE_BUCKET };

// Read once per container; awaited by the step, so a broken template fails the step, named.
const migrations = loadMigrations(join(env.SCHEMA_DIR, 'tenant'));
migrations.catch(() => {});

const RestoreInput = z.object({
  ...LifecycleInput.shape,
  source: z.object({ tenantId: z.string().check(z.regex(TENANT_ID_PATTERN)), backupId: BackupId }),
});

export const restoreSchema = /* @__PURE__ */ lifecycleStep(
  'RestoreSchema',
  registry,
  RestoreInput,
  async (tenant, input) => {
    const manifest = await readManifest(deps, input.source.tenantId, input.source.backupId);
    const result = await restoreTenantSchema(cluster, tenant.id, await migrations, manifest.schemaVersion);
    await registry.setStatus(tenant.id, tenant.status, LIFECYCLE_ACTOR, { schemaVersion: result.version });
    return result;
  },
  { statuses: ['provisioning'] },
);

export const loadBackup = /* @__PURE__ */ lifecycleStep(
  'LoadBackup',
  registry,
  RestoreInput,
  (tenant, input) => restoreBackup(deps, tenant.id, input.source),
  { statuses: ['provisioning'] },
);
