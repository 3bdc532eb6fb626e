import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { LambdaRuntime } from '../../lambda.ts';
import { AwsError, type JsonObject, jsonService, type ServiceHandler } from '../protocol.ts';
import type { Store } from '../store.ts';
import { epochSeconds, KeyedLock, offsetToken, parseInput } from './deps.ts';
import { type CheckedDefinition, checkDefinition, isObject, parseDefinition } from './sfn-definition.ts';
import { type ExecutionRecord, ExecutionRun, type HistoryEvent, HistoryWriter } from './sfn-execution.ts';

export interface StepFunctionsDeps {
  readonly store: Store;
  readonly region: string;
  readonly accountId: string;
  /** Runs the functions that Task states call. */
  readonly lambda: LambdaRuntime;
}

/**
 * Step Functions (awsJson1.0). Executions run in this process; their records and history events live
 * in the store.
 *
 * An execution left RUNNING by a sandbox that died (or was stopped) cannot resume: the in-process run is
 * gone. At startup, before answering any call, the service closes each one as ABORTED, with error
 * `Sandbox.Restarted` and an ExecutionAborted event. ABORTED is AWS's status for an execution ended from
 * outside its definition, whose Catch chains did not run: exactly what happened, so a reconciler that
 * sees a tenant still `provisioning` with an execution no longer RUNNING knows nothing was compensated.
 * On `close()`, running executions are stopped the same way, with error `Sandbox.Stopped`.
 */
export interface StepFunctionsService extends ServiceHandler {
  close(): Promise<void>;
}

interface StateMachineRecord {
  readonly stateMachineArn: string;
  readonly name: string;
  readonly type: 'STANDARD' | 'EXPRESS';
  readonly definition: string;
  readonly roleArn: string;
  readonly loggingConfiguration: JsonObject;
  readonly tracingConfiguration: JsonObject;
  readonly creationDate: number;
  readonly updateDate?: number;
  readonly revisionId: string;
}

const DEFAULT_LOGGING = { level: 'OFF', includeExecutionData: false };
const DEFAULT_TRACING = { enabled: false };
const RESTARTED_CAUSE =
  'The local sandbox restarted while this execution was running; it did not resume, and no Catch ran.';
const STOPPED_CAUSE = 'The local sandbox stopped while this execution was running; no Catch ran.';

/** Pages, as on AWS: 100 items by default (also for 0), at most 1000. */
const maxResults = z.number().int().min(0).max(1000).optional();
const nextToken = z.string().min(1).max(1024).optional();
const arn = z.string().min(1).max(2048);
const json = z.record(z.string(), z.unknown());

const createSchema = z.object({
  name: z.string(),
  definition: z.string().min(1),
  roleArn: arn,
  type: z.enum(['STANDARD', 'EXPRESS']).default('STANDARD'),
  loggingConfiguration: json.optional(),
  tracingConfiguration: json.optional(),
});
const updateSchema = z.object({
  stateMachineArn: arn,
  definition: z.string().min(1).optional(),
  roleArn: arn.optional(),
  loggingConfiguration: json.optional(),
  tracingConfiguration: json.optional(),
});
const stateMachineArnSchema = z.object({ stateMachineArn: arn });
const executionArnSchema = z.object({ executionArn: arn });
const listStateMachinesSchema = z.object({ maxResults, nextToken });
const startSchema = z.object({
  stateMachineArn: arn,
  name: z.string().optional(),
  input: z
    .string()
    .max(256 * 1024)
    .default('{}'),
});
const listExecutionsSchema = z.object({
  stateMachineArn: arn,
  statusFilter: z
    .enum(['RUNNING', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'ABORTED', 'PENDING_REDRIVE'])
    .optional(),
  maxResults,
  nextToken,
});
const historySchema = z.object({
  executionArn: arn,
  maxResults,
  nextToken,
  reverseOrder: z.boolean().default(false),
  includeExecutionData: z.boolean().default(true),
});
const stopSchema = z.object({
  executionArn: arn,
  error: z.string().max(256).optional(),
  cause: z.string().max(32768).optional(),
});

