import { CloudWatchClient, DescribeAlarmsCommand } from '@aws-sdk/client-cloudwatch';
import { XMLParser } from 'fast-xml-parser';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { clientConfig, sandbox, uniqueName } from '../support/sandbox.ts';

// CloudWatch's query protocol, held without any SDK: the form a query client posts and the XML it reads back.
const NAMESPACE = 'http://monitoring.amazonaws.com/doc/2010-08-01/';
const ISO_8601 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const cloudwatch = new CloudWatchClient(clientConfig);
afterAll(() => cloudwatch.destroy());

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  parseTagValue: false,
  isArray: (name) => name === 'member',
});

// Documents are read through these schemas, so that a test names only what it checks and nothing is cast.
const Text = z.string();
const members = <T extends z.ZodType>(item: T) => z.object({ member: z.array(item) });
const Metadata = z.object({ RequestId: z.string().regex(UUID) });
const ErrorDocument = z.object({
  ErrorResponse: z.object({
    '@xmlns': z.literal(NAMESPACE),
    Error: z.object({ Type: Text, Code: Text, Message: Text }),
    RequestId: z.string().regex(UUID),
  }),
});

/** Posts a query-protocol call as botocore does: a SigV4-signed form (the sandbox routes by the scope). */
async function query(action: string, params: Record<string, string>, version = '2010-08-01') {
  const response = await fetch(sandbox.awsEndpoint, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded; charset=utf-8',
      authorization: `AWS4-HMAC-SHA256 Credential=sandbox/20250101/${sandbox.region}/monitoring/aws4_request, SignedHeaders=host;x-amz-date, Signature=00`,
    },
    body: new URLSearchParams({ Action: action, Version: version, ...params }),
  });
  const document: unknown = parser.parse(await response.text());
  return { status: response.status, contentType: response.headers.get('content-type'), document };
}

const ResponseDocument = z.record(
  z.string(),
  z.object({ '@xmlns': z.literal(NAMESPACE), ResponseMetadata: Metadata }).catchall(z.unknown()),
);

/** The `<Action>Response` document of a successful call, with its `<Action>Result` read by the schema. */
async function succeeded<T extends z.ZodType>(
  action: string,
  params: Record<string, string>,
  result: T,
): Promise<z.infer<T>> {
  const answer = await query(action, params);
  expect(answer.status).toBe(200);
  expect(answer.contentType).toBe('text/xml');
  const response = ResponseDocument.parse(answer.document)[`${action}Response`];
  expect(response).toBeDefined();
  return result.parse(response?.[`${action}Result`]);
}

async function failed(action: string, params: Record<string, string>, version?: string) {
  const answer = await query(action, params, version);
  return { status: answer.status, error: ErrorDocument.parse(answer.document).ErrorResponse.Error };
}

const alarmForm = (name: string): Record<string, string> => ({
  AlarmName: name,
  AlarmDescription: 'Connections <near> the limit & more',
  Namespace: 'TenantProvisioner',
  MetricName: 'DatabaseConnections',
  'Dimensions.member.1.Name': 'TenantId',
  'Dimensions.member.1.Value': 't1',
  'Dimensions.member.2.Name': 'Stage',
  'Dimensions.member.2.Value': 'test',
  Statistic: 'Maximum',
  Period: '60',
  EvaluationPeriods: '3',
  DatapointsToAlarm: '2',
  Threshold: '80.5',
  ComparisonOperator: 'GreaterThanOrEqualToThreshold',
  TreatMissingData: 'notBreaching',
  ActionsEnabled: 'false',
  'AlarmActions.member.1': 'arn:aws:sns:us-east-1:000000000000:alerts',
  'Tags.member.1.Key': 'TenantId',
  'Tags.member.1.Value': 't1',
});

const AlarmXml = z.object({
  AlarmName: Text,
  AlarmArn: Text,
  AlarmDescription: Text,
  ActionsEnabled: Text,
  Threshold: Text,
  Period: Text,
  EvaluationPeriods: Text,
  StateValue: Text,
  StateReason: Text,
  StateUpdatedTimestamp: z.string().regex(ISO_8601),
  AlarmConfigurationUpdatedTimestamp: z.string().regex(ISO_8601),
  Dimensions: members(z.object({ Name: Text, Value: Text })),
  AlarmActions: members(Text),
  OKActions: z.literal(''),
});
const DescribeResult = z.object({ MetricAlarms: z.union([members(AlarmXml), z.literal('')]) });

