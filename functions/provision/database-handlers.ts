import { join } from 'node:path';
import { loadMigrations } from '../shared/migrations.ts';
import { StepInput, step, stepSetup } from '../shared/step.ts';
import { createTenantDatabase, dropTenantDatabase, migrateTenantDatabase } from './database.ts';
import { ACTOR, PROVISIONING } from './step.ts';

/** CreateDatabase, ApplyMigrations and DropDatabase: the tenant database, as the provisioner. */
const { env, cluster, registry } = stepSetup(['SCHEMA_DIR']);
const progress = { store: registry.progress, actor: ACTOR };

// Read once per container; awaited by the step, so a broken template fails the step, named.
const migrations = loadMigrations(join(env.SCHEMA_DIR, 'tenant'));
migrations.catch(() => {});

export const createDatabase = /* @__PURE__ */ step(
  'CreateDatabase',
  { input: StepInput, progress, statuses: PROVISIONING },
  async ({ tenant, record }) => {
    const database = await createTenantDatabase(
      cluster,
      tenant.id,
      tenant.limits.maxConnections,
      await migrations,
    );
    record({ resources: { database: database.name } });
    return { name: database.name };
  },
);

export const applyMigrations = /* @__PURE__ */ step(
  'ApplyMigrations',
  { input: StepInput, progress, statuses: PROVISIONING },
  async ({ tenant, record }) => {
    const { version, applied } = await migrateTenantDatabase(cluster, tenant.id, await migrations);
    record({ schemaVersion: version });
    return { version, applied };
  },
);

export const dropDatabase = /* @__PURE__ */ step(
  'DropDatabase',
  { input: StepInput, progress },
  async ({ tenant }) => {
    const result = await dropTenantDatabase(cluster, tenant.id);
    await registry.tenants.removeResources(tenant.id, ['database'], ACTOR);
    return result;
  },
);
