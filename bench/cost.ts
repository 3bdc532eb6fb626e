import type { HistoryEvent } from '@aws-sdk/client-sfn';
import type { LatencyRun } from './latency.ts';
import type { Figure, SectionResult } from './lib/report.ts';
import type { BenchSandbox } from './lib/sandbox.ts';
import { round } from './lib/stats.ts';
import { BUILD_JOB_MINUTES, LAMBDA_MEMORY_GB, PRICES, PRICES_DATE, type Price } from './prices.ts';

/** Goal of the issue: at most 25 state transitions per provisioning. */
export const TRANSITIONS_GOAL = 25;

/** The standing goal: a basic tenant's resources at rest cost at most this a month. */
const BASIC_MONTHLY_GOAL_USD = 0.6;

/** Standing resources of one tenant, priced per month: its secrets (4 roles and the invitation) and alarm metrics. */
const SECRETS_PER_TENANT = 5;

/**
 * Cost of one provisioning on AWS, from what the sandbox counted during the latency run: state transitions and
 * Lambda invocations (execution histories), their durations (in-process, so a stand-in for Lambda's), and every
 * AWS request by service and operation (the call log), priced with `PRICES`; compared with a per-tenant build
 * job of BUILD_JOB_MINUTES minutes. What a tenant then costs each month is given beside it.
 */
export async function runCost(sandbox: BenchSandbox, latency: LatencyRun): Promise<SectionResult> {
  const runs = latency.runs.length;
  const histories = await Promise.all(latency.runs.map((run) => sandbox.history(run.executionArn)));
  const perRun = histories.map(countHistory);
  const mean = (pick: (counts: HistoryCounts) => number) =>
    perRun.reduce((sum, counts) => sum + pick(counts), 0) / Math.max(1, perRun.length);
  const transitions = mean((counts) => counts.transitions);
  const invocations = mean((counts) => counts.invocations);
  const lambdaMs = mean((counts) => counts.lambdaMs);

  const requests = new Map<string, number>();
  for (const call of latency.calls) {
    const key = `${call.service} ${call.operation}`;
    requests.set(key, (requests.get(key) ?? 0) + 1);
  }
  const per = (key: string) => (requests.get(key) ?? 0) / Math.max(1, runs);
  const byService = (service: string) =>
    [...requests].filter(([key]) => key.startsWith(`${service} `)).reduce((sum, [, n]) => sum + n, 0) /
    Math.max(1, runs);
  const dataApi = byService('rds-data');
  const secrets = byService('secrets-manager');
  const cloudWatch = byService('cloudwatch');
  const s3 = byService('s3');
  const events = per('eventbridge PutEvents');

  // The API function's own invocation (POST /tenants) is billed too; its duration is taken as the POST's.
  const apiMs = latency.runs.reduce((sum, run) => sum + run.postMs, 0) / Math.max(1, runs);
  const lines: [string, number, Price][] = [
    ['state transitions', transitions, PRICES.stepFunctionsTransition],
    ['Lambda requests (steps + API)', invocations + 1, PRICES.lambdaRequest],
    [
      'Lambda GB-seconds (sandbox durations)',
      ((lambdaMs + apiMs) / 1000) * LAMBDA_MEMORY_GB,
      PRICES.lambdaArmGbSecond,
    ],
    ['Data API requests', dataApi, PRICES.dataApiRequest],
    ['Secrets Manager API calls', secrets, PRICES.secretsManagerApiCall],
    ['CloudWatch API requests', cloudWatch, PRICES.cloudWatchApiRequest],
    ['S3 requests', s3, PRICES.s3PutRequest],
    ['EventBridge events', events, PRICES.eventBridgeEvent],
    ['API Gateway requests', 1, PRICES.httpApiRequest],
  ];
  const breakdown = lines.map(([item, quantity, price]) => ({
    item,
    quantity: round(quantity, 2),
    usd: quantity * price.usd,
    price: price.per,
    source: price.source,
  }));
  const total = breakdown.reduce((sum, line) => sum + line.usd, 0);
  const buildJob = BUILD_JOB_MINUTES * PRICES.codeBuildArmSmallMinute.usd;
  // Every plan's alarms today (plans.ts): storage, connections, and the error rate's two metrics; enterprise adds
  // p99 latency. So a basic tenant stands at the same as a professional one.
  const alarmMetrics = 4;
  const monthly = SECRETS_PER_TENANT * PRICES.secretMonth.usd + alarmMetrics * PRICES.alarmMetricMonth.usd;

  const figures: Figure[] = [
    {
      label: 'state transitions per provisioning',
      value: String(round(transitions, 1)),
      beside: `${round(invocations, 1)} Lambda invocations, ${Math.round(lambdaMs)} ms in them`,
      goal: { text: `≤ ${TRANSITIONS_GOAL}`, met: transitions <= TRANSITIONS_GOAL },
    },
    {
      label: 'AWS requests per provisioning',
      value: `${round(dataApi + secrets + cloudWatch + s3 + events + 1, 1)}`,
      beside: `Data API ${round(dataApi, 1)}, Secrets Manager ${round(secrets, 1)}, CloudWatch ${round(cloudWatch, 1)}, S3 ${round(s3, 1)}, EventBridge ${round(events, 1)}, Step Functions 1`,
    },
    {
      label: 'standing AWS cost, basic tenant',
      value: `${usd(monthly)}/month`,
      beside: `${SECRETS_PER_TENANT} secrets ${usd(SECRETS_PER_TENANT * PRICES.secretMonth.usd)}, ${alarmMetrics} alarm metrics ${usd(alarmMetrics * PRICES.alarmMetricMonth.usd)}`,
      goal: { text: `≤ ${usd(BASIC_MONTHLY_GOAL_USD)}`, met: monthly <= BASIC_MONTHLY_GOAL_USD },
    },
    {
      label: 'AWS cost per provisioning',
      value: usd(total),
      beside: `${BUILD_JOB_MINUTES}-minute build job ${usd(buildJob)} (${round(buildJob / total, 0)}× more); then ${usd(monthly)}/tenant-month standing`,
    },
  ];
  return {
    figures,
    details: {
      pricesDate: PRICES_DATE,
      perProvisioning: {
        transitions: round(transitions, 2),
        lambdaInvocations: round(invocations, 2),
        lambdaMs: round(lambdaMs),
        apiMs: round(apiMs),
        requests: Object.fromEntries([...requests].map(([key, n]) => [key, round(n / Math.max(1, runs), 2)])),
      },
      breakdown,
      totalUsd: total,
      buildJob: {
        minutes: BUILD_JOB_MINUTES,
        usd: buildJob,
        price: PRICES.codeBuildArmSmallMinute.per,
        source: PRICES.codeBuildArmSmallMinute.source,
      },
      monthlyPerTenantUsd: {
        total: monthly,
        secrets: { count: SECRETS_PER_TENANT, price: PRICES.secretMonth },
        alarmMetrics: { count: alarmMetrics, price: PRICES.alarmMetricMonth },
      },
    },
  };
}

