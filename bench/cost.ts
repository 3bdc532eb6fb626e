import { CloudWatchClient, DescribeAlarmsCommand, type MetricAlarm } from '@aws-sdk/client-cloudwatch';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { HistoryEvent } from '@aws-sdk/client-sfn';
import { listSecretsUnder } from '../functions/provision/secrets.ts';
import { INVITATION_TTL_DAYS } from '../functions/provision/seed.ts';
import { tenantMetricCount } from '../functions/usage/quotas.ts';
import { type SandboxInfo, STAGE } from '../local/constants.ts';
import { alarmPrefix, secretPrefix } from '../schema/names.ts';
import { PLAN_NAMES, type PlanName } from '../schema/plans.ts';
import type { LatencyRun } from './latency.ts';
import type { Figure, SectionResult } from './lib/report.ts';
import type { BenchSandbox } from './lib/sandbox.ts';
import { round } from './lib/stats.ts';
import { BUILD_JOB_MINUTES, LAMBDA_MEMORY_GB, PRICES, PRICES_DATE, type Price } from './prices.ts';

/** Goal of the issue: at most 25 state transitions per provisioning. */
export const TRANSITIONS_GOAL = 25;

/** The standing goal: a basic tenant's resources at rest cost at most this a month. */
const BASIC_MONTHLY_GOAL_USD = 0.6;

/** What one tenant of a plan has standing at rest, as counted in the sandbox, and its monthly price. */
export interface StandingCost {
  readonly plan: PlanName;
  readonly tenantId: string;
  /** Secrets that stay: every secret under the tenant's prefix but the invitation's. */
  readonly secrets: readonly string[];
  /** The admin's invitation secret, deleted once accepted or expired: a one-off, not a standing cost. */
  readonly invitation: boolean;
  /** Alarm name → metrics it is billed for. */
  readonly alarmMetrics: Readonly<Record<string, number>>;
  readonly customMetrics: number;
  readonly monthlyUsd: number;
}

/**
 * Metrics an alarm is billed for: one for an alarm on a metric; for a metric-math alarm, each metric its
 * expressions read (a `MetricStat`), not the expressions themselves (bench/prices.ts alarmMetricMonth).
 */
export function billedMetrics(alarm: Pick<MetricAlarm, 'Metrics'>): number {
  if (!alarm.Metrics || alarm.Metrics.length === 0) return 1;
  return alarm.Metrics.filter((query) => query.MetricStat !== undefined).length;
}

/** A sandbox to measure on: the bench's own, or a test's. */
export interface StandingCostTarget {
  readonly info: Pick<SandboxInfo, 'awsEndpoint' | 'region'>;
  /** Provisions a tenant of the plan through the API and waits until it is active. */
  provision(label: string, plan: PlanName): Promise<{ readonly tenantId: string }>;
}

/**
 * Provisions one tenant of each plan through the API and counts, from the sandbox, what it has at rest: the secrets
 * under its prefix (ListSecrets) and its alarms' metrics (DescribeAlarms under `tenant-<id>-`). Measured rather than
 * declared, so a plan that keeps more than it should shows in the figure.
 */
