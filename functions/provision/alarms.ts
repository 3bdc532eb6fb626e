import {
  type CloudWatchClient,
  DeleteAlarmsCommand,
  DescribeAlarmsCommand,
  PutMetricAlarmCommand,
  type PutMetricAlarmCommandInput,
} from '@aws-sdk/client-cloudwatch';
import { alarmName, alarmPrefix } from '../../schema/names.ts';
import { PLANS, type PlanLimits, type PlanName } from '../../schema/plans.ts';
import { storageQuotaBytes, TENANT_METRICS_NAMESPACE } from '../usage/quotas.ts';
import { settleAll } from './secrets.ts';

/** A tenant alarm as the plan defines it; actions and tags are added when it is put. */
export type AlarmDefinition = Omit<
  PutMetricAlarmCommandInput,
  'AlarmActions' | 'OKActions' | 'InsufficientDataActions' | 'Tags'
> & { readonly AlarmName: string };

/**
 * The period of the alarms on the usage collector's metrics: its run's period at most (the stage config allows 1 to
 * 5 minutes), so that every period holds a reading and one reading past the threshold is enough.
 */
export const USAGE_ALARM_PERIOD_SECONDS = 300;

/**
 * The tenant's alarms and their thresholds, from its plan and its effective limits (seed 004): storage at 80% of
 * the quota, connections at 80% of the database's limit (both on the usage collector's readings), 5xx above 5% of
 * requests, and, where the plan has a latency objective (enterprise), p99 latency above it (both on the SaaS's own
 * metrics, docs/usage.md). Only plans with `perTenantMonitoring` have alarms of their own: a basic tenant's
 * thresholds are the usage collector's to watch (functions/usage/quotas.ts). The one definition used by
 * provisioning, plan changes and the reconciler.
 */
export function tenantAlarms(tenantId: string, plan: PlanName, limits: PlanLimits): AlarmDefinition[] {
  if (!PLANS[plan].perTenantMonitoring) return [];
  const thresholds = PLANS[plan].alarms;
  const dimensions = [{ Name: 'TenantId', Value: tenantId }];
  const metric = (MetricName: string) => ({
    Namespace: TENANT_METRICS_NAMESPACE,
    MetricName,
    Dimensions: dimensions,
  });
  const alarms: AlarmDefinition[] = [
    {
      AlarmName: alarmName(tenantId, 'storage'),
      AlarmDescription: `Tenant ${tenantId}: storage above ${thresholds.storageRatio * 100}% of its ${limits.storageQuotaGb} GB quota`,
      ...metric('StorageBytes'),
      Statistic: 'Maximum',
      Period: USAGE_ALARM_PERIOD_SECONDS,
      EvaluationPeriods: 1,
      Threshold: Math.round(thresholds.storageRatio * storageQuotaBytes(limits)),
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'notBreaching',
      Unit: 'Bytes',
    },
    {
      AlarmName: alarmName(tenantId, 'connections'),
      AlarmDescription: `Tenant ${tenantId}: database connections above ${thresholds.connectionsRatio * 100}% of its limit of ${limits.maxConnections}`,
      ...metric('DatabaseConnections'),
      Statistic: 'Maximum',
      Period: USAGE_ALARM_PERIOD_SECONDS,
      EvaluationPeriods: 1,
      Threshold: Math.ceil(thresholds.connectionsRatio * limits.maxConnections),
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'notBreaching',
      Unit: 'Count',
    },
    {
      AlarmName: alarmName(tenantId, 'error-rate'),
      AlarmDescription: `Tenant ${tenantId}: 5xx responses above ${thresholds.errorRate * 100}% of requests for 5 minutes`,
      // Metric math: the rate, not a count, so that a busy tenant is not held to a quiet one's numbers.
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
        {
          Id: 'errorRate',
          Expression: 'IF(requests > 0, errors / requests, 0)',
          Label: 'Error rate',
          ReturnData: true,
        },
      ],
      EvaluationPeriods: 1,
      Threshold: thresholds.errorRate,
      ComparisonOperator: 'GreaterThanThreshold',
      TreatMissingData: 'notBreaching',
    },
  ];
  if (thresholds.latencyP99Ms !== undefined) {
    alarms.push({
      AlarmName: alarmName(tenantId, 'latency'),
      AlarmDescription: `Tenant ${tenantId}: p99 latency above ${thresholds.latencyP99Ms} ms for 5 minutes`,
      ...metric('Latency'),
      ExtendedStatistic: 'p99',
      Period: 300,
      EvaluationPeriods: 1,
      Threshold: thresholds.latencyP99Ms,
      ComparisonOperator: 'GreaterThanThreshold',
      TreatMissingData: 'notBreaching',
      Unit: 'Milliseconds',
    });
  }
  return alarms;
}

export interface AlarmDeps {
  readonly cloudWatch: CloudWatchClient;
  readonly topicArn: string;
  readonly stage: string;
}

/**
 * Puts the tenant's alarms (those named in `only`, when given), notifying the stage's topic, tagged;
 * PutMetricAlarm replaces, so it is idempotent.
 */
export async function configureTenantAlarms(
  deps: AlarmDeps,
  tenantId: string,
  plan: PlanName,
  limits: PlanLimits,
  only?: ReadonlySet<string>,
): Promise<string[]> {
  const alarms = tenantAlarms(tenantId, plan, limits).filter((alarm) => !only || only.has(alarm.AlarmName));
  // At once, each alarm independent of the others; every call settles before a failure is reported, so that the
  // undo never runs beside a put still in flight.
  await settleAll(
    alarms.map((alarm) =>
      deps.cloudWatch.send(
        new PutMetricAlarmCommand({
          ...alarm,
          AlarmActions: [deps.topicArn],
          OKActions: [deps.topicArn],
          Tags: [
            { Key: 'TenantId', Value: tenantId },
            { Key: 'Stage', Value: deps.stage },
          ],
        }),
      ),
    ),
  );
  return alarms.map((alarm) => alarm.AlarmName);
}

/** The names of the tenant's alarms that exist, whatever made them. */
export async function existingTenantAlarms(
  cloudWatch: CloudWatchClient,
  tenantId: string,
): Promise<string[]> {
  const names: string[] = [];
  let token: string | undefined;
  do {
    const page = await cloudWatch.send(
      new DescribeAlarmsCommand({
        AlarmNamePrefix: alarmPrefix(tenantId),
        AlarmTypes: ['MetricAlarm', 'CompositeAlarm'],
        NextToken: token,
      }),
    );
    for (const alarm of [...(page.MetricAlarms ?? []), ...(page.CompositeAlarms ?? [])]) {
      if (alarm.AlarmName) names.push(alarm.AlarmName);
    }
    token = page.NextToken;
  } while (token);
  return names;
}

/** DeleteAlarms takes at most 100 names a call. */
const DELETE_BATCH = 100;

/** Deletes every alarm under the tenant's prefix (found by name, not from a record); none is fine. */
export async function removeTenantAlarms(cloudWatch: CloudWatchClient, tenantId: string): Promise<string[]> {
  const names = await existingTenantAlarms(cloudWatch, tenantId);
  for (let i = 0; i < names.length; i += DELETE_BATCH) {
    await cloudWatch.send(new DeleteAlarmsCommand({ AlarmNames: names.slice(i, i + DELETE_BATCH) }));
  }
  return names;
}
