import type { MetricDatum } from '@aws-sdk/client-cloudwatch';
import { PLANS, type PlanLimits, type PlanName } from '../../schema/plans.ts';
import type { TenantUsage } from './measure.ts';

/**
 * What a usage reading means against the tenant's limits: each measure's share of its limit, the quotas and
 * thresholds it is past, the events that announce a crossing, and the metric data the reading is published as.
 * Pure: the collector (./collect.ts) and the API (GET /tenants/{id}/usage) read it the same way.
 */

/** Where the product's per-tenant metrics are published (the usage collector; the SaaS's own, see docs/signals.md). */
export const TENANT_METRICS_NAMESPACE = 'TenantProvisioner/Tenants';

/** `detail-type` of the event a crossed quota puts on the stage's bus. */
export const QUOTA_EXCEEDED = 'Tenant Quota Exceeded';
/**
 * `detail-type` of the event a crossed alarm threshold puts on the bus, for the plans without alarms of their own
 * (`perTenantMonitoring`): the collector is their alarm, and the stage forwards it to the alarm topic.
 */
export const THRESHOLD_CROSSED = 'Tenant Usage Threshold Crossed';

/** The storage quota in bytes: `storageQuotaGb` gibibytes, as the alarms, the plan change and the collector count it. */
export const storageQuotaBytes = (limits: PlanLimits): number => limits.storageQuotaGb * 1024 ** 3;

/** A measure of a reading, its unit, and the limit of the tenant's that counts it (none for the database's size). */
export const MEASURES = {
  storageBytes: { metric: 'StorageBytes', unit: 'Bytes', limit: storageQuotaBytes },
  connections: { metric: 'DatabaseConnections', unit: 'Count', limit: (l: PlanLimits) => l.maxConnections },
  users: { metric: 'Users', unit: 'Count', limit: (l: PlanLimits) => l.maxUsers },
  apiKeys: { metric: 'ApiKeys', unit: 'Count', limit: (l: PlanLimits) => l.maxApiKeys },
  databaseBytes: { metric: 'DatabaseSizeBytes', unit: 'Bytes', limit: undefined },
} as const satisfies Record<
  keyof TenantUsage,
  { metric: string; unit: 'Bytes' | 'Count'; limit: ((limits: PlanLimits) => number) | undefined }
>;
export type Measure = keyof typeof MEASURES;
export const MEASURE_NAMES = Object.keys(MEASURES) as Measure[];

/** The quotas a crossing of which is announced (a database refuses sessions past its limit: none to announce). */
export const QUOTAS = ['storageBytes', 'users', 'apiKeys'] as const satisfies readonly Measure[];
type Quota = (typeof QUOTAS)[number];

/** A measure's reading against its limit. */
export interface Reading {
  readonly used: number;
  readonly unit: 'Bytes' | 'Count';
  readonly limit?: number;
  /** used / limit, rounded to 4 places. */
  readonly share?: number;
}

/** The reading's measures, each against the tenant's limit where one counts it. */
export function readingsOf(
  usage: Partial<TenantUsage>,
  limits: PlanLimits,
): Partial<Record<Measure, Reading>> {
  const readings: Partial<Record<Measure, Reading>> = {};
  for (const name of MEASURE_NAMES) {
    const used = usage[name];
    if (used === undefined) continue;
    const { unit, limit: limitOf } = MEASURES[name];
    const limit = limitOf?.(limits);
    readings[name] =
      limit === undefined
        ? { used, unit }
        : { used, unit, limit, share: limit > 0 ? Math.round((used / limit) * 10_000) / 10_000 : 0 };
  }
  return readings;
}

/**
 * The crossings a reading is past, as keys kept between readings: `quota:<measure>` for a quota used beyond its
 * limit; `threshold:<measure>` for an alarm threshold of the plan reached, on plans the collector watches in place
 * of CloudWatch alarms (storage and connections at the plan's ratios, as `tenantAlarms` sets them elsewhere).
 * A measure not taken this time keeps the crossing it had, so that a missing reading neither announces nor clears.
 */
