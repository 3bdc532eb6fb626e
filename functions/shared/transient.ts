/**
 * Errors that mean "later", and how the state machines retry. The ASL files (`statemachines/*.asl.json`) stay
 * plain JSON, as CDK deploys them and the sandbox runs them, with their `Retry` blocks written out;
 * test/statemachines/retry.test.ts fails when any of them differs from what this module says it should be.
 */

/**
 * Where a transient error comes from, which decides who sees it:
 * - `database`: the Data API while an auto-paused Aurora Serverless v2 cluster resumes (about 15 s) or is briefly
 *   unreachable;
 * - `throttling`: a service's name for "too many requests" (mostly a 4xx, which no `$fault` check finds; S3's
 *   `SlowDown` is a 503);
 * - `service`: a service's own fault (a 5xx), by each service's name for it;
 * - `product`: the product's own `ServiceUnavailableError` (errors.ts): a dependency failed and what the call did
 *   is undone, so it may run again;
 * - `lambda`: Step Functions' names for a Lambda invocation that failed in Lambda, before or around the handler.
 */
export type TransientSource = 'database' | 'throttling' | 'service' | 'product' | 'lambda';

/** Every transient error name and its source, in the order the ASL's `ErrorEquals` lists them. */
const TRANSIENT_SOURCES = {
  DatabaseResumingException: 'database',
  DatabaseUnavailableException: 'database',
  ServiceUnavailableError: 'product',
  InternalServerErrorException: 'service',
  ThrottlingException: 'throttling',
  Throttling: 'throttling',
  TooManyRequestsException: 'throttling',
  RequestLimitExceeded: 'throttling',
  SlowDown: 'throttling',
  ServiceUnavailableException: 'service',
  ServiceUnavailable: 'service',
  InternalFailure: 'service',
  InternalError: 'service',
  InternalServiceError: 'service',
  InternalServiceFault: 'service',
  InternalException: 'service',
  'Lambda.ServiceException': 'lambda',
  'Lambda.AWSLambdaException': 'lambda',
  'Lambda.SdkClientException': 'lambda',
  'Lambda.TooManyRequestsException': 'lambda',
} as const satisfies Record<string, TransientSource>;

/** The one list of transient error names: what a forward step's `Retry` matches. */
export const TRANSIENT_ERRORS: readonly string[] = Object.keys(TRANSIENT_SOURCES);

/** The transient errors that come from `sources`, in the list's order. */
export function transientErrorsFrom(...sources: readonly TransientSource[]): readonly string[] {
  return Object.entries(TRANSIENT_SOURCES)
    .filter(([, source]) => sources.includes(source))
    .map(([name]) => name);
}

/**
 * The transient errors the api function recognises by name and answers with a 503 to retry: those of the Data API
 * and throttling, which the AWS SDK raises inside the function. The rest need no name there: a service's 5xx is
 * recognised by its `$fault`, a `ServiceUnavailableError` carries its own 503, and the `Lambda.*` names exist only
 * in Step Functions.
 */
export const API_TRANSIENT_ERRORS: ReadonlySet<string> = new Set(
  transientErrorsFrom('database', 'throttling'),
);

/** One retrier of a state's `Retry`, as the ASL writes it. */
export interface Retrier {
  readonly ErrorEquals: readonly string[];
  readonly IntervalSeconds: number;
  readonly BackoffRate: number;
  readonly MaxAttempts: number;
  readonly JitterStrategy: 'FULL' | 'NONE';
}

/** Every retrier's timing: 3 retries after about 1, 2 and 4 s, each a random share of that (full jitter). */
export const RETRY_TIMING = {
  IntervalSeconds: 1,
  BackoffRate: 2,
  MaxAttempts: 3,
  JitterStrategy: 'FULL',
} as const satisfies Omit<Retrier, 'ErrorEquals'>;

