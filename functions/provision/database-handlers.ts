import { join } from 'node:path';
import { loadMigrations } from '../shared/migrations.ts';
import * as z from '../shared/zod.ts';
import { createTenantDatabase, dropTenantDatabase, migrateTenantDatabase } from './database.ts';
import { ACTOR, PROVISIONING, provisioningStep, stepSetup } from './step.ts';

/** CreateDatabase, ApplyMigrations and DropDatabase: the tenant database, as the provisioner. */
const { env, cluster, registry } = stepSetup({ SCHEMA_DIR: z.string().check(z.minLength(1)) });

// Read once per container; awaited by the step, so a broken template fails the step, named.
const migrations = loadMigrations(join(env.SCHEMA_DIR, 'tenant'));
migrations.catch(() => {});

export const createDatabase = /* @__PURE__ */ provisioningStep(
  'CreateDatabase',
  registry,
  async (tenant, step) => {
    const database = await createTenantDatabase(
      cluster,
      tenant.id,
      tenant.limits.maxConnections,
      await migrations,
    );
    step.record({ resources: { database: database.name } });
    return { name: database.name };
  },
  { statuses: PROVISIONING },
);

export const applyMigrations = /* @__PURE__ */ provisioningStep(
  'ApplyMigrations',
  registry,
  async (tenant, step) => {
    const { version, applied } = await migrateTenantDatabase(cluster, tenant.id, await migrations);
    step.record({ schemaVersion: version });
    return { version, applied };
  },
  { statuses: PROVISIONING },
);

export const dropDatabase = /* @__PURE__ */ provisioningStep('DropDatabase', registry, async (tenant) => {
  const result = await dropTenantDatabase(cluster, tenant.id);
  await registry.removeResources(tenant.id, ['database'], ACTOR);
  return result;
});
