import { createHash, randomUUID } from 'node:crypto';
import { z } from 'zod';
import {
  AwsError,
  type HttpRequest,
  type JsonObject,
  jsonService,
  type ServiceHandler,
} from '../protocol.ts';
import { queryProtocol, timestampSchema } from '../query.ts';
import { json } from '../server.ts';
import {
  type AlarmState,
  type ComparisonOperator,
  cloudWatchTime,
  type Decision,
  decide,
  type Rule,
  rangeLength,
  type Slot,
  STATIC_OPERATORS,
  stateReason,
} from './cloudwatch-evaluate.ts';
import {
  type Expr,
  ExpressionError,
  evaluateExpression,
  parseExpression,
  referencedIds,
  type Series,
} from './cloudwatch-math.ts';
import {
  aggregate,
  byPeriod,
  parseStat,
  STATISTICS,
  type Stat,
  type StoredDatum,
  sampleCount,
  statisticOf,
} from './cloudwatch-stats.ts';
import { KeyedLock, offsetToken, parseInput, type ServiceDeps } from './deps.ts';

// CloudWatch speaks awsJson1.0 but keeps the error codes of its query protocol, which it serves as well; the SDK
// maps them to its exception classes through `x-amzn-query-error` (ValidationError -> ValidationException, and so on).
const VALIDATION = 'ValidationError';
const missing = (name: string) => new AwsError('MissingParameter', `The parameter ${name} is required.`);
const invalidValue = (message: string) => new AwsError('InvalidParameterValue', message);
const invalidCombination = (message: string) => new AwsError('InvalidParameterCombination', message);
const notFound = (message: string) => new AwsError('ResourceNotFound', message, 404);

const UNITS = [
  'Seconds',
  'Microseconds',
  'Milliseconds',
  'Bytes',
  'Kilobytes',
  'Megabytes',
  'Gigabytes',
  'Terabytes',
  'Bits',
  'Kilobits',
  'Megabits',
  'Gigabits',
  'Terabits',
  'Percent',
  'Count',
  'Bytes/Second',
  'Kilobytes/Second',
  'Megabytes/Second',
  'Gigabytes/Second',
  'Terabytes/Second',
  'Bits/Second',
  'Kilobits/Second',
  'Megabits/Second',
  'Gigabits/Second',
  'Terabits/Second',
  'Count/Second',
  'None',
] as const;
const STATES = ['OK', 'ALARM', 'INSUFFICIENT_DATA'] as const;

const nameSchema = z.string().min(1).max(255);
const dimensionsSchema = z.array(z.object({ Name: nameSchema, Value: z.string().min(1).max(1024) })).max(30);
const unitSchema = z.enum(UNITS);
const tagsSchema = z.array(z.object({ Key: z.string().min(1).max(128), Value: z.string().max(256) })).max(50);
const actionsSchema = z.array(z.string().min(1).max(1024)).max(5);
const alarmNamesSchema = z.array(nameSchema).max(100);

const metricSchema = z.object({
  Namespace: nameSchema.optional(),
  MetricName: nameSchema.optional(),
  Dimensions: dimensionsSchema.optional(),
});
const queriesSchema = z
  .array(
    z.object({
      Id: z
        .string()
        .min(1)
        .max(255)
        .regex(/^[a-z][a-zA-Z0-9_]*$/, 'Id must start with a lower-case letter, then letters, digits or _'),
      MetricStat: z
        .object({
          Metric: metricSchema,
          Period: z.number().int().min(1),
          Stat: z.string().min(1),
          Unit: unitSchema.optional(),
        })
        .optional(),
      Expression: z.string().min(1).max(2048).optional(),
      Label: z.string().optional(),
      ReturnData: z.boolean().optional(),
      Period: z.number().int().min(1).optional(),
      AccountId: z.string().optional(),
    }),
  )
  .max(500);
type MetricDataQuery = z.infer<typeof queriesSchema>[number];

const putAlarmSchema = z.object({
  AlarmName: nameSchema,
  AlarmDescription: z.string().max(1024).optional(),
  ActionsEnabled: z.boolean().optional(),
  OKActions: actionsSchema.optional(),
  AlarmActions: actionsSchema.optional(),
  InsufficientDataActions: actionsSchema.optional(),
  MetricName: nameSchema.optional(),
  Namespace: nameSchema.optional(),
  Statistic: z.enum(STATISTICS).optional(),
  ExtendedStatistic: z.string().optional(),
  Dimensions: dimensionsSchema.optional(),
  Period: z.number().int().min(1).optional(),
  Unit: unitSchema.optional(),
  EvaluationPeriods: z.number().int().min(1).optional(),
  DatapointsToAlarm: z.number().int().min(1).optional(),
  Threshold: z.number().optional(),
  ComparisonOperator: z
    .enum([
      'GreaterThanOrEqualToThreshold',
      'GreaterThanThreshold',
      'LessThanThreshold',
      'LessThanOrEqualToThreshold',
      'LessThanLowerOrGreaterThanUpperThreshold',
      'LessThanLowerThreshold',
      'GreaterThanUpperThreshold',
    ])
    .optional(),
  TreatMissingData: z.enum(['breaching', 'notBreaching', 'ignore', 'missing']).optional(),
  EvaluateLowSampleCountPercentile: z.enum(['evaluate', 'ignore']).optional(),
  Metrics: queriesSchema.optional(),
  Tags: tagsSchema.optional(),
  ThresholdMetricId: nameSchema.optional(),
});
type AlarmConfig = Omit<z.infer<typeof putAlarmSchema>, 'Tags' | 'ActionsEnabled'>;

const describeAlarmsSchema = z.object({
  AlarmNames: alarmNamesSchema.optional(),
  AlarmNamePrefix: nameSchema.optional(),
  AlarmTypes: z.array(z.enum(['CompositeAlarm', 'MetricAlarm', 'LogAlarm'])).optional(),
  ChildrenOfAlarmName: nameSchema.optional(),
  ParentsOfAlarmName: nameSchema.optional(),
  StateValue: z.enum(STATES).optional(),
  ActionPrefix: z.string().min(1).max(1024).optional(),
  MaxRecords: z.number().int().min(1).max(100).optional(),
  NextToken: z.string().optional(),
});
const alarmNamesInputSchema = z.object({ AlarmNames: alarmNamesSchema.optional() });
const setStateSchema = z.object({
  AlarmName: nameSchema,
  StateValue: z.enum(STATES),
  StateReason: z.string().max(1023),
  StateReasonData: z.string().max(4000).optional(),
});
const resourceArnSchema = z.object({ ResourceARN: z.string().min(1).max(1024) });
const tagResourceSchema = resourceArnSchema.extend({ Tags: tagsSchema });
const untagResourceSchema = resourceArnSchema.extend({ TagKeys: z.array(z.string().min(1).max(128)) });

