import { setTimeout as sleep } from 'node:timers/promises';
import { DescribeExecutionCommand, type SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { BATCH_ID_PATTERN, type BatchStatus, type RowError } from '../../schema/api/batches.ts';
import { CreateTenantRequest } from '../../schema/api/tenants.ts';
import { TENANT_ID_PATTERN } from '../../schema/names.ts';
import { effectiveLimits } from '../../schema/plans.ts';
import * as z from '../../schema/zod.ts';
import { ServiceUnavailableError } from '../shared/errors.ts';
import type { Tenant, TenantStore } from '../shared/tenants.ts';
import type { BatchCounts, BatchStore } from './store.ts';

/** What the bulk-onboard tasks need: the tenants, the batches, and the provision-tenant state machine. */
export interface RowDeps {
  readonly tenants: TenantStore;
  readonly batches: BatchStore;
  readonly sfn: SFNClient;
  readonly provisionStateMachineArn: string;
  /** Between two looks at a provisioning tenant. */
  readonly pollMs?: number;
}

/** A Map iteration's input: the row and the tenant id chosen for it when the batch was accepted. */
export const RowInput = z.object({
  batchId: z.string().check(z.regex(BATCH_ID_PATTERN)),
  index: z.int().check(z.minimum(0)),
  tenantId: z.string().check(z.regex(TENANT_ID_PATTERN)),
});
export type RowInput = z.infer<typeof RowInput>;

export const AwaitRowInput = z.extend(RowInput, { executionArn: z.string().check(z.startsWith('arn:')) });
export type AwaitRowInput = z.infer<typeof AwaitRowInput>;

/** A Catch's `$.error`: what Step Functions reports of the failed task. */
export const RowFailureInput = z.extend(RowInput, {
  error: z.object({ Error: z.string(), Cause: z.optional(z.string()) }),
});
export type RowFailureInput = z.infer<typeof RowFailureInput>;

export const BatchInput = z.object({ batchId: z.string().check(z.regex(BATCH_ID_PATTERN)) });

/** An execution's ARN from its state machine's and its name, as Step Functions forms it. */
export const executionArnOf = (stateMachineArn: string, name: string): string =>
  `${stateMachineArn.replace(':stateMachine:', ':execution:')}:${name}`;

/**
 * The first task of a row: reserves the row's tenant (its id chosen when the batch was accepted) as `POST /tenants`
 * does, and starts its provision-tenant execution, named by the tenant id. Idempotent, so that Step Functions may
 * retry it: a tenant already reserved is not reserved again, an execution already started is not started again.
 * A slug taken since the batch was validated fails the row (`started: false`) and creates nothing. When the
 * execution cannot be started, the reservation is undone and a {@link ServiceUnavailableError} (retried) thrown.
 */
export async function startRow(
  deps: RowDeps,
  input: RowInput,
): Promise<{ started: boolean; executionArn: string | null }> {
  const row = await deps.batches.rowToProvision(input.batchId, input.index);
  if (row.tenantId !== input.tenantId) {
    throw new Error(
      `Row ${input.index} of ${input.batchId} provisions ${row.tenantId}, not ${input.tenantId}`,
    );
  }
  if (row.status === 'failed') return { started: false, executionArn: null };
  const existing = await deps.tenants.get(row.tenantId);
  if (existing?.executionArn) {
    await deps.batches.rowProvisioning(input.batchId, input.index);
    return { started: true, executionArn: existing.executionArn };
  }
  if (!existing) {
    const request = CreateTenantRequest.parse(row.request);
    const reserved = await deps.tenants.reserve(
      {
        id: row.tenantId,
        slug: request.slug,
        name: request.name,
        plan: request.plan,
        limits: effectiveLimits(request.plan, request.limits),
        config: {
          adminUser: request.adminUser,
          features: request.features,
          securityPolicy: request.securityPolicy,
          compliance: request.compliance,
          settings: request.settings,
        },
      },
      row.createdBy,
    );
    if (!reserved) {
      await deps.batches.rowEnded(input.batchId, input.index, 'failed', {
        step: null,
        error: 'SlugTakenError',
        cause: `The slug "${request.slug}" was taken after the batch was accepted; nothing was created for this row`,
      });
      return { started: false, executionArn: null };
    }
  }
  let executionArn: string;
  try {
    const started = await deps.sfn.send(
      new StartExecutionCommand({
        stateMachineArn: deps.provisionStateMachineArn,
        name: row.tenantId,
        input: JSON.stringify({ tenantId: row.tenantId }),
      }),
    );
    if (!started.executionArn) throw new Error('StartExecution returned no executionArn');
    executionArn = started.executionArn;
  } catch (error) {
    if (error instanceof Error && error.name === 'ExecutionAlreadyExists') {
      // Started by an earlier attempt whose answer was lost.
      executionArn = executionArnOf(deps.provisionStateMachineArn, row.tenantId);
    } else {
      await deps.tenants.discardReservation(row.tenantId);
      throw new ServiceUnavailableError('Provisioning could not be started; the reservation is undone', {
        cause: error,
      });
    }
  }
  await deps.tenants.setExecutionArn(row.tenantId, executionArn, row.createdBy);
  await deps.batches.rowProvisioning(input.batchId, input.index);
  return { started: true, executionArn };
}

/** The row's outcome from its tenant's status, or undefined while the tenant is still provisioning. */
function outcomeOf(
  tenant: Tenant | undefined,
): { status: 'succeeded' | 'failed'; error: RowError | null } | undefined {
  if (!tenant) {
    return {
      status: 'failed',
      error: { step: null, error: 'TenantNotFound', cause: 'The tenant is no longer in the registry' },
    };
  }
  switch (tenant.status) {
    case 'provisioning':
      return undefined;
    case 'failed':
    case 'rollback_failed': {
      const failure = tenant.failure;
      const leftovers =
        tenant.status === 'rollback_failed' ? ` (left behind: ${(tenant.leftovers ?? []).join(', ')})` : '';
      return {
        status: 'failed',
        error: {
          step: failure?.step ?? null,
          error: failure?.error ?? 'ProvisioningFailed',
          cause: `${failure?.cause ?? `The tenant ended ${tenant.status}`}${leftovers}`,
        },
      };
    }
    default:
      // Active, or already moved on from active (suspended, deleted): its provisioning succeeded.
      return { status: 'succeeded', error: null };
  }
}

/**
 * Waits, for at most `budgetMs`, for the row's tenant to leave `provisioning`, and records the row's outcome:
 * succeeded when the tenant turned active, failed with the failed step and cause otherwise (its rollback has then
 * run: nothing of the row is left, or the tenant is `rollback_failed` and its leftovers are named). `done: false`
 * when the budget ran out first: the state machine waits and asks again. A provisioning execution that ended
 * without a verdict (stopped, timed out) fails the row.
 */
export async function awaitRow(
  deps: RowDeps,
  input: AwaitRowInput,
  budgetMs: number,
): Promise<{ done: boolean; outcome: 'succeeded' | 'failed' | null }> {
  const deadline = Date.now() + budgetMs;
  const pollMs = deps.pollMs ?? 300;
  for (;;) {
    const outcome = outcomeOf(await deps.tenants.get(input.tenantId));
    if (outcome) {
      await deps.batches.rowEnded(input.batchId, input.index, outcome.status, outcome.error);
      return { done: true, outcome: outcome.status };
    }
    if (Date.now() + pollMs >= deadline) {
      const execution = await deps.sfn.send(
        new DescribeExecutionCommand({ executionArn: input.executionArn }),
      );
      if (execution.status === 'RUNNING') return { done: false, outcome: null };
      // The execution may have ended between the two reads: the registry has the last word.
      const after = outcomeOf(await deps.tenants.get(input.tenantId)) ?? {
        status: 'failed' as const,
        error: {
          step: null,
          error: 'ProvisioningEnded',
          cause: `The provisioning execution ended ${execution.status ?? 'UNKNOWN'} without an outcome${execution.error ? ` (${execution.error})` : ''}`,
        },
      };
      await deps.batches.rowEnded(input.batchId, input.index, after.status, after.error);
      return { done: true, outcome: after.status };
    }
    await sleep(pollMs);
  }
}

/**
 * A row whose task failed beyond its retries: recorded failed with the task's error. A tenant it reserved without
 * starting its provisioning is discarded, so that nothing of the row is left.
 */
export async function recordRowFailure(
  deps: RowDeps,
  input: RowFailureInput,
): Promise<{ outcome: 'failed' }> {
  await deps.tenants.discardReservation(input.tenantId);
  await deps.batches.rowEnded(input.batchId, input.index, 'failed', {
    step: null,
    error: input.error.Error,
    cause: causeMessage(input.error.Cause),
  });
  return { outcome: 'failed' };
}

/** A Lambda error's Cause is its JSON payload; the message is what a person needs. */
export function causeMessage(cause: string | undefined): string {
  if (cause === undefined) return '';
  try {
    const parsed = z.object({ errorMessage: z.string() }).safeParse(JSON.parse(cause));
    return parsed.success ? parsed.data.errorMessage : cause;
  } catch {
    return cause;
  }
}

const NO_OUTCOME: RowError = {
  step: null,
  error: 'NoOutcome',
  cause: "The row's run ended without recording an outcome; the tenant's own status tells more",
};

/** The batch's last task: its status from its rows' outcomes. */
export async function finishBatch(
  deps: Pick<RowDeps, 'batches'>,
  batchId: string,
): Promise<{ batchId: string; status: BatchStatus } & BatchCounts> {
  const { status, counts } = await deps.batches.finish(batchId, NO_OUTCOME);
  return { batchId, status, ...counts };
}
