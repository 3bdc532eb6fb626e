import { type CloudWatchClient, type MetricDatum, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { PLAN_NAMES, PLANS, type PlanName } from '../../schema/plans.ts';
import * as z from '../../schema/zod.ts';
import { type Announcer, announceAll } from '../shared/events.ts';
import { type MeasureDeps, measureTenants } from './measure.ts';
import {
  crossingEvents,
  crossingsOf,
  MEASURE_NAMES,
  MEASURES,
  TENANT_METRICS_NAMESPACE,
  tenantMetricData,
  type UsageEvent,
} from './quotas.ts';
import type { UsageRecord, UsageStore } from './store.ts';

/** Tenants a chunk of a collection measures: one invocation of CollectUsage. */
export const CHUNK_SIZE = 100;

/**
 * CloudWatch API Reference, PutMetricData: "Each PutMetricData request is limited to 1 MB in size for HTTP POST
 * requests" and "up to 1000 different metrics" per request. A datum here is well under 1 KB.
 */
const METRIC_DATA_PER_CALL = 1000;

/** A collection run's input: the time it is for (EventBridge Scheduler's `<aws.scheduler.scheduled-time>`). */
export const RunInput = z.object({ scheduledTime: z.optional(z.iso.datetime({ offset: true })) });

/** A chunk's input: the run's time and a range of tenant ids. */
export const ChunkInput = z.object({
  measuredAt: z.iso.datetime({ offset: true }),
  from: z.string(),
  to: z.string(),
});
export type ChunkInput = z.infer<typeof ChunkInput>;

/**
 * The run's plan: its time (the schedule's, so that a run started late still reports for its slot; now for a run
 * started by hand) and the active tenants cut into chunks of ids.
 */
export async function planCollection(
  store: UsageStore,
  input: z.infer<typeof RunInput>,
  now = new Date(),
): Promise<{ measuredAt: string; tenants: number; chunks: { from: string; to: string }[] }> {
  const measuredAt = new Date(input.scheduledTime ?? now).toISOString();
  return { measuredAt, ...(await store.chunks(CHUNK_SIZE)) };
}

export interface CollectDeps extends MeasureDeps, Announcer {
  readonly store: UsageStore;
  readonly cloudWatch: CloudWatchClient;
}

/** What a chunk did, for the execution's output. */
export interface ChunkResult {
  readonly tenants: number;
  /** Tenants with at least one measure left out, and why (first few). */
  readonly incomplete: number;
  readonly problems: readonly string[];
  readonly metricData: number;
  readonly events: number;
}

/**
 * Measures a chunk's tenants (./measure.ts), publishes the readings (per tenant for the plans that have
 * `perTenantMonitoring`; the fleet's sums per plan always), announces the crossings new since the last reading,
 * and records the readings, in that order: a failure before the record leaves the previous reading (and its
 * crossings) in place, so that the retried chunk announces what it has not recorded as announced; announcing is at
 * least once.
 */
export async function collectChunk(deps: CollectDeps, input: ChunkInput): Promise<ChunkResult> {
  const tenants = await deps.store.tenantsBetween(input.from, input.to);
  const measurements = await measureTenants(
    deps,
    tenants.map((tenant) => tenant.id),
  );
  const at = new Date(input.measuredAt);
  const records: UsageRecord[] = [];
  const events: UsageEvent[] = [];
  const data: MetricDatum[] = [];
  const sums = new Map<PlanName, Map<string, number>>();
  for (const tenant of tenants) {
    const { usage, problems } = measurements.get(tenant.id) ?? { usage: {}, problems: [] };
    const crossed = crossingsOf(tenant.plan, tenant.limits, usage, tenant.crossed);
    events.push(...crossingEvents(tenant, usage, crossed, tenant.crossed, input.measuredAt));
    records.push({
      tenantId: tenant.id,
      measuredAt: input.measuredAt,
      usage,
      crossed: [...crossed],
      problems,
    });
    if (PLANS[tenant.plan].perTenantMonitoring) data.push(...tenantMetricData(tenant.id, usage, at));
    const sum = sums.get(tenant.plan) ?? new Map<string, number>();
    sums.set(tenant.plan, sum);
    sum.set('Tenants', (sum.get('Tenants') ?? 0) + 1);
    sum.set('QuotasExceeded', (sum.get('QuotasExceeded') ?? 0) + [...crossed].filter(isQuota).length);
    for (const name of MEASURE_NAMES) {
      const metric = MEASURES[name].metric;
      sum.set(metric, (sum.get(metric) ?? 0) + (usage[name] ?? 0));
    }
  }
  data.push(...planSums(sums, at));
  for (let i = 0; i < data.length; i += METRIC_DATA_PER_CALL) {
    await deps.cloudWatch.send(
      new PutMetricDataCommand({
        Namespace: TENANT_METRICS_NAMESPACE,
        MetricData: data.slice(i, i + METRIC_DATA_PER_CALL),
      }),
    );
  }
  await announceAll(deps, events);
  await deps.store.record(records);
  const incomplete = records.filter((record) => record.problems.length > 0);
  return {
    tenants: tenants.length,
    incomplete: incomplete.length,
    problems: incomplete
      .slice(0, 5)
      .map((record) => `${record.tenantId}: ${record.problems.map((p) => p.reason).join('; ')}`),
    metricData: data.length,
    events: events.length,
  };
}

const isQuota = (key: string) => key.startsWith('quota:');

/** The metrics of the fleet's sums per plan. */
const PLAN_SUMS = ['Tenants', 'QuotasExceeded', ...MEASURE_NAMES.map((name) => MEASURES[name].metric)];

/**
 * The fleet's sums per plan (`Plan` dimension): tenants measured, quotas exceeded, and each measure summed; a plan
 * without a tenant in the chunk puts zeros, so that a dashboard shows 0 rather than a gap. Each chunk puts its part
 * at the run's time: the `Sum` statistic over the collection period adds the chunks up.
 */
function planSums(sums: ReadonlyMap<PlanName, ReadonlyMap<string, number>>, at: Date): MetricDatum[] {
  return PLAN_NAMES.flatMap((plan) =>
    PLAN_SUMS.map((metric) => ({
      MetricName: metric,
      Dimensions: [{ Name: 'Plan', Value: plan }],
      Timestamp: at,
      Value: sums.get(plan)?.get(metric) ?? 0,
      Unit: metric.endsWith('Bytes') ? ('Bytes' as const) : ('Count' as const),
    })),
  );
}

/** The run's end: how many tenants and chunks; a chunk that failed fails the run, which alarms. */
export function finishCollection(results: readonly (ChunkResult | { readonly failed: string })[]): {
  tenants: number;
  incomplete: number;
  chunks: number;
} {
  const failed = results.filter((result): result is { failed: string } => 'failed' in result);
  if (failed.length > 0) {
    const error = new Error(
      `${failed.length} of ${results.length} chunks of the usage collection failed: ${failed
        .slice(0, 3)
        .map((result) => result.failed)
        .join('; ')}`,
    );
    error.name = 'UsageCollectionIncomplete';
    throw error;
  }
  const done = results as readonly ChunkResult[];
  return {
    tenants: done.reduce((sum, result) => sum + result.tenants, 0),
    incomplete: done.reduce((sum, result) => sum + result.incomplete, 0),
    chunks: done.length,
  };
}