const putMetricDataSchema = z.object({
  Namespace: nameSchema.optional(),
  MetricData: z
    .array(
      z.object({
        MetricName: nameSchema,
        Dimensions: dimensionsSchema.optional(),
        Timestamp: timestampSchema().optional(),
        Value: z.number().optional(),
        StatisticValues: z
          .object({ SampleCount: z.number(), Sum: z.number(), Minimum: z.number(), Maximum: z.number() })
          .optional(),
        Values: z.array(z.number()).max(150).optional(),
        Counts: z.array(z.number()).max(150).optional(),
        Unit: unitSchema.optional(),
        StorageResolution: z.number().int().min(1).optional(),
      }),
    )
    .max(1000)
    .optional(),
});
type MetricDatum = NonNullable<z.infer<typeof putMetricDataSchema>['MetricData']>[number];

const describeHistorySchema = z.object({
  AlarmName: nameSchema.optional(),
  AlarmContributorId: z.string().optional(),
  AlarmTypes: z.array(z.enum(['CompositeAlarm', 'MetricAlarm'])).optional(),
  HistoryItemType: z
    .enum([
      'ConfigurationUpdate',
      'StateUpdate',
      'Action',
      'AlarmContributorStateUpdate',
      'AlarmContributorAction',
    ])
    .optional(),
  StartDate: timestampSchema().optional(),
  EndDate: timestampSchema().optional(),
  MaxRecords: z.number().int().min(1).max(100).optional(),
  NextToken: z.string().optional(),
  ScanBy: z.enum(['TimestampDescending', 'TimestampAscending']).optional(),
});

const evaluateControlSchema = z.object({
  time: z.iso.datetime({ offset: true }).optional(),
  alarmNames: z.array(nameSchema).optional(),
});

const getMetricDataSchema = z.object({
  MetricDataQueries: queriesSchema.min(1),
  StartTime: timestampSchema(),
  EndTime: timestampSchema(),
  NextToken: z.string().optional(),
  ScanBy: z.enum(['TimestampDescending', 'TimestampAscending']).optional(),
  MaxDatapoints: z.number().int().min(1).optional(),
});

interface Tag {
  readonly Key: string;
  readonly Value: string;
}

/** A metric alarm as the store keeps it, keyed by name; times in epoch milliseconds. */
interface StoredAlarm {
  readonly arn: string;
  readonly config: AlarmConfig;
  readonly configUpdated: number;
  readonly actionsEnabled: boolean;
  /** The time of its last evaluation: one as of an earlier time is skipped (see `evaluate`). */
  readonly evaluatedAt?: number;
  readonly state: {
    readonly value: AlarmState;
    readonly reason: string;
    readonly reasonData?: string;
    readonly updated: number;
    readonly transitioned: number;
  };
  readonly tags: readonly Tag[];
}

type HistoryItemType = 'ConfigurationUpdate' | 'StateUpdate' | 'Action';

/** One alarm history item, keyed `<hash of the alarm name>/<time>/<id>`. */
interface StoredHistory {
  readonly alarmName: string;
  readonly t: number;
  readonly type: HistoryItemType;
  readonly summary: string;
  readonly data: string;
}

/** A state change an evaluation made, as the evaluate control answers it. */
export interface Transition {
  readonly alarmName: string;
  readonly oldState: AlarmState;
  readonly newState: AlarmState;
  readonly reason: string;
  readonly timestamp: string;
}

/** Publishes an alarm notification to an SNS topic (sns.ts `publish`); throws the AwsError SNS would answer. */
export type PublishToTopic = (topicArn: string, message: string, subject: string) => Promise<string>;

export interface CloudWatchOptions {
  /** How often every alarm is evaluated as of the wall clock; AWS evaluates each minute. 0: never by timer. */
  readonly evaluationIntervalMs?: number;
  /** Carries out an SNS action; without it, SNS actions fail as a topic that does not exist would. */
  readonly publish?: PublishToTopic;
}

export interface CloudWatchService extends ServiceHandler {
  /**
   * PutMetricData as the API answers it (same checks, same AwsErrors, same datum store): CloudWatch Logs puts the
   * metrics of embedded metric format events through it (logs.ts).
   */
  putMetricData(input: JsonObject): Promise<void>;
}

const DESCRIBE_ALARMS_PAGE = 50;
const HISTORY_PAGE = 100;
const MINUTE = 60_000;

/**
 * CloudWatch (awsJson1.0 with query-compatible errors, and the query protocol by the same operations): metric
 * alarms, their evaluation on the metric data put to them (cloudwatch-evaluate.ts), their SNS actions, their
 * history, and metric data with metric math. Alarms are evaluated on a timer as of the wall clock, and as of any
 * later time at `POST /_sandbox/cloudwatch/evaluate` (a simulated clock for tests).
 */
