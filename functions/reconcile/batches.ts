import type { SFNClient } from '@aws-sdk/client-sfn';
import type { BatchStatus } from '../../schema/api/batches.ts';
import type { BatchStore } from '../bulk/store.ts';
import { describeExecution, type StuckPolicy } from './stuck.ts';

export interface BatchDeps {
  readonly batches: BatchStore;
  readonly sfn: SFNClient;
}

/** A batch whose run was gone, and where settling it left it. */
export interface BatchOutcome {
  readonly batchId: string;
  /** `running` while some of its rows' tenants are still provisioning: a later pass settles it. */
  readonly status: BatchStatus;
  readonly reason: string;
}

/**
 * Settles every batch still `running` whose bulk-onboard run has ended without finishing it, cannot be found, or was
 * never started ({@link BatchStore.fail}): its rows take their tenants' outcomes, and the batch its status from
 * them once every row has one. One list query, and one DescribeExecution per running batch.
 */
export async function settleBatches(
  deps: BatchDeps,
  policy: StuckPolicy,
  now: number = Date.now(),
): Promise<BatchOutcome[]> {
  const outcomes: BatchOutcome[] = [];
  for (const batch of await deps.batches.running()) {
    let error: { error: string; cause: string };
    if (batch.executionArn === null) {
      // The API records the batch, then starts its run within the same request.
      if (now - Date.parse(batch.createdAt) < policy.graceSeconds * 1000) continue;
      error = { error: 'ExecutionNotStarted', cause: "The batch's run was never started" };
    } else {
      const execution = await describeExecution(deps.sfn, batch.executionArn);
      if (execution?.status === 'RUNNING' || execution?.status === 'PENDING_REDRIVE') continue;
      // A run that ended a moment ago may have a caller acting on it (a read of the batch settles it too).
      if (execution && now - (execution.stopDate?.getTime() ?? 0) < policy.settleSeconds * 1000) continue;
      error = execution
        ? {
            error: execution.error ?? `Execution${execution.status ?? 'Ended'}`,
            cause: (execution.cause ?? `The batch's run ended ${execution.status ?? ''}`).slice(0, 2000),
          }
        : { error: 'ExecutionDoesNotExist', cause: `The batch's run ${batch.executionArn} does not exist` };
    }
    const status = await deps.batches.fail(batch.id, error);
    outcomes.push({ batchId: batch.id, status, reason: `${error.error}: ${error.cause}` });
  }
  return outcomes;
}