interface HistoryCounts {
  readonly transitions: number;
  readonly invocations: number;
  readonly lambdaMs: number;
}

/**
 * AWS bills a Standard workflow per state transition, "each time a step of your workflow is executed, including
 * retries": here each state entered, plus each further attempt of a Task.
 */
function countHistory(events: readonly HistoryEvent[]): HistoryCounts {
  const entered = events.filter((event) => event.type?.endsWith('StateEntered')).length;
  const scheduled = events.filter((event) => event.type === 'LambdaFunctionScheduled');
  const taskStates = events.filter((event) => event.type === 'TaskStateEntered').length;
  let lambdaMs = 0;
  const startedAt = new Map<number, number>();
  for (const event of events) {
    const at = event.timestamp?.getTime() ?? 0;
    if (event.type === 'LambdaFunctionStarted') startedAt.set(event.id ?? 0, at);
    if (event.type === 'LambdaFunctionSucceeded' || event.type === 'LambdaFunctionFailed') {
      const started = startedAt.get(event.previousEventId ?? -1);
      if (started !== undefined) lambdaMs += at - started;
    }
  }
  return {
    transitions: entered + Math.max(0, scheduled.length - taskStates),
    invocations: scheduled.length,
    lambdaMs,
  };
}

const usd = (value: number): string => `$${value < 0.01 ? value.toFixed(6) : value.toFixed(4)}`;
