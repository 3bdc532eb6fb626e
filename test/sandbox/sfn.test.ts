import { rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CreateStateMachineCommand,
  DeleteStateMachineCommand,
  DescribeExecutionCommand,
  type DescribeExecutionCommandOutput,
  DescribeStateMachineCommand,
  GetExecutionHistoryCommand,
  type HistoryEvent,
  ListExecutionsCommand,
  ListStateMachinesCommand,
  SFNClient,
  StartExecutionCommand,
  StopExecutionCommand,
  UpdateStateMachineCommand,
} from '@aws-sdk/client-sfn';
import { afterAll, describe, it } from 'vitest';
import { functionName } from '../../functions/registry.ts';
import { STACK_PREFIX, sandboxFile } from '../../local/constants.ts';
import { removeDir, spawnSandbox } from '../../local/spawn.ts';
import type { testFunctions } from '../fixtures/functions.ts';
import {
  addFaults,
  clientConfig,
  type FaultRuleInput,
  removeFaults,
  sandbox,
  uniqueName,
} from '../support/sandbox.ts';

const sfn = new SFNClient(clientConfig);
afterAll(() => sfn.destroy());

const ROLE_ARN = `arn:aws:iam::${sandbox.accountId}:role/test-state-machine`;
const LAMBDA_INVOKE = 'arn:aws:states:::lambda:invoke';

/** A test function's ARN, by the product's rule. */
const functionArn = (id: (typeof testFunctions)[number]['id']) =>
  `arn:aws:lambda:${sandbox.region}:${sandbox.accountId}:function:${functionName(STACK_PREFIX, { id })}`;

async function createMachine(definition: object, client = sfn): Promise<string> {
  const created = await client.send(
    new CreateStateMachineCommand({
      name: uniqueName('sfn-test'),
      definition: JSON.stringify(definition),
      roleArn: ROLE_ARN,
    }),
  );
  return created.stateMachineArn ?? '';
}

async function start(stateMachineArn: string, input: object, name?: string): Promise<string> {
  const started = await sfn.send(
    new StartExecutionCommand({ stateMachineArn, name, input: JSON.stringify(input) }),
  );
  return started.executionArn ?? '';
}

async function finished(executionArn: string, client = sfn): Promise<DescribeExecutionCommandOutput> {
  for (let waited = 0; waited < 20_000; waited += 50) {
    const execution = await client.send(new DescribeExecutionCommand({ executionArn }));
    if (execution.status !== 'RUNNING') return execution;
    await sleep(50);
  }
  throw new Error(`${executionArn} still RUNNING after 20 s`);
}

async function historyOf(executionArn: string): Promise<HistoryEvent[]> {
  const { events = [] } = await sfn.send(new GetExecutionHistoryCommand({ executionArn, maxResults: 1000 }));
  return events;
}

const waitState = { Type: 'Wait', Seconds: 60, End: true };

/** What a call rejected with (undefined if it did not), awaited at once so that no rejection floats. */
const rejection = (call: Promise<unknown>): Promise<unknown> =>
  call.then(
    () => undefined,
    (error: unknown) => error,
  );

