import { randomUUID } from 'node:crypto';
import { setImmediate } from 'node:timers/promises';
import type { RunOptions, StateMachine } from 'aws-local-stepfunctions';
import { LambdaInvocationError, type LambdaRuntime } from '../../lambda.ts';
import type { Collection } from '../store.ts';
import { type CheckedDefinition, isObject, runnableMachine, type TaskState } from './sfn-definition.ts';

export type ExecutionStatus = 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'ABORTED';

/** An execution as the store keeps it; dates in epoch milliseconds. */
export interface ExecutionRecord {
  readonly executionArn: string;
  readonly stateMachineArn: string;
  readonly name: string;
  readonly status: ExecutionStatus;
  /** The input string exactly as StartExecution received it (idempotency compares it). */
  readonly input: string;
  readonly output?: string;
  readonly error?: string;
  readonly cause?: string;
  readonly startDate: number;
  readonly stopDate?: number;
}

/** One event of GetExecutionHistory, with its `*EventDetails` member; `timestamp` in epoch milliseconds. */
export interface HistoryEvent {
  readonly id: number;
  readonly previousEventId: number;
  readonly timestamp: number;
  readonly type: string;
  readonly [details: string]: unknown;
}

/** How long history events wait to be written together. */
const BATCH_MS = 50;

/** The key of an execution's history events: they list in id order under `<execution key>/`. */
const historyKey = (executionKey: string, id: number): string =>
  `${executionKey}/${String(id).padStart(8, '0')}`;

type LocalHandlers = NonNullable<NonNullable<RunOptions['overrides']>['taskResourceLocalHandlers']>;
type JsonValue = Awaited<ReturnType<LocalHandlers[string]>>;
type EventLog = ReturnType<StateMachine['run']>['eventLogs'] extends AsyncGenerator<infer E> ? E : never;
type Details = Readonly<Record<string, unknown>>;
type Outcome = Pick<ExecutionRecord, 'status' | 'output' | 'error' | 'cause'>;

export interface ExecutionRunOptions {
  readonly key: string;
  readonly execution: ExecutionRecord;
  readonly checked: CheckedDefinition;
  readonly roleArn: string;
  readonly region: string;
  readonly lambda: LambdaRuntime;
  readonly executions: Collection<ExecutionRecord>;
  readonly history: Collection<HistoryEvent>;
}

/**
 * A Task's error as Step Functions hands it to Retry and Catch: `name` is the `Error`, `message` the `Cause`
 * (aws-local-stepfunctions matches `ErrorEquals` on `name` and copies `message` into `Cause`).
 */
class TaskError extends Error {
  constructor(error: string, cause: string) {
    super(cause);
    this.name = error;
  }
}

interface Attempt {
  over: boolean;
}

/**
 * One execution running in this process through aws-local-stepfunctions. Every Task state is overridden
 * to call the in-process Lambda runtime (the library would otherwise call AWS Lambda), and the library's
 * event log is translated into AWS's history events, written to the store as they happen; the execution's
 * record is closed once the last event is written.
 *
 * What the library does not give: `$$.State` and `$$.Task` in the context object, HeartbeatSeconds,
 * `.waitForTaskToken`, and a `length` in MapStateStarted.
 */
export class ExecutionRun {
  /** Settles when the execution's record is closed (never rejects: a store failure is logged). */
  readonly done: Promise<void>;
  readonly #options: ExecutionRunOptions;
  readonly #events: HistoryWriter;
  readonly #openAttempts = new Map<string, Attempt[]>();
  readonly #failedStates = new Set<string>();
  #abort: () => void = () => {};
  #stopReason: { error?: string; cause?: string } = {};
  #outcome: Outcome | undefined;

