import { secretsManagerClient } from '../shared/clients.ts';
import { StepInput, step, stepSetup } from '../shared/step.ts';
import { TenantDatabase } from '../shared/tenant-db.ts';
import { seedTenantDefaults } from './seed.ts';
import { ACTOR, PROVISIONING } from './step.ts';

/** SeedDefaults: the tenant's default data and the admin's invitation. */
const { env, cluster, registry } = stepSetup([]);

export const seedDefaults = /* @__PURE__ */ step(
  'SeedDefaults',
  { input: StepInput, progress: { store: registry.progress, actor: ACTOR }, statuses: PROVISIONING },
  async ({ tenant, record }) => {
    const { invitationSecretArn } = await seedTenantDefaults(
      {
        db: TenantDatabase.of(cluster, tenant.id),
        secrets: secretsManagerClient(),
        stage: env.STAGE,
        actor: ACTOR,
      },
      { tenantId: tenant.id, name: tenant.name, limits: tenant.limits, config: tenant.config },
    );
    record({ resources: { invitationSecretArn } });
    return { invitationSecretArn };
  },
);
