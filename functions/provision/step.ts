import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import { rdsDataClient } from '../shared/clients.ts';
import { DataApi } from '../shared/data-api.ts';
import { readEnv } from '../shared/env.ts';
import { NotFoundError, TenantStateError } from '../shared/errors.ts';
import { TENANT_ID_PATTERN } from '../shared/names.ts';
import {
  type StepChange,
  type Tenant,
  TenantRegistry,
  type TenantResources,
  type TenantStatus,
} from '../shared/tenants.ts';
import * as z from '../shared/zod.ts';

/** Who the provisioning steps write to the registry and the tenant database as. */
export const ACTOR = 'provision-tenant';

/** The forward steps of provision-tenant, in the order they run (test/provision/happy-path holds them to it). */
export const PROVISIONING_STEPS: readonly string[] = [
  'CreateDatabase',
  'ApplyMigrations',
  'CreateRoles',
  'ConfigureStorage',
  'ConfigureAlarms',
  'SeedDefaults',
  'Activate',
];

/** Every state's Lambda input: the tenant id only; the rest is read from the registry. */
export const StepInput = z.object({ tenantId: z.string().check(z.regex(TENANT_ID_PATTERN)) });
export type StepInput = z.infer<typeof StepInput>;

/** The environment every provisioning function reads: the stage and the registry. */
export const STEP_ENVIRONMENT = {
  STAGE: z.string().check(z.minLength(1)),
  CLUSTER_ARN: z.string().check(z.startsWith('arn:')),
  PROVISIONER_SECRET_ARN: z.string().check(z.startsWith('arn:')),
  CONTROL_PLANE_DATABASE: z.string().check(z.minLength(1)),
};

export const logger = new Logger({ serviceName: 'tenant-provisioner' });

/**
 * A provisioning function's cold start: its environment (the step variables plus `extra`), the provisioner on the
 * registry database (also the handle for cluster-wide statements such as CREATE DATABASE and CREATE ROLE),
 * and the registry over it.
 */
export function stepSetup<Extra extends z.core.$ZodShape>(extra: Extra) {
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

/** What a step's work hands back to be written with its success (see {@link provisioningStep}). */
export interface StepRecorder {
  /** Stages a change of the tenant's record: resources merged key by key, the schema version. */
  record(change: { readonly resources?: TenantResources; readonly schemaVersion?: number }): void;
}

/**
 * A state machine task as a Lambda handler: parses `{ tenantId }`, reads the tenant, records the step's progress
 * in the registry (started, succeeded, or failed with the error) and returns what `work` returns, which the state
 * machine keeps in the state (so: small, and never a secret). Errors are rethrown unchanged: their `name` (an AWS
 * SDK error's code, such as `DatabaseResumingException`) is what the state's Retry and Catch match.
 *
 * What `work` records of the tenant through `step.record` (the resources it made, the schema version) is written
 * with the step's success, in one statement: two registry writes a step, its start and its end. A step that fails
 * records nothing of the kind; the undo steps find what exists by the names the id gives.
 *
 * With `statuses`, a tenant in another status is refused with a {@link TenantStateError} before anything is
 * touched or recorded: a stray or repeated execution must not provision, nor then undo, an active tenant.
 */
export function provisioningStep<Result>(
  step: string,
  registry: TenantRegistry,
  work: (tenant: Tenant, step: StepRecorder) => Promise<Result>,
  options: { readonly statuses?: readonly TenantStatus[] } = {},
) {
  return middy(async (event: unknown): Promise<Result> => {
    const { tenantId } = StepInput.parse(event);
    logger.appendKeys({ tenantId, step });
    // Read and start in one round trip; the start is recorded only for a tenant in one of `statuses`.
    const begun = await registry.beginStep(tenantId, step, options.statuses);
    const { tenant } = begun;
    if (!tenant) throw new NotFoundError(`No tenant ${tenantId}`);
    if (!begun.started) {
      throw new TenantStateError(
        `Tenant ${tenantId} is ${tenant.status}: ${step} runs only for ${options.statuses?.join(' or ')}`,
      );
    }
    const started = Date.now();
    let change: StepChange | undefined;
    const recorder: StepRecorder = {
      record: ({ resources, schemaVersion }) => {
        change = {
          by: ACTOR,
          resources: { ...change?.resources, ...resources },
          schemaVersion: schemaVersion ?? change?.schemaVersion,
        };
      },
    };
    let result: Result;
    try {
      result = await work(tenant, recorder);
    } catch (error) {
      const failure = describeError(error);
      logger.warn('Step failed', { ...failure, durationMs: Date.now() - started });
      await registry.stepFailed(tenantId, step, failure).catch((recordError: unknown) => {
        // The step's own error is what the state machine must see; a lost progress row is only logged.
        logger.error('Could not record the step failure', { recordError: describeError(recordError) });
      });
      throw error;
    }
    await registry.stepSucceeded(tenantId, step, change);
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
  input: z.ZodMiniType<Input>,
  work: (input: Input) => Promise<Result>,
) {
  return middy(async (event: unknown): Promise<Result> => {
    const parsed = input.parse(event);
    logger.appendKeys({ tenantId: parsed.tenantId, step: name });
    return work(parsed);
  }).use(injectLambdaContext(logger, { resetKeys: true }));
}
