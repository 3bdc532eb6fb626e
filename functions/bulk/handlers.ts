import * as z from '../../schema/zod.ts';
import { sfnClient } from '../shared/clients.ts';
import { step, stepSetup } from '../shared/step.ts';
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
const { env, cluster, registry } = stepSetup(['PROVISION_STATE_MACHINE_ARN']);
const deps: RowDeps = {
  tenants: registry.tenants,
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

// The batch's tasks record no tenant progress: each row's provisioning records its own.
export const startBatchRow = /* @__PURE__ */ step('StartRow', { input: RowInput }, ({ input }) =>
  startRow(deps, input),
);

export const awaitBatchRow = /* @__PURE__ */ step(
  'AwaitRow',
  { input: AwaitRowInput },
  ({ input, remainingMs }) =>
    awaitRow(deps, input, Math.min(AWAIT_BUDGET_MS, remainingMs() - AWAIT_MARGIN_MS)),
);

export const recordBatchRowFailure = /* @__PURE__ */ step(
  'RecordRowFailure',
  { input: RowFailureInput },
  ({ input }) => recordRowFailure(deps, input),
);

export const finishTenantBatch = /* @__PURE__ */ step('FinishBatch', { input: BatchInput }, ({ input }) =>
  finishBatch(deps, input.batchId),
);

const FailInput = z.extend(BatchInput, {
  error: z.object({ Error: z.string(), Cause: z.optional(z.string()) }),
});

export const failTenantBatch = /* @__PURE__ */ step('FailBatch', { input: FailInput }, async ({ input }) => {
  const status = await deps.batches.fail(input.batchId, {
    error: input.error.Error,
    cause: input.error.Cause ?? '',
  });
  return { batchId: input.batchId, status };
});
