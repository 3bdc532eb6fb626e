import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloudWatchClient, DescribeAlarmsCommand } from '@aws-sdk/client-cloudwatch';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { clientConfig, sandbox, uniqueName } from '../support/sandbox.ts';

// Debian's AWS CLI (v2.9, botocore of early 2023) speaks CloudWatch's query protocol, not awsJson1.0: a client the
// sandbox's authors did not write. It is not the `aws` first on PATH on these machines (pip's v1 is), hence the path.
const AWS_CLI = '/usr/bin/aws';
const INSTALL = 'apt-get update && apt-get install -y awscli';
const missingCli = !existsSync(AWS_CLI);
if (missingCli) {
  console.warn(
    `${AWS_CLI} is missing: the CloudWatch query-protocol tests through it are skipped; ${INSTALL}`,
  );
}

const cloudwatch = new CloudWatchClient(clientConfig);
let home = '';
beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'awscli-home-'));
});
afterAll(async () => {
  cloudwatch.destroy();
  if (home) await rm(home, { recursive: true, force: true });
});

interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the CLI against the sandbox with nothing of this machine's AWS configuration. */
function aws(...args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      AWS_CLI,
      ['--endpoint-url', sandbox.awsEndpoint, '--output', 'json', ...args],
      {
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          HOME: home,
          AWS_ACCESS_KEY_ID: 'sandbox',
          AWS_SECRET_ACCESS_KEY: 'sandbox',
          AWS_DEFAULT_REGION: sandbox.region,
          AWS_CONFIG_FILE: '/dev/null',
          AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
          AWS_EC2_METADATA_DISABLED: 'true',
          AWS_PAGER: '',
        },
        timeout: 60_000,
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** The JSON the CLI printed for a call that succeeded (an operation without output prints nothing). */
async function ok<T extends z.ZodType>(schema: T, ...args: string[]): Promise<z.infer<T>> {
  const result = await aws(...args);
  expect(result, result.stderr).toMatchObject({ code: 0 });
  return schema.parse(result.stdout.trim() === '' ? undefined : JSON.parse(result.stdout));
}

const Alarm = z.object({
  AlarmName: z.string(),
  AlarmArn: z.string(),
  ActionsEnabled: z.boolean(),
  Threshold: z.number(),
  Period: z.number(),
  StateValue: z.string(),
  StateReason: z.string(),
  StateUpdatedTimestamp: z.iso.datetime({ offset: true }),
  Dimensions: z.array(z.object({ Name: z.string(), Value: z.string() })),
  AlarmActions: z.array(z.string()),
});
const Alarms = z.object({ MetricAlarms: z.array(Alarm) });
const Tags = z.object({ Tags: z.array(z.object({ Key: z.string(), Value: z.string() })) });
const Nothing = z.undefined();

describe("CloudWatch through Debian's AWS CLI (query protocol)", () => {
  beforeEach((context) => {
    context.skip(missingCli, `${AWS_CLI} is missing; install it with: ${INSTALL}`);
  });

  it('puts, describes, switches, tags and deletes an alarm; the JSON protocol sees the same alarm', async () => {
    // Prepare
    const name = uniqueName('awscli-alarm');
    const arn = `arn:aws:cloudwatch:${sandbox.region}:${sandbox.accountId}:alarm:${name}`;
    const described = async () =>
      (await ok(Alarms, 'cloudwatch', 'describe-alarms', '--alarm-names', name)).MetricAlarms;

    // Act
    await ok(
      Nothing,
      'cloudwatch',
      'put-metric-alarm',
      ...['--alarm-name', name, '--namespace', 'TenantProvisioner', '--metric-name', 'DatabaseConnections'],
      ...['--dimensions', 'Name=TenantId,Value=t1', 'Name=Stage,Value=test'],
      ...['--statistic', 'Maximum', '--period', '60', '--evaluation-periods', '3', '--threshold', '80.5'],
      ...['--comparison-operator', 'GreaterThanOrEqualToThreshold', '--treat-missing-data', 'notBreaching'],
      ...['--alarm-actions', 'arn:aws:sns:us-east-1:000000000000:alerts', '--tags', 'Key=TenantId,Value=t1'],
    );
    const created = await described();
    const viaJson = await cloudwatch.send(new DescribeAlarmsCommand({ AlarmNames: [name] }));
    await ok(Nothing, 'cloudwatch', 'disable-alarm-actions', '--alarm-names', name);
    const disabled = await described();
    await ok(Nothing, 'cloudwatch', 'enable-alarm-actions', '--alarm-names', name);
    await ok(
      Nothing,
      'cloudwatch',
      'set-alarm-state',
      ...['--alarm-name', name, '--state-value', 'ALARM', '--state-reason', 'from the CLI'],
    );
    const inAlarm = await ok(
      Alarms,
      'cloudwatch',
      'describe-alarms',
      ...['--alarm-name-prefix', name, '--state-value', 'ALARM'],
    );
    await ok(Nothing, 'cloudwatch', 'tag-resource', '--resource-arn', arn, '--tags', 'Key=Stage,Value=test');
    const tags = await ok(Tags, 'cloudwatch', 'list-tags-for-resource', '--resource-arn', arn);
    await ok(Nothing, 'cloudwatch', 'untag-resource', '--resource-arn', arn, '--tag-keys', 'TenantId');
    const untagged = await ok(Tags, 'cloudwatch', 'list-tags-for-resource', '--resource-arn', arn);
    await ok(Nothing, 'cloudwatch', 'delete-alarms', '--alarm-names', name);
    const deleted = await described();

    // Assess
    expect(created).toEqual([
      expect.objectContaining({
        AlarmName: name,
        AlarmArn: arn,
        ActionsEnabled: true,
        Threshold: 80.5,
        Period: 60,
        StateValue: 'INSUFFICIENT_DATA',
        Dimensions: [
          { Name: 'TenantId', Value: 't1' },
          { Name: 'Stage', Value: 'test' },
        ],
        AlarmActions: ['arn:aws:sns:us-east-1:000000000000:alerts'],
      }),
    ]);
    const [json] = viaJson.MetricAlarms ?? [];
    expect(json?.StateUpdatedTimestamp?.getTime()).toBe(Date.parse(created[0]?.StateUpdatedTimestamp ?? ''));
    expect(disabled[0]?.ActionsEnabled).toBe(false);
    expect(inAlarm.MetricAlarms).toEqual([
      expect.objectContaining({
        AlarmName: name,
        StateValue: 'ALARM',
        StateReason: 'from the CLI',
        ActionsEnabled: true,
      }),
    ]);
    expect(tags.Tags).toEqual([
      { Key: 'TenantId', Value: 't1' },
      { Key: 'Stage', Value: 'test' },
    ]);
    expect(untagged.Tags).toEqual([{ Key: 'Stage', Value: 'test' }]);
    expect(deleted).toEqual([]);
  }, 120_000);

  it('puts metric data and reads it back with GetMetricData, timestamps and all', async () => {
    // Prepare
    const tenant = uniqueName('awscli-metrics');
    const period = Math.floor(Date.now() / 60_000) * 60_000 - 10 * 60_000;
    const at = (minutes: number, seconds = 0) => new Date(period + minutes * 60_000 + seconds * 1000);
    const dimensions = [{ Name: 'TenantId', Value: tenant }];
    const datum = (minutes: number, value: number) => ({
      MetricName: 'Requests',
      Dimensions: dimensions,
      Timestamp: at(minutes, 15).toISOString(),
      Value: value,
      Unit: 'Count',
    });
    const queries = [
      {
        Id: 'requests',
        MetricStat: {
          Metric: { Namespace: 'TenantProvisioner/CLI', MetricName: 'Requests', Dimensions: dimensions },
          Period: 60,
          Stat: 'Sum',
        },
      },
    ];

    // Act
    await ok(
      Nothing,
      'cloudwatch',
      'put-metric-data',
      ...['--namespace', 'TenantProvisioner/CLI'],
      ...['--metric-data', JSON.stringify([datum(0, 2), datum(0, 3), datum(2, 7)])],
    );
    const read = await ok(
      z.object({
        MetricDataResults: z.array(
          z.object({ Id: z.string(), Timestamps: z.array(z.string()), Values: z.array(z.number()) }),
        ),
      }),
      'cloudwatch',
      'get-metric-data',
      ...['--metric-data-queries', JSON.stringify(queries), '--scan-by', 'TimestampAscending'],
      ...['--start-time', at(-1).toISOString(), '--end-time', at(5).toISOString()],
    );

    // Assess
    expect(read.MetricDataResults).toHaveLength(1);
    const [result] = read.MetricDataResults;
    expect(result?.Timestamps.map((t) => Date.parse(t))).toEqual([at(0).getTime(), at(2).getTime()]);
    expect(result?.Values).toEqual([5, 7]);
  }, 120_000);

  it('fails with the errors AWS names: InvalidNextToken, ResourceNotFound', async () => {
    // Act
    const badToken = await aws('cloudwatch', 'describe-alarms', '--next-token', 'not-a-token-of-ours');
    const missing = await aws(
      'cloudwatch',
      'set-alarm-state',
      ...['--alarm-name', uniqueName('awscli-none'), '--state-value', 'OK', '--state-reason', 'x'],
    );

    // Assess: the CLI exits 254 on a service error and prints its code and message.
    expect(badToken.code).toBe(254);
    expect(badToken.stderr).toContain(
      'An error occurred (InvalidNextToken) when calling the DescribeAlarms operation: The next token specified is invalid.',
    );
    expect(missing.code).toBe(254);
    expect(missing.stderr).toContain('(ResourceNotFound) when calling the SetAlarmState operation');
  }, 120_000);
});