const describeXml = async (name: string) => {
  const result = await succeeded('DescribeAlarms', { 'AlarmNames.member.1': name }, DescribeResult);
  return result.MetricAlarms === '' ? [] : result.MetricAlarms.member;
};

describe('CloudWatch in the query protocol', () => {
  it('puts an alarm from a form and describes it in XML, the same alarm the JSON protocol reads', async () => {
    // Prepare
    const name = uniqueName('query-alarm');

    // Act
    const put = await query('PutMetricAlarm', alarmForm(name));
    const described = await describeXml(name);
    const viaJson = await cloudwatch.send(new DescribeAlarmsCommand({ AlarmNames: [name] }));

    // Assess: an operation without output answers with the response metadata alone.
    expect(put.status).toBe(200);
    expect(put.document).toEqual({
      PutMetricAlarmResponse: {
        '@xmlns': NAMESPACE,
        ResponseMetadata: { RequestId: expect.stringMatching(UUID) },
      },
    });
    expect(described).toEqual([
      expect.objectContaining({
        AlarmName: name,
        AlarmArn: `arn:aws:cloudwatch:${sandbox.region}:${sandbox.accountId}:alarm:${name}`,
        AlarmDescription: 'Connections <near> the limit & more',
        ActionsEnabled: 'false',
        Threshold: '80.5',
        Period: '60',
        StateValue: 'INSUFFICIENT_DATA',
        Dimensions: {
          member: [
            { Name: 'TenantId', Value: 't1' },
            { Name: 'Stage', Value: 'test' },
          ],
        },
        AlarmActions: { member: ['arn:aws:sns:us-east-1:000000000000:alerts'] },
        OKActions: '',
      }),
    ]);
    const [json] = viaJson.MetricAlarms ?? [];
    expect(json).toMatchObject({ AlarmName: name, ActionsEnabled: false, Threshold: 80.5, Period: 60 });
    expect(json?.StateUpdatedTimestamp?.toISOString()).toBe(described[0]?.StateUpdatedTimestamp);
  });

  it('enables and disables actions, sets the state, tags, untags and deletes by form', async () => {
    // Prepare
    const name = uniqueName('query-ops');
    await succeeded('PutMetricAlarm', alarmForm(name), z.undefined());
    const arn = `arn:aws:cloudwatch:${sandbox.region}:${sandbox.accountId}:alarm:${name}`;
    const Tags = z.object({ Tags: members(z.object({ Key: Text, Value: Text })) });

    // Act
    await succeeded('EnableAlarmActions', { 'AlarmNames.member.1': name }, z.undefined());
    const enabled = await describeXml(name);
    await succeeded('DisableAlarmActions', { 'AlarmNames.member.1': name }, z.undefined());
    const disabled = await describeXml(name);
    await succeeded(
      'SetAlarmState',
      { AlarmName: name, StateValue: 'ALARM', StateReason: 'by form', StateReasonData: '{"n":1}' },
      z.undefined(),
    );
    const inAlarm = await describeXml(name);
    const tagged = await succeeded(
      'TagResource',
      { ResourceARN: arn, 'Tags.member.1.Key': 'Stage', 'Tags.member.1.Value': 'test' },
      z.literal(''),
    );
    const tags = await succeeded('ListTagsForResource', { ResourceARN: arn }, Tags);
    await succeeded('UntagResource', { ResourceARN: arn, 'TagKeys.member.1': 'TenantId' }, z.literal(''));
    const untagged = await succeeded('ListTagsForResource', { ResourceARN: arn }, Tags);
    await succeeded('DeleteAlarms', { 'AlarmNames.member.1': name }, z.undefined());
    const deleted = await describeXml(name);

    // Assess
    expect(enabled[0]?.ActionsEnabled).toBe('true');
    expect(disabled[0]?.ActionsEnabled).toBe('false');
    expect(inAlarm[0]).toMatchObject({ StateValue: 'ALARM', StateReason: 'by form' });
    expect(tagged).toBe('');
    expect(tags.Tags.member).toEqual([
      { Key: 'TenantId', Value: 't1' },
      { Key: 'Stage', Value: 'test' },
    ]);
    expect(untagged.Tags.member).toEqual([{ Key: 'Stage', Value: 'test' }]);
    expect(deleted).toEqual([]);
  });

  it('takes metric data with ISO-8601 timestamps and answers GetMetricData with them', async () => {
    // Prepare
    const tenant = uniqueName('query-metrics');
    const period = Math.floor(Date.now() / 60_000) * 60_000 - 10 * 60_000;
    const at = (minutes: number, seconds = 0) => new Date(period + minutes * 60_000 + seconds * 1000);
    const metric = {
      Namespace: 'TenantProvisioner/Query',
      MetricName: 'Requests',
      'Dimensions.member.1.Name': 'TenantId',
      'Dimensions.member.1.Value': tenant,
    };

    // Act
    await succeeded(
      'PutMetricData',
      {
        Namespace: metric.Namespace,
        'MetricData.member.1.MetricName': metric.MetricName,
        'MetricData.member.1.Dimensions.member.1.Name': 'TenantId',
        'MetricData.member.1.Dimensions.member.1.Value': tenant,
        'MetricData.member.1.Timestamp': at(0, 10).toISOString(),
        'MetricData.member.1.Value': '3',
        'MetricData.member.2.MetricName': metric.MetricName,
        'MetricData.member.2.Dimensions.member.1.Name': 'TenantId',
        'MetricData.member.2.Dimensions.member.1.Value': tenant,
        'MetricData.member.2.Timestamp': at(1, 5).toISOString().replace('.000Z', 'Z'),
        'MetricData.member.2.StatisticValues.SampleCount': '2',
        'MetricData.member.2.StatisticValues.Sum': '10',
        'MetricData.member.2.StatisticValues.Minimum': '4',
        'MetricData.member.2.StatisticValues.Maximum': '6',
      },
      z.undefined(),
    );
    const result = await succeeded(
      'GetMetricData',
      {
        'MetricDataQueries.member.1.Id': 'sum',
        'MetricDataQueries.member.1.MetricStat.Metric.Namespace': metric.Namespace,
        'MetricDataQueries.member.1.MetricStat.Metric.MetricName': metric.MetricName,
        'MetricDataQueries.member.1.MetricStat.Metric.Dimensions.member.1.Name': 'TenantId',
        'MetricDataQueries.member.1.MetricStat.Metric.Dimensions.member.1.Value': tenant,
        'MetricDataQueries.member.1.MetricStat.Period': '60',
        'MetricDataQueries.member.1.MetricStat.Stat': 'Sum',
        StartTime: at(-1).toISOString(),
        EndTime: at(5).toISOString(),
        ScanBy: 'TimestampAscending',
      },
      z.object({
        MetricDataResults: members(
          z.object({
            Id: Text,
            Label: Text,
            StatusCode: Text,
            Timestamps: members(Text),
            Values: members(Text),
          }),
        ),
        Messages: z.literal(''),
      }),
    );

    // Assess
    expect(result.MetricDataResults.member).toEqual([
      {
        Id: 'sum',
        Label: 'Requests',
        StatusCode: 'Complete',
        Timestamps: { member: [at(0).toISOString(), at(1).toISOString()] },
        Values: { member: ['3', '10'] },
      },
    ]);
  });

  it('answers errors in the ErrorResponse document, with the codes of the query protocol', async () => {
    // Prepare
    const name = uniqueName('query-errors');

    // Act
    const badToken = await failed('DescribeAlarms', { NextToken: 'not-a-token-of-ours' });
    const missing = await failed('SetAlarmState', { AlarmName: name, StateValue: 'OK', StateReason: 'x' });
    const invalid = await failed('PutMetricAlarm', { ...alarmForm(name), Period: 'sixty' });
    const combination = await failed('DescribeAlarms', {
      'AlarmNames.member.1': name,
      AlarmNamePrefix: name,
    });
    const unknownAction = await failed('DescribeDashboards', {});
    const otherVersion = await failed('DescribeAlarms', {}, '2011-01-01');

    // Assess
    expect(badToken).toEqual({
      status: 400,
      error: { Type: 'Sender', Code: 'InvalidNextToken', Message: 'The next token specified is invalid.' },
    });
    expect(missing).toEqual({
      status: 404,
      error: { Type: 'Sender', Code: 'ResourceNotFound', Message: `Alarm ${name} not found` },
    });
    expect(invalid).toMatchObject({ status: 400, error: { Code: 'ValidationError' } });
    expect(combination).toMatchObject({ status: 400, error: { Code: 'InvalidParameterCombination' } });
    expect(unknownAction).toMatchObject({ status: 400, error: { Code: 'InvalidAction' } });
    expect(otherVersion).toMatchObject({ status: 400, error: { Code: 'InvalidAction' } });
    expect(await describeXml(name)).toEqual([]);
  });
});
