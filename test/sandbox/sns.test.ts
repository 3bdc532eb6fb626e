import { CloudWatchClient, PutMetricAlarmCommand, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { CreateTopicCommand, ListTopicsCommand, PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { afterAll, describe, expect, it } from 'vitest';
import { ALARM_TOPIC_ARN } from '../../local/constants.ts';
import { clientConfig, evaluateAlarms, sandbox, snsMessages, uniqueName } from '../support/sandbox.ts';

const sns = new SNSClient(clientConfig);
const cloudwatch = new CloudWatchClient(clientConfig);
afterAll(() => {
  sns.destroy();
  cloudwatch.destroy();
});

/** The error a call fails with, awaited at once so that no rejection goes unhandled. */
const failureOf = (call: Promise<unknown>): Promise<unknown> =>
  call.then(
    () => new Error('the call succeeded'),
    (error: unknown) => error,
  );

describe('SNS', () => {
  it('has the stage alarm topic from startup, creates topics idempotently and lists them', async () => {
    // Prepare
    const name = uniqueName('topic');

    // Act
    const created = await sns.send(new CreateTopicCommand({ Name: name }));
    const again = await sns.send(new CreateTopicCommand({ Name: name }));
    const arns: string[] = [];
    let token: string | undefined;
    do {
      const page = await sns.send(new ListTopicsCommand({ NextToken: token }));
      arns.push(...(page.Topics ?? []).flatMap((topic) => topic.TopicArn ?? []));
      token = page.NextToken;
    } while (token);
    const badName = await failureOf(sns.send(new CreateTopicCommand({ Name: 'no spaces' })));

    // Assess
    expect(created.TopicArn).toBe(`arn:aws:sns:${sandbox.region}:${sandbox.accountId}:${name}`);
    expect(again.TopicArn).toBe(created.TopicArn);
    expect(arns).toEqual(expect.arrayContaining([ALARM_TOPIC_ARN, created.TopicArn]));
    expect(badName).toMatchObject({
      name: 'InvalidParameterException',
      message: 'Invalid parameter: Topic Name',
    });
  });

  it('keeps what Publish sends, with its attributes, readable by topic and time', async () => {
    // Prepare
    const { TopicArn } = await sns.send(new CreateTopicCommand({ Name: uniqueName('published') }));
    const since = new Date();

    // Act
    const published = await sns.send(
      new PublishCommand({
        TopicArn,
        Subject: 'Quota exceeded',
        Message: 'tenant t1 is at 91% of its storage',
        MessageAttributes: {
          tenant: { DataType: 'String', StringValue: 't1' },
          ratio: { DataType: 'Number', StringValue: '0.91' },
        },
      }),
    );
    const kept = await snsMessages(TopicArn ?? '', since);
    const later = await snsMessages(TopicArn ?? '', new Date(Date.now() + 60_000));

    // Assess
    expect(published.MessageId).toMatch(/^[0-9a-f-]{36}$/);
    expect(kept).toEqual([
      expect.objectContaining({
        messageId: published.MessageId,
        topicArn: TopicArn,
        subject: 'Quota exceeded',
        message: 'tenant t1 is at 91% of its storage',
        messageAttributes: {
          tenant: { DataType: 'String', StringValue: 't1' },
          ratio: { DataType: 'Number', StringValue: '0.91' },
        },
      }),
    ]);
    expect(later).toEqual([]);
  });

  it('refuses a topic that does not exist, an empty or oversized message and bad attributes, as AWS does', async () => {
    // Prepare
    const { TopicArn } = await sns.send(new CreateTopicCommand({ Name: uniqueName('limits') }));
    const missingTopic = `arn:aws:sns:${sandbox.region}:${sandbox.accountId}:${uniqueName('absent')}`;

    // Act
    const notFound = await failureOf(sns.send(new PublishCommand({ TopicArn: missingTopic, Message: 'x' })));
    const empty = await failureOf(sns.send(new PublishCommand({ TopicArn, Message: '' })));
    const atLimit = await failureOf(
      sns.send(new PublishCommand({ TopicArn, Message: 'x'.repeat(256 * 1024) })),
    );
    const tooLong = await failureOf(
      sns.send(
        new PublishCommand({
          TopicArn,
          Message: 'x'.repeat(256 * 1024 - 4),
          MessageAttributes: { a: { DataType: 'String', StringValue: 'yy' } },
        }),
      ),
    );
    const badNumber = await failureOf(
      sns.send(
        new PublishCommand({
          TopicArn,
          Message: 'x',
          MessageAttributes: { n: { DataType: 'Number', StringValue: 'ten' } },
        }),
      ),
    );
    const longSubject = await failureOf(
      sns.send(new PublishCommand({ TopicArn, Message: 'x', Subject: 's'.repeat(100) })),
    );

    // Assess
    expect(notFound).toMatchObject({ name: 'NotFoundException', message: 'Topic does not exist' });
    expect(empty).toMatchObject({
      name: 'InvalidParameterException',
      message: 'Invalid parameter: Empty message',
    });
    expect(atLimit).toEqual(new Error('the call succeeded'));
    expect(tooLong).toMatchObject({
      name: 'InvalidParameterException',
      message: 'Invalid parameter: Message too long',
    });
    expect(badNumber).toMatchObject({ name: 'InvalidParameterValueException' });
    expect(longSubject).toMatchObject({
      name: 'InvalidParameterException',
      message: 'Invalid parameter: Subject',
    });
  });

  it("delivers an alarm's notification to the stage topic when it fires", async () => {
    // Prepare
    const name = uniqueName('tenant-connections');
    const namespace = uniqueName('Test/Sns');
    const since = new Date();
    const base = Math.ceil((Date.now() + 10 * 60_000) / 60_000) * 60_000;
    const metric = {
      Namespace: namespace,
      MetricName: 'DatabaseConnections',
      Dimensions: [{ Name: 'TenantId', Value: 't1' }],
    };
    await cloudwatch.send(
      new PutMetricAlarmCommand({
        AlarmName: name,
        AlarmDescription: 'connections near the limit',
        ...metric,
        Statistic: 'Maximum',
        Period: 60,
        EvaluationPeriods: 1,
        Threshold: 8,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        Unit: 'Count',
        AlarmActions: [ALARM_TOPIC_ARN],
      }),
    );
    await cloudwatch.send(
      new PutMetricDataCommand({
        Namespace: namespace,
        MetricData: [
          {
            MetricName: metric.MetricName,
            Dimensions: metric.Dimensions,
            Timestamp: new Date(base),
            Value: 9,
            Unit: 'Count',
          },
        ],
      }),
    );

    // Act
    await evaluateAlarms(new Date(base + 60_000), [name]);
    const arrived = (await snsMessages(ALARM_TOPIC_ARN, since)).filter((message) =>
      message.message.includes(name),
    );

    // Assess
    expect(arrived).toHaveLength(1);
    expect(arrived[0]?.subject).toBe(`ALARM: "${name}" in US East (N. Virginia)`);
    expect(JSON.parse(arrived[0]?.message ?? '{}')).toMatchObject({
      AlarmName: name,
      AlarmDescription: 'connections near the limit',
      NewStateValue: 'ALARM',
      OldStateValue: 'INSUFFICIENT_DATA',
      StateChangeTime: new Date(base + 60_000).toISOString().replace('Z', '+0000'),
      Trigger: {
        MetricName: 'DatabaseConnections',
        Namespace: namespace,
        StatisticType: 'Statistic',
        Statistic: 'MAXIMUM',
        Unit: 'Count',
        Dimensions: [{ value: 't1', name: 'TenantId' }],
        Period: 60,
        EvaluationPeriods: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        Threshold: 8,
        TreatMissingData: 'missing',
      },
    });
  });
});