export function createStepFunctions(deps: StepFunctionsDeps): StepFunctionsService {
  const machines = deps.store.collection<StateMachineRecord>('sfn', 'state-machine');
  const executions = deps.store.collection<ExecutionRecord>('sfn', 'execution');
  const history = deps.store.collection<HistoryEvent>('sfn', 'history');
  const arnPrefix = `arn:aws:states:${deps.region}:${deps.accountId}:`;
  const machineArn = (name: string) => `${arnPrefix}stateMachine:${name}`;
  const machineLock = new KeyedLock();
  /** Parsed definitions by revision (a revision's definition never changes; it was validated when stored). */
  const revisions = new Map<string, CheckedDefinition>();
  const revisionDefinition = (machine: StateMachineRecord): CheckedDefinition => {
    let checked = revisions.get(machine.revisionId);
    if (!checked) {
      checked = parseDefinition(machine.definition);
      revisions.set(machine.revisionId, checked);
    }
    return checked;
  };
  /** Runs of this process, by execution key (`<state machine>:<execution>`). */
  const runs = new Map<string, ExecutionRun>();

  /** Closes what a previous process left RUNNING; every operation waits for it (and fails if it failed). */
  const ready = (async () => {
    for (const { key, doc } of await executions.list()) {
      if (doc.status === 'RUNNING') await closeExecution(key, doc, 'Sandbox.Restarted', RESTARTED_CAUSE);
    }
  })();
  ready.catch(() => undefined);

  /** Records as ABORTED an execution no run of this process will ever end. */
  async function closeExecution(key: string, execution: ExecutionRecord, error?: string, cause?: string) {
    const events = await history.list({ prefix: `${key}/` });
    const writer = new HistoryWriter(history, key, events.at(-1)?.doc.id ?? 0);
    writer.add('ExecutionAborted', { executionAbortedEventDetails: { error, cause } });
    await writer.flush();
    await executions.put(key, { ...execution, status: 'ABORTED', error, cause, stopDate: Date.now() });
  }

  const machineName = (stateMachineArn: string): string => {
    const name = stateMachineArn.startsWith(`${arnPrefix}stateMachine:`)
      ? stateMachineArn.slice(`${arnPrefix}stateMachine:`.length)
      : '';
    if (!validName(name)) throw new AwsError('InvalidArn', `Invalid Arn: '${stateMachineArn}'`);
    return name;
  };

  /** An execution's key in the store, from its ARN. */
  const executionKey = (executionArn: string): string => {
    const rest = executionArn.startsWith(`${arnPrefix}execution:`)
      ? executionArn.slice(`${arnPrefix}execution:`.length)
      : '';
    const [machine = '', execution = '', ...extra] = rest.split(':');
    if (!validName(machine) || !validName(execution) || extra.length > 0) {
      throw new AwsError('InvalidArn', `Invalid Arn: '${executionArn}'`);
    }
    return `${machine}:${execution}`;
  };

  const getMachine = async (stateMachineArn: string): Promise<StateMachineRecord> => {
    const machine = await machines.get(machineName(stateMachineArn));
    if (!machine)
      throw new AwsError('StateMachineDoesNotExist', `State Machine Does Not Exist: '${stateMachineArn}'`);
    return machine;
  };

  const getExecution = async (executionArn: string): Promise<{ key: string; execution: ExecutionRecord }> => {
    const key = executionKey(executionArn);
    const execution = await executions.get(key);
    if (!execution)
      throw new AwsError('ExecutionDoesNotExist', `Execution Does Not Exist: '${executionArn}'`);
    return { key, execution };
  };

  async function createStateMachine(input: z.infer<typeof createSchema>) {
    if (!validName(input.name)) throw new AwsError('InvalidName', `Invalid Name: '${input.name}'`);
    const record: StateMachineRecord = {
      stateMachineArn: machineArn(input.name),
      name: input.name,
      type: input.type,
      definition: input.definition,
      roleArn: input.roleArn,
      loggingConfiguration: input.loggingConfiguration ?? DEFAULT_LOGGING,
      tracingConfiguration: input.tracingConfiguration ?? DEFAULT_TRACING,
      creationDate: Date.now(),
      revisionId: randomUUID(),
    };
    // AWS's idempotency: the same name, definition, type and configurations return the existing machine
    // (a repeat skips validation, which costs; what is stored was valid).
    const idempotent = (existing: StateMachineRecord | undefined): StateMachineRecord => {
      const same =
        existing &&
        existing.definition === record.definition &&
        existing.type === record.type &&
        sameJson(existing.loggingConfiguration, record.loggingConfiguration) &&
        sameJson(existing.tracingConfiguration, record.tracingConfiguration);
      if (!existing || !same) {
        throw new AwsError(
          'StateMachineAlreadyExists',
          `State Machine Already Exists: '${record.stateMachineArn}'`,
        );
      }
      return existing;
    };
    const existing = await machines.get(input.name);
    if (existing) return idempotent(existing);
    checkDefinition(input.definition);
    if (await machines.insert(input.name, record)) return record;
    return idempotent(await machines.get(input.name));
  }

  async function updateStateMachine(input: z.infer<typeof updateSchema>) {
    const name = machineName(input.stateMachineArn);
    if (input.definition !== undefined) checkDefinition(input.definition);
    return machineLock.run(name, async () => {
      const existing = await getMachine(input.stateMachineArn);
      const updated: StateMachineRecord = {
        ...existing,
        definition: input.definition ?? existing.definition,
        roleArn: input.roleArn ?? existing.roleArn,
        loggingConfiguration: input.loggingConfiguration ?? existing.loggingConfiguration,
        tracingConfiguration: input.tracingConfiguration ?? existing.tracingConfiguration,
        updateDate: Date.now(),
        revisionId: randomUUID(),
      };
      await machines.put(name, updated);
      return updated;
    });
  }

  async function startExecution(input: z.infer<typeof startSchema>) {
    const machine = await getMachine(input.stateMachineArn);
    const name = input.name ?? randomUUID();
    if (!validName(name)) throw new AwsError('InvalidName', `Invalid Name: '${name}'`);
    try {
      JSON.parse(input.input);
    } catch (error) {
      throw new AwsError(
        'InvalidExecutionInput',
        `Invalid State Machine Execution Input: '${String(error)}'`,
      );
    }
    const checked = revisionDefinition(machine);
    const key = `${machine.name}:${name}`;
    const execution: ExecutionRecord = {
      executionArn: `${arnPrefix}execution:${key}`,
      stateMachineArn: machine.stateMachineArn,
      name,
      status: 'RUNNING',
      input: input.input,
      startDate: Date.now(),
    };
    if (!(await executions.insert(key, execution))) {
      // AWS: the same name and input while the execution is open is the same call; anything else is a conflict.
      const existing = await executions.get(key);
      if (existing?.status === 'RUNNING' && existing.input === input.input) return existing;
      throw new AwsError('ExecutionAlreadyExists', `Execution Already Exists: '${execution.executionArn}'`);
    }
    const run = new ExecutionRun({
      key,
      execution,
      checked,
      roleArn: machine.roleArn,
      region: deps.region,
      lambda: deps.lambda,
      executions,
      history,
    });
    runs.set(key, run);
    void run.done.then(() => runs.delete(key));
    return execution;
  }

  async function stopExecution(input: z.infer<typeof stopSchema>) {
    const { key } = await getExecution(input.executionArn);
    const run = runs.get(key);
    if (run) await run.stop(input.error, input.cause);
    const { execution } = await getExecution(input.executionArn);
    if (execution.status !== 'RUNNING') return { stopDate: epochSeconds(execution.stopDate ?? Date.now()) };
    // RUNNING without a run in this process: nothing else will ever close it.
    await closeExecution(key, execution, input.error, input.cause);
    return { stopDate: epochSeconds(Date.now()) };
  }

  async function listExecutions(input: z.infer<typeof listExecutionsSchema>) {
    const machine = await getMachine(input.stateMachineArn);
    const all = (await executions.list({ prefix: `${machine.name}:` }))
      .map(({ doc }) => doc)
      .filter((execution) => !input.statusFilter || execution.status === input.statusFilter)
      .sort((a, b) => a.startDate - b.startDate || b.name.localeCompare(a.name));
    const { items, token } = pageNewestFirst(all, input.maxResults, input.nextToken);
    return {
      executions: items.map((execution) => ({
        executionArn: execution.executionArn,
        stateMachineArn: execution.stateMachineArn,
        name: execution.name,
        status: execution.status,
        startDate: epochSeconds(execution.startDate),
        ...(execution.stopDate === undefined ? {} : { stopDate: epochSeconds(execution.stopDate) }),
      })),
      ...(token ? { nextToken: token } : {}),
    };
  }

  async function getExecutionHistory(input: z.infer<typeof historySchema>) {
    const { key } = await getExecution(input.executionArn);
    await runs.get(key)?.flushHistory();
    const events = (await history.list({ prefix: `${key}/` })).map(({ doc }) => doc);
    const { items, token } = (input.reverseOrder ? pageNewestFirst : page)(
      events,
      input.maxResults,
      input.nextToken,
    );
    return {
      events: items.map((event) =>
        withoutData({ ...event, timestamp: epochSeconds(event.timestamp) }, input.includeExecutionData),
      ),
      ...(token ? { nextToken: token } : {}),
    };
  }

  const operations: Record<string, (input: JsonObject) => Promise<JsonObject>> = {
    async CreateStateMachine(raw) {
      const machine = await createStateMachine(parseInput(createSchema, raw, 'ValidationException'));
      return { stateMachineArn: machine.stateMachineArn, creationDate: epochSeconds(machine.creationDate) };
    },
    async UpdateStateMachine(raw) {
      const machine = await updateStateMachine(parseInput(updateSchema, raw, 'ValidationException'));
      return { updateDate: epochSeconds(machine.updateDate ?? Date.now()), revisionId: machine.revisionId };
    },
    async DescribeStateMachine(raw) {
      const machine = await getMachine(
        parseInput(stateMachineArnSchema, raw, 'ValidationException').stateMachineArn,
      );
      return {
        stateMachineArn: machine.stateMachineArn,
        name: machine.name,
        status: 'ACTIVE',
        definition: machine.definition,
        roleArn: machine.roleArn,
        type: machine.type,
        creationDate: epochSeconds(machine.creationDate),
        loggingConfiguration: machine.loggingConfiguration,
        tracingConfiguration: machine.tracingConfiguration,
        revisionId: machine.revisionId,
      };
    },
    async ListStateMachines(raw) {
      const input = parseInput(listStateMachinesSchema, raw, 'ValidationException');
      const all = (await machines.list()).map(({ doc }) => doc);
      const { items, token } = page(all, input.maxResults, input.nextToken);
      return {
        stateMachines: items.map((machine) => ({
          stateMachineArn: machine.stateMachineArn,
          name: machine.name,
          type: machine.type,
          creationDate: epochSeconds(machine.creationDate),
        })),
        ...(token ? { nextToken: token } : {}),
      };
    },
    async DeleteStateMachine(raw) {
      const name = machineName(parseInput(stateMachineArnSchema, raw, 'ValidationException').stateMachineArn);
      // AWS stops the running executions and, in time, forgets the machine and its executions.
      for (const [key, run] of runs) {
        if (key.startsWith(`${name}:`)) await run.stop('States.Runtime', 'The state machine was deleted');
      }
      await history.deletePrefix(`${name}:`);
      await executions.deletePrefix(`${name}:`);
      await machines.delete(name);
      return {};
    },
    async StartExecution(raw) {
      const execution = await startExecution(parseInput(startSchema, raw, 'ValidationException'));
      return { executionArn: execution.executionArn, startDate: epochSeconds(execution.startDate) };
    },
    async DescribeExecution(raw) {
      const { execution } = await getExecution(
        parseInput(executionArnSchema, raw, 'ValidationException').executionArn,
      );
      return {
        executionArn: execution.executionArn,
        stateMachineArn: execution.stateMachineArn,
        name: execution.name,
        status: execution.status,
        startDate: epochSeconds(execution.startDate),
        ...(execution.stopDate === undefined ? {} : { stopDate: epochSeconds(execution.stopDate) }),
        input: execution.input,
        inputDetails: { included: true },
        ...(execution.output === undefined
          ? {}
          : { output: execution.output, outputDetails: { included: true } }),
        ...(execution.error === undefined ? {} : { error: execution.error }),
        ...(execution.cause === undefined ? {} : { cause: execution.cause }),
      };
    },
    async ListExecutions(raw) {
      return listExecutions(parseInput(listExecutionsSchema, raw, 'ValidationException'));
    },
    async GetExecutionHistory(raw) {
      return getExecutionHistory(parseInput(historySchema, raw, 'ValidationException'));
    },
    async StopExecution(raw) {
      return stopExecution(parseInput(stopSchema, raw, 'ValidationException'));
    },
  };

  const service = jsonService({
    service: 'sfn',
    signingName: 'states',
    targetPrefix: 'AWSStepFunctions',
    contentType: 'application/x-amz-json-1.0',
    operations: Object.fromEntries(
      Object.entries(operations).map(([name, operation]) => [
        name,
        async (input: JsonObject) => {
          await ready;
          return operation(input);
        },
      ]),
    ),
    subject: (operation, input) => {
      // StartExecution's subject is the execution name, the product's tenant id; others name an ARN.
      const named =
        operation === 'StartExecution' || operation === 'CreateStateMachine' ? input.name : undefined;
      const subject = named ?? input.stateMachineArn ?? input.executionArn;
      return typeof subject === 'string' ? subject : undefined;
    },
  });

  return {
    ...service,
    async close() {
      await ready;
      await Promise.all([...runs.values()].map((run) => run.stop('Sandbox.Stopped', STOPPED_CAUSE)));
    },
  };
}