export function createCloudWatch(
  { store, region, accountId }: ServiceDeps,
  options: CloudWatchOptions = {},
): CloudWatchService {
  const alarms = store.collection<StoredAlarm>('cloudwatch', 'alarm');
  const data = store.collection<StoredDatum>('cloudwatch', 'datum');
  const history = store.collection<StoredHistory>('cloudwatch', 'history');
  const lock = new KeyedLock();
  const alarmArnPrefix = `arn:aws:cloudwatch:${region}:${accountId}:alarm:`;

  async function record(
    alarmName: string,
    t: number,
    type: HistoryItemType,
    summary: string,
    detail: unknown,
  ) {
    await history.put(`${hashOf(alarmName)}/${timeKey(t)}/${randomUUID()}`, {
      alarmName,
      t,
      type,
      summary,
      data: JSON.stringify(detail),
    });
  }

  /** Applies a change to each named alarm that exists; AWS passes over unknown names in these calls. */
  async function updateAlarms(
    names: readonly string[],
    change: (alarm: StoredAlarm) => StoredAlarm,
  ): Promise<void> {
    await Promise.all(
      names.map((name) =>
        lock.run(name, async () => {
          const alarm = await alarms.get(name);
          if (alarm) await alarms.put(name, change(alarm));
        }),
      ),
    );
  }

  async function putMetricAlarm(raw: JsonObject): Promise<undefined> {
    const { Tags, ActionsEnabled, ...config } = parseInput(putAlarmSchema, raw, VALIDATION);
    validateAlarm(config);
    await lock.run(config.AlarmName, async () => {
      const existing = await alarms.get(config.AlarmName);
      const now = Date.now();
      await record(
        config.AlarmName,
        now,
        'ConfigurationUpdate',
        `Alarm "${config.AlarmName}" ${existing ? 'updated' : 'created'}`,
        existing
          ? { version: '1.0', type: 'Update', updatedAlarm: config }
          : { version: '1.0', type: 'Create', createdAlarm: config },
      );
      // Updating an alarm replaces its configuration but keeps its state and tags, as on AWS.
      await alarms.put(config.AlarmName, {
        arn: `${alarmArnPrefix}${config.AlarmName}`,
        config,
        configUpdated: now,
        actionsEnabled: ActionsEnabled ?? true,
        ...(existing?.evaluatedAt === undefined ? {} : { evaluatedAt: existing.evaluatedAt }),
        state: existing?.state ?? {
          value: 'INSUFFICIENT_DATA',
          reason: 'Unchecked: Initial alarm creation',
          updated: now,
          transitioned: now,
        },
        tags: existing?.tags ?? Tags ?? [],
      });
    });
    return undefined;
  }

  async function describeAlarms(raw: JsonObject): Promise<JsonObject> {
    const input = parseInput(describeAlarmsSchema, raw, VALIDATION);
    if (input.AlarmNames && input.AlarmNamePrefix !== undefined) {
      throw invalidCombination('AlarmNamePrefix and AlarmNames.member are mutually exclusive');
    }
    const after = input.NextToken === undefined ? '' : nameToken.decode(input.NextToken);
    const wantsMetricAlarms = !input.AlarmTypes || input.AlarmTypes.includes('MetricAlarm');
    // Only metric alarms exist here: composite-alarm queries find nothing.
    const relational = input.ChildrenOfAlarmName !== undefined || input.ParentsOfAlarmName !== undefined;
    const candidates =
      !wantsMetricAlarms || relational
        ? []
        : input.AlarmNames
          ? await namedAlarms(input.AlarmNames)
          : await alarms.list({ prefix: input.AlarmNamePrefix });
    const matching = candidates
      .filter(({ key }) => key > after)
      .filter(({ doc }) => input.StateValue === undefined || doc.state.value === input.StateValue)
      .filter(
        ({ doc }) => input.ActionPrefix === undefined || hasActionWithPrefix(doc.config, input.ActionPrefix),
      );
    const page = matching.slice(0, input.MaxRecords ?? DESCRIBE_ALARMS_PAGE);
    const last = page.at(-1);
    return {
      MetricAlarms: page.map(({ doc }) => metricAlarm(doc)),
      CompositeAlarms: input.AlarmTypes?.includes('CompositeAlarm') ? [] : undefined,
      NextToken: last && page.length < matching.length ? nameToken.encode(last.key) : undefined,
    };
  }

  async function namedAlarms(names: readonly string[]) {
    const unique = [...new Set(names)].sort(compareStrings);
    const found = await Promise.all(unique.map(async (key) => ({ key, doc: await alarms.get(key) })));
    return found.flatMap(({ key, doc }) => (doc ? [{ key, doc }] : []));
  }

  async function deleteAlarms(raw: JsonObject): Promise<undefined> {
    const names = requiredNames(raw);
    await Promise.all(names.map((name) => lock.run(name, () => alarms.delete(name))));
    return undefined;
  }

  const setActionsEnabled =
    (actionsEnabled: boolean) =>
    async (raw: JsonObject): Promise<undefined> => {
      await updateAlarms(requiredNames(raw), (alarm) => ({ ...alarm, actionsEnabled }));
      return undefined;
    };

  async function setAlarmState(raw: JsonObject): Promise<undefined> {
    const input = parseInput(setStateSchema, raw, VALIDATION);
    if (input.StateReasonData !== undefined && !isJson(input.StateReasonData)) {
      throw new AwsError('InvalidFormat', 'StateReasonData was not syntactically valid JSON');
    }
    // SetAlarmState (API Reference): "When the updated state differs from the previous value, the action configured
    // for the appropriate state is invoked"; the next evaluation sets the state the data calls for.
    await lock.run(input.AlarmName, async () => {
      const alarm = await alarms.get(input.AlarmName);
      if (!alarm) throw notFound(`Alarm ${input.AlarmName} not found`);
      await changeState(alarm, Date.now(), {
        value: input.StateValue,
        reason: input.StateReason,
        reasonData: input.StateReasonData,
      });
    });
    return undefined;
  }

  /** The alarm a tagging call names by ARN; alarms are the only taggable resources here. */
  function alarmNameOf(arn: string): string {
    if (!arn.startsWith(alarmArnPrefix)) {
      throw new AwsError('ResourceNotFoundException', `The resource ${arn} does not exist.`, 404);
    }
    return arn.slice(alarmArnPrefix.length);
  }

  async function retag(arn: string, change: (tags: readonly Tag[]) => readonly Tag[]): Promise<void> {
    const name = alarmNameOf(arn);
    await lock.run(name, async () => {
      const alarm = await alarms.get(name);
      if (!alarm) throw new AwsError('ResourceNotFoundException', `The resource ${arn} does not exist.`, 404);
      await alarms.put(name, { ...alarm, tags: change(alarm.tags) });
    });
  }

  // TagResource and UntagResource have an (empty) output structure, unlike PutMetricAlarm and the others.
  async function tagResource(raw: JsonObject): Promise<JsonObject> {
    const input = parseInput(tagResourceSchema, raw, VALIDATION);
    const keys = new Set(input.Tags.map((tag) => tag.Key));
    await retag(input.ResourceARN, (tags) => [...tags.filter((tag) => !keys.has(tag.Key)), ...input.Tags]);
    return {};
  }

  async function untagResource(raw: JsonObject): Promise<JsonObject> {
    const input = parseInput(untagResourceSchema, raw, VALIDATION);
    await retag(input.ResourceARN, (tags) => tags.filter((tag) => !input.TagKeys.includes(tag.Key)));
    return {};
  }

  async function listTagsForResource(raw: JsonObject): Promise<JsonObject> {
    const { ResourceARN } = parseInput(resourceArnSchema, raw, VALIDATION);
    const alarm = await alarms.get(alarmNameOf(ResourceARN));
    if (!alarm)
      throw new AwsError('ResourceNotFoundException', `The resource ${ResourceARN} does not exist.`, 404);
    return { Tags: alarm.tags };
  }

  async function putMetricData(raw: JsonObject): Promise<undefined> {
    const input = parseInput(putMetricDataSchema, raw, VALIDATION);
    if (input.Namespace === undefined) throw missing('Namespace');
    if (input.Namespace.startsWith('AWS/')) {
      throw invalidValue(`The value ${input.Namespace} for parameter Namespace is invalid.`);
    }
    if (!input.MetricData?.length) throw missing('MetricData');
    const namespace = input.Namespace;
    const now = Date.now();
    checkTimestamps(input.MetricData, now);
    const rows = input.MetricData.map((datum, index) => {
      const stats = statisticSet(datum, `MetricData.member.${index + 1}`);
      const t = datum.Timestamp === undefined ? now : Math.round(datum.Timestamp * 1000);
      const key = `${metricKey(namespace, datum.MetricName, datum.Dimensions)}/${timeKey(t)}/${randomUUID()}`;
      return { key, doc: { t, unit: datum.Unit ?? 'None', ...stats } };
    });
    await data.putMany(rows);
    return undefined;
  }

  async function getMetricData(raw: JsonObject): Promise<JsonObject> {
    const input = parseInput(getMetricDataSchema, raw, VALIDATION);
    // Every answer here is one page (no NextToken is ever handed out), so any token is not one of ours.
    if (input.NextToken !== undefined) throw invalidNextToken();
    if (input.StartTime >= input.EndTime) {
      throw new AwsError(VALIDATION, 'The parameter StartTime must be less than the parameter EndTime.');
    }
    const start = Math.round(input.StartTime * 1000);
    const end = Math.round(input.EndTime * 1000);
    const descending = (input.ScanBy ?? 'TimestampDescending') === 'TimestampDescending';
    const all = await querySeries(compileQueries(input.MetricDataQueries), start, end);
    const results = input.MetricDataQueries.filter((query) => query.ReturnData !== false).map((query) => {
      const points = [...(all.get(query.Id) ?? new Map<number, number>())].filter(
        ([t]) => t >= start && t < end,
      );
      if (descending) points.reverse();
      return {
        Id: query.Id,
        Label: query.Label ?? query.MetricStat?.Metric.MetricName ?? query.Id,
        Timestamps: points.map(([t]) => new Date(t)),
        Values: points.map(([, value]) => value),
        StatusCode: 'Complete',
      };
    });
    return { MetricDataResults: results, Messages: [] };
  }

  /** The series of every query in [start, end): metric queries from the data, then expressions in order of need. */
  async function querySeries(
    queries: CompiledQueries,
    start: number,
    end: number,
  ): Promise<Map<string, Series>> {
    const series = new Map<string, Series>();
    await Promise.all(
      queries.metrics.map(async ({ id, stat }) => {
        const { Namespace = '', MetricName = '', Dimensions } = stat.Metric;
        const points = await datapoints(metricKey(Namespace, MetricName, Dimensions), start, end);
        series.set(
          id,
          aggregate(
            points.filter((point) => stat.Unit === undefined || point.unit === stat.Unit),
            stat.Period * 1000,
            stat.parsed,
          ),
        );
      }),
    );
    for (const { id, expr } of queries.expressions) {
      const value = evaluateExpression(expr, series);
      if (typeof value === 'number') {
        throw new AwsError(VALIDATION, `The expression of ${id} must return a time series, not a number.`);
      }
      series.set(id, value);
    }
    return series;
  }

  /** The data of one metric in [start, end), in time order. */
  async function datapoints(metric: string, start: number, end: number): Promise<StoredDatum[]> {
    const points: StoredDatum[] = [];
    let after = `${metric}/${timeKey(start)}`;
    for (;;) {
      const page = await data.list({ prefix: `${metric}/`, after, limit: 1000 });
      for (const { doc } of page) {
        if (doc.t >= end) return points;
        points.push(doc);
      }
      const last = page.at(-1);
      if (!last || page.length < 1000) return points;
      after = last.key;
    }
  }

  async function describeAlarmHistory(raw: JsonObject): Promise<JsonObject> {
    const input = parseInput(describeHistorySchema, raw, VALIDATION);
    const offset = input.NextToken === undefined ? 0 : offsetToken.decode(input.NextToken);
    if (offset === undefined) throw invalidNextToken();
    const wantsMetricAlarms = !input.AlarmTypes || input.AlarmTypes.includes('MetricAlarm');
    const start = input.StartDate === undefined ? -Infinity : input.StartDate * 1000;
    const end = input.EndDate === undefined ? Infinity : input.EndDate * 1000;
    const items = !wantsMetricAlarms
      ? []
      : (await history.list(input.AlarmName === undefined ? {} : { prefix: `${hashOf(input.AlarmName)}/` }))
          .map(({ doc }) => doc)
          .filter(
            (item) =>
              (input.HistoryItemType === undefined || item.type === input.HistoryItemType) &&
              item.t >= start &&
              item.t <= end,
          );
    const ascending = input.ScanBy === 'TimestampAscending';
    items.sort((a, b) => (ascending ? a.t - b.t : b.t - a.t));
    const limit = input.MaxRecords ?? HISTORY_PAGE;
    const page = items.slice(offset, offset + limit);
    return {
      AlarmHistoryItems: page.map((item) => ({
        AlarmName: item.alarmName,
        AlarmType: 'MetricAlarm',
        Timestamp: new Date(item.t),
        HistoryItemType: item.type,
        HistorySummary: item.summary,
        HistoryData: item.data,
      })),
      NextToken: offset + limit < items.length ? offsetToken.encode(offset + limit) : undefined,
    };
  }

  /**
   * Moves the alarm to a new state (when it differs), records the change and runs the state's actions: CloudWatch
   * runs actions on a state change only, and only while actions are enabled ("Alarm actions", CloudWatch User Guide).
   */
  async function changeState(
    alarm: StoredAlarm,
    t: number,
    next: { value: AlarmState; reason: string; reasonData?: string | undefined },
    evaluatedAt?: number,
  ): Promise<Transition | undefined> {
    const name = alarm.config.AlarmName;
    const previous = alarm.state;
    const changed = next.value !== previous.value;
    const updated: StoredAlarm = {
      ...alarm,
      ...(evaluatedAt === undefined ? {} : { evaluatedAt }),
      state: changed
        ? {
            value: next.value,
            reason: next.reason,
            ...(next.reasonData === undefined ? {} : { reasonData: next.reasonData }),
            updated: t,
            transitioned: t,
          }
        : evaluatedAt === undefined
          ? { ...previous, reason: next.reason, reasonData: next.reasonData, updated: t }
          : previous,
    };
    await alarms.put(name, updated);
    if (!changed) return undefined;
    const stateData = (state: StoredAlarm['state']) => ({
      stateValue: state.value,
      stateReason: state.reason,
      ...(state.reasonData === undefined ? {} : { stateReasonData: JSON.parse(state.reasonData) }),
    });
    await record(name, t, 'StateUpdate', `Alarm updated from ${previous.value} to ${next.value}`, {
      version: '1.0',
      oldState: stateData(previous),
      newState: stateData(updated.state),
    });
    if (updated.actionsEnabled) await runActions(updated, previous.value, t);
    return {
      alarmName: name,
      oldState: previous.value,
      newState: next.value,
      reason: next.reason,
      timestamp: new Date(t).toISOString(),
    };
  }

  async function runActions(alarm: StoredAlarm, oldState: AlarmState, t: number): Promise<void> {
    const { config } = alarm;
    const actions =
      alarm.state.value === 'ALARM'
        ? config.AlarmActions
        : alarm.state.value === 'OK'
          ? config.OKActions
          : config.InsufficientDataActions;
    for (const action of actions ?? []) {
      const outcome = await runAction(alarm, oldState, action);
      await record(
        config.AlarmName,
        t,
        'Action',
        outcome.ok
          ? `Successfully executed action ${action}`
          : `Failed to execute action ${action}. Received error: "${outcome.error}"`,
        {
          actionState: outcome.ok ? 'Succeeded' : 'Failed',
          stateUpdateTimestamp: t,
          ...(outcome.ok
            ? { notificationResource: action, publishedMessage: outcome.message }
            : { error: outcome.error }),
        },
      );
    }
  }

  async function runAction(
    alarm: StoredAlarm,
    oldState: AlarmState,
    action: string,
  ): Promise<{ ok: true; message: string } | { ok: false; error: string }> {
    if (!/^arn:aws:sns:[^:]+:\d{12}:[^:]+$/.test(action)) {
      return { ok: false, error: 'The sandbox carries out SNS actions only' };
    }
    if (!options.publish) return { ok: false, error: 'Topic does not exist' };
    const message = notification(alarm, oldState, region, accountId);
    try {
      const id = await options.publish(action, JSON.stringify(message), notificationSubject(alarm, region));
      return { ok: true, message: id };
    } catch (error) {
      return { ok: false, error: error instanceof Error ? error.message : String(error) };
    }
  }

  /** Evaluates one alarm as of `t`; an alarm evaluated as of a later time is left as it is. */
  async function evaluateAlarm(name: string, t: number): Promise<Transition | undefined> {
    return lock.run(name, async () => {
      const alarm = await alarms.get(name);
      if (!alarm || (alarm.evaluatedAt !== undefined && t < alarm.evaluatedAt)) return undefined;
      const outcome = await assess(alarm.config, t);
      if (outcome.state === undefined) {
        await alarms.put(name, { ...alarm, evaluatedAt: t });
        return undefined;
      }
      return changeState(
        alarm,
        t,
        {
          value: outcome.state,
          reason: stateReason(outcome.state, outcome.decision, outcome.rule, alarm.state.value),
          reasonData: JSON.stringify(outcome.reasonData),
        },
        t,
      );
    });
  }

  /** The state an alarm's data calls for as of `t` (undefined: keep it), with what it rests on. */
  async function assess(config: AlarmConfig, t: number) {
    const { periodMs, queries, returned, stat } = alarmQueries(config);
    const n = config.EvaluationPeriods ?? 1;
    const rule: Rule = {
      evaluationPeriods: n,
      datapointsToAlarm: config.DatapointsToAlarm ?? n,
      operator: config.ComparisonOperator as ComparisonOperator,
      threshold: config.Threshold ?? 0,
      treatMissingData: config.TreatMissingData ?? 'missing',
    };
    // The periods before the one `t` falls in, which is not over yet.
    const end = Math.floor(t / periodMs) * periodMs;
    const start = end - rangeLength(n) * periodMs;
    const slots: Slot[] = [];
    if (stat && config.Namespace !== undefined && config.MetricName !== undefined) {
      const points = (
        await datapoints(metricKey(config.Namespace, config.MetricName, config.Dimensions), start, end)
      ).filter((point) => config.Unit === undefined || point.unit === config.Unit);
      const buckets = byPeriod(points, periodMs);
      for (let at = start; at < end; at += periodMs) {
        const bucket = buckets.get(at) ?? [];
        slots.push({ t: at, value: statisticOf(bucket, stat), samples: sampleCount(bucket) });
      }
    } else {
      const series = (await querySeries(queries, start, end)).get(returned) ?? new Map<number, number>();
      for (let at = start; at < end; at += periodMs) slots.push({ t: at, value: series.get(at) });
    }
    const decision: Decision = decide(slots, rule);
    const lowSamples =
      stat?.kind === 'percentile' &&
      config.EvaluateLowSampleCountPercentile === 'ignore' &&
      decision.evaluated.some((point) => !point.filled && (point.samples ?? 0) < minimumSamples(stat.p));
    const evaluated = [...decision.evaluated].sort((a, b) => b.t - a.t);
    const reasonData = {
      version: '1.0',
      queryDate: cloudWatchTime(t),
      startDate: cloudWatchTime(decision.evaluated[0]?.t ?? end - n * periodMs),
      ...(stat ? { [stat.kind === 'simple' ? 'statistic' : 'extendedStatistic']: stat.name } : {}),
      ...(config.Unit === undefined ? {} : { unit: config.Unit }),
      period: periodMs / 1000,
      recentDatapoints: decision.evaluated.flatMap((point) => (point.filled ? [] : [point.value])),
      threshold: rule.threshold,
      evaluatedDatapoints: evaluated.map((point) => ({
        timestamp: cloudWatchTime(point.t),
        ...(point.filled ? {} : { ...(stat ? { sampleCount: point.samples } : {}), value: point.value }),
      })),
    };
    // "Percentile-based alarms and low data samples": with `ignore`, the state does not change while too few.
    return { state: lowSamples ? undefined : decision.state, decision, rule, reasonData };
  }

  /** Evaluates the named alarms (every alarm, without names) as of `t`, one at a time; gives the transitions. */
  async function evaluate(t: number, names?: readonly string[]): Promise<Transition[]> {
    const targets = names ?? (await alarms.list()).map(({ key }) => key);
    const transitions: Transition[] = [];
    for (const name of targets) {
      const transition = await evaluateAlarm(name, t);
      if (transition) transitions.push(transition);
    }
    return transitions;
  }

  /** `POST /_sandbox/cloudwatch/evaluate` `{time?, alarmNames?}`: evaluates as of that time (now by default). */
  async function evaluateRoute(request: HttpRequest) {
    let body: unknown;
    try {
      body = request.body.length ? JSON.parse(request.body.toString('utf8')) : {};
    } catch {
      return json(400, { error: 'The body is not JSON' });
    }
    const parsed = evaluateControlSchema.safeParse(body);
    if (!parsed.success) return json(400, { error: z.prettifyError(parsed.error) });
    const t = parsed.data.time === undefined ? Date.now() : Date.parse(parsed.data.time);
    const transitions = await evaluate(t, parsed.data.alarmNames);
    return json(200, { time: new Date(t).toISOString(), transitions });
  }

  let running: Promise<unknown> = Promise.resolve();
  let closed = false;
  const interval = options.evaluationIntervalMs ?? MINUTE;
  const timer =
    interval > 0
      ? setInterval(() => {
          running = running.then(() =>
            closed
              ? undefined
              : evaluate(Date.now()).catch((error: unknown) => {
                  if (!closed) console.error(`[cloudwatch] alarm evaluation failed: ${String(error)}`);
                }),
          );
        }, interval)
      : undefined;
  timer?.unref();

  const operations = {
    PutMetricAlarm: putMetricAlarm,
    DescribeAlarms: describeAlarms,
    DeleteAlarms: deleteAlarms,
    EnableAlarmActions: setActionsEnabled(true),
    DisableAlarmActions: setActionsEnabled(false),
    SetAlarmState: setAlarmState,
    TagResource: tagResource,
    UntagResource: untagResource,
    ListTagsForResource: listTagsForResource,
    PutMetricData: putMetricData,
    GetMetricData: getMetricData,
    DescribeAlarmHistory: describeAlarmHistory,
  };
  // The query protocol's form is read by these schemas, the ones the operations parse their input with.
  const inputs: Record<keyof typeof operations, z.ZodType> = {
    PutMetricAlarm: putAlarmSchema,
    DescribeAlarms: describeAlarmsSchema,
    DeleteAlarms: alarmNamesInputSchema,
    EnableAlarmActions: alarmNamesInputSchema,
    DisableAlarmActions: alarmNamesInputSchema,
    SetAlarmState: setStateSchema,
    TagResource: tagResourceSchema,
    UntagResource: untagResourceSchema,
    ListTagsForResource: resourceArnSchema,
    PutMetricData: putMetricDataSchema,
    GetMetricData: getMetricDataSchema,
    DescribeAlarmHistory: describeHistorySchema,
  };
  const handler = jsonService({
    service: 'cloudwatch',
    signingName: 'monitoring',
    targetPrefix: 'GraniteServiceVersion20100801',
    contentType: 'application/x-amz-json-1.0',
    queryCompatible: true,
    operations,
    // CloudWatch API Reference, "Making API requests": query requests (`Action`, `Version`) in, XML out.
    query: queryProtocol({
      version: '2010-08-01',
      xmlNamespace: 'http://monitoring.amazonaws.com/doc/2010-08-01/',
      inputs,
    }),
    subject: (_operation, input) => chaosSubject(input, alarmArnPrefix),
  });
  return {
    ...handler,
    putMetricData: async (input) => {
      await putMetricData(input);
    },
    routes: { 'POST /_sandbox/cloudwatch/evaluate': evaluateRoute },
    async close() {
      closed = true;
      if (timer) clearInterval(timer);
      await running;
    },
  };
}

