import { s3Client, secretsManagerClient } from '../shared/clients.ts';
import { step, stepSetup } from '../shared/step.ts';
import { retainTenantStorage, retireRolesAndSecrets as retire } from './retire.ts';
import { LIFECYCLE_ACTOR, LifecycleInput } from './step.ts';

/** RetainStorage and RetireRolesAndSecrets: the delete-tenant run's removal steps of its own. */
const { env, cluster, registry } = stepSetup(['STORAGE_BUCKET', 'STORAGE_KEY_ARN', 'SECRET_RECOVERY_DAYS']);
const progress = { store: registry.progress, actor: LIFECYCLE_ACTOR };

export const retainStorage = /* @__PURE__ */ step(
  'RetainStorage',
  { input: LifecycleInput, progress, statuses: ['deprovisioning'] },
  ({ tenant }) =>
    retainTenantStorage(
      { s3: s3Client(), bucket: env.STORAGE_BUCKET, stage: env.STAGE, keyArn: env.STORAGE_KEY_ARN },
      {
        tenantId: tenant.id,
        createdAt: tenant.createdAt,
        deletedAt: new Date().toISOString(),
        retentionDays: tenant.config.compliance.retentionDays,
        encryptionLevel: tenant.config.compliance.encryptionLevel,
      },
    ),
);

export const retireRolesAndSecrets = /* @__PURE__ */ step(
  'RetireRolesAndSecrets',
  { input: LifecycleInput, progress, statuses: ['deprovisioning'] },
  async ({ tenant }) => {
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
);