export function crossingsOf(
  plan: PlanName,
  limits: PlanLimits,
  usage: Partial<TenantUsage>,
  previous: ReadonlySet<string>,
): Set<string> {
  const crossed = new Set<string>();
  const keep = (key: string, measure: Measure, past: (used: number) => boolean) => {
    const used = usage[measure];
    if (used === undefined ? previous.has(key) : past(used)) crossed.add(key);
  };
  for (const quota of QUOTAS) keep(`quota:${quota}`, quota, (used) => used > MEASURES[quota].limit(limits));
  if (!PLANS[plan].perTenantMonitoring) {
    for (const [measure, ratio] of thresholdRatios(plan)) {
      keep(`threshold:${measure}`, measure, (used) => used >= ratio * MEASURES[measure].limit(limits));
    }
  }
  return crossed;
}

function thresholdRatios(plan: PlanName): [Quota | 'connections', number][] {
  const { storageRatio, connectionsRatio } = PLANS[plan].alarms;
  return [
    ['storageBytes', storageRatio],
    ['connections', connectionsRatio],
  ];
}

/** An event to put on the bus: its detail-type and detail. */
export interface UsageEvent {
  readonly detailType: typeof QUOTA_EXCEEDED | typeof THRESHOLD_CROSSED;
  readonly detail: Record<string, unknown>;
}

/**
 * The events of the crossings new since the previous reading (once per crossing: a quota still exceeded at the
 * next reading is not announced again; one that went back under and is crossed again is): what was crossed, the
 * reading, the limit and by how much.
 */
export function crossingEvents(
  tenant: { readonly id: string; readonly plan: PlanName; readonly limits: PlanLimits },
  usage: Partial<TenantUsage>,
  crossed: ReadonlySet<string>,
  previous: ReadonlySet<string>,
  measuredAt: string,
): UsageEvent[] {
  const events: UsageEvent[] = [];
  for (const key of crossed) {
    if (previous.has(key)) continue;
    const [kind, name] = key.split(':') as ['quota' | 'threshold', Measure];
    const used = usage[name];
    const limitOf = MEASURES[name].limit;
    if (used === undefined || limitOf === undefined) continue;
    const limit = limitOf(tenant.limits);
    const common = {
      tenantId: tenant.id,
      plan: tenant.plan,
      measure: name,
      metric: MEASURES[name].metric,
      unit: MEASURES[name].unit,
      used,
      limit,
      share: limit > 0 ? Math.round((used / limit) * 10_000) / 10_000 : 0,
      measuredAt,
    };
    if (kind === 'quota') {
      events.push({ detailType: QUOTA_EXCEEDED, detail: { ...common, over: used - limit } });
    } else {
      const ratio = thresholdRatios(tenant.plan).find(([measure]) => measure === name)?.[1] ?? 1;
      events.push({ detailType: THRESHOLD_CROSSED, detail: { ...common, threshold: ratio } });
    }
  }
  return events;
}

/** The reading as CloudWatch metric data, the tenant as dimension, at the time of the collection. */
export function tenantMetricData(tenantId: string, usage: Partial<TenantUsage>, at: Date): MetricDatum[] {
  return MEASURE_NAMES.flatMap((name): MetricDatum[] => {
    const value = usage[name];
    if (value === undefined) return [];
    const { metric, unit } = MEASURES[name];
    return [
      {
        MetricName: metric,
        Dimensions: [{ Name: 'TenantId', Value: tenantId }],
        Timestamp: at,
        Value: value,
        Unit: unit,
      },
    ];
  });
}

/** The per-tenant metrics a plan publishes, for the cost model: one custom metric each. */
export const tenantMetricCount = (plan: PlanName): number =>
  PLANS[plan].perTenantMonitoring ? MEASURE_NAMES.length : 0;