  constructor(options: ExecutionRunOptions) {
    this.#options = options;
    this.#events = new HistoryWriter(options.history, options.key);
    this.done = this.#run().catch((error: unknown) => {
      console.error(`sfn: execution ${options.execution.executionArn} could not be recorded:`, error);
    });
  }

  /** Whether the execution has reached its end (its last event is recorded, maybe not yet written). */
  get closed(): boolean {
    return this.#outcome !== undefined;
  }

  /** Writes the history events still pending, so that a reader sees every event recorded so far. */
  async flushHistory(): Promise<void> {
    await this.#events.flush().catch(() => {
      // A failed write is the run's to report, when it closes the execution.
    });
  }

  /** StopExecution: aborts the run; resolves once the execution is recorded ABORTED. */
  async stop(error?: string, cause?: string): Promise<void> {
    if (!this.closed) {
      this.#stopReason = { error, cause };
      this.#abort();
    }
    await this.done;
  }

  async #run(): Promise<void> {
    const { execution, checked } = this.#options;
    const handlers: LocalHandlers = {};
    for (const [name, task] of checked.tasks) handlers[name] = (input) => this.#runTask(name, task, input);
    const run = runnableMachine(checked).run(asJson(JSON.parse(execution.input)), {
      overrides: { taskResourceLocalHandlers: handlers },
      context: {
        Execution: { Id: execution.executionArn, Name: execution.name, RoleArn: this.#options.roleArn },
        StateMachine: { Id: execution.stateMachineArn, Name: stateMachineName(execution.stateMachineArn) },
      },
    });
    this.#abort = run.abort;
    // The outcome comes from the event log; the result's rejection (failure, abort, timeout) is expected.
    run.result.catch(() => undefined);
    for await (const event of run.eventLogs) this.#translate(event);
    this.#outcome ??= {
      status: 'FAILED',
      error: 'States.Runtime',
      cause: 'The execution ended without a result',
    };
    await this.#events.flush();
    await this.#options.executions.put(this.#options.key, {
      ...execution,
      ...this.#outcome,
      stopDate: Date.now(),
    });
  }

  /** Where every Task goes instead of AWS Lambda. */
  async #runTask(stateName: string, task: TaskState, input: JsonValue): Promise<JsonValue> {
    // The library calls this synchronously after dispatching TaskStateEntered; yielding once lets the
    // event-log loop (all microtasks) record that event first, so that ids follow the real order.
    await setImmediate();
    // A retry scheduled before StopExecution must not invoke the function again.
    if (this.closed) throw new TaskError('States.Runtime', 'The execution is no longer running');
    const attempt: Attempt = { over: false };
    const open = this.#openAttempts.get(stateName) ?? [];
    open.push(attempt);
    this.#openAttempts.set(stateName, open);
    const record = (type: string, details?: Details) => {
      if (!attempt.over) this.#record(type, details);
    };
    const integration =
      task.kind === 'lambda:invoke' ? { resourceType: 'lambda', resource: 'invoke' } : undefined;
    const timeout = task.timeoutSeconds === undefined ? {} : { timeoutInSeconds: task.timeoutSeconds };
    try {
      if (integration) {
        record('TaskScheduled', {
          taskScheduledEventDetails: {
            ...integration,
            region: this.#options.region,
            parameters: JSON.stringify(input),
            ...timeout,
          },
        });
        record('TaskStarted', { taskStartedEventDetails: integration });
      } else {
        record('LambdaFunctionScheduled', {
          lambdaFunctionScheduledEventDetails: {
            resource: task.resource,
            ...inputDetails(input),
            ...timeout,
          },
        });
        record('LambdaFunctionStarted');
      }
      let result: JsonValue;
      try {
        result = integration
          ? await this.#invokeIntegration(input)
          : asJson(await this.#options.lambda.invoke(task.resource, input));
      } catch (thrown) {
        const error = taskError(thrown);
        const failure = { error: error.name, cause: error.message };
        if (integration) record('TaskFailed', { taskFailedEventDetails: { ...integration, ...failure } });
        else record('LambdaFunctionFailed', { lambdaFunctionFailedEventDetails: failure });
        throw error;
      }
      const output = { output: JSON.stringify(result), outputDetails: { truncated: false } };
      if (integration) record('TaskSucceeded', { taskSucceededEventDetails: { ...integration, ...output } });
      else record('LambdaFunctionSucceeded', { lambdaFunctionSucceededEventDetails: output });
      return result;
    } finally {
      attempt.over = true;
      open.splice(open.indexOf(attempt), 1);
    }
  }

  /** `arn:aws:states:::lambda:invoke`: Parameters {FunctionName, Payload}, result wrapped as AWS wraps it. */
  async #invokeIntegration(parameters: JsonValue): Promise<JsonValue> {
    const functionName = isObject(parameters) ? parameters.FunctionName : undefined;
    if (typeof functionName !== 'string') {
      throw new TaskError('States.Runtime', 'lambda:invoke needs a string FunctionName in its Parameters');
    }
    const payload = isObject(parameters) && 'Payload' in parameters ? parameters.Payload : {};
    const result = await this.#options.lambda.invoke(functionName, payload);
    const requestId = randomUUID();
    const headers = {
      'Content-Type': 'application/json',
      'X-Amz-Executed-Version': '$LATEST',
      'x-amzn-RequestId': requestId,
    };
    return asJson({
      ExecutedVersion: '$LATEST',
      Payload: result,
      SdkHttpMetadata: {
        AllHttpHeaders: Object.fromEntries(Object.entries(headers).map(([name, value]) => [name, [value]])),
        HttpHeaders: headers,
        HttpStatusCode: 200,
      },
      SdkResponseMetadata: { RequestId: requestId },
      StatusCode: 200,
    });
  }

  /** The library's event, as AWS's history events. */
  #translate(event: EventLog): void {
    switch (event.type) {
      case 'ExecutionStarted':
        this.#record('ExecutionStarted', {
          executionStartedEventDetails: {
            input: this.#options.execution.input,
            inputDetails: { truncated: false },
            roleArn: this.#options.roleArn,
            stateMachineArn: this.#options.execution.stateMachineArn,
          },
        });
        return;
      case 'ExecutionSucceeded': {
        const output = JSON.stringify(event.output);
        this.#record('ExecutionSucceeded', {
          executionSucceededEventDetails: { output, outputDetails: { truncated: false } },
        });
        this.#outcome = { status: 'SUCCEEDED', output };
        return;
      }
      case 'ExecutionFailed': {
        const failure = { error: event.Error, cause: causeText(event.Cause) };
        this.#record('ExecutionFailed', { executionFailedEventDetails: failure });
        this.#outcome = { status: 'FAILED', ...failure };
        return;
      }
      case 'ExecutionAborted':
        this.#record('ExecutionAborted', { executionAbortedEventDetails: this.#stopReason });
        this.#outcome = { status: 'ABORTED', ...this.#stopReason };
        return;
      case 'ExecutionTimeout': {
        const failure = {
          error: 'States.Timeout',
          cause: "The execution ran longer than the state machine's TimeoutSeconds",
        };
        this.#record('ExecutionTimedOut', { executionTimedOutEventDetails: failure });
        this.#outcome = { status: 'TIMED_OUT', ...failure };
        return;
      }
      case 'StateEntered': {
        const { name, type, input } = event.state;
        this.#failedStates.delete(name);
        this.#record(`${type}StateEntered`, { stateEnteredEventDetails: { name, ...inputDetails(input) } });
        if (type === 'Parallel' || type === 'Map') this.#record(`${type}StateStarted`);
        return;
      }
      case 'StateExited': {
        const { name, type, output } = event.state;
        if ((type === 'Parallel' || type === 'Map') && !this.#failedStates.has(name)) {
          this.#record(`${type}StateSucceeded`);
        }
        this.#failedStates.delete(name);
        this.#record(`${type}StateExited`, {
          stateExitedEventDetails: {
            name,
            output: JSON.stringify(output ?? null),
            outputDetails: { truncated: false },
          },
        });
        return;
      }
      case 'StateFailed': {
        const { name, type } = event.state;
        this.#failedStates.add(name);
        if (type === 'Parallel' || type === 'Map') this.#record(`${type}StateFailed`);
        if (type === 'Task' && event.Error === 'States.Timeout') this.#taskTimedOut(name);
        return;
      }
      case 'StateRetried':
        this.#failedStates.delete(event.state.name);
        return;
      case 'MapIterationStarted':
      case 'MapIterationSucceeded':
      case 'MapIterationFailed': {
        const detailsKey = `${event.type[0]?.toLowerCase()}${event.type.slice(1)}EventDetails`;
        this.#record(event.type, { [detailsKey]: { name: event.parentState.name, index: event.index } });
        return;
      }
      default:
        // StateCaught and the Parallel branch events have no counterpart in AWS's history.
        return;
    }
  }

  /** A Task's TimeoutSeconds elapsed: the library gave up on the attempt, whose function may still be running. */
  #taskTimedOut(stateName: string): void {
    const attempt = this.#openAttempts.get(stateName)?.[0];
    if (attempt) attempt.over = true;
    const kind = this.#options.checked.tasks.get(stateName)?.kind;
    const failure = { error: 'States.Timeout' };
    if (kind === 'lambda:invoke') {
      this.#record('TaskTimedOut', {
        taskTimedOutEventDetails: { resourceType: 'lambda', resource: 'invoke', ...failure },
      });
    } else {
      this.#record('LambdaFunctionTimedOut', { lambdaFunctionTimedOutEventDetails: failure });
    }
  }

  #record(type: string, details?: Details): void {
    // Events after the end (a function finishing after StopExecution) are not part of the history.
    if (this.closed) return;
    this.#events.add(type, details);
  }
}

