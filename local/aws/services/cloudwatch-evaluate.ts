// How a metric alarm's state follows from its datapoints: CloudWatch User Guide, "Using Amazon CloudWatch alarms",
// sections "Evaluating an alarm" and "Configuring how CloudWatch alarms treat missing data" ("How alarm state is
// evaluated when data is missing", with its two example tables, which test/sandbox/cloudwatch-evaluate.unit.test.ts
// replays row by row).

export type AlarmState = 'OK' | 'ALARM' | 'INSUFFICIENT_DATA';
export type TreatMissingData = 'breaching' | 'notBreaching' | 'ignore' | 'missing';
export type ComparisonOperator =
  | 'GreaterThanOrEqualToThreshold'
  | 'GreaterThanThreshold'
  | 'LessThanThreshold'
  | 'LessThanOrEqualToThreshold';

export const STATIC_OPERATORS: readonly ComparisonOperator[] = [
  'GreaterThanOrEqualToThreshold',
  'GreaterThanThreshold',
  'LessThanThreshold',
  'LessThanOrEqualToThreshold',
];

/** One period of the evaluation range: its start and its value, undefined when no datapoint exists. */
export interface Slot {
  readonly t: number;
  readonly value: number | undefined;
  /** The samples behind the value (a percentile's low-sample-count rule reads it). */
  readonly samples?: number;
}

export interface Rule {
  readonly evaluationPeriods: number;
  readonly datapointsToAlarm: number;
  readonly operator: ComparisonOperator;
  readonly threshold: number;
  readonly treatMissingData: TreatMissingData;
}

/** A datapoint the decision rested on; `filled` when it stands for a missing one, as TreatMissingData said. */
export interface Evaluated {
  readonly t: number;
  readonly value?: number;
  readonly breaching: boolean;
  readonly filled: boolean;
  readonly samples?: number;
}

export interface Decision {
  /** The state the data calls for; undefined: keep the current state (`ignore`). */
  readonly state: AlarmState | undefined;
  readonly evaluated: readonly Evaluated[];
}

/**
 * The evaluation range is the periods before the evaluation time. The guide says CloudWatch retrieves more
 * datapoints than Evaluation Periods, how many depending on the period; its examples retrieve 5 for 3 evaluation
 * periods, so the sandbox retrieves Evaluation Periods + 2.
 */
export const rangeLength = (evaluationPeriods: number): number => evaluationPeriods + 2;

export function isBreaching(value: number, operator: ComparisonOperator, threshold: number): boolean {
  switch (operator) {
    case 'GreaterThanOrEqualToThreshold':
      return value >= threshold;
    case 'GreaterThanThreshold':
      return value > threshold;
    case 'LessThanThreshold':
      return value < threshold;
    case 'LessThanOrEqualToThreshold':
      return value <= threshold;
  }
}

/**
 * The state the slots (oldest first) call for. As the guide has it: with at least Evaluation Periods real
 * datapoints in the range, the most recent of them decide and missing data is not considered; with fewer, every
 * real datapoint is evaluated and as few missing ones as needed are filled in by TreatMissingData. ALARM when at
 * least Datapoints to Alarm are breaching, else OK. `missing` and `ignore` fill nothing in: with `missing` the
 * alarm is INSUFFICIENT_DATA when the real datapoints cannot settle the state, with `ignore` it keeps its state;
 * a non-breaching real datapoint settles OK; and, as the first table's last row has it, a breaching oldest
 * datapoint with no non-breaching one settles ALARM with `missing`.
 */