// The tests are independent (their own machines, names and chaos rules): run them side by side.
describe.concurrent('Step Functions', () => {
  it('retries a flaky task, catches a named error, and records the history as AWS does', async ({
    expect,
  }) => {
    // Prepare
    const key = uniqueName('flaky');
    const stateMachineArn = await createMachine({
      StartAt: 'Reserve',
      States: {
        Reserve: {
          Type: 'Task',
          Resource: LAMBDA_INVOKE,
          Parameters: { FunctionName: functionArn('TestFlaky'), 'Payload.$': '$.flaky' },
          Retry: [{ ErrorEquals: ['TransientError'], IntervalSeconds: 1, MaxAttempts: 3, BackoffRate: 1 }],
          ResultSelector: { 'attempts.$': '$.Payload.attempts', 'statusCode.$': '$.StatusCode' },
          ResultPath: '$.reserve',
          Next: 'Claim',
        },
        Claim: {
          Type: 'Task',
          Resource: functionArn('TestSlugTaken'),
          InputPath: '$.claim',
          Catch: [{ ErrorEquals: ['TenantSlugTakenError'], ResultPath: '$.error', Next: 'Compensate' }],
          Next: 'Unreachable',
        },
        Unreachable: { Type: 'Succeed' },
        Compensate: { Type: 'Pass', End: true },
      },
    });

    // Act
    const executionArn = await start(stateMachineArn, {
      flaky: { key, failures: 2 },
      claim: { slug: 'acme' },
    });
    const execution = await finished(executionArn);
    const events = await historyOf(executionArn);

    // Assess
    expect(execution.status).toBe('SUCCEEDED');
    const output = JSON.parse(execution.output ?? '{}');
    expect(output.reserve).toEqual({ attempts: 3, statusCode: 200 });
    expect(output.error.Error).toBe('TenantSlugTakenError');
    const cause = JSON.parse(output.error.Cause);
    expect(cause).toMatchObject({
      errorType: 'TenantSlugTakenError',
      errorMessage: 'The slug acme is taken',
    });
    expect(cause.trace[0]).toBe('TenantSlugTakenError: The slug acme is taken');
    expect(events.map((event) => event.type)).toEqual([
      'ExecutionStarted',
      'TaskStateEntered',
      ...['TaskScheduled', 'TaskStarted', 'TaskFailed', 'TaskScheduled', 'TaskStarted', 'TaskFailed'],
      ...['TaskScheduled', 'TaskStarted', 'TaskSucceeded'],
      'TaskStateExited',
      'TaskStateEntered',
      ...['LambdaFunctionScheduled', 'LambdaFunctionStarted', 'LambdaFunctionFailed'],
      'TaskStateExited',
      'PassStateEntered',
      'PassStateExited',
      'ExecutionSucceeded',
    ]);
    expect(events.map((event) => event.id)).toEqual(events.map((_, index) => index + 1));
    expect(events[4]?.taskFailedEventDetails).toMatchObject({
      resourceType: 'lambda',
      resource: 'invoke',
      error: 'TransientError',
    });
    expect(JSON.parse(events[4]?.taskFailedEventDetails?.cause ?? '{}').errorMessage).toBe(
      `attempt 1 of ${key} failed`,
    );
    expect(events[13]?.lambdaFunctionScheduledEventDetails?.resource).toBe(functionArn('TestSlugTaken'));
    expect(events[15]?.lambdaFunctionFailedEventDetails?.error).toBe('TenantSlugTakenError');
    expect(events[1]?.stateEnteredEventDetails?.name).toBe('Reserve');
    expect(events[0]?.timestamp).toBeInstanceOf(Date);
    const retryGap = (events[5]?.timestamp?.getTime() ?? 0) - (events[4]?.timestamp?.getTime() ?? 0);
    expect(retryGap).toBeGreaterThanOrEqual(950);
  });

  it('fails the execution with the Error and Cause of an uncaught error, once retries are spent', async ({
    expect,
  }) => {
    // Prepare
    const key = uniqueName('spent');
    const stateMachineArn = await createMachine({
      StartAt: 'Reserve',
      States: {
        Reserve: {
          Type: 'Task',
          Resource: functionArn('TestFlaky'),
          Retry: [{ ErrorEquals: ['States.TaskFailed'], IntervalSeconds: 1, MaxAttempts: 1 }],
          End: true,
        },
      },
    });

    // Act
    const execution = await finished(await start(stateMachineArn, { key, failures: 5 }));

    // Assess
    expect(execution.status).toBe('FAILED');
    expect(execution.error).toBe('TransientError');
    expect(JSON.parse(execution.cause ?? '{}')).toMatchObject({
      errorType: 'TransientError',
      errorMessage: `attempt 2 of ${key} failed`,
    });
    expect(execution.output).toBeUndefined();
    const events = await historyOf(execution.executionArn ?? '');
    expect(events.filter((event) => event.type === 'LambdaFunctionFailed')).toHaveLength(2);
    expect(events.at(-1)?.type).toBe('ExecutionFailed');
    expect(events.at(-1)?.executionFailedEventDetails?.error).toBe('TransientError');
  });

  it('times out a function after its own timeout, and a Task after its TimeoutSeconds', async ({
    expect,
  }) => {
    // Prepare
    const catches = [
      { ErrorEquals: ['States.TaskFailed'], ResultPath: '$.error', Next: 'TaskFailed' },
      { ErrorEquals: ['States.Timeout'], ResultPath: '$.error', Next: 'TimedOut' },
    ];
    const stateMachineArn = await createMachine({
      StartAt: 'Choose',
      States: {
        Choose: {
          Type: 'Choice',
          Choices: [{ Variable: '$.stateTimeout', BooleanEquals: true, Next: 'SleepWithTimeout' }],
          Default: 'Sleep',
        },
        Sleep: { Type: 'Task', Resource: functionArn('TestSleep'), Catch: catches, End: true },
        SleepWithTimeout: {
          Type: 'Task',
          Resource: LAMBDA_INVOKE,
          Parameters: { FunctionName: functionArn('TestSleep'), Payload: { ms: 1500 } },
          TimeoutSeconds: 1,
          Catch: catches,
          End: true,
        },
        TaskFailed: { Type: 'Pass', End: true },
        TimedOut: { Type: 'Pass', End: true },
      },
    });

    // Act
    const [functionTimeout, stateTimeout] = await Promise.all([
      start(stateMachineArn, { ms: 4000, stateTimeout: false }).then((arn) => finished(arn)),
      start(stateMachineArn, { stateTimeout: true }).then((arn) => finished(arn)),
    ]);

    // Assess
    const functionError = JSON.parse(functionTimeout.output ?? '{}').error;
    expect(functionError.Error).toBe('Sandbox.Timedout');
    expect(JSON.parse(functionError.Cause).errorMessage).toMatch(/Task timed out after 2\.00 seconds$/);
    const stateHistory = await historyOf(stateTimeout.executionArn ?? '');
    expect(JSON.parse(stateTimeout.output ?? '{}').error.Error).toBe('States.Timeout');
    expect(stateHistory.map((event) => event.type)).toEqual([
      'ExecutionStarted',
      'ChoiceStateEntered',
      'ChoiceStateExited',
      'TaskStateEntered',
      'TaskScheduled',
      'TaskStarted',
      'TaskTimedOut',
      'TaskStateExited',
      'PassStateEntered',
      'PassStateExited',
      'ExecutionSucceeded',
    ]);
  });

  it('runs a function in-process with a Lambda context, and fails a Task whose function does not exist', async ({
    expect,
  }) => {
    // Prepare
    const missing = functionArn('TestEcho').replace('TestEcho', 'NoSuchFunction');
    const stateMachineArn = await createMachine({
      StartAt: 'Echo',
      States: {
        Echo: { Type: 'Task', Resource: functionArn('TestEcho'), ResultPath: '$.echo', Next: 'Missing' },
        Missing: { Type: 'Task', Resource: missing, End: true },
      },
    });

    // Act
    const executionArn = await start(stateMachineArn, { tenant: 't-1' });
    const execution = await finished(executionArn);
    const events = await historyOf(executionArn);

    // Assess
    expect(execution.status).toBe('FAILED');
    expect(execution.error).toBe('Lambda.ResourceNotFoundException');
    const echoed = JSON.parse(
      events.find((event) => event.type === 'TaskStateExited')?.stateExitedEventDetails?.output ?? '{}',
    );
    expect(echoed.echo).toMatchObject({
      event: { tenant: 't-1' },
      functionName: `${STACK_PREFIX}-TestEcho`,
      functionVersion: '$LATEST',
      invokedFunctionArn: functionArn('TestEcho'),
      logGroupName: `/aws/lambda/${STACK_PREFIX}-TestEcho`,
    });
    expect(echoed.echo.awsRequestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(echoed.echo.remainingTimeInMillis).toBeGreaterThan(25_000);
  });

  it('treats a repeated StartExecution with the same name and input as the same call while it runs', async ({
    expect,
  }) => {
    // Prepare
    const stateMachineArn = await createMachine({ StartAt: 'Wait', States: { Wait: waitState } });
    const name = uniqueName('tenant');
    const first = await sfn.send(new StartExecutionCommand({ stateMachineArn, name, input: '{"tenant":1}' }));

    // Act
    const again = await sfn.send(new StartExecutionCommand({ stateMachineArn, name, input: '{"tenant":1}' }));
    const otherInput = await rejection(
      sfn.send(new StartExecutionCommand({ stateMachineArn, name, input: '{"tenant":2}' })),
    );

    // Assess
    expect(again.executionArn).toBe(first.executionArn);
    expect(again.startDate).toEqual(first.startDate);
    expect(otherInput).toMatchObject({ name: 'ExecutionAlreadyExists' });
    await sfn.send(new StopExecutionCommand({ executionArn: first.executionArn, error: 'Test.Done' }));
  });

  it('stops an execution: ABORTED with the given error and cause, and its name stays taken', async ({
    expect,
  }) => {
    // Prepare
    const stateMachineArn = await createMachine({ StartAt: 'Wait', States: { Wait: waitState } });
    const name = uniqueName('tenant');
    const executionArn = await start(stateMachineArn, {}, name);

    // Act
    const stopped = await sfn.send(
      new StopExecutionCommand({ executionArn, error: 'Operator.Cancelled', cause: 'cancelled by a test' }),
    );
    const execution = await sfn.send(new DescribeExecutionCommand({ executionArn }));
    const restart = await rejection(
      sfn.send(new StartExecutionCommand({ stateMachineArn, name, input: '{}' })),
    );

    // Assess
    expect(stopped.stopDate).toBeInstanceOf(Date);
    expect(execution).toMatchObject({
      status: 'ABORTED',
      error: 'Operator.Cancelled',
      cause: 'cancelled by a test',
    });
    expect(execution.stopDate).toEqual(stopped.stopDate);
    const events = await historyOf(executionArn);
    expect(events.map((event) => event.type)).toEqual([
      'ExecutionStarted',
      'WaitStateEntered',
      'ExecutionAborted',
    ]);
    expect(events[2]?.executionAbortedEventDetails).toEqual({
      error: 'Operator.Cancelled',
      cause: 'cancelled by a test',
    });
    expect(restart).toMatchObject({ name: 'ExecutionAlreadyExists' });
  });

  it('lists executions newest first, filtered by status and paginated', async ({ expect }) => {
    // Prepare
    const stateMachineArn = await createMachine({
      StartAt: 'Choose',
      States: {
        Choose: {
          Type: 'Choice',
          Choices: [{ Variable: '$.wait', BooleanEquals: true, Next: 'Wait' }],
          Default: 'Done',
        },
        Wait: waitState,
        Done: { Type: 'Succeed' },
      },
    });
    const oldest = await start(stateMachineArn, { wait: false });
    await finished(oldest);
    await sleep(5);
    const waiting = await start(stateMachineArn, { wait: true });
    await sleep(5);
    const newest = await start(stateMachineArn, { wait: false });
    await finished(newest);

    // Act
    const running = await sfn.send(new ListExecutionsCommand({ stateMachineArn, statusFilter: 'RUNNING' }));
    const succeeded = await sfn.send(
      new ListExecutionsCommand({ stateMachineArn, statusFilter: 'SUCCEEDED' }),
    );
    const pages: string[][] = [];
    let nextToken: string | undefined;
    do {
      const page = await sfn.send(new ListExecutionsCommand({ stateMachineArn, maxResults: 2, nextToken }));
      pages.push((page.executions ?? []).map((execution) => execution.executionArn ?? ''));
      nextToken = page.nextToken;
    } while (nextToken);

    // Assess
    expect(running.executions?.map((execution) => execution.executionArn)).toEqual([waiting]);
    expect(succeeded.executions?.map((execution) => execution.executionArn)).toEqual([newest, oldest]);
    expect(succeeded.executions?.[0]?.stopDate).toBeInstanceOf(Date);
    expect(pages).toEqual([[newest, waiting], [oldest]]);
    await sfn.send(new StopExecutionCommand({ executionArn: waiting }));
  });

  it('creates, describes, updates, lists and deletes state machines, as AWS rules them', async ({
    expect,
  }) => {
    // Prepare
    const name = uniqueName('machine');
    const definition = JSON.stringify({ StartAt: 'A', States: { A: { Type: 'Pass', End: true } } });
    const changed = JSON.stringify({ StartAt: 'B', States: { B: { Type: 'Succeed' } } });
    const created = await sfn.send(new CreateStateMachineCommand({ name, definition, roleArn: ROLE_ARN }));
    const stateMachineArn = created.stateMachineArn;

    // Act
    const repeated = await sfn.send(new CreateStateMachineCommand({ name, definition, roleArn: ROLE_ARN }));
    const conflicting = await rejection(
      sfn.send(new CreateStateMachineCommand({ name, definition: changed, roleArn: ROLE_ARN })),
    );
    await sfn.send(new UpdateStateMachineCommand({ stateMachineArn, definition: changed }));
    const described = await sfn.send(new DescribeStateMachineCommand({ stateMachineArn }));
    const listed = await sfn.send(new ListStateMachinesCommand({ maxResults: 1000 }));
    await sfn.send(new DeleteStateMachineCommand({ stateMachineArn }));
    const afterDelete = await rejection(sfn.send(new DescribeStateMachineCommand({ stateMachineArn })));

    // Assess
    expect(stateMachineArn).toBe(
      `arn:aws:states:${sandbox.region}:${sandbox.accountId}:stateMachine:${name}`,
    );
    expect(repeated.stateMachineArn).toBe(stateMachineArn);
    expect(conflicting).toMatchObject({ name: 'StateMachineAlreadyExists' });
    expect(described).toMatchObject({
      name,
      definition: changed,
      roleArn: ROLE_ARN,
      type: 'STANDARD',
      status: 'ACTIVE',
    });
    expect(described.creationDate).toBeInstanceOf(Date);
    expect(listed.stateMachines?.map((machine) => machine.name)).toContain(name);
    expect(afterDelete).toMatchObject({ name: 'StateMachineDoesNotExist' });
  });

  it('refuses invalid definitions, JSONata and non-Lambda tasks with InvalidDefinition', async ({
    expect,
  }) => {
    // Prepare
    const definitions = [
      '{"StartAt": "Missing", "States": {"A": {"Type": "Pass", "End": true}}}',
      'not json',
      JSON.stringify({ QueryLanguage: 'JSONata', StartAt: 'A', States: { A: { Type: 'Pass', End: true } } }),
      JSON.stringify({
        StartAt: 'A',
        // biome-ignore lint/suspicious/noTemplateCurlyInString: an ASL placeholder left unsubstituted, on purpose
        States: { A: { Type: 'Task', Resource: '${CreateDatabaseFunctionArn}', End: true } },
      }),
    ];

    // Act
    const results = await Promise.allSettled(
      definitions.map((definition) =>
        sfn.send(
          new CreateStateMachineCommand({ name: uniqueName('invalid'), definition, roleArn: ROLE_ARN }),
        ),
      ),
    );

    // Assess
    for (const result of results) {
      expect(result).toMatchObject({ status: 'rejected', reason: { name: 'InvalidDefinition' } });
    }
    expect(results[2]).toMatchObject({ reason: { message: expect.stringContaining('JSONata') } });
    expect(results[3]).toMatchObject({
      reason: { message: expect.stringContaining('definitionSubstitutions') },
    });
  });

  it('fails exactly the StartExecution a chaos rule matches by execution name', async ({ expect }) => {
    // Prepare
    const stateMachineArn = await createMachine({ StartAt: 'A', States: { A: { Type: 'Pass', End: true } } });
    const doomed = uniqueName('doomed');
    const spared = uniqueName('spared');
    const rule: FaultRuleInput = {
      service: 'sfn',
      operation: 'StartExecution',
      match: doomed,
      error: { code: 'ExecutionLimitExceeded', statusCode: 400 },
    };
    await addFaults([rule]);
    try {
      // Act
      const failed = await rejection(sfn.send(new StartExecutionCommand({ stateMachineArn, name: doomed })));
      const started = await sfn.send(new StartExecutionCommand({ stateMachineArn, name: spared }));

      // Assess
      expect(failed).toMatchObject({ name: 'ExecutionLimitExceeded' });
      expect(started.executionArn).toMatch(new RegExp(`:${spared}$`));
      const listed = await sfn.send(new ListExecutionsCommand({ stateMachineArn }));
      expect(listed.executions?.map((execution) => execution.name)).toEqual([spared]);
    } finally {
      await removeFaults([rule]);
    }
  });

  it('closes as ABORTED (Sandbox.Restarted) an execution its sandbox died running', async ({ expect }) => {
    // Prepare
    const first = await spawnSandbox({ env: { SANDBOX_EXTRA_FUNCTIONS: 'test/fixtures/functions.ts' } });
    const config = (info: typeof first.info) => ({ ...clientConfig, endpoint: info.awsEndpoint });
    const client = new SFNClient(config(first.info));
    const stateMachineArn = await createMachine({ StartAt: 'Wait', States: { Wait: waitState } }, client);
    const { executionArn } = await client.send(new StartExecutionCommand({ stateMachineArn }));
    client.destroy();
    await first.stop('SIGKILL');
    // A killed sandbox leaves its sandbox.json behind; without this the next spawn could read the stale one.
    await rm(sandboxFile(first.dir));

    // Act
    const second = await spawnSandbox({ dir: first.dir });
    const restarted = new SFNClient(config(second.info));
    try {
      const execution = await finished(executionArn ?? '', restarted);
      const { events = [] } = await restarted.send(
        new GetExecutionHistoryCommand({ executionArn, reverseOrder: true }),
      );

      // Assess
      expect(execution).toMatchObject({ status: 'ABORTED', error: 'Sandbox.Restarted' });
      expect(events[0]?.type).toBe('ExecutionAborted');
      expect(events[0]?.executionAbortedEventDetails?.error).toBe('Sandbox.Restarted');
    } finally {
      restarted.destroy();
      await second.stop();
      await removeDir(first.dir);
    }
  });
});
