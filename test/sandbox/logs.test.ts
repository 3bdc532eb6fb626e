import {
  CloudWatchLogsClient,
  CreateLogGroupCommand,
  CreateLogStreamCommand,
  PutLogEventsCommand,
} from '@aws-sdk/client-cloudwatch-logs';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { clientConfig, sandbox, uniqueName } from '../support/sandbox.ts';

const logs = new CloudWatchLogsClient(clientConfig);
afterAll(() => logs.destroy());

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;

/** The error a call fails with, awaited at once so that no rejection goes unhandled. */
const failureOf = (call: Promise<unknown>): Promise<unknown> =>
  call.then(
    () => new Error('the call succeeded'),
    (error: unknown) => error,
  );

async function stream() {
  const logGroupName = `/sandbox/${uniqueName('logs')}`;
  const logStreamName = 'one';
  await logs.send(new CreateLogGroupCommand({ logGroupName }));
  await logs.send(new CreateLogStreamCommand({ logGroupName, logStreamName }));
  return { logGroupName, logStreamName };
}

const Kept = z.array(z.object({ timestamp: z.number(), message: z.string() }));
async function kept(logGroupName: string) {
  const response = await fetch(
    `${sandbox.awsEndpoint}/_sandbox/logs/events?${new URLSearchParams({ logGroupName })}`,
  );
  return Kept.parse(await response.json());
}

describe('the sandbox CloudWatch Logs', () => {
  it('names an existing group or stream ResourceAlreadyExistsException and a missing one ResourceNotFoundException', async () => {
    const target = await stream();
    await expect(
      logs.send(new CreateLogGroupCommand({ logGroupName: target.logGroupName })),
    ).rejects.toMatchObject({
      name: 'ResourceAlreadyExistsException',
    });
    await expect(logs.send(new CreateLogStreamCommand(target))).rejects.toMatchObject({
      name: 'ResourceAlreadyExistsException',
    });
    const event = [{ timestamp: Date.now(), message: 'hello' }];
    await expect(
      logs.send(new PutLogEventsCommand({ ...target, logStreamName: 'other', logEvents: event })),
    ).rejects.toMatchObject({
      name: 'ResourceNotFoundException',
      message: 'The specified log stream does not exist.',
    });
    await expect(
      logs.send(new CreateLogStreamCommand({ logGroupName: `${target.logGroupName}-x`, logStreamName: 'a' })),
    ).rejects.toMatchObject({
      name: 'ResourceNotFoundException',
      message: 'The specified log group does not exist.',
    });
  });

  it('keeps the events in range and answers the too old and too new in rejectedLogEventsInfo', async () => {
    const target = await stream();
    const now = Date.now();
    const events = [
      { timestamp: now - 15 * DAY, message: 'too old' },
      { timestamp: now - 14 * DAY - MINUTE, message: 'too old too' },
      { timestamp: now - MINUTE, message: 'kept' },
      { timestamp: now + 90 * MINUTE, message: 'kept too' },
      { timestamp: now + 3 * 60 * MINUTE, message: 'too new' },
    ];
    const answer = await logs.send(new PutLogEventsCommand({ ...target, logEvents: events }));
    expect(answer.rejectedLogEventsInfo).toEqual({ tooOldLogEventEndIndex: 2, tooNewLogEventStartIndex: 4 });
    expect((await kept(target.logGroupName)).map((event) => event.message)).toEqual(['kept', 'kept too']);
  });

  it('fails a batch out of chronological order, or beyond 1,048,576 bytes counting 26 bytes an event', async () => {
    const target = await stream();
    const now = Date.now();
    const unordered = [
      { timestamp: now, message: 'b' },
      { timestamp: now - 1000, message: 'a' },
    ];
    expect(
      await failureOf(logs.send(new PutLogEventsCommand({ ...target, logEvents: unordered }))),
    ).toMatchObject({
      name: 'InvalidParameterException',
    });
    // 4 events of 262,118 bytes: 1,048,576 with their overhead, which fits; one byte more does not.
    const fits = Array.from({ length: 4 }, () => ({ timestamp: now, message: 'x'.repeat(262_118) }));
    await logs.send(new PutLogEventsCommand({ ...target, logEvents: fits }));
    const over = [...fits.slice(0, 3), { timestamp: now, message: 'x'.repeat(262_119) }];
    expect(await failureOf(logs.send(new PutLogEventsCommand({ ...target, logEvents: over })))).toMatchObject(
      {
        name: 'InvalidParameterException',
        message: 'Upload too large: 1048577 bytes exceeds limit of 1048576',
      },
    );
    expect(await kept(target.logGroupName)).toHaveLength(4);
  });
});
