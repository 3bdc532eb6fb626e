import { s3Client } from '../shared/clients.ts';
import { StepInput, step, stepSetup } from '../shared/step.ts';
import { ACTOR, PROVISIONING } from './step.ts';
import { configureTenantStorage, removeTenantStorage, type StorageDeps } from './storage.ts';

/** ConfigureStorage and RemoveStorage: the tenant's prefix in the stage bucket. */
const { env, registry } = stepSetup(['STORAGE_BUCKET', 'STORAGE_KEY_ARN']);
const progress = { store: registry.progress, actor: ACTOR };
const deps: StorageDeps = {
  s3: s3Client(),
  bucket: env.STORAGE_BUCKET,
  stage: env.STAGE,
  keyArn: env.STORAGE_KEY_ARN,
};

export const configureStorage = /* @__PURE__ */ step(
  'ConfigureStorage',
  { input: StepInput, progress, statuses: PROVISIONING },
  async ({ tenant, record }) => {
    // A tenant without the storage feature gets no area; the undo still looks under the prefix.
    if (!tenant.config.features.storage) return { enabled: false };
    const storage = await configureTenantStorage(deps, {
      tenantId: tenant.id,
      createdAt: tenant.createdAt,
      encryptionLevel: tenant.config.compliance.encryptionLevel,
    });
    record({ resources: { storage } });
    return { enabled: true, ...storage };
  },
);

export const removeStorage = /* @__PURE__ */ step(
  'RemoveStorage',
  { input: StepInput, progress },
  async ({ tenant }) => {
    const removed = await removeTenantStorage(deps, tenant.id);
    await registry.tenants.removeResources(tenant.id, ['storage'], ACTOR);
    return removed;
  },
);
