import { secretsManagerClient } from '../shared/clients.ts';
import { createTenantRoles, type RoleDeps, removeTenantRoles } from './roles.ts';
import { ACTOR, PROVISIONING, provisioningStep, stepSetup } from './step.ts';

/** CreateRoles and RemoveRoles: the tenant's database roles and their secrets. */
const { env, cluster, registry } = stepSetup({});
const deps: RoleDeps = {
  cluster,
  secrets: secretsManagerClient(),
  stage: env.STAGE,
  clusterArn: env.CLUSTER_ARN,
  provisionerSecretArn: env.PROVISIONER_SECRET_ARN,
};

export const createRoles = /* @__PURE__ */ provisioningStep(
  'CreateRoles',
  registry,
  async (tenant, step) => {
    const secrets = await createTenantRoles(deps, tenant.id, tenant.limits.maxConnections);
    step.record({ resources: { secrets } });
    return { secrets };
  },
  { statuses: PROVISIONING },
);

export const removeRoles = /* @__PURE__ */ provisioningStep('RemoveRoles', registry, async (tenant) => {
  const removed = await removeTenantRoles(deps, tenant.id);
  await registry.removeResources(tenant.id, ['secrets', 'invitationSecretArn'], ACTOR);
  return { roles: removed.roles.length, secrets: removed.secrets.length };
});
