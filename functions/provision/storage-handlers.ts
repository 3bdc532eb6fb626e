import { s3Client } from '../shared/clients.ts';
import * as z from '../shared/zod.ts';
import { ACTOR, PROVISIONING, provisioningStep, stepSetup } from './step.ts';
import { configureTenantStorage, removeTenantStorage, type StorageDeps } from './storage.ts';

/** ConfigureStorage and RemoveStorage: the tenant's prefix in the stage bucket. */
const { env, registry } = stepSetup({ STORAGE_BUCKET: z.string().check(z.minLength(3)) });
const deps: StorageDeps = { s3: s3Client(), bucket: env.STORAGE_BUCKET, stage: env.STAGE };

export const configureStorage = /* @__PURE__ */ provisioningStep(
  'ConfigureStorage',
  registry,
  async (tenant, step) => {
    // A tenant without the storage feature gets no area; the undo still looks under the prefix.
    if (!tenant.config.features.storage) return { enabled: false };
    const storage = await configureTenantStorage(deps, {
      tenantId: tenant.id,
      createdAt: tenant.createdAt,
      retentionDays: tenant.config.compliance.retentionDays,
      encryptionLevel: tenant.config.compliance.encryptionLevel,
    });
    step.record({ resources: { storage } });
    return { enabled: true, ...storage };
  },
  { statuses: PROVISIONING },
);

export const removeStorage = /* @__PURE__ */ provisioningStep('RemoveStorage', registry, async (tenant) => {
  const removed = await removeTenantStorage(deps, tenant.id);
  await registry.removeResources(tenant.id, ['storage'], ACTOR);
  return removed;
});
