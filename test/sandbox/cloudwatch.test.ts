import {
  CloudWatchClient,
  DeleteAlarmsCommand,
  DescribeAlarmsCommand,
  DisableAlarmActionsCommand,
  EnableAlarmActionsCommand,
  GetMetricDataCommand,
  ListTagsForResourceCommand,
  PutMetricAlarmCommand,
  type PutMetricAlarmCommandInput,
  PutMetricDataCommand,
  SetAlarmStateCommand,
} from '@aws-sdk/client-cloudwatch';
import { afterAll, describe, expect, it } from 'vitest';
import { addFaults, clientConfig, removeFaults, sandbox, uniqueName } from '../support/sandbox.ts';

const cloudwatch = new CloudWatchClient(clientConfig);
afterAll(() => cloudwatch.destroy());

/** The error a call fails with, awaited at once so that no rejection goes unhandled. */
const failureOf = (call: Promise<unknown>): Promise<unknown> =>
  call.then(
    () => new Error('the call succeeded'),
    (error: unknown) => error,
  );

const alarm = (
  name: string,
  overrides: Partial<PutMetricAlarmCommandInput> = {},
): PutMetricAlarmCommandInput => ({
  AlarmName: name,
  AlarmDescription: 'Connections near the limit',
  Namespace: 'TenantProvisioner',
  MetricName: 'DatabaseConnections',
  Dimensions: [{ Name: 'TenantId', Value: 't1' }],
  Statistic: 'Maximum',
  Period: 60,
  EvaluationPeriods: 3,
  DatapointsToAlarm: 2,
  Threshold: 80,
  ComparisonOperator: 'GreaterThanOrEqualToThreshold',
  TreatMissingData: 'notBreaching',
  AlarmActions: ['arn:aws:sns:us-east-1:000000000000:alerts'],
  OKActions: ['arn:aws:sns:us-east-1:000000000000:alerts'],
  ...overrides,
});

const describeNamed = async (names: string[]) =>
  (await cloudwatch.send(new DescribeAlarmsCommand({ AlarmNames: names }))).MetricAlarms ?? [];