export function decide(slots: readonly Slot[], rule: Rule): Decision {
  const real: Evaluated[] = slots.flatMap((slot) =>
    slot.value === undefined
      ? []
      : [
          {
            t: slot.t,
            value: slot.value,
            breaching: isBreaching(slot.value, rule.operator, rule.threshold),
            filled: false,
            ...(slot.samples === undefined ? {} : { samples: slot.samples }),
          },
        ],
  );
  const n = rule.evaluationPeriods;
  const m = rule.datapointsToAlarm;
  const verdict = (evaluated: readonly Evaluated[]): Decision => ({
    state: evaluated.filter((point) => point.breaching).length >= m ? 'ALARM' : 'OK',
    evaluated,
  });
  if (real.length >= n) return verdict(real.slice(-n));
  if (rule.treatMissingData === 'breaching' || rule.treatMissingData === 'notBreaching') {
    const breaching = rule.treatMissingData === 'breaching';
    // The most recent missing periods are the ones filled in.
    const missing = slots.filter((slot) => slot.value === undefined).slice(-(n - real.length));
    const filled = missing.map((slot) => ({ t: slot.t, breaching, filled: true }));
    return verdict([...real, ...filled].sort((a, b) => a.t - b.t));
  }
  const breachingCount = real.filter((point) => point.breaching).length;
  if (real.length > 0 && (breachingCount >= m || breachingCount < real.length)) return verdict(real);
  if (rule.treatMissingData === 'ignore') return { state: undefined, evaluated: real };
  const oldest = slots[0];
  if (oldest?.value !== undefined && real.length > 0) return { state: 'ALARM', evaluated: real };
  return { state: 'INSUFFICIENT_DATA', evaluated: real };
}

const OPERATOR_TEXT: Record<ComparisonOperator, string> = {
  GreaterThanOrEqualToThreshold: 'greater than or equal to',
  GreaterThanThreshold: 'greater than',
  LessThanThreshold: 'less than',
  LessThanOrEqualToThreshold: 'less than or equal to',
};

/** A number as CloudWatch writes it in reasons (Java's double): `80.0`, `0.25`. */
export const javaDouble = (value: number): string =>
  Number.isInteger(value) && Math.abs(value) < 1e16 ? value.toFixed(1) : String(value);

const pad = (n: number) => String(n).padStart(2, '0');

/** `dd/MM/yy HH:mm:ss` in UTC, as in a state reason's datapoint list. */
function reasonTime(ms: number): string {
  const d = new Date(ms);
  return `${pad(d.getUTCDate())}/${pad(d.getUTCMonth() + 1)}/${pad(d.getUTCFullYear() % 100)} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}

/** `2024-05-01T12:00:00.000+0000`, the time format of StateReasonData and alarm notifications. */
export const cloudWatchTime = (ms: number): string => new Date(ms).toISOString().replace('Z', '+0000');

const plural = (count: number, word: string) => `${count} ${word}${count === 1 ? '' : 's'}`;

/** The StateReason of a transition, worded as CloudWatch words its own. */
export function stateReason(state: AlarmState, decision: Decision, rule: Rule, previous: AlarmState): string {
  const real = decision.evaluated.filter((point) => !point.filled);
  const filled = decision.evaluated.filter((point) => point.filled);
  if (state === 'INSUFFICIENT_DATA') {
    const unknown = rule.evaluationPeriods - real.length;
    return `Insufficient Data: ${plural(unknown, 'datapoint')} ${unknown === 1 ? 'was' : 'were'} unknown.`;
  }
  const breaching = state === 'ALARM';
  const shown = real.filter((point) => point.breaching === breaching).sort((a, b) => b.t - a.t);
  const list = shown.map((point) => `${javaDouble(point.value ?? 0)} (${reasonTime(point.t)})`).join(', ');
  const verb = shown.length === 1 ? 'was' : 'were';
  const relation = `${breaching ? '' : 'not '}${OPERATOR_TEXT[rule.operator]} the threshold (${javaDouble(rule.threshold)})`;
  const counted =
    decision.evaluated.length === 1 || shown.length === decision.evaluated.length
      ? plural(shown.length, 'datapoint')
      : `${shown.length} out of the last ${plural(decision.evaluated.length, 'datapoint')}`;
  const parts: string[] = [];
  if (shown.length > 0) parts.push(`${counted} [${list}] ${verb} ${relation}`);
  if (filled.length > 0) {
    parts.push(
      `no datapoints were received for ${plural(filled.length, 'period')} and ${plural(filled.length, 'missing datapoint')} ${filled.length === 1 ? 'was' : 'were'} treated as [${filled[0]?.breaching ? 'Breaching' : 'NonBreaching'}]`,
    );
  }
  const minimum = breaching ? rule.datapointsToAlarm : rule.evaluationPeriods - rule.datapointsToAlarm + 1;
  const transition =
    decision.evaluated.length > 1
      ? ` (minimum ${plural(minimum, 'datapoint')} for ${previous} -> ${state} transition)`
      : '';
  return `Threshold Crossed: ${parts.join(' and ')}${transition}.`;
}