/** The two `Retry` blocks a Task may have. */
export const RETRY = {
  /**
   * A forward step: only transient errors are retried; any other error is caught at once into the undo chain, so
   * that a business error (a refusal, a failed schema check) is neither repeated nor delayed.
   */
  transient: [{ ErrorEquals: [...TRANSIENT_ERRORS], ...RETRY_TIMING }],
  /** A step that has no undo of its own (see {@link RETRIES_EVERY_ERROR}): any error is retried before it gives up. */
  everyError: [{ ErrorEquals: ['States.ALL'], ...RETRY_TIMING }],
} as const satisfies Record<string, readonly Retrier[]>;

/** Why a Task retries every error rather than only the transient ones. */
export interface EveryErrorTasks {
  /** Undo steps: one that gives up leaves what it undoes behind and ends the run in its rollback-failed state. */
  readonly undo?: readonly string[];
  /** Steps that record the run's outcome (succeeded, failed, refused): without them the tenant keeps a stale status. */
  readonly outcome?: readonly string[];
  /** Steps past a point of no return, which have no undo: one that gives up halts the run. */
  readonly noWayBack?: readonly string[];
}

const PROVISION_TENANT_EVERY_ERROR: EveryErrorTasks = {
  undo: ['RemoveAlarms', 'RemoveStorage', 'RemoveRoles', 'DropDatabase'],
  outcome: ['MarkFailed', 'MarkRollbackFailed'],
};

/**
 * The named exceptions: per state machine (file name), the Tasks whose `Retry` is {@link RETRY}`.everyError`.
 * Every other Task retries {@link RETRY}`.transient`. The recording Tasks of bulk-onboard (RowFailed, FailBatch)
 * and migrate-fleet (RecordChunkFailure, RecordRunFailure) retry only transient errors, and catch the rest.
 */
export const RETRIES_EVERY_ERROR: Readonly<Record<string, EveryErrorTasks>> = {
  'backup-tenant': {
    undo: ['DiscardBackup'],
    outcome: ['MarkBackedUp', 'MarkBackupFailed', 'MarkBackupRollbackFailed', 'Refused'],
  },
  'bulk-onboard': {},
  'collect-usage': {},
  'change-plan': {
    undo: ['UndoRestoreAlarms', 'UndoRestoreLimits'],
    outcome: ['MarkPlanChanged', 'MarkPlanChangeFailed', 'MarkPlanChangeRollbackFailed'],
  },
  'delete-tenant': {
    undo: ['DiscardFinalBackup'],
    outcome: ['MarkDeleted', 'MarkDeleteFailed', 'MarkDeletionHalted', 'Refused'],
    // After the final backup the deletion goes forward only; a step that gives up leaves it deprovisioning.
    noWayBack: ['RemoveAlarms', 'RetainStorage', 'RetireRolesAndSecrets', 'DropDatabase'],
  },
  'migrate-fleet': {},
  'provision-tenant': PROVISION_TENANT_EVERY_ERROR,
  'restore-tenant': {
    undo: ['RemoveAlarms', 'RemoveStorage', 'RemoveRoles', 'DropDatabase'],
    outcome: ['MarkRestored', 'MarkRestoreFailed', 'MarkRestoreRollbackFailed', 'Refused'],
  },
  'resume-tenant': {
    undo: ['UndoDisableAlarmActions', 'UndoDisableTenantAccess'],
    outcome: ['MarkResumed', 'MarkResumeFailed', 'MarkResumeRollbackFailed', 'Refused'],
  },
  // provision-tenant's undo chain (test/statemachines/undo-chain.test.ts holds the two equal).
  'rollback-tenant': PROVISION_TENANT_EVERY_ERROR,
  'suspend-tenant': {
    undo: ['UndoEnableAlarmActions', 'UndoEnableTenantAccess'],
    outcome: ['MarkSuspended', 'MarkSuspendFailed', 'MarkSuspendRollbackFailed', 'Refused'],
  },
};

/** The `Retry` a Task of `machine` must have: {@link RETRY}`.everyError` when named in {@link RETRIES_EVERY_ERROR}. */
export function retryOf(machine: string, task: string): readonly Retrier[] {
  const named = RETRIES_EVERY_ERROR[machine] ?? {};
  const everyError = [...(named.undo ?? []), ...(named.outcome ?? []), ...(named.noWayBack ?? [])];
  return everyError.includes(task) ? RETRY.everyError : RETRY.transient;
}
