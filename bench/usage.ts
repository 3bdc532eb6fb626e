import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { DescribeExecutionCommand, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { z } from 'zod';
import { CHUNK_SIZE } from '../functions/usage/collect.ts';
import { stateMachineArn } from '../local/constants.ts';
import { FleetSandbox } from '../test/fleet/fleet.ts';
import { LAMBDA_MEMORY_GB, PRICES, type Price } from './prices.ts';

/**
 * `npm run bench:usage` (`-- --quick`, `-- --tenants 1000`): one run of the usage collector
 * (statemachines/collect-usage.asl.json) over TENANTS active tenants (1,000 by default; 20 with --quick), a third of
 * them professional (published per tenant), in a sandbox of its own: the run's time against the goal (under 60 s),
 * the Data API calls it made per tenant (goal: at most 2), every AWS request it made by service, and what a
 * tenant's collection costs on AWS a month at the default period (5 minutes), priced with bench/prices.ts. The
 * tenants are made directly (database from the template, registry row), as bench/fleet.ts makes them.
 * Run by `npm run bench` (bench/external.ts): its figures go to BENCH_RESULT_FILE when that is set.
 */
const GOAL_MS = 60_000;
/** statemachines/collect-usage.asl.json: chunks collected at once. */
const MAP_CONCURRENCY = 4;
const GOAL_DATA_API_PER_TENANT = 2;
/** The stages' default period: runs a month. */
const RUNS_PER_MONTH = (30 * 24 * 60) / 5;

const { values } = parseArgs({
  options: { quick: { type: 'boolean', default: false }, tenants: { type: 'string' } },
});
const count = Number(values.tenants ?? (values.quick ? 20 : 1000));
if (!Number.isInteger(count) || count < 1) throw new Error(`--tenants: ${values.tenants}`);

const Call = z.object({ seq: z.number(), service: z.string(), operation: z.string() });
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const usd = (value: number) => `$${value.toFixed(4)}`;

const sandbox = await FleetSandbox.start();
try {
  let started = performance.now();
  const ids = await sandbox.makeTenants(count, 'Bench usage');
  await sandbox.query(`UPDATE tenants SET plan = 'professional' WHERE id = ANY($1::text[])`, [
    ids.filter((_, i) => i % 3 === 0),
  ]);
  console.log(`usage: ${count} tenants made in ${seconds(performance.now() - started)}`);

  const sfn = new SFNClient({
    endpoint: sandbox.info.awsEndpoint,
    region: sandbox.info.region,
    credentials: { accessKeyId: 'bench', secretAccessKey: 'bench' },
  });
  const lastSeq = async () => {
    const calls = z
      .array(Call)
      .parse(await (await fetch(`${sandbox.info.awsEndpoint}/_sandbox/calls`)).json());
    return calls.at(-1)?.seq ?? 0;
  };
  // A first run warms the functions and the pools (as a deployed collector is warm after its first period).
  await collect(sfn, new Date(Date.now() - 10 * 60_000));
  const since = await lastSeq();
  started = performance.now();
  const output = await collect(sfn, new Date());
  const runMs = performance.now() - started;
  const calls = z
    .array(Call)
    .parse(await (await fetch(`${sandbox.info.awsEndpoint}/_sandbox/calls?since=${since}`)).json());
  const byOperation = new Map<string, number>();
  for (const call of calls) {
    const key = `${call.service} ${call.operation}`;
    byOperation.set(key, (byOperation.get(key) ?? 0) + 1);
  }
  const of = (service: string) =>
    [...byOperation].filter(([key]) => key.startsWith(`${service} `)).reduce((sum, [, n]) => sum + n, 0);
  const dataApi = of('rds-data');
  const perTenant = dataApi / count;
  console.log(
    `usage: ${output.tenants} tenants measured in ${seconds(runMs)}; ${dataApi} Data API calls (${perTenant.toFixed(2)} a tenant); ` +
      `requests ${JSON.stringify(Object.fromEntries(byOperation))}`,
  );
  if (output.tenants !== count) throw new Error(`the run measured ${output.tenants} of ${count} tenants`);

  // A tenant's share of a run, priced, times the runs of a month. Lambda time is the run's wall time spread over the
  // tenants at the Map's concurrency, a generous stand-in (the sandbox's functions share one process).
  const transitions = 3 + 2 * Math.ceil(count / CHUNK_SIZE) + 1;
  const lines: [string, number, Price][] = [
    ['Data API requests', dataApi, PRICES.dataApiRequest],
    ['S3 LIST requests', byOperation.get('s3 ListObjectsV2') ?? 0, PRICES.s3PutRequest],
    [
      'CloudWatch PutMetricData requests',
      byOperation.get('cloudwatch PutMetricData') ?? 0,
      PRICES.cloudWatchApiRequest,
    ],
    ['EventBridge events', of('eventbridge'), PRICES.eventBridgeEvent],
    ['state transitions', transitions, PRICES.stepFunctionsTransition],
    ['Lambda requests', 2 + Math.ceil(count / CHUNK_SIZE), PRICES.lambdaRequest],
    ['Lambda GB-seconds', (runMs / 1000) * MAP_CONCURRENCY * LAMBDA_MEMORY_GB, PRICES.lambdaArmGbSecond],
  ];
  const perRun = lines.map(([item, quantity, price]) => ({ item, quantity, usd: quantity * price.usd }));
  const runUsd = perRun.reduce((sum, line) => sum + line.usd, 0);
  const monthlyPerTenant = (runUsd / count) * RUNS_PER_MONTH;
  const figures = [
    {
      label: `usage collection, ${count} tenants`,
      value: seconds(runMs),
      beside: `${(count / (runMs / 1000)).toFixed(0)} tenants/s; ${output.chunks} chunks`,
      goal: { text: `< ${seconds(GOAL_MS)}`, met: runMs < GOAL_MS },
    },
    {
      label: 'Data API calls per tenant collected',
      value: perTenant.toFixed(2),
      beside: `${dataApi} in the run`,
      goal: { text: `≤ ${GOAL_DATA_API_PER_TENANT}`, met: perTenant <= GOAL_DATA_API_PER_TENANT },
    },
    {
      label: 'collection cost per tenant-month (5-minute period)',
      value: `${usd(monthlyPerTenant)}/month`,
      beside: perRun
        .filter((line) => line.usd > 0)
        .map((line) => `${line.item} ${usd((line.usd / count) * RUNS_PER_MONTH)}`)
        .join(', '),
    },
  ];
  const result = {
    figures,
    details: {
      tenants: count,
      runMs,
      requests: Object.fromEntries(byOperation),
      perRunUsd: perRun,
      monthlyPerTenantUsd: monthlyPerTenant,
    },
  };
  if (process.env.BENCH_RESULT_FILE)
    await writeFile(process.env.BENCH_RESULT_FILE, JSON.stringify(result, null, 2));
  console.table(figures.map(({ label, value, beside }) => ({ figure: label, measured: value, beside })));
} finally {
  await sandbox.stop();
}

async function collect(sfn: SFNClient, at: Date): Promise<{ tenants: number; chunks: number }> {
  const { executionArn } = await sfn.send(
    new StartExecutionCommand({
      stateMachineArn: stateMachineArn('collect-usage'),
      input: JSON.stringify({ scheduledTime: at.toISOString() }),
    }),
  );
  for (;;) {
    const execution = await sfn.send(new DescribeExecutionCommand({ executionArn }));
    if (execution.status === 'SUCCEEDED') {
      return z
        .object({ tenants: z.number(), chunks: z.number() })
        .parse(JSON.parse(execution.output ?? '{}'));
    }
    if (execution.status !== 'RUNNING') throw new Error(`collection ${execution.status}: ${execution.cause}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