const subjectSchema = z.object({
  AlarmName: z.string().optional(),
  AlarmNames: z.array(z.string()).optional(),
  AlarmNamePrefix: z.string().optional(),
  ResourceARN: z.string().optional(),
  Namespace: z.string().optional(),
  MetricDataQueries: z
    .array(
      z.object({
        MetricStat: z.object({ Metric: z.object({ Namespace: z.string().optional() }) }).optional(),
      }),
    )
    .optional(),
});

/** What a chaos rule's `match` sees: the alarm name(s) joined with commas or the namespace(s). */
function chaosSubject(raw: JsonObject, alarmArnPrefix: string): string | undefined {
  const parsed = subjectSchema.safeParse(raw);
  if (!parsed.success) return undefined;
  const input = parsed.data;
  const names = input.AlarmNames ?? [];
  if (names.length > 0) return names.join(',');
  if (input.ResourceARN !== undefined) return input.ResourceARN.replace(alarmArnPrefix, '');
  const namespaces = (input.MetricDataQueries ?? []).flatMap(
    (query) => query.MetricStat?.Metric.Namespace ?? [],
  );
  if (namespaces.length > 0) return [...new Set(namespaces)].join(',');
  return input.AlarmName ?? input.AlarmNamePrefix ?? input.Namespace;
}