interface Page<T> {
  readonly items: readonly T[];
  readonly token: string | undefined;
}

/** A page of a list, oldest first, from an offset token (0 or no maxResults: AWS's 100 a page). */
function page<T>(all: readonly T[], max: number | undefined, token: string | undefined): Page<T> {
  const offset = decodeToken(token) ?? 0;
  const limit = max || 100;
  const next = offset + limit < all.length ? offsetToken.encode(offset + limit) : undefined;
  return { items: all.slice(offset, offset + limit), token: next };
}

/**
 * A page of a list kept oldest first, listed newest first. The token counts from the oldest end,
 * so that items added meanwhile (new executions, new events) do not shift the pages still to come.
 */
function pageNewestFirst<T>(all: readonly T[], max: number | undefined, token: string | undefined): Page<T> {
  const end = Math.min(decodeToken(token) ?? all.length, all.length);
  const start = Math.max(0, end - (max || 100));
  return { items: all.slice(start, end).reverse(), token: start > 0 ? offsetToken.encode(start) : undefined };
}

function decodeToken(token: string | undefined): number | undefined {
  if (token === undefined) return undefined;
  const offset = offsetToken.decode(token);
  if (offset === undefined) throw new AwsError('InvalidToken', `Invalid Token: '${token}'`);
  return offset;
}

/** GetExecutionHistory with includeExecutionData false: details without their input and output. */
function withoutData(event: HistoryEvent, include: boolean): JsonObject {
  if (include) return { ...event };
  return Object.fromEntries(
    Object.entries(event).map(([field, value]) => {
      if (!isObject(value)) return [field, value];
      const { input: _input, output: _output, ...rest } = value;
      return [field, rest];
    }),
  );
}

/**
 * AWS's rule for state machine and execution names: 1 to 80 characters, none of them whitespace,
 * brackets, wildcards, `"#%\^|~\`$&,;:/` or control characters.
 */
function validName(name: string): boolean {
  if (name.length < 1 || name.length > 80) return false;
  for (const char of name) {
    const code = char.codePointAt(0) ?? 0;
    if (
      code <= 0x1f ||
      (code >= 0x7f && code <= 0x9f) ||
      /\s/.test(char) ||
      '<>{}[]?*"#%\\^|~`$&,;:/'.includes(char)
    ) {
      return false;
    }
  }
  return true;
}

const sameJson = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);