describe('CloudWatch alarms', () => {
  it('puts an alarm in INSUFFICIENT_DATA and describes it by name, prefix and state', async () => {
    // Prepare
    const prefix = uniqueName('tenant-alarm');
    const [first, second] = [`${prefix}-connections`, `${prefix}-storage`];

    // Act
    await cloudwatch.send(
      new PutMetricAlarmCommand(alarm(first, { Tags: [{ Key: 'TenantId', Value: 't1' }] })),
    );
    await cloudwatch.send(new PutMetricAlarmCommand(alarm(second, { MetricName: 'StorageBytes' })));
    await cloudwatch.send(
      new SetAlarmStateCommand({ AlarmName: second, StateValue: 'ALARM', StateReason: 'test' }),
    );
    const byName = await describeNamed([first]);
    const byPrefix = await cloudwatch.send(new DescribeAlarmsCommand({ AlarmNamePrefix: prefix }));
    const inAlarm = await cloudwatch.send(
      new DescribeAlarmsCommand({ AlarmNamePrefix: prefix, StateValue: 'ALARM' }),
    );
    const tags = await cloudwatch.send(new ListTagsForResourceCommand({ ResourceARN: byName[0]?.AlarmArn }));

    // Assess
    expect(byName).toHaveLength(1);
    expect(byName[0]).toMatchObject({
      AlarmName: first,
      AlarmArn: `arn:aws:cloudwatch:${sandbox.region}:${sandbox.accountId}:alarm:${first}`,
      ActionsEnabled: true,
      StateValue: 'INSUFFICIENT_DATA',
      Threshold: 80,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      EvaluationPeriods: 3,
      DatapointsToAlarm: 2,
      Dimensions: [{ Name: 'TenantId', Value: 't1' }],
      AlarmActions: ['arn:aws:sns:us-east-1:000000000000:alerts'],
      InsufficientDataActions: [],
    });
    expect(byName[0]?.StateUpdatedTimestamp).toBeInstanceOf(Date);
    expect(byPrefix.MetricAlarms?.map((found) => found.AlarmName)).toEqual([first, second]);
    expect(inAlarm.MetricAlarms?.map((found) => found.AlarmName)).toEqual([second]);
    expect(tags.Tags).toEqual([{ Key: 'TenantId', Value: 't1' }]);
  });

  it('disables and enables actions, keeps the state across an update, and deletes', async () => {
    // Prepare
    const name = uniqueName('tenant-alarm-actions');
    await cloudwatch.send(new PutMetricAlarmCommand(alarm(name)));
    await cloudwatch.send(
      new SetAlarmStateCommand({ AlarmName: name, StateValue: 'OK', StateReason: 'test' }),
    );

    // Act
    await cloudwatch.send(new DisableAlarmActionsCommand({ AlarmNames: [name] }));
    const disabled = await describeNamed([name]);
    await cloudwatch.send(new EnableAlarmActionsCommand({ AlarmNames: [name] }));
    const enabled = await describeNamed([name]);
    await cloudwatch.send(new PutMetricAlarmCommand(alarm(name, { Threshold: 90 })));
    const updated = await describeNamed([name]);
    await cloudwatch.send(new DeleteAlarmsCommand({ AlarmNames: [name, uniqueName('never-existed')] }));
    const deleted = await describeNamed([name]);

    // Assess
    expect(disabled[0]?.ActionsEnabled).toBe(false);
    expect(enabled[0]?.ActionsEnabled).toBe(true);
    expect(updated[0]).toMatchObject({ Threshold: 90, StateValue: 'OK' });
    expect(deleted).toEqual([]);
  });

  it('keeps a metric-math alarm with its queries', async () => {
    // Prepare
    const name = uniqueName('tenant-alarm-math');

    // Act
    await cloudwatch.send(
      new PutMetricAlarmCommand({
        AlarmName: name,
        EvaluationPeriods: 1,
        Threshold: 0.9,
        ComparisonOperator: 'GreaterThanThreshold',
        Metrics: [
          {
            Id: 'used',
            MetricStat: {
              Metric: { Namespace: 'TenantProvisioner', MetricName: 'Used' },
              Period: 300,
              Stat: 'Sum',
            },
            ReturnData: false,
          },
          {
            Id: 'quota',
            MetricStat: {
              Metric: { Namespace: 'TenantProvisioner', MetricName: 'Quota' },
              Period: 300,
              Stat: 'Sum',
            },
            ReturnData: false,
          },
          { Id: 'ratio', Expression: 'used / quota', Label: 'Quota used', ReturnData: true },
        ],
      }),
    );
    const [described] = await describeNamed([name]);

    // Assess
    expect(described?.Metrics?.map((query) => query.Id)).toEqual(['used', 'quota', 'ratio']);
    expect(described?.Metrics?.[2]).toMatchObject({ Expression: 'used / quota', ReturnData: true });
    expect(described?.MetricName).toBeUndefined();
  });

  it('refuses names and a prefix together with the error AWS names InvalidParameterCombination', async () => {
    // Act
    const error = await failureOf(
      cloudwatch.send(new DescribeAlarmsCommand({ AlarmNames: ['a'], AlarmNamePrefix: 'a' })),
    );

    // Assess
    expect(error).toMatchObject({
      name: 'InvalidParameterCombinationException',
      Error: { Code: 'InvalidParameterCombination', Type: 'Sender' },
      $metadata: { httpStatusCode: 400 },
    });
  });

  it('pages DescribeAlarms by the NextToken it hands out, and refuses any other with InvalidNextToken', async () => {
    // Prepare
    const prefix = uniqueName('paged');
    const names = [`${prefix}-a`, `${prefix}-b`, `${prefix}-c`];
    await Promise.all(names.map((name) => cloudwatch.send(new PutMetricAlarmCommand(alarm(name)))));

    // Act
    const first = await cloudwatch.send(
      new DescribeAlarmsCommand({ AlarmNamePrefix: prefix, MaxRecords: 2 }),
    );
    const second = await cloudwatch.send(
      new DescribeAlarmsCommand({ AlarmNamePrefix: prefix, MaxRecords: 2, NextToken: first.NextToken }),
    );
    const forged = await failureOf(
      cloudwatch.send(new DescribeAlarmsCommand({ AlarmNamePrefix: prefix, NextToken: 'bm90LW91cnM' })),
    );

    // Assess
    expect(first.MetricAlarms?.map((found) => found.AlarmName)).toEqual(names.slice(0, 2));
    expect(second.MetricAlarms?.map((found) => found.AlarmName)).toEqual(names.slice(2));
    expect(second.NextToken).toBeUndefined();
    expect(forged).toMatchObject({
      name: 'InvalidNextToken',
      message: 'The next token specified is invalid.',
      $metadata: { httpStatusCode: 400 },
    });
  });

  it('refuses an alarm without a comparison operator, and a metric alarm without a statistic', async () => {
    // Act
    const noOperator = await failureOf(
      cloudwatch.send(new PutMetricAlarmCommand(alarm(uniqueName('bad'), { ComparisonOperator: undefined }))),
    );
    const noStatistic = await failureOf(
      cloudwatch.send(new PutMetricAlarmCommand(alarm(uniqueName('bad'), { Statistic: undefined }))),
    );

    // Assess
    expect(noOperator).toMatchObject({ name: 'MissingRequiredParameterException' });
    expect(noStatistic).toMatchObject({ name: 'InvalidParameterCombinationException' });
  });

  it('fails only the call whose alarm a chaos rule matches', async () => {
    // Prepare
    const hit = uniqueName('chaos-alarm-hit');
    const spared = uniqueName('chaos-alarm-spared');
    const rule = {
      service: 'cloudwatch' as const,
      operation: 'PutMetricAlarm',
      match: hit,
      error: { code: 'LimitExceeded', statusCode: 400 },
    };
    await addFaults([rule]);
    try {
      // Act
      const failed = await failureOf(cloudwatch.send(new PutMetricAlarmCommand(alarm(hit))));
      await cloudwatch.send(new PutMetricAlarmCommand(alarm(spared)));

      // Assess
      expect(failed).toMatchObject({ name: 'LimitExceededFault' });
      expect(await describeNamed([hit, spared])).toEqual([expect.objectContaining({ AlarmName: spared })]);
    } finally {
      await removeFaults([rule]);
    }
  });
});

