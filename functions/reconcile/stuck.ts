import {
  DescribeExecutionCommand,
  type DescribeExecutionCommandOutput,
  ExecutionAlreadyExists,
  ExecutionDoesNotExist,
  GetExecutionHistoryCommand,
  ListExecutionsCommand,
  type SFNClient,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import * as z from '../../schema/zod.ts';
import { CaughtFailure, markTenantRollbackFailed, type ScanDeps } from '../provision/outcome.ts';
import { PROVISIONING_STEPS } from '../provision/step.ts';
import type { AuditStore } from '../shared/audit.ts';
import type { Announcer } from '../shared/events.ts';
import type { StepFailure, Tenant, TenantStore } from '../shared/tenants.ts';

/** The forward states of provision-tenant: a run that died in one of them can be run again from the start. */
export const FORWARD_STATES = PROVISIONING_STEPS;

export interface StuckDeps extends ScanDeps, Announcer {
  readonly tenants: TenantStore;
  readonly audit: AuditStore;
  readonly sfn: SFNClient;
  readonly provisionStateMachineArn: string;
  readonly rollbackStateMachineArn: string;
  readonly actor: string;
}

/** How patient the reconciler is with a stuck tenant. */
export interface StuckPolicy {
  /** A tenant without any execution is left alone this long after its last change (the API may be starting one). */
  readonly graceSeconds: number;
  /** Runs of provision-tenant started again after the first died; then the tenant is rolled back. */
  readonly maxResumes: number;
  /** Runs of rollback-tenant; when the last dies too, the tenant is marked rollback_failed for a person. */
  readonly maxRollbacks: number;
  /** A run that failed or succeeded by itself (not ABORTED) is left alone this long after it ended. */
  readonly settleSeconds: number;
}

export const DEFAULT_STUCK_POLICY: StuckPolicy = {
  graceSeconds: 120,
  maxResumes: 2,
  maxRollbacks: 2,
  settleSeconds: 10,
};

/** What the reconciler did with one tenant in `provisioning`. */
export interface StuckOutcome {
  readonly tenantId: string;
  /**
   * `started`: it had no execution, one was started; `resumed`: provision-tenant started again (its steps are
   * idempotent); `rolled_back`: rollback-tenant started; `escalated`: marked rollback_failed for a person;
   * `waiting`: within the grace period.
   */
  readonly action: 'started' | 'resumed' | 'rolled_back' | 'escalated' | 'waiting';
  readonly reason: string;
  readonly previousExecution?: string;
  readonly execution?: string;
}

/** `<tenantId>`, `<tenantId>-r<n>` (resumed), `<tenantId>-rb<n>` (rolled back). */
const EXECUTION_NAME = /^(t[a-z0-9]{15})(?:-(r|rb)(\d+))?$/;

/** An execution's ARN from its state machine's ARN and its name. */
export const executionArnOf = (stateMachineArn: string, name: string): string =>
  `${stateMachineArn.replace(':stateMachine:', ':execution:')}:${name}`;

/**
 * An execution status as the end of an error name, for a run that ended without one of its own: `TIMED_OUT` gives
 * `TimedOut` (`ExecutionTimedOut`).
 */
export const statusWord = (status: string): string =>
  status
    .toLowerCase()
    .split('_')
    .map((word) => word.charAt(0).toUpperCase() + word.slice(1))
    .join('');

/** The ARN of another state machine of the same stack: both are named `<stack prefix>-<file name>`. */
export function siblingStateMachineArn(stateMachineArn: string, from: string, to: string): string {
  if (!stateMachineArn.endsWith(`-${from}`)) {
    throw new Error(`${stateMachineArn} is not the ${from} state machine`);
  }
  return `${stateMachineArn.slice(0, -from.length)}${to}`;
}

const StateEntered = z.object({ name: z.string(), input: z.optional(z.string()) });
const FailureInState = z.object({ failure: z.optional(CaughtFailure) });

/** The last state the execution entered, with the failure its input carried (undo states carry one). */
export async function lastState(
  sfn: SFNClient,
  executionArn: string,
): Promise<{ name: string; failure?: CaughtFailure } | undefined> {
  const { events = [] } = await sfn.send(
    new GetExecutionHistoryCommand({ executionArn, reverseOrder: true, maxResults: 100 }),
  );
  for (const event of events) {
    const entered = StateEntered.safeParse(event.stateEnteredEventDetails);
    if (!entered.success) continue;
    let failure: CaughtFailure | undefined;
    try {
      failure = FailureInState.parse(JSON.parse(entered.data.input ?? '{}')).failure;
    } catch {
      failure = undefined;
    }
    return { name: entered.data.name, ...(failure ? { failure } : {}) };
  }
  return undefined;
}

/** Whether any execution of either state machine named for the tenant is running. */
async function anotherRun(deps: StuckDeps, tenantId: string): Promise<boolean> {
  for (const stateMachineArn of [deps.provisionStateMachineArn, deps.rollbackStateMachineArn]) {
    let nextToken: string | undefined;
    do {
      const page = await deps.sfn.send(
        new ListExecutionsCommand({ stateMachineArn, statusFilter: 'RUNNING', maxResults: 1000, nextToken }),
      );
      if ((page.executions ?? []).some((execution) => execution.name?.startsWith(tenantId))) return true;
      nextToken = page.nextToken;
    } while (nextToken);
  }
  return false;
}

/** The execution, or undefined when Step Functions has none by that ARN. */
export async function describeExecution(
  sfn: SFNClient,
  executionArn: string,
): Promise<DescribeExecutionCommandOutput | undefined> {
  try {
    return await sfn.send(new DescribeExecutionCommand({ executionArn }));
  } catch (error) {
    if (error instanceof ExecutionDoesNotExist) return undefined;
    throw error;
  }
}

/**
 * Starts an execution; one of that name made by a concurrent reconciler counts as started (names are
 * deterministic, so two reconcilers never start two runs for the same tenant).
 */
async function start(sfn: SFNClient, stateMachineArn: string, name: string, input: unknown): Promise<string> {
  try {
    const started = await sfn.send(
      new StartExecutionCommand({ stateMachineArn, name, input: JSON.stringify(input) }),
    );
    if (!started.executionArn) throw new Error('StartExecution returned no executionArn');
    return started.executionArn;
  } catch (error) {
    if (error instanceof ExecutionAlreadyExists) return executionArnOf(stateMachineArn, name);
    throw error;
  }
}

const ageSeconds = (iso: string, now: number): number => (now - Date.parse(iso)) / 1000;

/**
 * Settles one tenant found in `provisioning`: nothing when its run is alive; otherwise (the run died: ABORTED,
 * FAILED, TIMED_OUT, or never started) it resumes provision-tenant when the run died in a forward step and
 * resumes remain, else it starts rollback-tenant with the recorded failure, else it marks the tenant
 * rollback_failed with what is left, announced for a person. Each action is recorded in the audit log as
 * `TENANT_RECONCILED`. Returns undefined when the tenant is not stuck.
 */
export async function settleStuckTenant(
  deps: StuckDeps,
  policy: StuckPolicy,
  tenant: Tenant,
  now: number = Date.now(),
): Promise<StuckOutcome | undefined> {
  const knownArn = tenant.executionArn ?? executionArnOf(deps.provisionStateMachineArn, tenant.id);
  const execution = await describeExecution(deps.sfn, knownArn);
  // The registry again, after the execution: a run that ended between the two reads ended the tenant too.
  const fresh = await deps.tenants.get(tenant.id);
  if (fresh?.status !== 'provisioning') return undefined;

  if (!execution) {
    if (ageSeconds(fresh.updatedAt, now) < policy.graceSeconds) {
      return { tenantId: tenant.id, action: 'waiting', reason: 'no execution yet, within the grace period' };
    }
    // The API reserved the tenant and died before its run started (or the record names a run that is gone).
    const name = tenant.executionArn ? `${tenant.id}-r1` : tenant.id;
    const arn = await start(deps.sfn, deps.provisionStateMachineArn, name, { tenantId: tenant.id });
    return record(deps, tenant.id, {
      tenantId: tenant.id,
      action: 'started',
      reason: 'the tenant had no provisioning run',
      execution: arn,
    });
  }
  const executionArn = execution.executionArn ?? knownArn;
  if (!tenant.executionArn) await deps.tenants.setExecutionArn(tenant.id, executionArn, deps.actor);
  if (execution.status === 'RUNNING') return undefined;
  // Another run for the tenant (an operator's, a retry's) is alive: it, not the reconciler, settles the tenant.
  if (await anotherRun(deps, tenant.id)) return undefined;
  // An ABORTED run was ended from outside (a dead process, StopExecution): nothing follows it. A run that ended
  // by itself a moment ago may have a caller about to act on its outcome; it is given a little while.
  const stopped = execution.stopDate?.getTime() ?? 0;
  if (execution.status !== 'ABORTED' && now - stopped < policy.settleSeconds * 1000) {
    return { tenantId: tenant.id, action: 'waiting', reason: `run ${execution.name} ended a moment ago` };
  }

  const [, , kind, number] = EXECUTION_NAME.exec(execution.name ?? '') ?? [];
  const attempt = Number(number ?? 0);
  const inRollback = execution.stateMachineArn === deps.rollbackStateMachineArn;
  const last = await lastState(deps.sfn, executionArn);
  const reason = `run ${execution.name} ended ${execution.status}${execution.error ? ` (${execution.error})` : ''}${last ? ` in ${last.name}` : ''}`;
  const resumes = kind === 'r' ? attempt : 0;
  // Only provision-tenant is run again: a restore's run (restore-tenant, whose operation the reconciler settles as
  // an operation) shares state names with it, but provisioning the tenant afresh would not restore it.
  const diedForward =
    execution.stateMachineArn === deps.provisionStateMachineArn &&
    (last === undefined || FORWARD_STATES.includes(last.name));

  if (diedForward && resumes < policy.maxResumes) {
    const arn = await start(deps.sfn, deps.provisionStateMachineArn, `${tenant.id}-r${resumes + 1}`, {
      tenantId: tenant.id,
    });
    await deps.tenants.setExecutionArn(tenant.id, arn, deps.actor);
    return record(deps, tenant.id, {
      tenantId: tenant.id,
      action: 'resumed',
      reason,
      previousExecution: executionArn,
      execution: arn,
    });
  }

  const failure: CaughtFailure = last?.failure ?? {
    step: last?.name ?? 'Reconcile',
    Error: execution.error ?? `Execution${statusWord(execution.status ?? 'Unknown')}`,
    Cause: execution.cause ?? reason,
  };
  const rollbacks = inRollback && kind === 'rb' ? attempt : 0;
  if (rollbacks < policy.maxRollbacks) {
    const arn = await start(deps.sfn, deps.rollbackStateMachineArn, `${tenant.id}-rb${rollbacks + 1}`, {
      tenantId: tenant.id,
      failure,
    });
    await deps.tenants.setExecutionArn(tenant.id, arn, deps.actor);
    return record(deps, tenant.id, {
      tenantId: tenant.id,
      action: 'rolled_back',
      reason,
      previousExecution: executionArn,
      execution: arn,
    });
  }

  const given: StepFailure = { step: failure.step, error: failure.Error, cause: failure.Cause ?? '' };
  await markTenantRollbackFailed(deps, tenant.id, given, {
    step: 'Reconcile',
    error: 'ReconcileGaveUp',
    cause: `${policy.maxRollbacks} rollback runs died; ${reason}`,
  });
  return record(deps, tenant.id, {
    tenantId: tenant.id,
    action: 'escalated',
    reason,
    previousExecution: executionArn,
  });
}

async function record(deps: StuckDeps, tenantId: string, outcome: StuckOutcome): Promise<StuckOutcome> {
  const { tenantId: _, ...details } = outcome;
  await deps.audit.add(tenantId, 'TENANT_RECONCILED', deps.actor, details);
  return outcome;
}
