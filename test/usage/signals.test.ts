import { randomUUID } from 'node:crypto';
import { DescribeAlarmsCommand, GetMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import {
  CloudWatchLogsClient,
  CreateLogGroupCommand,
  CreateLogStreamCommand,
  PutLogEventsCommand,
} from '@aws-sdk/client-cloudwatch-logs';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ALARM_TOPIC_ARN } from '../../local/constants.ts';
import { activeTenant } from '../lifecycle/helpers.ts';
import { clients } from '../provision/helpers.ts';
import { clientConfig, evaluateAlarms, sandbox, snsMessages } from '../support/sandbox.ts';

const MINUTE = 60_000;
const PERIOD = 5 * MINUTE;

/**
 * The SaaS's application as docs/usage.md has it publish: PutLogEvents with the header that marks the batch as
 * embedded metric format, added as an application adds a header to an SDK call.
 */
const logs = new CloudWatchLogsClient(clientConfig);
logs.middlewareStack.add(
  (next) => async (args) => {
    const { request } = args;
    const headers =
      typeof request === 'object' && request !== null && 'headers' in request && request.headers;
    if (typeof headers === 'object' && headers !== null)
      Object.assign(headers, { 'x-amzn-logs-format': 'json/emf' });
    return next(args);
  },
  { step: 'build', name: 'embeddedMetricFormatHeader' },
);
afterAll(() => logs.destroy());

/** One request's line, exactly as docs/usage.md shows it; a value may be an array (several requests). */
function line(
  tenantId: string,
  at: number,
  values: { requests: unknown; errors: unknown; latency: unknown },
) {
  return JSON.stringify({
    _aws: {
      Timestamp: at,
      CloudWatchMetrics: [
        {
          Namespace: 'TenantProvisioner/Tenants',
          Dimensions: [['TenantId']],
          Metrics: [
            { Name: 'Requests', Unit: 'Count' },
            { Name: '5xxErrors', Unit: 'Count' },
            { Name: 'Latency', Unit: 'Milliseconds' },
          ],
        },
      ],
    },
    TenantId: tenantId,
    Requests: values.requests,
    '5xxErrors': values.errors,
    Latency: values.latency,
    path: '/orders',
  });
}

/** A log group and stream of the application's own, as it would make them at its start. */
async function applicationLog() {
  const logGroupName = `/saas/app-${randomUUID().slice(0, 8)}`;
  const logStreamName = `task/${randomUUID()}`;
  await logs.send(new CreateLogGroupCommand({ logGroupName }));
  await logs.send(new CreateLogStreamCommand({ logGroupName, logStreamName }));
  const put = (events: { timestamp: number; message: string }[]) =>
    logs.send(new PutLogEventsCommand({ logGroupName, logStreamName, logEvents: events }));
  return { logGroupName, put };
}

/**
 * A 5-minute period ahead of the wall clock (events and metric data may be up to two hours ahead), distinct per
 * call, so that the test's own evaluations are the only ones that reach it.
 */
let periods = 0;
const nextPeriod = () => Math.ceil((Date.now() + 10 * MINUTE) / PERIOD) * PERIOD + PERIOD * 4 * periods++;

const KeptEvents = z.array(
  z.object({
    logStreamName: z.string(),
    timestamp: z.number(),
    message: z.string(),
    emf: z.union([z.object({ data: z.number() }), z.object({ problem: z.string() })]).optional(),
  }),
);
async function keptEvents(logGroupName: string) {
  const response = await fetch(
    `${sandbox.awsEndpoint}/_sandbox/logs/events?${new URLSearchParams({ logGroupName })}`,
  );
  expect(response.status).toBe(200);
  return KeptEvents.parse(await response.json());
}

const Notification = z.object({
  AlarmName: z.string(),
  NewStateValue: z.string(),
  OldStateValue: z.string(),
});
async function notificationsOf(alarmName: string, since: Date) {
  const messages = await snsMessages(ALARM_TOPIC_ARN, since);
  return messages
    .map((message) => Notification.parse(JSON.parse(message.message)))
    .filter((notification) => notification.AlarmName === alarmName);
}

