/**
 * The one step wrapper: every Lambda task of every state machine is made by {@link step}, with options for what
 * differs between them (input schema, whether it is a step of a tenant's progress, the statuses it accepts).
 * This module reaches no SDK client but the Data API's: a bundle made from a handler module carries only the
 * clients that module's handlers reach.
 */

import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import { TENANT_ID_PATTERN } from '../../schema/names.ts';
import * as z from '../../schema/zod.ts';
import { rdsDataClient } from './clients.ts';
import { DataApi } from './data-api.ts';
import { type EnvName, readEnv } from './env.ts';
import { NotFoundError, TenantStateError } from './errors.ts';
import type { ProgressStore, StepChange } from './progress.ts';
import { Registry } from './registry.ts';
import type { Tenant, TenantResources, TenantStatus } from './tenants.ts';

/** The one logger of the step functions; each line carries the step and the ids of its input. */
export const logger = new Logger({ serviceName: 'tenant-provisioner' });

/** The input of most tenant steps: the tenant id only; the rest is read from the registry. */
export const StepInput = z.object({ tenantId: z.string().check(z.regex(TENANT_ID_PATTERN)) });
export type StepInput = z.infer<typeof StepInput>;

/** The environment every step function reads: the stage and the registry. */
const STEP_ENVIRONMENT = [
  'STAGE',
  'CLUSTER_ARN',
  'PROVISIONER_SECRET_ARN',
  'CONTROL_PLANE_DATABASE',
] as const satisfies readonly EnvName[];

/**
 * A step function's cold start: its environment (the step variables plus the variables `extra` names, each of its
 * `ENVIRONMENT` type), the provisioner on the registry database (also the handle for cluster-wide statements such
 * as CREATE DATABASE and CREATE ROLE), and the registry's stores over it (./registry.ts), of which each module
 * is handed the one it needs (a step of a tenant's progress: `registry.progress`).
 */
export function stepSetup<const Extra extends readonly EnvName[]>(extra: Extra) {
  const base = readEnv(STEP_ENVIRONMENT);
  const env = { ...base, ...readEnv(extra) };
  const cluster = new DataApi(rdsDataClient(), {
    resourceArn: base.CLUSTER_ARN,
    secretArn: base.PROVISIONER_SECRET_ARN,
    database: base.CONTROL_PLANE_DATABASE,
  });
  return { env, cluster, registry: new Registry(cluster) };
}

/** What the registry and the logs keep of a failure: the error's name (what Step Functions matches), its message. */
export function describeError(error: unknown): { error: string; cause: string } {
  if (error instanceof Error) return { error: error.name, cause: error.message };
  return { error: 'Error', cause: String(error) };
}

/** The part of the Lambda context a step reads. */
interface LambdaContext {
  getRemainingTimeInMillis(): number;
}

/** What every step's work is handed. */
export interface Step<Input> {
  /** The state's input, parsed with the step's schema. */
  readonly input: Input;
  /** Milliseconds left before the invocation times out. */
  remainingMs(): number;
}

/** What a step of a tenant's progress is handed besides: the tenant, and a change to write with its success. */
interface TenantFields {
  /** The tenant as read when the step began. */
  readonly tenant: Tenant;
  /**
   * Stages a change of the tenant's record (resources merged key by key, the schema version), written with the
   * step's success in the same statement; a step that fails writes none of it.
   */
  record(change: { readonly resources?: TenantResources; readonly schemaVersion?: number }): void;
}

/** What the work of a step of a tenant's progress is handed. */
export type TenantStep<Input> = Step<Input> & TenantFields;

/** Where a step of a tenant's progress records it, and as whom it writes what it records. */
export interface StepProgress {
  readonly store: ProgressStore;
  /** Who a recorded change is written as (`updated_by`). */
  readonly actor: string;
}

/** The options of a step of a tenant's progress. */
export interface TenantStepOptions<Input extends StepInput> {
  /** The state's input: {@link StepInput}, or a schema that extends it. */
  readonly input: z.ZodMiniType<Input>;
  /** Reads the tenant and records the step's progress (started, succeeded, failed) for GET /tenants/{id}. */
  readonly progress: StepProgress;
  /**
   * The statuses the step runs for; a tenant in another is refused with a {@link TenantStateError} before
   * anything is touched or recorded. Any status, without it.
   */
  readonly statuses?: readonly TenantStatus[];
}

/** The options of a task that records no progress (bookkeeping, batches, fleet migrations). */
export interface TaskOptions<Input> {
  /** The state's input. */
  readonly input: z.ZodMiniType<Input>;
  readonly progress?: undefined;
  readonly statuses?: undefined;
}

/** The input's ids that every log line of the invocation carries. */
const LOG_KEYS: readonly string[] = ['tenantId', 'operationId', 'batchId', 'migrationId'];

