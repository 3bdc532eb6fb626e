import { PLANS } from '../../schema/plans.ts';
import { secretsManagerClient } from '../shared/clients.ts';
import { StepInput, step, stepSetup } from '../shared/step.ts';
import { createTenantRoles, type RoleDeps, removeTenantRoles } from './roles.ts';
import { ACTOR, PROVISIONING } from './step.ts';

/** CreateRoles and RemoveRoles: the tenant's database roles and the secrets of those standing on its plan. */
const { env, cluster, registry } = stepSetup([]);
const progress = { store: registry.progress, actor: ACTOR };
const deps: RoleDeps = {
  cluster,
  secrets: secretsManagerClient(),
  stage: env.STAGE,
  clusterArn: env.CLUSTER_ARN,
  provisionerSecretArn: env.PROVISIONER_SECRET_ARN,
};

export const createRoles = /* @__PURE__ */ step(
  'CreateRoles',
  { input: StepInput, progress, statuses: PROVISIONING },
  async ({ tenant, record }) => {
    const secrets = await createTenantRoles(
      deps,
      tenant.id,
      tenant.limits.maxConnections,
      PLANS[tenant.plan].standingRoles,
    );
    record({ resources: { secrets } });
    return { secrets };
  },
);

export const removeRoles = /* @__PURE__ */ step(
  'RemoveRoles',
  { input: StepInput, progress },
  async ({ tenant }) => {
    const removed = await removeTenantRoles(deps, tenant.id);
    await registry.tenants.removeResources(
      tenant.id,
      ['secrets', 'credentialExpiries', 'invitationSecretArn'],
      ACTOR,
    );
    return { roles: removed.roles.length, secrets: removed.secrets.length };
  },
);
