import { type SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import type { LifecycleOperation } from '../../schema/api/lifecycle.ts';
import type { LifecycleStore, OperationRecord } from '../lifecycle/operations.ts';
import { failOperation } from '../lifecycle/outcome.ts';
import type { ScanDeps } from '../provision/outcome.ts';
import type { AuditStore } from '../shared/audit.ts';
import type { Announcer } from '../shared/events.ts';
import type { StepFailure, TenantStatus, TenantStore } from '../shared/tenants.ts';
import { describeExecution, executionArnOf, lastState, type StuckPolicy, statusWord } from './stuck.ts';

export interface OperationDeps extends Announcer, ScanDeps {
  readonly tenants: TenantStore;
  readonly audit: AuditStore;
  readonly store: LifecycleStore;
  readonly sfn: SFNClient;
  /** The ARN of each operation's state machine. */
  readonly lifecycleStateMachines: Readonly<Record<LifecycleOperation, string>>;
  readonly actor: string;
}

/** What the reconciler did with one running operation whose run died. */
export interface OperationOutcome {
  readonly tenantId: string;
  /** The operation found running. */
  readonly operationId: string;
  readonly operation: LifecycleOperation;
  /**
   * `resumed`: closed failed and claimed again as `resumedAs`, whose run (`execution`) does it from the start (every
   * lifecycle step is idempotent, and a failure in it is undone by the state machine's own catch chain); `escalated`:
   * its runs died `maxResumes` times, so it is closed failed for a person, with the tenant stated as the state
   * machine states it when undoing fails (a suspension or resumption: suspended; a deletion: deprovisioning, with what
   * is left); `waiting`: its run ended a moment ago, or its claim is younger than the grace period.
   */
  readonly action: 'resumed' | 'escalated' | 'waiting';
  readonly reason: string;
  readonly previousExecution?: string;
  readonly resumedAs?: string;
  readonly execution?: string;
}

/** Where an operation given up on leaves the tenant; undefined: back to the status it started from. */
const GIVEN_UP_STATUS: Readonly<Partial<Record<LifecycleOperation, TenantStatus>>> = {
  suspend: 'suspended',
  resume: 'suspended',
  delete: 'deprovisioning',
};

/** Keys of an operation's stored request that are bookkeeping, not part of its state machine's input. */
const BOOKKEEPING = new Set(['claimedAt', 'resumes', 'resumedFrom']);

const inputOf = (request: Record<string, unknown>): Record<string, unknown> =>
  Object.fromEntries(Object.entries(request).filter(([key]) => !BOOKKEEPING.has(key)));

/** An execution name as the API gives one: `<tenantId>-<operation>-<operationId>`. */
const executionName = (tenantId: string, operation: LifecycleOperation, operationId: string): string =>
  `${tenantId}-${operation.replace('_', '-')}-${operationId}`;

/**
 * Settles one running lifecycle operation: nothing while its run is alive; when the run has ended without closing it
 * (stopped, timed out, killed with a sandbox, failed in its own bookkeeping), cannot be found, or was never started
 * (the request that claimed it died), the operation is {@link OperationOutcome done again or given up on}, so that
 * the registry and the tenant's database agree once that run ends. Each action is audited (`TENANT_RECONCILED`).
 * Undefined when there is nothing to do.
 */
export async function settleOperation(
  deps: OperationDeps,
  policy: StuckPolicy,
  operation: OperationRecord,
  now: number = Date.now(),
): Promise<OperationOutcome | undefined> {
  const base = { tenantId: operation.tenantId, operationId: operation.id, operation: operation.operation };
  let reason: string;
  let failure: StepFailure;
  if (operation.executionArn === null) {
    // The API claims, then starts the run within the same request; an older claim without one will not get it.
    const claimedAt = Number(operation.request.claimedAt ?? 0);
    if (now - claimedAt < policy.graceSeconds * 1000) {
      return { ...base, action: 'waiting', reason: 'no execution yet, within the grace period' };
    }
    reason = 'its run was never started';
    failure = { step: 'StartExecution', error: 'ExecutionNotStarted', cause: `The operation's ${reason}` };
  } else {
    const execution = await describeExecution(deps.sfn, operation.executionArn);
    if (execution?.status === 'RUNNING' || execution?.status === 'PENDING_REDRIVE') return undefined;
    if (execution) {
      // A run that ended a moment ago may have a caller acting on it (the API closes the operation of a run an
      // operator stopped, on the next request for the tenant); it is given a little while.
      const stopped = execution.stopDate?.getTime() ?? 0;
      if (now - stopped < policy.settleSeconds * 1000) {
        return { ...base, action: 'waiting', reason: `run ${execution.name} ended a moment ago` };
      }
      const last = await lastState(deps.sfn, operation.executionArn);
      reason = `run ${execution.name} ended ${execution.status}${execution.error ? ` (${execution.error})` : ''}${last ? ` in ${last.name}` : ''} without closing the operation`;
      failure = {
        step: last?.name ?? 'Execution',
        error: execution.error ?? `Execution${statusWord(execution.status ?? 'Ended')}`,
        cause: (execution.cause ?? reason).slice(0, 2000),
      };
    } else {
      reason = `its run ${operation.executionArn} does not exist`;
      failure = { step: 'Execution', error: 'ExecutionDoesNotExist', cause: `The operation's ${reason}` };
    }
  }
  const previous = operation.executionArn !== null ? { previousExecution: operation.executionArn } : {};

  const resumes = Number(operation.request.resumes ?? 0);
  if (resumes >= policy.maxResumes) {
    // Closed meanwhile (its run's last task, the API, another reconciler): nothing to give up.
    if ((await deps.store.get(operation.id))?.status !== 'running') return undefined;
    const status = GIVEN_UP_STATUS[operation.operation];
    // A deletion given up on is scanned for what is left of the tenant.
    await failOperation({ ...deps, scan: deps }, operation.tenantId, operation.id, {
      failure: {
        ...failure,
        cause: `${failure.cause} (given up after ${resumes} runs again)`.slice(0, 2000),
      },
      ...(status !== undefined ? { status } : {}),
      scan: operation.operation === 'delete',
    });
    return record(deps, { ...base, action: 'escalated', reason, ...previous });
  }

  const replaced = await deps.store.replace(operation, failure, {
    ...operation.request,
    claimedAt: now,
    resumes: resumes + 1,
    resumedFrom: operation.id,
  });
  if (!replaced) return undefined;
  const { operationId } = replaced;
  const stateMachineArn = deps.lifecycleStateMachines[operation.operation];
  const name = executionName(operation.tenantId, operation.operation, operationId);
  // When the run cannot be started, the new claim stays without one: the next pass finds it never started.
  const started = await deps.sfn.send(
    new StartExecutionCommand({
      stateMachineArn,
      name,
      input: JSON.stringify({ tenantId: operation.tenantId, operationId, ...inputOf(operation.request) }),
    }),
  );
  const execution = started.executionArn ?? executionArnOf(stateMachineArn, name);
  await deps.store.setExecution(operationId, operation.tenantId, execution, deps.actor);
  return record(deps, { ...base, action: 'resumed', reason, ...previous, resumedAs: operationId, execution });
}

async function record(deps: OperationDeps, outcome: OperationOutcome): Promise<OperationOutcome> {
  const { tenantId, ...details } = outcome;
  await deps.audit.add(tenantId, 'TENANT_RECONCILED', deps.actor, details);
  return outcome;
}
