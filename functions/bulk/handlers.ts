import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import { stepSetup } from '../provision/step.ts';
import { sfnClient } from '../shared/clients.ts';
import * as z from '../shared/zod.ts';
import {
  AwaitRowInput,
  awaitRow,
  BatchInput,
  finishBatch,
  type RowDeps,
  RowFailureInput,
  RowInput,
  recordRowFailure,
  startRow,
} from './rows.ts';
import { BatchStore } from './store.ts';

/** The bulk-onboard state machine's tasks (statemachines/bulk-onboard.asl.json). */
const { env, cluster, registry } = stepSetup({
  PROVISION_STATE_MACHINE_ARN: z.string().check(z.startsWith('arn:')),
});
const logger = new Logger({ serviceName: 'tenant-provisioner-bulk' });
const deps: RowDeps = {
  registry,
  batches: new BatchStore(cluster),
  sfn: sfnClient(),
  provisionStateMachineArn: env.PROVISION_STATE_MACHINE_ARN,
};

/**
 * How long one AwaitBatchRow invocation watches a tenant before handing back to the state machine's Wait: long
 * enough that most provisionings end within one or two (each loop costs the execution history 10 events).
 */
const AWAIT_BUDGET_MS = 45_000;
/** Left to the function after its budget, to record what it saw. */
const AWAIT_MARGIN_MS = 5_000;

interface Context {
  getRemainingTimeInMillis(): number;
}

function task<Input extends { batchId: string }, Result>(
  name: string,
  schema: z.ZodMiniType<Input>,
  work: (input: Input, context: Context) => Promise<Result>,
) {
  return middy(async (event: unknown, context: Context): Promise<Result> => {
    const input = schema.parse(event);
    logger.appendKeys({ batchId: input.batchId, task: name });
    const result = await work(input, context);
    logger.info('Task done', { result });
    return result;
  }).use(injectLambdaContext(logger, { resetKeys: true }));
}

export const startBatchRow = /* @__PURE__ */ task('StartRow', RowInput, (input) => startRow(deps, input));

export const awaitBatchRow = /* @__PURE__ */ task('AwaitRow', AwaitRowInput, (input, context) =>
  awaitRow(deps, input, Math.min(AWAIT_BUDGET_MS, context.getRemainingTimeInMillis() - AWAIT_MARGIN_MS)),
);

export const recordBatchRowFailure = /* @__PURE__ */ task('RecordRowFailure', RowFailureInput, (input) =>
  recordRowFailure(deps, input),
);

export const finishTenantBatch = /* @__PURE__ */ task('FinishBatch', BatchInput, (input) =>
  finishBatch(deps, input.batchId),
);

const FailInput = z.extend(BatchInput, {
  error: z.object({ Error: z.string(), Cause: z.optional(z.string()) }),
});

export const failTenantBatch = /* @__PURE__ */ task('FailBatch', FailInput, async (input) => {
  const status = await deps.batches.fail(input.batchId, {
    error: input.error.Error,
    cause: input.error.Cause ?? '',
  });
  return { batchId: input.batchId, status };
});
