import { TENANT_ID_PATTERN } from '../../schema/names.ts';
import * as z from '../../schema/zod.ts';
import { cloudWatchClient, eventBridgeClient, s3Client, secretsManagerClient } from '../shared/clients.ts';
import { StepInput, step, stepSetup } from '../shared/step.ts';
import {
  activateTenant,
  CaughtFailure,
  markTenantFailed,
  markTenantRollbackFailed,
  stepFailure,
} from './outcome.ts';
import { ACTOR } from './step.ts';

/** Activate, MarkFailed and MarkRollbackFailed: the end of a run, in the registry and on the event bus. */
const { env, cluster, registry } = stepSetup(['EVENT_BUS_NAME', 'STORAGE_BUCKET']);
const deps = {
  cluster,
  tenants: registry.tenants,
  audit: registry.audit,
  actor: ACTOR,
  events: eventBridgeClient(),
  busName: env.EVENT_BUS_NAME,
};
// Only MarkRollbackFailed scans what is left, with these: made when it runs, so that the bundles of
// Activate and MarkFailed (each function has its own) carry no Secrets Manager, S3 or CloudWatch client.
const scan = () => ({
  secrets: secretsManagerClient(),
  s3: s3Client(),
  bucket: env.STORAGE_BUCKET,
  cloudWatch: cloudWatchClient(),
  stage: env.STAGE,
});

// A retry of Activate may find the tenant active already (its event failed to go out): it finishes the job.
export const activate = /* @__PURE__ */ step(
  'Activate',
  {
    input: StepInput,
    progress: { store: registry.progress, actor: ACTOR },
    statuses: ['provisioning', 'active'],
  },
  ({ tenant }) => activateTenant(deps, tenant),
);

const tenantId = z.string().check(z.regex(TENANT_ID_PATTERN));

const MarkFailedInput = z.object({ tenantId, failure: CaughtFailure });

// MarkFailed and MarkRollbackFailed record no progress: they are not steps of the tenant's provisioning.
export const markFailed = /* @__PURE__ */ step('MarkFailed', { input: MarkFailedInput }, ({ input }) =>
  markTenantFailed(deps, input.tenantId, stepFailure(input.failure)),
);

const MarkRollbackFailedInput = z.object({
  tenantId,
  failure: z.optional(CaughtFailure),
  rollbackFailure: CaughtFailure,
});

export const markRollbackFailed = /* @__PURE__ */ step(
  'MarkRollbackFailed',
  { input: MarkRollbackFailedInput },
  ({ input }) =>
    markTenantRollbackFailed(
      { ...deps, ...scan() },
      input.tenantId,
      input.failure ? stepFailure(input.failure) : undefined,
      stepFailure(input.rollbackFailure),
    ),
);
