import {
  CloudWatchClient,
  DescribeAlarmHistoryCommand,
  DescribeAlarmsCommand,
  GetMetricDataCommand,
  type MetricDatum,
  PutMetricAlarmCommand,
  type PutMetricAlarmCommandInput,
  PutMetricDataCommand,
} from '@aws-sdk/client-cloudwatch';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ALARM_TOPIC_ARN } from '../../local/constants.ts';
import { clientConfig, evaluateAlarms, snsMessages, uniqueName } from '../support/sandbox.ts';

const cloudwatch = new CloudWatchClient(clientConfig);
afterAll(() => cloudwatch.destroy());

const MINUTE = 60_000;

/** The error a call fails with, awaited at once so that no rejection goes unhandled. */
const failureOf = (call: Promise<unknown>): Promise<unknown> =>
  call.then(
    () => new Error('the call succeeded'),
    (error: unknown) => error,
  );

/**
 * A simulated clock ahead of the wall clock (PutMetricData takes up to two hours ahead), so that the sandbox's
 * wall-clock evaluations, which come earlier, are skipped once a test has evaluated its alarms.
 */
const start = (period = MINUTE) => Math.ceil((Date.now() + 10 * MINUTE) / period) * period;
const at = (base: number, minutes: number) => new Date(base + minutes * MINUTE);

const stateOf = async (name: string) => {
  const found = await cloudwatch.send(new DescribeAlarmsCommand({ AlarmNames: [name] }));
  return found.MetricAlarms?.[0];
};

const metricAlarm = (
  name: string,
  namespace: string,
  overrides: Partial<PutMetricAlarmCommandInput> = {},
): PutMetricAlarmCommandInput => ({
  AlarmName: name,
  Namespace: namespace,
  MetricName: 'DatabaseConnections',
  Dimensions: [{ Name: 'TenantId', Value: 't1' }],
  Statistic: 'Maximum',
  Period: 60,
  EvaluationPeriods: 1,
  Threshold: 80,
  ComparisonOperator: 'GreaterThanOrEqualToThreshold',
  ...overrides,
});

type Datum = Omit<MetricDatum, 'MetricName'> & { readonly MetricName?: string };

const put = (namespace: string, data: Datum[]) =>
  cloudwatch.send(
    new PutMetricDataCommand({
      Namespace: namespace,
      MetricData: data.map(({ MetricName = 'DatabaseConnections', ...datum }) => ({
        MetricName,
        Dimensions: [{ Name: 'TenantId', Value: 't1' }],
        ...datum,
      })),
    }),
  );

const Notification = z.object({
  AlarmName: z.string(),
  AWSAccountId: z.string(),
  NewStateValue: z.string(),
  OldStateValue: z.string(),
  NewStateReason: z.string(),
  StateChangeTime: z.string(),
  Region: z.string(),
  AlarmArn: z.string(),
  AlarmActions: z.array(z.string()),
  OKActions: z.array(z.string()),
  Trigger: z.record(z.string(), z.unknown()),
});

/** The alarm notifications the stage topic received for one alarm. */
const notificationsOf = async (name: string, since: Date) =>
  (await snsMessages(ALARM_TOPIC_ARN, since))
    .map((message) => ({ subject: message.subject, body: Notification.parse(JSON.parse(message.message)) }))
    .filter(({ body }) => body.AlarmName === name);

