import { stepSetup } from '../provision/step.ts';
import { s3Client, secretsManagerClient } from '../shared/clients.ts';
import * as z from '../shared/zod.ts';
import { retainTenantStorage, retireRolesAndSecrets as retire } from './retire.ts';
import { LifecycleInput, lifecycleStep } from './step.ts';

/** RetainStorage and RetireRolesAndSecrets: the delete-tenant run's removal steps of its own. */
const { env, cluster, registry } = stepSetup({
  STORAGE_BUCKET: z.string().check(z.minLength(3)),
  // Secrets Manager's recovery window: 7 to 30 days.
  SECRET_RECOVERY_DAYS: z.coerce.number().check(z.int(), z.minimum(7), z.maximum(30)),
});

export const retainStorage = /* @__PURE__ */ lifecycleStep(
  'RetainStorage',
  registry,
  LifecycleInput,
  (tenant) => {
    return retainTenantStorage(
      { s3: s3Client(), bucket: env.STORAGE_BUCKET, stage: env.STAGE },
      {
        tenantId: tenant.id,
        createdAt: tenant.createdAt,
        deletedAt: new Date().toISOString(),
        retentionDays: tenant.config.compliance.retentionDays,
      },
    );
  },
  { statuses: ['deprovisioning'] },
);

export const retireRolesAndSecrets = /* @__PURE__ */ lifecycleStep(
  'RetireRolesAndSecrets',
  registry,
  LifecycleInput,
  async (tenant) => {
    const retired = await retire(
      {
        cluster,
        secrets: secretsManagerClient(),
        stage: env.STAGE,
        recoveryWindowDays: env.SECRET_RECOVERY_DAYS,
      },
      tenant.id,
    );
    return {
      roles: retired.roles.length,
      secrets: retired.secrets.length,
      recoveryWindowDays: env.SECRET_RECOVERY_DAYS,
    };
  },
  { statuses: ['deprovisioning'] },
);
