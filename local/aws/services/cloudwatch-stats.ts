// CloudWatch statistics over stored metric data ("CloudWatch statistics definitions", CloudWatch User Guide):
// SampleCount, Average, Sum, Minimum, Maximum, and the percentiles pNN / pNN.N.

export const STATISTICS = ['SampleCount', 'Average', 'Sum', 'Minimum', 'Maximum'] as const;
export type Statistic = (typeof STATISTICS)[number];

/** A statistic the sandbox computes: one of the five, or a percentile (0 to 100). */
export type Stat =
  | { readonly kind: 'simple'; readonly name: Statistic }
  | { readonly kind: 'percentile'; readonly p: number; readonly name: string };

/**
 * One PutMetricData datum as kept: its statistic set and, for a Value or Values (+Counts) datum, its raw values
 * with their counts, from which percentiles are exact. A StatisticValues datum has no raw values.
 */
export interface StoredDatum {
  readonly t: number;
  readonly unit: string;
  readonly count: number;
  readonly sum: number;
  readonly min: number;
  readonly max: number;
  /** [value, count] pairs. */
  readonly raw?: readonly (readonly [number, number])[];
}

const PERCENTILE = /^p(\d{1,2}(\.\d{1,10})?|100(\.0{1,10})?)$/;

const isStatistic = (value: string): value is Statistic => (STATISTICS as readonly string[]).includes(value);

/** The statistic a `Stat` or `ExtendedStatistic` names, or undefined when the sandbox does not compute it. */
export function parseStat(text: string): Stat | undefined {
  if (isStatistic(text)) return { kind: 'simple', name: text };
  if (PERCENTILE.test(text)) return { kind: 'percentile', p: Number(text.slice(1)), name: text };
  return undefined;
}

/**
 * The raw values a datum stands for, when it has them. "Percentiles" (CloudWatch User Guide, "CloudWatch statistics
 * definitions"): of data published as a statistic set, percentiles are available only when SampleCount is 1 or
 * Minimum equals Maximum (then Sum must be Minimum × SampleCount): every value in the set is known.
 */
function rawValues(datum: StoredDatum): readonly (readonly [number, number])[] | undefined {
  if (datum.raw) return datum.raw;
  if (datum.min === datum.max && datum.sum === datum.min * datum.count) return [[datum.min, datum.count]];
  return undefined;
}

/** How many samples a period's percentile rests on (for EvaluateLowSampleCountPercentile). */
export const sampleCount = (points: readonly StoredDatum[]): number =>
  points.reduce((total, point) => total + point.count, 0);

/**
 * The statistic of one period's data; undefined when the period has no data or, for a percentile, when some of
 * its data are statistic sets whose values are not known. Percentiles are exact, by the nearest-rank method.
 */
export function statisticOf(points: readonly StoredDatum[], stat: Stat): number | undefined {
  if (points.length === 0) return undefined;
  if (stat.kind === 'percentile') {
    const raw: (readonly [number, number])[] = [];
    for (const point of points) {
      const values = rawValues(point);
      if (!values) return undefined;
      raw.push(...values);
    }
    raw.sort(([a], [b]) => a - b);
    const total = raw.reduce((sum, [, count]) => sum + count, 0);
    if (total <= 0) return undefined;
    const rank = Math.max(1, Math.ceil((stat.p / 100) * total));
    let seen = 0;
    for (const [value, count] of raw) {
      seen += count;
      if (seen >= rank) return value;
    }
    return raw.at(-1)?.[0];
  }
  const count = sampleCount(points);
  const sum = points.reduce((total, point) => total + point.sum, 0);
  switch (stat.name) {
    case 'SampleCount':
      return count;
    case 'Sum':
      return sum;
    case 'Average':
      return count === 0 ? undefined : sum / count;
    case 'Minimum':
      return Math.min(...points.map((point) => point.min));
    case 'Maximum':
      return Math.max(...points.map((point) => point.max));
  }
}

/** The data grouped by period (aligned on the epoch), in time order. */
export function byPeriod(points: readonly StoredDatum[], periodMs: number): Map<number, StoredDatum[]> {
  const buckets = new Map<number, StoredDatum[]>();
  for (const point of points) {
    const start = Math.floor(point.t / periodMs) * periodMs;
    const bucket = buckets.get(start);
    if (bucket) bucket.push(point);
    else buckets.set(start, [point]);
  }
  return new Map([...buckets.entries()].sort(([a], [b]) => a - b));
}

/** One value per period that has one, in time order. */
export function aggregate(points: readonly StoredDatum[], periodMs: number, stat: Stat): Map<number, number> {
  const series = new Map<number, number>();
  for (const [start, bucket] of byPeriod(points, periodMs)) {
    const value = statisticOf(bucket, stat);
    if (value !== undefined) series.set(start, value);
  }
  return series;
}