/** The rules AWS applies beyond the shape of PutMetricAlarm's input. */
function validateAlarm(config: AlarmConfig): void {
  if (config.EvaluationPeriods === undefined) throw missing('EvaluationPeriods');
  if (config.ComparisonOperator === undefined) throw missing('ComparisonOperator');
  if (config.Threshold === undefined && config.ThresholdMetricId === undefined) throw missing('Threshold');
  // Anomaly detection bands (ThresholdMetricId, the Lower/Upper operators) are not evaluated here: refused.
  if (
    config.ThresholdMetricId !== undefined ||
    !STATIC_OPERATORS.includes(config.ComparisonOperator as ComparisonOperator)
  ) {
    throw new AwsError(
      VALIDATION,
      `The sandbox evaluates static thresholds only (${STATIC_OPERATORS.join(', ')}); anomaly detection alarms are not supported.`,
    );
  }
  if (config.DatapointsToAlarm !== undefined && config.DatapointsToAlarm > config.EvaluationPeriods) {
    throw new AwsError(VALIDATION, 'DatapointsToAlarm must be less than or equal to EvaluationPeriods.');
  }
  if (config.Metrics) {
    const single = [config.MetricName, config.Namespace, config.Statistic, config.ExtendedStatistic];
    if (single.some((value) => value !== undefined) || config.Dimensions || config.Period !== undefined) {
      throw invalidCombination(
        'The parameters MetricName, Namespace, Statistic, ExtendedStatistic, Dimensions and Period cannot be specified with Metrics.',
      );
    }
    for (const query of config.Metrics) {
      if ((query.MetricStat === undefined) === (query.Expression === undefined)) {
        throw new AwsError(
          VALIDATION,
          `Exactly one of MetricStat and Expression must be specified for ${query.Id}.`,
        );
      }
      if (query.MetricStat) validatePeriod(query.MetricStat.Period);
    }
    if (config.Metrics.filter((query) => query.ReturnData !== false).length !== 1) {
      throw new AwsError(VALIDATION, 'Exactly one element of the metrics list should return data.');
    }
    // "Alarms on math expressions": each metric must use the same period.
    const periods = new Set(config.Metrics.flatMap((query) => query.MetricStat?.Period ?? []));
    if (periods.size > 1) {
      throw new AwsError(VALIDATION, 'The metrics of a metric math alarm must all have the same period.');
    }
    alarmQueries(config);
    return;
  }
  if (config.MetricName === undefined) throw missing('MetricName');
  if (config.Namespace === undefined) throw missing('Namespace');
  if (config.Period === undefined) throw missing('Period');
  validatePeriod(config.Period);
  if ((config.Statistic === undefined) === (config.ExtendedStatistic === undefined)) {
    throw invalidCombination('Exactly one of Statistic and ExtendedStatistic must be specified.');
  }
  if (config.ExtendedStatistic !== undefined && parseStat(config.ExtendedStatistic)?.kind !== 'percentile') {
    throw invalidValue(
      `The extended statistic ${config.ExtendedStatistic} is not supported by the sandbox; use a percentile such as p99 or p99.9.`,
    );
  }
}

