import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, inject } from 'vitest';
import { z } from 'zod';
import type { faultRuleSchema } from '../../local/aws/chaos.ts';

const provided = inject('sandbox');
// The unit tier (*.unit.test.ts, vitest.config.ts) starts no sandbox: a unit file that reaches this module
// through a helper fails here, by name, rather than on an undefined endpoint.
if (!provided) {
  throw new Error(
    'test/support/sandbox.ts: no sandbox in this run. A test that needs the sandbox is named *.test.ts, not *.unit.test.ts',
  );
}

/** The test sandbox's `sandbox.json`. */
export const sandbox = provided;

/** For any SDK v3 client: `new S3Client(clientConfig)`. */
export const clientConfig = {
  endpoint: sandbox.awsEndpoint,
  region: sandbox.region,
  credentials: { accessKeyId: 'sandbox', secretAccessKey: 'sandbox' },
};

export type FaultRuleInput = z.input<typeof faultRuleSchema>;

async function faults(method: 'PATCH' | 'DELETE', rules: readonly FaultRuleInput[]): Promise<void> {
  const response = await fetch(`${sandbox.awsEndpoint}/_sandbox/chaos/faults`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(rules),
  });
  if (!response.ok) throw new Error(`chaos ${method}: ${response.status} ${await response.text()}`);
}

/** Adds chaos rules beside those of other test files; scope each with a `match` unique to the test. */
export const addFaults = (rules: readonly FaultRuleInput[]) => faults('PATCH', rules);
/** Removes the rules given (as they were added). */
export const removeFaults = (rules: readonly FaultRuleInput[]) => faults('DELETE', rules);

const pools = new Map<string, pg.Pool>();
afterAll(async () => {
  await Promise.all([...pools.values()].map((pool) => pool.end()));
  pools.clear();
});

/** A superuser pool on a database of the sandbox's PostgreSQL, for inspection; closed after the file. */
export function superuserPool(database = 'postgres'): pg.Pool {
  let pool = pools.get(database);
  if (!pool) {
    pool = new pg.Pool({ ...sandbox.postgres, database, max: 4 });
    pools.set(database, pool);
  }
  return pool;
}

/** A name no other test uses: `<prefix>-<8 hex>`. */
export const uniqueName = (prefix: string): string => `${prefix}-${randomUUID().slice(0, 8)}`;

/** Polls until `check` holds, or the time is up; returns whether it held. */
export async function eventually(check: () => Promise<boolean>, timeoutMs = 30_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await sleep(100);
  }
  return check();
}

const Calls = z.array(
  z.object({ operation: z.string(), subject: z.string().optional(), latencyMs: z.number().optional() }),
);

/** Whether a call of that operation whose subject has `needle` is being held by a chaos latency rule (polls). */
export async function held(operation: string, needle: string): Promise<boolean> {
  return eventually(async () => {
    const response = await fetch(`${sandbox.awsEndpoint}/_sandbox/calls`);
    const calls = Calls.parse(await response.json());
    return calls.some(
      (call) =>
        call.operation === operation && (call.subject ?? '').includes(needle) && call.latencyMs !== undefined,
    );
  });
}

/** Gives Data API calls whose SQL contains `match` a statement timeout of `ms` instead of 45 s, while `work` runs. */
export async function withStatementTimeout<T>(match: string, ms: number, work: () => Promise<T>): Promise<T> {
  const rules = (method: string) =>
    fetch(`${sandbox.awsEndpoint}/_sandbox/rds-data/statement-timeouts`, {
      method,
      body: JSON.stringify([{ match, ms }]),
    });
  await rules('POST');
  try {
    return await work();
  } finally {
    await rules('DELETE');
  }
}

const Transitions = z.object({
  time: z.string(),
  transitions: z.array(
    z.object({
      alarmName: z.string(),
      oldState: z.string(),
      newState: z.string(),
      reason: z.string(),
      timestamp: z.string(),
    }),
  ),
});

/**
 * Has the sandbox's CloudWatch evaluate alarms (all, or those named) as of `time` (now by default) through
 * `POST /_sandbox/cloudwatch/evaluate`; answers the state changes it made.
 */
export async function evaluateAlarms(time?: Date, alarmNames?: readonly string[]) {
  const response = await fetch(`${sandbox.awsEndpoint}/_sandbox/cloudwatch/evaluate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ time: time?.toISOString(), alarmNames }),
  });
  if (!response.ok) throw new Error(`evaluate: ${response.status} ${await response.text()}`);
  return Transitions.parse(await response.json()).transitions;
}

const SnsMessages = z.array(
  z.object({
    messageId: z.string(),
    topicArn: z.string(),
    subject: z.string().optional(),
    message: z.string(),
    messageAttributes: z.record(
      z.string(),
      z.object({
        DataType: z.string(),
        StringValue: z.string().optional(),
        BinaryValue: z.string().optional(),
      }),
    ),
    receivedAt: z.string(),
  }),
);

/** What the sandbox's SNS kept of the messages published to a topic since a time (`GET /_sandbox/sns/messages`). */
export async function snsMessages(topicArn: string, since?: Date) {
  const query = new URLSearchParams({ topicArn, ...(since ? { since: since.toISOString() } : {}) });
  const response = await fetch(`${sandbox.awsEndpoint}/_sandbox/sns/messages?${query}`);
  if (!response.ok) throw new Error(`sns messages: ${response.status} ${await response.text()}`);
  return SnsMessages.parse(await response.json());
}

const Entry = z.object({ key: z.string(), versionId: z.string(), rule: z.string() });
const LifecycleReport = z.object({
  bucket: z.string(),
  now: z.string(),
  expired: z.array(Entry.extend({ deleteMarkerVersionId: z.string().optional() })),
  noncurrentDeleted: z.array(Entry),
  deleteMarkersRemoved: z.array(Entry),
  transitioned: z.array(Entry.extend({ storageClass: z.string() })),
  uploadsAborted: z.array(z.object({ key: z.string(), uploadId: z.string(), rule: z.string() })),
});
export type LifecycleReport = z.infer<typeof LifecycleReport>;

/**
 * Runs the bucket's S3 lifecycle rules as S3 would at `now` (`POST /_sandbox/s3/lifecycle/run`), on the keys under
 * `prefix` only: the stage bucket is shared by every test file. Returns what the run did.
 */
export async function runS3Lifecycle(bucket: string, now: Date, prefix?: string): Promise<LifecycleReport> {
  const response = await fetch(`${sandbox.awsEndpoint}/_sandbox/s3/lifecycle/run`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ bucket, now: now.toISOString(), prefix }),
  });
  if (!response.ok) throw new Error(`lifecycle run: ${response.status} ${await response.text()}`);
  return LifecycleReport.parse(await response.json());
}

/** `days` days after the time given. */
export const daysAfter = (time: Date | string, days: number): Date =>
  new Date(new Date(time).getTime() + days * 86_400_000);
