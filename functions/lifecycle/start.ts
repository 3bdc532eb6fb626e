import { DescribeExecutionCommand, type SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import type { LifecycleOperation, OperationAccepted } from '../../schema/api/lifecycle.ts';
import { ServiceUnavailableError } from '../shared/errors.ts';
import type { Tenant, TenantStatus } from '../shared/tenants.ts';
import type { LifecycleStore, OperationRecord } from './operations.ts';

/**
 * Starting a lifecycle operation, for whoever starts one: the API's routes and the backup scheduler.
 */

/** The statuses each operation may start from. */
export const ALLOWED_FROM: Readonly<Record<LifecycleOperation, readonly TenantStatus[]>> = {
  suspend: ['active'],
  resume: ['suspended'],
  change_plan: ['active', 'suspended'],
  // A failed or half-undone tenant can be deleted too (its leftovers are removed); a halted deletion is retried.
  delete: ['active', 'suspended', 'failed', 'rollback_failed', 'deprovisioning'],
  backup: ['active', 'suspended'],
  restore: ['provisioning'],
};

/** An operation with no execution this long after its claim was left by a request that died before starting one. */
const UNSTARTED_STALE_MS = 120_000;

/**
 * Closes the tenant's running operation when its execution has ended without closing it (a run aborted or timed
 * out, a sandbox restarted): the operation is marked failed with how the execution ended, so that the tenant is not
 * locked forever. An operation whose execution still runs is left alone.
 */
export async function settleStaleOperation(
  deps: Pick<StartDeps, 'store' | 'sfn'>,
  tenantId: string,
  startedBefore = Date.now() - UNSTARTED_STALE_MS,
): Promise<OperationRecord | undefined> {
  const running = await deps.store.running(tenantId);
  if (!running) return undefined;
  if (running.executionArn === null) {
    // The API claims then starts within one request; an old claim without an execution will get none.
    const startedAt = Number(running.request.claimedAt ?? 0);
    if (startedAt > startedBefore) return running;
    await deps.store.finish(running.id, 'failed', {
      step: 'StartExecution',
      error: 'ExecutionNotStarted',
      cause: 'The request that claimed this operation ended before starting its execution',
    });
    return undefined;
  }
  const execution = await deps.sfn.send(new DescribeExecutionCommand({ executionArn: running.executionArn }));
  if (execution.status === 'RUNNING' || execution.status === 'PENDING_REDRIVE') return running;
  await deps.store.finish(running.id, 'failed', {
    step: 'Execution',
    error: execution.error ?? `Execution${execution.status ?? 'Ended'}`,
    cause: (
      execution.cause ?? `The execution ended ${execution.status ?? ''} without closing the operation`
    ).slice(0, 2000),
  });
  return undefined;
}

/** What starting an operation needs: the registry's operations, Step Functions, the state machine of each. */
export interface StartDeps {
  readonly store: LifecycleStore;
  readonly sfn: SFNClient;
  /** The ARN of the state machine of each operation this caller starts. */
  readonly stateMachines: Partial<Readonly<Record<LifecycleOperation, string>>>;
  readonly log?: (message: string, details: Record<string, unknown>) => void;
}

interface StartRequest {
  readonly tenantId: string;
  readonly operation: LifecycleOperation;
  /** Kept with the operation and passed to the execution beside tenantId and operationId. */
  readonly input: Record<string, unknown>;
  /** Who the operation is recorded as (`api:<caller>` for the API's). */
  readonly actor: string;
  readonly setStatus?: TenantStatus;
  readonly check?: (tenant: Tenant) => void;
  /** The execution's name; `<tenantId>-<operation>-<operationId>` by default. */
  readonly executionName?: (operationId: string) => string;
}

/**
 * Claims the operation (one at a time per tenant, from the statuses it allows), starts its execution with
 * `{ tenantId, operationId, ...input }`, and records the execution. When the execution cannot be started the claim
 * is undone (the tenant keeps its status) and a {@link ServiceUnavailableError} asks for a retry.
 */
export async function startOperation(deps: StartDeps, request: StartRequest): Promise<OperationAccepted> {
  const { actor } = request;
  const stateMachineArn = deps.stateMachines[request.operation];
  if (stateMachineArn === undefined) throw new Error(`No state machine given for ${request.operation}`);
  await settleStaleOperation(deps, request.tenantId);
  const { operationId, tenant } = await deps.store.begin({
    tenantId: request.tenantId,
    operation: request.operation,
    request: { ...request.input, claimedAt: Date.now() },
    from: ALLOWED_FROM[request.operation],
    by: actor,
    ...(request.setStatus !== undefined ? { setStatus: request.setStatus } : {}),
    ...(request.check !== undefined ? { check: request.check } : {}),
  });
  const name =
    request.executionName?.(operationId) ??
    `${tenant.id}-${request.operation.replace('_', '-')}-${operationId}`;
  let executionArn: string | undefined;
  try {
    const started = await deps.sfn.send(
      new StartExecutionCommand({
        stateMachineArn,
        name,
        input: JSON.stringify({ tenantId: tenant.id, operationId, ...request.input }),
      }),
    );
    executionArn = started.executionArn;
    if (!executionArn) throw new Error('StartExecution returned no executionArn');
  } catch (error) {
    deps.log?.('The operation did not start; its claim is undone', {
      tenantId: tenant.id,
      operation: request.operation,
      error: error instanceof Error ? error.name : String(error),
    });
    await deps.store.abandon(operationId, tenant.id, tenant.status, actor);
    throw new ServiceUnavailableError(
      `The ${request.operation.replace('_', ' ')} could not be started; nothing changed, retry later`,
      { cause: error },
    );
  }
  await deps.store.setExecution(operationId, tenant.id, executionArn, actor);
  return {
    tenantId: tenant.id,
    operationId,
    operation: request.operation,
    status: request.setStatus ?? tenant.status,
    executionArn,
    links: { self: `/tenants/${tenant.id}` },
  };
}
