import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import { describeError, logger } from '../provision/step.ts';
import { TenantStateError } from '../shared/errors.ts';
import { TENANT_ID_PATTERN } from '../shared/names.ts';
import type { Tenant, TenantRegistry, TenantStatus } from '../shared/tenants.ts';
import * as z from '../shared/zod.ts';

/** Who the lifecycle steps write to the registry as, when no requester is known. */
export const LIFECYCLE_ACTOR = 'tenant-lifecycle';

/** What every lifecycle state passes its Lambda: the tenant and the operation (`tenant_operations.id`). */
export const LifecycleInput = z.object({
  tenantId: z.string().check(z.regex(TENANT_ID_PATTERN)),
  operationId: z.string().check(z.regex(/^\d+$/)),
});
export type LifecycleInput = z.infer<typeof LifecycleInput>;

/**
 * A lifecycle state machine task as a Lambda handler, like provisioning's `provisioningStep` but with a richer
 * input: parses it against `input` (which extends {@link LifecycleInput}), reads the tenant, refuses a status not
 * in `statuses` with a {@link TenantStateError} before touching anything, records the step's progress (shown by
 * GET /tenants/{id}), and rethrows errors unchanged so that the state's Retry and Catch match their names.
 */
export function lifecycleStep<Input extends LifecycleInput, Result>(
  step: string,
  registry: TenantRegistry,
  input: z.ZodMiniType<Input>,
  work: (tenant: Tenant, input: Input) => Promise<Result>,
  options: { readonly statuses?: readonly TenantStatus[] } = {},
) {
  return middy(async (event: unknown): Promise<Result> => {
    const parsed = input.parse(event);
    logger.appendKeys({ tenantId: parsed.tenantId, operationId: parsed.operationId, step });
    const tenant = await registry.require(parsed.tenantId);
    if (options.statuses && !options.statuses.includes(tenant.status)) {
      throw new TenantStateError(
        `Tenant ${tenant.id} is ${tenant.status}: ${step} runs only for ${options.statuses.join(' or ')}`,
      );
    }
    const started = Date.now();
    await registry.stepStarted(tenant.id, step);
    let result: Result;
    try {
      result = await work(tenant, parsed);
    } catch (error) {
      const failure = describeError(error);
      logger.warn('Step failed', { ...failure, durationMs: Date.now() - started });
      await registry.stepFailed(tenant.id, step, failure).catch((recordError: unknown) => {
        logger.error('Could not record the step failure', { recordError: describeError(recordError) });
      });
      throw error;
    }
    await registry.stepSucceeded(tenant.id, step);
    logger.info('Step succeeded', { durationMs: Date.now() - started });
    return result;
  }).use(injectLambdaContext(logger, { resetKeys: true }));
}
