import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import { z } from 'zod';
import { rdsDataClient } from '../shared/clients.ts';
import { DataApi } from '../shared/data-api.ts';
import { readEnv } from '../shared/env.ts';
import { TenantStateError } from '../shared/errors.ts';
import { TENANT_ID_PATTERN } from '../shared/names.ts';
import { type Tenant, TenantRegistry, type TenantStatus } from '../shared/tenants.ts';

/** Who the provisioning steps write to the registry and the tenant database as. */
export const ACTOR = 'provision-tenant';

/** Every state's Lambda input: the tenant id only; the rest is read from the registry. */
export const StepInput = z.object({ tenantId: z.string().regex(TENANT_ID_PATTERN) });
export type StepInput = z.infer<typeof StepInput>;

/** The environment every provisioning function reads: the stage and the registry. */
export const STEP_ENVIRONMENT = {
  STAGE: z.string().min(1),
  CLUSTER_ARN: z.string().startsWith('arn:'),
  PROVISIONER_SECRET_ARN: z.string().startsWith('arn:'),
  CONTROL_PLANE_DATABASE: z.string().min(1),
};

export const logger = new Logger({ serviceName: 'tenant-provisioner' });

/**
 * A provisioning function's cold start: its environment (the step variables plus `extra`), the provisioner on the
 * registry database (also the handle for cluster-wide statements such as CREATE DATABASE and CREATE ROLE),
 * and the registry over it.
 */
export function stepSetup<Extra extends z.ZodRawShape>(extra: Extra) {
  const base = readEnv(STEP_ENVIRONMENT);
  const env = { ...base, ...readEnv(extra) };
  const cluster = new DataApi(rdsDataClient(), {
    resourceArn: base.CLUSTER_ARN,
    secretArn: base.PROVISIONER_SECRET_ARN,
    database: base.CONTROL_PLANE_DATABASE,
  });
  return { env, cluster, registry: new TenantRegistry(cluster) };
}

/** What the registry keeps of a failure: the error's name (what Step Functions matches) and its message. */
export function describeError(error: unknown): { error: string; cause: string } {
  if (error instanceof Error) return { error: error.name, cause: error.message };
  return { error: 'Error', cause: String(error) };
}

/**
 * A state machine task as a Lambda handler: parses `{ tenantId }`, reads the tenant, records the step's progress
 * in the registry (started, succeeded, or failed with the error) and returns what `work` returns, which the state
 * machine keeps in the state (so: small, and never a secret). Errors are rethrown unchanged: their `name` (an AWS
 * SDK error's code, such as `DatabaseResumingException`) is what the state's Retry and Catch match.
 *
 * With `statuses`, a tenant in another status is refused with a {@link TenantStateError} before anything is
 * touched or recorded: a stray or repeated execution must not provision, nor then undo, an active tenant.
 */
export function provisioningStep<Result>(
  step: string,
  registry: TenantRegistry,
  work: (tenant: Tenant) => Promise<Result>,
  options: { readonly statuses?: readonly TenantStatus[] } = {},
) {
  return middy(async (event: unknown): Promise<Result> => {
    const { tenantId } = StepInput.parse(event);
    logger.appendKeys({ tenantId, step });
    const tenant = await registry.require(tenantId);
    if (options.statuses && !options.statuses.includes(tenant.status)) {
      throw new TenantStateError(
        `Tenant ${tenantId} is ${tenant.status}: ${step} runs only for ${options.statuses.join(' or ')}`,
      );
    }
    const started = Date.now();
    await registry.stepStarted(tenantId, step);
    let result: Result;
    try {
      result = await work(tenant);
    } catch (error) {
      const failure = describeError(error);
      logger.warn('Step failed', { ...failure, durationMs: Date.now() - started });
      await registry.stepFailed(tenantId, step, failure).catch((recordError: unknown) => {
        // The step's own error is what the state machine must see; a lost progress row is only logged.
        logger.error('Could not record the step failure', { recordError: describeError(recordError) });
      });
      throw error;
    }
    await registry.stepSucceeded(tenantId, step);
    logger.info('Step succeeded', { durationMs: Date.now() - started });
    return result;
  }).use(injectLambdaContext(logger, { resetKeys: true }));
}

/** Forward steps run only while the tenant is being provisioned. */
export const PROVISIONING: readonly TenantStatus[] = ['provisioning'];

/**
 * A bookkeeping task (MarkFailed, MarkRollbackFailed): parsed input, logged, errors rethrown unchanged, but no
 * progress row, since it is not a step of the tenant's provisioning.
 */
export function bookkeepingTask<Input extends { tenantId: string }, Result>(
  name: string,
  input: z.ZodType<Input>,
  work: (input: Input) => Promise<Result>,
) {
  return middy(async (event: unknown): Promise<Result> => {
    const parsed = input.parse(event);
    logger.appendKeys({ tenantId: parsed.tenantId, step: name });
    return work(parsed);
  }).use(injectLambdaContext(logger, { resetKeys: true }));
}