interface CompiledQueries {
  readonly metrics: readonly {
    readonly id: string;
    readonly stat: NonNullable<MetricDataQuery['MetricStat']> & { readonly parsed: Stat };
  }[];
  /** In an order in which each expression comes after the queries it reads. */
  readonly expressions: readonly { readonly id: string; readonly expr: Expr }[];
}

const expressionError = (id: string, message: string) =>
  new AwsError(VALIDATION, `Error in expression ${id}: ${message}`);

/**
 * A list of metric data queries, checked and parsed: each a MetricStat with a statistic the sandbox computes or an
 * Expression it can evaluate, naming only queries of the list, with no cycle. Throws the ValidationError AWS
 * answers an expression it cannot parse with, worded by what the sandbox does not support.
 */
function compileQueries(queries: readonly MetricDataQuery[]): CompiledQueries {
  const ids = new Set<string>();
  for (const query of queries) {
    if (ids.has(query.Id)) throw new AwsError(VALIDATION, `The value ${query.Id} for Id is not unique.`);
    ids.add(query.Id);
  }
  const metrics: CompiledQueries['metrics'][number][] = [];
  const parsed = new Map<string, Expr>();
  for (const query of queries) {
    if (query.Expression !== undefined) {
      try {
        const expr = parseExpression(query.Expression);
        for (const id of referencedIds(expr)) {
          if (!ids.has(id)) throw new ExpressionError(`Unrecognized metric or expression id ${id}.`);
        }
        parsed.set(query.Id, expr);
      } catch (error) {
        if (error instanceof ExpressionError) throw expressionError(query.Id, error.message);
        throw error;
      }
      continue;
    }
    if (!query.MetricStat) {
      throw new AwsError(
        VALIDATION,
        `The parameter MetricDataQueries.member.${query.Id}.MetricStat is required.`,
      );
    }
    const stat = parseStat(query.MetricStat.Stat);
    if (!stat) {
      throw invalidValue(
        `The statistic ${query.MetricStat.Stat} is not supported by the sandbox; use one of ${STATISTICS.join(', ')} or a percentile (p99, p99.9).`,
      );
    }
    metrics.push({ id: query.Id, stat: { ...query.MetricStat, parsed: stat } });
  }
  const expressions: { id: string; expr: Expr }[] = [];
  const visiting = new Set<string>();
  const visit = (id: string): void => {
    const expr = parsed.get(id);
    if (!expr || expressions.some((done) => done.id === id)) return;
    if (visiting.has(id)) throw expressionError(id, 'The expressions refer to each other in a cycle.');
    visiting.add(id);
    for (const ref of referencedIds(expr)) visit(ref);
    visiting.delete(id);
    expressions.push({ id, expr });
  };
  for (const id of parsed.keys()) visit(id);
  return { metrics, expressions };
}