describe('CloudWatch metrics', () => {
  it('sums, averages and counts what PutMetricData sent, per period, newest first', async () => {
    // Prepare
    const namespace = uniqueName('Test/Metrics');
    const minute = Math.floor(Date.now() / 60_000) * 60_000 - 10 * 60_000;
    const at = (offsetMs: number) => new Date(minute + offsetMs);
    const dimensions = [{ Name: 'TenantId', Value: 't1' }];

    // Act
    await cloudwatch.send(
      new PutMetricDataCommand({
        Namespace: namespace,
        MetricData: [
          { MetricName: 'Requests', Dimensions: dimensions, Timestamp: at(1_000), Value: 1, Unit: 'Count' },
          {
            MetricName: 'Requests',
            Dimensions: dimensions,
            Timestamp: at(2_000),
            Values: [2, 3],
            Counts: [1, 2],
          },
          {
            MetricName: 'Requests',
            Dimensions: dimensions,
            Timestamp: at(61_000),
            StatisticValues: { SampleCount: 4, Sum: 40, Minimum: 5, Maximum: 15 },
          },
          // Another dimension value is another metric.
          {
            MetricName: 'Requests',
            Dimensions: [{ Name: 'TenantId', Value: 't2' }],
            Timestamp: at(3_000),
            Value: 100,
          },
        ],
      }),
    );
    const stat = (Id: string, Stat: string) => ({
      Id,
      MetricStat: {
        Metric: { Namespace: namespace, MetricName: 'Requests', Dimensions: dimensions },
        Period: 60,
        Stat,
      },
    });
    const result = await cloudwatch.send(
      new GetMetricDataCommand({
        StartTime: at(0),
        EndTime: at(120_000),
        MetricDataQueries: [
          stat('sum', 'Sum'),
          stat('avg', 'Average'),
          stat('n', 'SampleCount'),
          stat('max', 'Maximum'),
        ],
      }),
    );

    // Assess
    const byId = Object.fromEntries((result.MetricDataResults ?? []).map((series) => [series.Id, series]));
    expect(byId.sum).toMatchObject({
      Label: 'Requests',
      StatusCode: 'Complete',
      Timestamps: [at(60_000), at(0)],
      Values: [40, 9],
    });
    expect(byId.avg?.Values).toEqual([10, 2.25]);
    expect(byId.n?.Values).toEqual([4, 4]);
    expect(byId.max?.Values).toEqual([15, 3]);
  });

  it('accepts a large PutMetricData, which the SDK sends gzipped', async () => {
    // Prepare
    const namespace = uniqueName('Test/Gzip');
    const start = Math.floor(Date.now() / 60_000) * 60_000 - 5 * 60_000;
    const metricData = Array.from({ length: 300 }, (_, index) => ({
      MetricName: 'Bytes',
      Dimensions: [{ Name: 'Padding', Value: 'x'.repeat(40) }],
      Timestamp: new Date(start + index * 100),
      Value: index,
    }));

    // Act
    await cloudwatch.send(new PutMetricDataCommand({ Namespace: namespace, MetricData: metricData }));
    const result = await cloudwatch.send(
      new GetMetricDataCommand({
        StartTime: new Date(start),
        EndTime: new Date(start + 60_000),
        ScanBy: 'TimestampAscending',
        MetricDataQueries: [
          {
            Id: 'n',
            MetricStat: {
              Metric: { Namespace: namespace, MetricName: 'Bytes', Dimensions: metricData[0]?.Dimensions },
              Period: 60,
              Stat: 'SampleCount',
            },
          },
        ],
      }),
    );

    // Assess
    expect(result.MetricDataResults?.[0]?.Values).toEqual([300]);
  });
});