export async function measureStandingCosts(sandbox: StandingCostTarget): Promise<StandingCost[]> {
  const config = {
    endpoint: sandbox.info.awsEndpoint,
    region: sandbox.info.region,
    credentials: { accessKeyId: 'bench', secretAccessKey: 'bench' },
  };
  const secrets = new SecretsManagerClient(config);
  const cloudWatch = new CloudWatchClient(config);
  try {
    const costs: StandingCost[] = [];
    for (const plan of PLAN_NAMES) {
      const { tenantId } = await sandbox.provision(`standing ${plan}`, plan);
      const prefix = secretPrefix(STAGE, tenantId);
      const names = (await listSecretsUnder(secrets, prefix)).map((secret) =>
        secret.name.slice(prefix.length),
      );
      const alarmMetrics: Record<string, number> = {};
      let next: string | undefined;
      do {
        const page = await cloudWatch.send(
          new DescribeAlarmsCommand({ AlarmNamePrefix: alarmPrefix(tenantId), NextToken: next }),
        );
        for (const alarm of page.MetricAlarms ?? [])
          alarmMetrics[alarm.AlarmName ?? ''] = billedMetrics(alarm);
        if ((page.CompositeAlarms ?? []).length > 0) throw new Error('Composite alarms are not priced here');
        next = page.NextToken;
      } while (next);
      const standing = names.filter((name) => !name.startsWith('invitation/')).sort();
      const metrics = Object.values(alarmMetrics).reduce((sum, n) => sum + n, 0);
      // What the usage collector publishes with the tenant as a dimension: each name and dimension set is one custom
      // metric, billed by the month.
      const customMetrics = tenantMetricCount(plan);
      costs.push({
        plan,
        tenantId,
        secrets: standing,
        invitation: names.length > standing.length,
        alarmMetrics,
        customMetrics,
        monthlyUsd:
          standing.length * PRICES.secretMonth.usd +
          metrics * PRICES.alarmMetricMonth.usd +
          customMetrics * PRICES.customMetricMonth.usd,
      });
    }
    return costs;
  } finally {
    secrets.destroy();
    cloudWatch.destroy();
  }
}

/** The figure of one plan's standing cost, its three lines beside it. */
function standingFigure(cost: StandingCost): Figure {
  const metrics = Object.values(cost.alarmMetrics).reduce((sum, n) => sum + n, 0);
  const alarms = Object.keys(cost.alarmMetrics).length;
  return {
    label: `standing AWS cost, ${cost.plan} tenant`,
    value: `${usd(cost.monthlyUsd)}/month`,
    beside:
      `${cost.secrets.length} secrets ${usd(cost.secrets.length * PRICES.secretMonth.usd)} (${cost.secrets.join(', ')}), ` +
      `${metrics} alarm metrics in ${alarms} alarms ${usd(metrics * PRICES.alarmMetricMonth.usd)}, ` +
      `${cost.customMetrics} custom metrics ${usd(cost.customMetrics * PRICES.customMetricMonth.usd)}`,
    ...(cost.plan === 'basic'
      ? { goal: { text: `≤ ${usd(BASIC_MONTHLY_GOAL_USD)}`, met: cost.monthlyUsd <= BASIC_MONTHLY_GOAL_USD } }
      : {}),
  };
}

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
  const standing = await measureStandingCosts(sandbox);
  const basic = standing.find((cost) => cost.plan === 'basic');
  // An invitation secret lives until it is accepted or expires (7 days at most), billed by the hour.
  const invitationUsd = (PRICES.secretMonth.usd * INVITATION_TTL_DAYS) / 30;

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
    ...standing.map(standingFigure),
    {
      label: 'AWS cost per provisioning',
      value: usd(total),
      beside:
        `${BUILD_JOB_MINUTES}-minute build job ${usd(buildJob)} (${round(buildJob / total, 0)}× more); ` +
        `the invitation secret at most ${usd(invitationUsd)} more (until accepted, ${INVITATION_TTL_DAYS} days at most); ` +
        `then ${usd(basic?.monthlyUsd ?? Number.NaN)}/tenant-month standing (basic)`,
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
      monthlyPerTenantUsd: Object.fromEntries(
        standing.map((cost) => [
          cost.plan,
          {
            total: cost.monthlyUsd,
            tenantId: cost.tenantId,
            secrets: { names: cost.secrets, price: PRICES.secretMonth },
            alarmMetrics: { byAlarm: cost.alarmMetrics, price: PRICES.alarmMetricMonth },
            customMetrics: { count: cost.customMetrics, price: PRICES.customMetricMonth },
          },
        ]),
      ),
      invitationSecret: { usdAtMost: invitationUsd, days: INVITATION_TTL_DAYS },
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