/** What an alarm evaluates: its period, its queries and the one that returns data, or its single metric's stat. */
function alarmQueries(config: AlarmConfig): {
  periodMs: number;
  queries: CompiledQueries;
  returned: string;
  stat?: Stat;
} {
  if (config.Metrics) {
    const queries = compileQueries(config.Metrics);
    const returned = config.Metrics.find((query) => query.ReturnData !== false);
    const period = config.Metrics.find((query) => query.MetricStat)?.MetricStat?.Period;
    if (period === undefined) {
      throw new AwsError(VALIDATION, 'A metric math alarm needs at least one MetricStat query.');
    }
    return { periodMs: period * 1000, queries, returned: returned?.Id ?? '' };
  }
  const stat = parseStat(config.Statistic ?? config.ExtendedStatistic ?? '');
  return {
    periodMs: (config.Period ?? 60) * 1000,
    queries: { metrics: [], expressions: [] },
    returned: '',
    ...(stat ? { stat } : {}),
  };
}

/** "Percentile-based alarms and low data samples": the sample count below which a percentile is low on data. */
const minimumSamples = (p: number): number => (p >= 50 ? 10 / (1 - p / 100) : 10 / (p / 100));

const TWO_WEEKS = 14 * 24 * 60 * MINUTE;
const TWO_HOURS = 2 * 60 * MINUTE;

/**
 * PutMetricData (API Reference, MetricDatum Timestamp; CloudWatch User Guide, "Publish custom metrics", Time stamps):
 * a timestamp may be up to two weeks in the past and up to two hours in the future. AWS answers each member out of
 * that window on a line of one InvalidParameterValue (the past wording is AWS's as its answers show it; the future
 * one is worded after it).
 */
function checkTimestamps(metricData: readonly MetricDatum[], now: number): void {
  const problems = metricData.flatMap((datum, index) => {
    if (datum.Timestamp === undefined) return [];
    const t = datum.Timestamp * 1000;
    const member = `The parameter MetricData.member.${index + 1}.Timestamp`;
    if (t < now - TWO_WEEKS) return [`${member} must specify a time within the past two weeks.`];
    if (t > now + TWO_HOURS) return [`${member} must specify a time no more than two hours in the future.`];
    return [];
  });
  if (problems.length > 0) throw invalidValue(problems.join('\n'));
}

/** AWS's Region names, as an alarm notification's `Region` and subject give them. */
const REGION_NAMES: Record<string, string> = {
  'us-east-1': 'US East (N. Virginia)',
  'us-east-2': 'US East (Ohio)',
  'us-west-1': 'US West (N. California)',
  'us-west-2': 'US West (Oregon)',
  'eu-west-1': 'EU (Ireland)',
  'eu-central-1': 'EU (Frankfurt)',
};
const regionName = (region: string): string => REGION_NAMES[region] ?? region;

/** The subject of an alarm's SNS notification: `ALARM: "name" in US East (N. Virginia)`. */
function notificationSubject(alarm: StoredAlarm, region: string): string {
  return `${alarm.state.value}: "${alarm.config.AlarmName}" in ${regionName(region)}`;
}

const STATISTIC_NAMES: Record<string, string> = {
  SampleCount: 'SAMPLE_COUNT',
  Average: 'AVERAGE',
  Sum: 'SUM',
  Minimum: 'MINIMUM',
  Maximum: 'MAXIMUM',
};

/** Dimensions as alarm notifications write them: `{value, name}`. */
const notificationDimensions = (dimensions: readonly { Name: string; Value: string }[] = []) =>
  dimensions.map(({ Name, Value }) => ({ value: Value, name: Name }));

/**
 * The JSON message CloudWatch publishes to an alarm's SNS topic ("Using Amazon SNS topics" and the notification
 * sample in the CloudWatch User Guide): the alarm, the change, and its Trigger.
 */