describe('CloudWatch alarm evaluation', () => {
  it('treats missing data as each TreatMissingData mode says', async () => {
    // Prepare: no data at all, then one datapoint within the threshold
    const namespace = uniqueName('Test/Missing');
    const base = start();
    const modes = ['missing', 'ignore', 'breaching', 'notBreaching'] as const;
    const names = modes.map((mode) => uniqueName(`missing-${mode}`));
    for (const [index, mode] of modes.entries()) {
      await cloudwatch.send(
        new PutMetricAlarmCommand(
          metricAlarm(names[index] ?? '', namespace, { EvaluationPeriods: 3, TreatMissingData: mode }),
        ),
      );
    }

    // Act
    await evaluateAlarms(at(base, 0), names);
    const empty = await Promise.all(names.map(async (name) => (await stateOf(name))?.StateValue));
    await put(namespace, [{ Timestamp: at(base, 1), Value: 10 }]);
    await evaluateAlarms(at(base, 2), names);
    const withData = await Promise.all(names.map(async (name) => (await stateOf(name))?.StateValue));

    // Assess: "- - - - -", then "- - - - 0" (the User Guide's tables)
    expect(empty).toEqual(['INSUFFICIENT_DATA', 'INSUFFICIENT_DATA', 'ALARM', 'OK']);
    expect(withData).toEqual(['OK', 'OK', 'OK', 'OK']);
  });

  it('goes to ALARM when M out of N datapoints breach, with the reason and reason data AWS gives', async () => {
    // Prepare
    const namespace = uniqueName('Test/MofN');
    const name = uniqueName('m-of-n');
    const base = start();
    await cloudwatch.send(
      new PutMetricAlarmCommand(metricAlarm(name, namespace, { EvaluationPeriods: 3, DatapointsToAlarm: 2 })),
    );
    await put(namespace, [
      { Timestamp: at(base, 0), Value: 90 },
      { Timestamp: at(base, 1), Value: 10 },
      { Timestamp: at(base, 2), Value: 85, Unit: 'Count' },
      { Timestamp: at(base, 2.5), Value: 70, Unit: 'Count' },
    ]);

    // Act
    const one = await evaluateAlarms(at(base, 2), [name]);
    const two = await evaluateAlarms(at(base, 3), [name]);
    const alarm = await stateOf(name);

    // Assess
    expect(one).toEqual([expect.objectContaining({ newState: 'OK' })]);
    expect(two).toEqual([expect.objectContaining({ alarmName: name, oldState: 'OK', newState: 'ALARM' })]);
    expect(alarm?.StateValue).toBe('ALARM');
    expect(alarm?.StateReason).toMatch(
      /^Threshold Crossed: 2 out of the last 3 datapoints \[85\.0 \(\d\d\/\d\d\/\d\d \d\d:\d\d:00\), 90\.0 \(.+\)\] were greater than or equal to the threshold \(80\.0\) \(minimum 2 datapoints for OK -> ALARM transition\)\.$/,
    );
    expect(JSON.parse(alarm?.StateReasonData ?? '{}')).toEqual({
      version: '1.0',
      queryDate: at(base, 3).toISOString().replace('Z', '+0000'),
      startDate: at(base, 0).toISOString().replace('Z', '+0000'),
      statistic: 'Maximum',
      period: 60,
      recentDatapoints: [90, 10, 85],
      threshold: 80,
      evaluatedDatapoints: [
        { timestamp: at(base, 2).toISOString().replace('Z', '+0000'), sampleCount: 2, value: 85 },
        { timestamp: at(base, 1).toISOString().replace('Z', '+0000'), sampleCount: 1, value: 10 },
        { timestamp: at(base, 0).toISOString().replace('Z', '+0000'), sampleCount: 1, value: 90 },
      ],
    });
    expect(alarm?.StateTransitionedTimestamp).toEqual(at(base, 3));
  });

  it('evaluates a p99 alarm on the raw values, and filters by unit', async () => {
    // Prepare: 1..100 ms in the first period; a statistic set (no percentile) and other units in the next
    const namespace = uniqueName('Test/Latency');
    const name = uniqueName('latency-p99');
    const base = start(5 * MINUTE);
    const latency = (datum: Datum): Datum => ({ ...datum, MetricName: 'Latency' });
    await cloudwatch.send(
      new PutMetricAlarmCommand({
        ...metricAlarm(name, namespace, { MetricName: 'Latency', Unit: 'Milliseconds', Period: 300 }),
        Statistic: undefined,
        ExtendedStatistic: 'p99',
        Threshold: 98,
        ComparisonOperator: 'GreaterThanThreshold',
        TreatMissingData: 'notBreaching',
      }),
    );
    const values = Array.from({ length: 100 }, (_, index) => index + 1);
    await put(namespace, [
      latency({ Timestamp: at(base, 0), Values: values, Counts: values.map(() => 1), Unit: 'Milliseconds' }),
      latency({ Timestamp: at(base, 1), Value: 5000, Unit: 'Seconds' }),
      latency({
        Timestamp: at(base, 5),
        StatisticValues: { SampleCount: 3, Sum: 600, Minimum: 100, Maximum: 300 },
        Unit: 'Milliseconds',
      }),
    ]);
    const query = (Id: string, Stat: string) => ({
      Id,
      MetricStat: {
        Metric: {
          Namespace: namespace,
          MetricName: 'Latency',
          Dimensions: [{ Name: 'TenantId', Value: 't1' }],
        },
        Period: 300,
        Stat,
        Unit: 'Milliseconds' as const,
      },
    });

    // Act
    const transitions = await evaluateAlarms(at(base, 5), [name]);
    const series = await cloudwatch.send(
      new GetMetricDataCommand({
        StartTime: at(base, 0),
        EndTime: at(base, 10),
        ScanBy: 'TimestampAscending',
        MetricDataQueries: [query('p99', 'p99'), query('p50', 'p50'), query('n', 'SampleCount')],
      }),
    );

    // Assess: the Seconds datum is not the alarm's; the statistic set's period has no percentile
    expect(transitions).toEqual([expect.objectContaining({ newState: 'ALARM' })]);
    expect((await stateOf(name))?.StateReason).toContain('[99.0 (');
    const byId = Object.fromEntries(
      (series.MetricDataResults ?? []).map((result) => [result.Id, result.Values]),
    );
    expect(byId).toEqual({ p99: [99], p50: [50], n: [100, 3] });
  });

  it("moves the product's error-rate alarm to ALARM and back to OK, notifying the stage topic each time", async () => {
    // Prepare: the shape of tenantAlarms()' error-rate alarm (functions/provision/alarms.ts)
    const namespace = uniqueName('Test/Tenants');
    const name = uniqueName('tenant-error-rate');
    const since = new Date();
    const base = start(5 * MINUTE);
    const metric = (MetricName: string) => ({
      Namespace: namespace,
      MetricName,
      Dimensions: [{ Name: 'TenantId', Value: 't1' }],
    });
    await cloudwatch.send(
      new PutMetricAlarmCommand({
        AlarmName: name,
        AlarmDescription: 'Tenant t1: 5xx responses above 5% of requests',
        Metrics: [
          {
            Id: 'errors',
            MetricStat: { Metric: metric('5xxErrors'), Period: 300, Stat: 'Sum' },
            ReturnData: false,
          },
          {
            Id: 'requests',
            MetricStat: { Metric: metric('Requests'), Period: 300, Stat: 'Sum' },
            ReturnData: false,
          },
          { Id: 'errorRate', Expression: 'IF(requests > 0, errors / requests, 0)', ReturnData: true },
        ],
        EvaluationPeriods: 1,
        Threshold: 0.05,
        ComparisonOperator: 'GreaterThanThreshold',
        TreatMissingData: 'notBreaching',
        AlarmActions: [ALARM_TOPIC_ARN],
        OKActions: [ALARM_TOPIC_ARN],
      }),
    );
    await evaluateAlarms(at(base, 0), [name]);
    const publish = (minutes: number, requests: number, errors: number) =>
      cloudwatch.send(
        new PutMetricDataCommand({
          Namespace: namespace,
          MetricData: [
            { ...metric('Requests'), Timestamp: at(base, minutes), Value: requests, Unit: 'Count' },
            { ...metric('5xxErrors'), Timestamp: at(base, minutes), Value: errors, Unit: 'Count' },
          ],
        }),
      );

    // Act
    await publish(1, 100, 10);
    const alarmed = await evaluateAlarms(at(base, 5), [name]);
    await publish(6, 100, 1);
    const recovered = await evaluateAlarms(at(base, 10), [name]);
    const rates = await cloudwatch.send(
      new GetMetricDataCommand({
        StartTime: at(base, 0),
        EndTime: at(base, 10),
        ScanBy: 'TimestampAscending',
        MetricDataQueries: [
          {
            Id: 'errors',
            MetricStat: { Metric: metric('5xxErrors'), Period: 300, Stat: 'Sum' },
            ReturnData: false,
          },
          {
            Id: 'requests',
            MetricStat: { Metric: metric('Requests'), Period: 300, Stat: 'Sum' },
            ReturnData: false,
          },
          { Id: 'rate', Expression: 'IF(requests > 0, errors / requests, 0)', Label: 'Error rate' },
        ],
      }),
    );
    const notifications = await notificationsOf(name, since);

    // Assess
    expect(alarmed).toEqual([expect.objectContaining({ newState: 'ALARM' })]);
    expect(recovered).toEqual([expect.objectContaining({ oldState: 'ALARM', newState: 'OK' })]);
    expect(rates.MetricDataResults).toEqual([
      expect.objectContaining({
        Id: 'rate',
        Label: 'Error rate',
        Values: [0.1, 0.01],
        StatusCode: 'Complete',
      }),
    ]);
    const changes = notifications.map(({ body }) => `${body.OldStateValue}->${body.NewStateValue}`);
    expect(changes.slice(-2)).toEqual(['OK->ALARM', 'ALARM->OK']);
    const alarm = notifications.find(({ body }) => body.NewStateValue === 'ALARM');
    expect(alarm?.subject).toBe(`ALARM: "${name}" in US East (N. Virginia)`);
    expect(alarm?.body).toMatchObject({
      AWSAccountId: '000000000000',
      Region: 'US East (N. Virginia)',
      AlarmActions: [ALARM_TOPIC_ARN],
      NewStateReason: expect.stringContaining('greater than the threshold (0.05)'),
      Trigger: expect.objectContaining({
        EvaluationPeriods: 1,
        Threshold: 0.05,
        Metrics: expect.arrayContaining([
          expect.objectContaining({ Id: 'errorRate', Expression: 'IF(requests > 0, errors / requests, 0)' }),
        ]),
      }),
    });
  });

  it('refuses at put time an expression it cannot evaluate, and a statistic it does not compute', async () => {
    // Prepare
    const name = uniqueName('bad-expression');
    const math = (Expression: string): PutMetricAlarmCommandInput => ({
      AlarmName: name,
      Metrics: [
        {
          Id: 'm1',
          MetricStat: { Metric: { Namespace: 'Test/X', MetricName: 'X' }, Period: 60, Stat: 'Sum' },
          ReturnData: false,
        },
        { Id: 'e1', Expression, ReturnData: true },
      ],
      EvaluationPeriods: 1,
      Threshold: 1,
      ComparisonOperator: 'GreaterThanThreshold',
    });

    // Act
    const fill = await failureOf(cloudwatch.send(new PutMetricAlarmCommand(math('FILL(m1, 0)'))));
    const unknown = await failureOf(cloudwatch.send(new PutMetricAlarmCommand(math('m1 / m2'))));
    const trimmed = await failureOf(
      cloudwatch.send(
        new PutMetricAlarmCommand({
          ...metricAlarm(name, 'Test/X'),
          Statistic: undefined,
          ExtendedStatistic: 'tm99',
        }),
      ),
    );

    // Assess
    expect(fill).toMatchObject({
      name: 'ValidationException',
      message: 'Error in expression e1: The function FILL is not supported by the sandbox (only IF).',
    });
    expect(unknown).toMatchObject({ name: 'ValidationException', message: expect.stringContaining('m2') });
    expect(trimmed).toMatchObject({ name: 'InvalidParameterValueException' });
    expect(await stateOf(name)).toBeUndefined();
  });

  it('notifies on transitions only, records history, and never goes back in time', async () => {
    // Prepare
    const namespace = uniqueName('Test/Once');
    const name = uniqueName('once');
    const since = new Date();
    const base = start();
    await cloudwatch.send(
      new PutMetricAlarmCommand(
        metricAlarm(name, namespace, {
          TreatMissingData: 'breaching',
          AlarmActions: [ALARM_TOPIC_ARN, 'arn:aws:sns:us-east-1:000000000000:no-such-topic'],
          OKActions: [ALARM_TOPIC_ARN],
        }),
      ),
    );
    await put(namespace, [{ Timestamp: at(base, 3), Value: 10 }]);

    // Act: ALARM (missing data breaches), twice; OK at minute 4; then an earlier time, which would say ALARM
    const first = await evaluateAlarms(at(base, 1), [name]);
    const again = await evaluateAlarms(at(base, 2), [name]);
    const ok = await evaluateAlarms(at(base, 4), [name]);
    const earlier = await evaluateAlarms(at(base, 2), [name]);
    const alarm = await stateOf(name);
    const notifications = await notificationsOf(name, since);
    const history = await cloudwatch.send(new DescribeAlarmHistoryCommand({ AlarmName: name }));
    const states = await cloudwatch.send(
      new DescribeAlarmHistoryCommand({
        AlarmName: name,
        HistoryItemType: 'StateUpdate',
        ScanBy: 'TimestampAscending',
      }),
    );
    const firstPage = await cloudwatch.send(
      new DescribeAlarmHistoryCommand({ AlarmName: name, MaxRecords: 2 }),
    );
    const secondPage = await cloudwatch.send(
      new DescribeAlarmHistoryCommand({ AlarmName: name, MaxRecords: 2, NextToken: firstPage.NextToken }),
    );
    const windowed = await cloudwatch.send(
      new DescribeAlarmHistoryCommand({ AlarmName: name, StartDate: at(base, 3), EndDate: at(base, 5) }),
    );

    // Assess
    expect(first).toEqual([expect.objectContaining({ newState: 'ALARM' })]);
    expect(again).toEqual([]);
    expect(ok).toEqual([expect.objectContaining({ newState: 'OK' })]);
    expect(earlier).toEqual([]);
    expect(alarm?.StateValue).toBe('OK');
    expect(notifications.map(({ body }) => body.NewStateValue)).toEqual(['ALARM', 'OK']);
    expect(states.AlarmHistoryItems?.map((item) => item.HistorySummary)).toEqual([
      'Alarm updated from INSUFFICIENT_DATA to ALARM',
      'Alarm updated from ALARM to OK',
    ]);
    const items = history.AlarmHistoryItems ?? [];
    expect(items.map((item) => item.HistoryItemType).sort()).toEqual([
      'Action',
      'Action',
      'Action',
      'ConfigurationUpdate',
      'StateUpdate',
      'StateUpdate',
    ]);
    const actions = items
      .filter((item) => item.HistoryItemType === 'Action')
      .map((item) => item.HistorySummary);
    expect(actions).toContain(`Successfully executed action ${ALARM_TOPIC_ARN}`);
    expect(actions).toContain(
      'Failed to execute action arn:aws:sns:us-east-1:000000000000:no-such-topic. Received error: "Topic does not exist"',
    );
    expect(items.find((item) => item.HistoryItemType === 'ConfigurationUpdate')?.HistorySummary).toBe(
      `Alarm "${name}" created`,
    );
    expect(JSON.parse(states.AlarmHistoryItems?.[1]?.HistoryData ?? '{}')).toMatchObject({
      oldState: { stateValue: 'ALARM' },
      newState: {
        stateValue: 'OK',
        stateReasonData: { evaluatedDatapoints: [expect.objectContaining({ value: 10 })] },
      },
    });
    expect(firstPage.AlarmHistoryItems).toHaveLength(2);
    expect(secondPage.AlarmHistoryItems).toHaveLength(2);
    expect(windowed.AlarmHistoryItems?.map((item) => item.HistoryItemType).sort()).toEqual([
      'Action',
      'StateUpdate',
    ]);
  });

  it('changes state without running actions while they are disabled', async () => {
    // Prepare
    const namespace = uniqueName('Test/Disabled');
    const name = uniqueName('disabled');
    const since = new Date();
    const base = start();
    await cloudwatch.send(
      new PutMetricAlarmCommand(
        metricAlarm(name, namespace, { ActionsEnabled: false, AlarmActions: [ALARM_TOPIC_ARN] }),
      ),
    );
    await put(namespace, [{ Timestamp: at(base, 0), Value: 99 }]);

    // Act
    const transitions = await evaluateAlarms(at(base, 1), [name]);
    const actions = await cloudwatch.send(
      new DescribeAlarmHistoryCommand({ AlarmName: name, HistoryItemType: 'Action' }),
    );

    // Assess
    expect(transitions).toEqual([expect.objectContaining({ newState: 'ALARM' })]);
    expect(actions.AlarmHistoryItems).toEqual([]);
    expect(await notificationsOf(name, since)).toEqual([]);
  });

  it('takes PutMetricData timestamps up to two weeks back and two hours ahead, and refuses others', async () => {
    // Prepare
    const namespace = uniqueName('Test/Window');
    const now = Date.now();

    // Act
    const accepted = await failureOf(
      put(namespace, [
        { Timestamp: new Date(now - 13 * 24 * 60 * MINUTE), Value: 1 },
        { Timestamp: new Date(now + 110 * MINUTE), Value: 1 },
      ]),
    );
    const refused = await failureOf(
      put(namespace, [
        { Timestamp: new Date(now - 15 * 24 * 60 * MINUTE), Value: 1 },
        { Timestamp: new Date(now), Value: 1 },
        { Timestamp: new Date(now + 3 * 60 * MINUTE), Value: 1 },
      ]),
    );

    // Assess
    expect(accepted).toEqual(new Error('the call succeeded'));
    expect(refused).toMatchObject({
      name: 'InvalidParameterValueException',
      message:
        'The parameter MetricData.member.1.Timestamp must specify a time within the past two weeks.\n' +
        'The parameter MetricData.member.3.Timestamp must specify a time no more than two hours in the future.',
    });
  });
});