/**
 * Writes an execution's history events in the background, in batches, in order of their ids: the events of
 * up to BATCH_MS go in one statement, rather than one statement per event or two. `flush` writes what is
 * pending at once (a reader of the history calls it first, so it never misses an event). A failed write is
 * kept and reported by `flush`, so that no rejection goes unhandled meanwhile.
 */
export class HistoryWriter {
  readonly #collection: Collection<HistoryEvent>;
  readonly #executionKey: string;
  #lastId: number;
  #pending: HistoryEvent[] = [];
  #writing: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #failure: unknown;

  constructor(collection: Collection<HistoryEvent>, executionKey: string, lastId = 0) {
    this.#collection = collection;
    this.#executionKey = executionKey;
    this.#lastId = lastId;
  }

  add(type: string, details?: Details): void {
    const id = this.#lastId + 1;
    this.#lastId = id;
    this.#pending.push({ ...details, id, previousEventId: id - 1, timestamp: Date.now(), type });
    this.#timer ??= setTimeout(() => this.#schedule(), BATCH_MS);
  }

  async flush(): Promise<void> {
    this.#schedule();
    await this.#writing;
    if (this.#failure !== undefined) throw this.#failure;
  }

  /** Queues a write of what is pending behind the writes already queued (ids stay in order). */
  #schedule(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#pending.length === 0) return;
    this.#writing = this.#writing
      .then(() => this.#write())
      .catch((error: unknown) => {
        this.#failure ??= error;
      });
  }

  async #write(): Promise<void> {
    const batch = this.#pending.splice(0);
    await this.#collection.putMany(
      batch.map((event) => ({ key: historyKey(this.#executionKey, event.id), doc: event })),
    );
  }
}

/** A thrown value as the Error and Cause Step Functions reports: a function's error carries Lambda's payload. */
function taskError(thrown: unknown): TaskError {
  if (thrown instanceof LambdaInvocationError)
    return new TaskError(thrown.errorType, JSON.stringify(thrown.toPayload()));
  if (thrown instanceof Error) return new TaskError(thrown.name, thrown.message);
  return new TaskError('States.TaskFailed', String(thrown));
}

const inputDetails = (input: unknown) => ({
  input: JSON.stringify(input ?? null),
  inputDetails: { truncated: false },
});

const causeText = (cause: unknown): string => (typeof cause === 'string' ? cause : JSON.stringify(cause));

const stateMachineName = (arn: string): string => arn.slice(arn.lastIndexOf(':') + 1);

// Values that came out of JSON.parse (the Lambda runtime passes results through JSON), so JSON by construction.
const asJson = (value: unknown): JsonValue => value as JsonValue;