function notification(
  alarm: StoredAlarm,
  oldState: AlarmState,
  region: string,
  accountId: string,
): JsonObject {
  const { config } = alarm;
  const common = {
    EvaluationPeriods: config.EvaluationPeriods,
    DatapointsToAlarm: config.DatapointsToAlarm ?? config.EvaluationPeriods,
    ComparisonOperator: config.ComparisonOperator,
    Threshold: config.Threshold,
    TreatMissingData: config.TreatMissingData ?? 'missing',
    EvaluateLowSampleCountPercentile: config.EvaluateLowSampleCountPercentile ?? '',
  };
  const trigger = config.Metrics
    ? {
        Period: config.Metrics.find((query) => query.MetricStat)?.MetricStat?.Period,
        Metrics: config.Metrics.map((query) => ({
          Id: query.Id,
          ...(query.Label === undefined ? {} : { Label: query.Label }),
          ReturnData: query.ReturnData !== false,
          ...(query.Expression === undefined ? {} : { Expression: query.Expression }),
          ...(query.MetricStat
            ? {
                MetricStat: {
                  Metric: {
                    Dimensions: notificationDimensions(query.MetricStat.Metric.Dimensions),
                    MetricName: query.MetricStat.Metric.MetricName,
                    Namespace: query.MetricStat.Metric.Namespace,
                  },
                  Period: query.MetricStat.Period,
                  Stat: query.MetricStat.Stat,
                },
              }
            : {}),
        })),
        ...common,
      }
    : {
        MetricName: config.MetricName,
        Namespace: config.Namespace,
        StatisticType: config.ExtendedStatistic === undefined ? 'Statistic' : 'ExtendedStatistic',
        ...(config.ExtendedStatistic === undefined
          ? { Statistic: STATISTIC_NAMES[config.Statistic ?? ''] ?? config.Statistic }
          : { ExtendedStatistic: config.ExtendedStatistic }),
        Unit: config.Unit ?? null,
        Dimensions: notificationDimensions(config.Dimensions),
        Period: config.Period,
        ...common,
      };
  return {
    AlarmName: config.AlarmName,
    AlarmDescription: config.AlarmDescription ?? null,
    AWSAccountId: accountId,
    AlarmConfigurationUpdatedTimestamp: cloudWatchTime(alarm.configUpdated),
    NewStateValue: alarm.state.value,
    NewStateReason: alarm.state.reason,
    StateChangeTime: cloudWatchTime(alarm.state.updated),
    Region: regionName(region),
    AlarmArn: alarm.arn,
    OldStateValue: oldState,
    OKActions: config.OKActions ?? [],
    AlarmActions: config.AlarmActions ?? [],
    InsufficientDataActions: config.InsufficientDataActions ?? [],
    Trigger: trigger,
  };
}

function validatePeriod(period: number): void {
  if (![10, 20, 30].includes(period) && period % 60 !== 0) {
    throw invalidValue('The parameter Period must be 10, 20, 30 or a multiple of 60.');
  }
}

function metricAlarm(alarm: StoredAlarm): JsonObject {
  return {
    ...alarm.config,
    AlarmArn: alarm.arn,
    AlarmConfigurationUpdatedTimestamp: new Date(alarm.configUpdated),
    ActionsEnabled: alarm.actionsEnabled,
    OKActions: alarm.config.OKActions ?? [],
    AlarmActions: alarm.config.AlarmActions ?? [],
    InsufficientDataActions: alarm.config.InsufficientDataActions ?? [],
    Dimensions: alarm.config.Metrics ? undefined : (alarm.config.Dimensions ?? []),
    StateValue: alarm.state.value,
    StateReason: alarm.state.reason,
    StateReasonData: alarm.state.reasonData,
    StateUpdatedTimestamp: new Date(alarm.state.updated),
    StateTransitionedTimestamp: new Date(alarm.state.transitioned),
  };
}

function hasActionWithPrefix(config: AlarmConfig, prefix: string): boolean {
  const actions = [
    ...(config.AlarmActions ?? []),
    ...(config.OKActions ?? []),
    ...(config.InsufficientDataActions ?? []),
  ];
  return actions.some((action) => action.startsWith(prefix));
}

function requiredNames(raw: JsonObject): string[] {
  const { AlarmNames } = parseInput(alarmNamesInputSchema, raw, VALIDATION);
  if (AlarmNames === undefined) throw missing('AlarmNames');
  return AlarmNames;
}

/** What a datum contributes: its statistic set and raw values; it carries one of Value, Values (+Counts), StatisticValues. */
function statisticSet(datum: MetricDatum, path: string): Omit<StoredDatum, 't' | 'unit'> {
  const given = [datum.Value, datum.Values, datum.StatisticValues].filter((value) => value !== undefined);
  if (given.length > 1) {
    throw invalidCombination(
      `The parameters ${path}.Value, ${path}.Values and ${path}.StatisticValues are mutually exclusive.`,
    );
  }
  if (datum.StatisticValues) {
    const { SampleCount, Sum, Minimum, Maximum } = datum.StatisticValues;
    return { count: SampleCount, sum: Sum, min: Minimum, max: Maximum };
  }
  if (datum.Values) {
    const counts = datum.Counts ?? datum.Values.map(() => 1);
    if (counts.length !== datum.Values.length) {
      throw invalidValue(`The parameters ${path}.Values and ${path}.Counts must be of the same size.`);
    }
    if (datum.Values.length === 0) throw missing(`${path}.Values`);
    return {
      count: counts.reduce((total, count) => total + count, 0),
      sum: datum.Values.reduce((total, value, index) => total + value * (counts[index] ?? 1), 0),
      min: Math.min(...datum.Values),
      max: Math.max(...datum.Values),
      raw: datum.Values.map((value, index) => [value, counts[index] ?? 1] as const),
    };
  }
  if (datum.Value === undefined) throw missing(`${path}.Value`);
  return { count: 1, sum: datum.Value, min: datum.Value, max: datum.Value, raw: [[datum.Value, 1]] };
}

/** A metric is its namespace, name and exact set of dimensions; the key hashes them to stay short and prefix-free. */
function metricKey(
  namespace: string,
  name: string,
  dimensions: readonly { Name: string; Value: string }[] = [],
): string {
  const sorted = [...dimensions]
    .sort((a, b) => compareStrings(a.Name, b.Name))
    .map(({ Name, Value }) => [Name, Value]);
  return createHash('sha256')
    .update(JSON.stringify([namespace, name, sorted]))
    .digest('hex')
    .slice(0, 32);
}

/** A short, prefix-free key part for a name that may hold any character. */
const hashOf = (name: string): string => createHash('sha256').update(name).digest('hex').slice(0, 32);

/** Milliseconds, zero-padded so that keys sort in time order. */
const timeKey = (ms: number): string => String(Math.max(0, ms)).padStart(15, '0');

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

const compareStrings = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** CloudWatch API Reference, DescribeAlarms and GetMetricData, Errors: "InvalidNextToken: The next token specified is invalid." (400). */
const invalidNextToken = () => new AwsError('InvalidNextToken', 'The next token specified is invalid.');

const nameTokenSchema = z.object({ after: z.string().min(1) });

/**
 * Tokens that resume a listing after a name, in the store's key order. A token the sandbox did not hand out is
 * refused, as AWS refuses it, rather than read as some name to resume after.
 */
const nameToken = {
  encode: (name: string): string => Buffer.from(JSON.stringify({ after: name })).toString('base64url'),
  decode(token: string): string {
    try {
      const parsed = nameTokenSchema.safeParse(JSON.parse(Buffer.from(token, 'base64url').toString('utf8')));
      if (parsed.success) return parsed.data.after;
    } catch {
      // Not JSON: not a token of ours.
    }
    throw invalidNextToken();
  },
};