describe("the SaaS's own signals, published as embedded metric format log lines", () => {
  it("move a professional tenant's error-rate alarm to ALARM above 5% of requests, and back to OK", async () => {
    // Prepare
    const tenant = await activeTenant({ plan: 'professional' });
    const alarmName = `tenant-${tenant.id}-error-rate`;
    const app = await applicationLog();
    const start = nextPeriod();
    // 20 requests a second apart from the period's second minute, the 4th and the 12th answered with a 5xx: 10%.
    const failing = app.put(
      Array.from({ length: 20 }, (_, i) => {
        const timestamp = start + MINUTE + i * 1000;
        return {
          timestamp,
          message: line(tenant.id, timestamp, {
            requests: 1,
            errors: i === 3 || i === 11 ? 1 : 0,
            latency: 40 + i,
          }),
        };
      }),
    );
    expect((await failing).rejectedLogEventsInfo).toBeUndefined();
    const since = new Date();

    // Act: evaluate after the period (the period the evaluation time falls in is not evaluated)
    const alarmed = await evaluateAlarms(new Date(start + PERIOD + MINUTE), [alarmName]);

    // Assess
    expect(alarmed).toMatchObject([{ alarmName, newState: 'ALARM' }]);
    const described = await clients.cloudWatch.send(new DescribeAlarmsCommand({ AlarmNames: [alarmName] }));
    expect(described.MetricAlarms?.[0]?.StateValue).toBe('ALARM');
    expect(await notificationsOf(alarmName, since)).toMatchObject([{ NewStateValue: 'ALARM' }]);
    const kept = await keptEvents(app.logGroupName);
    expect(kept).toHaveLength(20);
    // Three metrics, one dimension set: three data a line; `path` stays in the log line only.
    expect(kept.every((event) => event.emf && 'data' in event.emf && event.emf.data === 3)).toBe(true);
    expect(JSON.parse(kept[0]?.message ?? '{}')).toMatchObject({ path: '/orders' });

    // Act: the next period, 20 requests, no 5xx
    const next = start + PERIOD;
    await app.put(
      Array.from({ length: 20 }, (_, i) => {
        const timestamp = next + MINUTE + i * 1000;
        return { timestamp, message: line(tenant.id, timestamp, { requests: 1, errors: 0, latency: 30 }) };
      }),
    );
    const recovered = await evaluateAlarms(new Date(next + PERIOD + MINUTE), [alarmName]);

    // Assess
    expect(recovered).toMatchObject([{ alarmName, oldState: 'ALARM', newState: 'OK' }]);
    expect((await notificationsOf(alarmName, since)).map((n) => n.NewStateValue)).toEqual(['ALARM', 'OK']);
  });

  it('give the p99 latency and the request count the lines hold; a line that breaks the format adds nothing', async () => {
    // Prepare
    const tenant = await activeTenant({ plan: 'professional' });
    const app = await applicationLog();
    const start = nextPeriod();
    const at = (i: number) => start + MINUTE + i * 1000;
    // 50 lines of one request each, latencies 1..50 ms, then one line carrying 50 requests as arrays (51..100 ms).
    const single = Array.from({ length: 50 }, (_, i) => ({
      timestamp: at(i),
      message: line(tenant.id, at(i), { requests: 1, errors: 0, latency: i + 1 }),
    }));
    const batched = {
      timestamp: at(50),
      message: line(tenant.id, at(50), {
        requests: Array.from({ length: 50 }, () => 1),
        errors: Array.from({ length: 50 }, () => 0),
        latency: Array.from({ length: 50 }, (_, i) => 51 + i),
      }),
    };
    // A latency that is no number makes the whole line no EMF document: its request is not counted either.
    const broken = {
      timestamp: at(51),
      message: line(tenant.id, at(51), { requests: 1, errors: 0, latency: 'slow' }),
    };

    // Act
    await app.put([...single, batched, broken]);
    const metric = (Id: string, MetricName: string, Stat: string) => ({
      Id,
      MetricStat: {
        Metric: {
          Namespace: 'TenantProvisioner/Tenants',
          MetricName,
          Dimensions: [{ Name: 'TenantId', Value: tenant.id }],
        },
        Period: 300,
        Stat,
      },
    });
    const { MetricDataResults } = await clients.cloudWatch.send(
      new GetMetricDataCommand({
        StartTime: new Date(start),
        EndTime: new Date(start + PERIOD),
        MetricDataQueries: [metric('latency', 'Latency', 'p99'), metric('requests', 'Requests', 'Sum')],
      }),
    );

    // Assess: nearest rank, the 99th of the 100 latencies
    const [latency, requests] = MetricDataResults ?? [];
    expect(latency?.Values).toEqual([99]);
    expect(latency?.Timestamps).toEqual([new Date(start)]);
    expect(requests?.Values).toEqual([100]);
    const kept = await keptEvents(app.logGroupName);
    expect(kept).toHaveLength(52);
    expect(kept.at(-1)?.emf).toMatchObject({ problem: expect.stringContaining('Latency') });
  });
});