function logKeysOf(input: unknown): Record<string, string> {
  if (typeof input !== 'object' || input === null) return {};
  return Object.fromEntries(
    Object.entries(input).filter(
      (entry): entry is [string, string] => LOG_KEYS.includes(entry[0]) && typeof entry[1] === 'string',
    ),
  );
}

type TenantStepArgs<Input extends StepInput, Result> = [
  options: TenantStepOptions<Input>,
  work: (step: TenantStep<Input>) => Promise<Result>,
];
type TaskArgs<Input, Result> = [options: TaskOptions<Input>, work: (step: Step<Input>) => Promise<Result>];

/** A tenant step's arguments: only its options have `progress` (a task's options type it `undefined`). */
function isTenantStep<TenantInput extends StepInput, Input, Result>(
  args: TenantStepArgs<TenantInput, Result> | TaskArgs<Input, Result>,
): args is TenantStepArgs<TenantInput, Result> {
  return args[0].progress !== undefined;
}

/**
 * A state machine task as a Lambda handler: parses the input with its schema, logs the step with the input's ids
 * and its outcome (`Step succeeded` with its duration and result, `Step failed` with the error's name, message and
 * duration), and returns what `work` returns, which the state machine keeps in the state (so: small, and never a
 * secret). Errors are rethrown unchanged: their `name` (an AWS SDK error's code, such as
 * `DatabaseResumingException`) is what the state's Retry and Catch match.
 *
 * With `progress`, it is a step of a tenant's progress: the tenant is read and the step recorded started in one
 * statement (a {@link NotFoundError} when there is no tenant; with `statuses`, a {@link TenantStateError} for a
 * tenant in another status, before anything is touched or recorded), and its end recorded succeeded, with what
 * `work` staged through `record`, or failed with the error: two registry round trips a step. Without it, a task of
 * its own (bookkeeping, a batch's row, a fleet migration's chunk): no tenant read, no progress recorded.
 */
export function step<Input extends StepInput, Result>(
  name: string,
  options: TenantStepOptions<Input>,
  work: (step: TenantStep<Input>) => Promise<Result>,
): middy.MiddyfiedHandler<unknown, Result>;
export function step<Input, Result>(
  name: string,
  options: TaskOptions<Input>,
  work: (step: Step<Input>) => Promise<Result>,
): middy.MiddyfiedHandler<unknown, Result>;
export function step<TenantInput extends StepInput, Input, Result>(
  name: string,
  ...args: TenantStepArgs<TenantInput, Result> | TaskArgs<Input, Result>
) {
  return middy(async (event: unknown, context: LambdaContext): Promise<Result> => {
    const started = Date.now();
    const remainingMs = () => context.getRemainingTimeInMillis();
    let recording: { store: ProgressStore; tenantId: string } | undefined;
    try {
      let result: Result;
      if (!isTenantStep(args)) {
        const [options, work] = args;
        const input = options.input.parse(event);
        logger.appendKeys({ step: name, ...logKeysOf(input) });
        result = await work({ input, remainingMs });
      } else {
        const [options, work] = args;
        const input = options.input.parse(event);
        logger.appendKeys({ step: name, ...logKeysOf(input) });
        const { store, actor } = options.progress;
        const { tenantId } = input;
        // Read and start in one round trip; the start is recorded only for a tenant in one of `statuses`.
        const begun = await store.beginStep(tenantId, name, options.statuses);
        const { tenant } = begun;
        if (!tenant) throw new NotFoundError(`No tenant ${tenantId}`);
        if (!begun.started) {
          throw new TenantStateError(
            `Tenant ${tenantId} is ${tenant.status}: ${name} runs only for ${options.statuses?.join(' or ')}`,
          );
        }
        recording = { store, tenantId };
        let change: StepChange | undefined;
        const record: TenantFields['record'] = ({ resources, schemaVersion }) => {
          change = {
            by: actor,
            resources: { ...change?.resources, ...resources },
            schemaVersion: schemaVersion ?? change?.schemaVersion,
          };
        };
        result = await work({ input, remainingMs, tenant, record });
        // The work succeeded: a failure to record that is thrown for the state's Retry, not recorded as the step's.
        recording = undefined;
        await store.stepSucceeded(tenantId, name, change);
      }
      logger.info('Step succeeded', { durationMs: Date.now() - started, result });
      return result;
    } catch (error) {
      const failure = describeError(error);
      logger.warn('Step failed', { ...failure, durationMs: Date.now() - started });
      if (recording) {
        await recording.store.stepFailed(recording.tenantId, name, failure).catch((recordError: unknown) => {
          // The step's own error is what the state machine must see; a lost progress row is only logged.
          logger.error('Could not record the step failure', { recordError: describeError(recordError) });
        });
      }
      throw error;
    }
  }).use(injectLambdaContext(logger, { resetKeys: true }));
}
