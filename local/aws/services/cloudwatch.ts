import { createHash, randomUUID } from 'node:crypto';
import { z } from 'zod';
import { AwsError, type JsonObject, jsonService, type ServiceHandler } from '../protocol.ts';
import { queryProtocol, timestampSchema } from '../query.ts';
import { KeyedLock, parseInput, type ServiceDeps } from './deps.ts';

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
const STATISTICS = ['SampleCount', 'Average', 'Sum', 'Minimum', 'Maximum'] as const;
type Statistic = (typeof STATISTICS)[number];
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
  readonly state: {
    readonly value: (typeof STATES)[number];
    readonly reason: string;
    readonly reasonData?: string;
    readonly updated: number;
    readonly transitioned: number;
  };
  readonly tags: readonly Tag[];
}

/**
 * One PutMetricData datum, reduced to the statistic set it contributes (the only statistics the
 * sandbox computes are those a statistic set gives exactly: no percentiles).
 */
interface StoredDatum {
  readonly t: number;
  readonly unit: string;
  readonly count: number;
  readonly sum: number;
  readonly min: number;
  readonly max: number;
}

const DESCRIBE_ALARMS_PAGE = 50;

/**
 * CloudWatch (awsJson1.0 with query-compatible errors, and the query protocol by the same operations): metric
 * alarms and metric data. Alarms keep the state they are given (at creation, INSUFFICIENT_DATA; then
 * SetAlarmState): metric data is not evaluated.
 */
export function createCloudWatch({ store, region, accountId }: ServiceDeps): ServiceHandler {
  const alarms = store.collection<StoredAlarm>('cloudwatch', 'alarm');
  const data = store.collection<StoredDatum>('cloudwatch', 'datum');
  const lock = new KeyedLock();
  const alarmArnPrefix = `arn:aws:cloudwatch:${region}:${accountId}:alarm:`;

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
      // Updating an alarm replaces its configuration but keeps its state and tags, as on AWS.
      await alarms.put(config.AlarmName, {
        arn: `${alarmArnPrefix}${config.AlarmName}`,
        config,
        configUpdated: now,
        actionsEnabled: ActionsEnabled ?? true,
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
    await lock.run(input.AlarmName, async () => {
      const alarm = await alarms.get(input.AlarmName);
      if (!alarm) throw notFound(`Alarm ${input.AlarmName} not found`);
      const now = Date.now();
      await alarms.put(input.AlarmName, {
        ...alarm,
        state: {
          value: input.StateValue,
          reason: input.StateReason,
          reasonData: input.StateReasonData,
          updated: now,
          transitioned: input.StateValue === alarm.state.value ? alarm.state.transitioned : now,
        },
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
    const rows = input.MetricData.map((datum, index) => {
      const stats = statisticSet(datum, `MetricData.member.${index + 1}`);
      const t = datum.Timestamp === undefined ? now : Math.round(datum.Timestamp * 1000);
      const key = `${metricKey(namespace, datum.MetricName, datum.Dimensions)}/${timeKey(t)}/${randomUUID()}`;
      return { key, doc: { t, unit: datum.Unit ?? 'None', ...stats } };
    });
    await Promise.all(rows.map(({ key, doc }) => data.put(key, doc)));
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
    const results = await Promise.all(
      input.MetricDataQueries.filter((query) => query.ReturnData !== false).map(async (query) => {
        const stat = metricStatOf(query);
        const { Namespace = '', MetricName = '', Dimensions } = stat.Metric;
        const points = await datapoints(metricKey(Namespace, MetricName, Dimensions), start, end);
        const series = aggregate(
          points.filter((point) => stat.Unit === undefined || point.unit === stat.Unit),
          stat.Period * 1000,
          stat.Stat,
        );
        if (descending) series.reverse();
        return {
          Id: query.Id,
          Label: query.Label ?? MetricName,
          Timestamps: series.map(([t]) => new Date(t)),
          Values: series.map(([, value]) => value),
          StatusCode: 'Complete',
        };
      }),
    );
    return { MetricDataResults: results, Messages: [] };
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
  };
  return jsonService({
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
    return;
  }
  if (config.MetricName === undefined) throw missing('MetricName');
  if (config.Namespace === undefined) throw missing('Namespace');
  if (config.Period === undefined) throw missing('Period');
  validatePeriod(config.Period);
  if ((config.Statistic === undefined) === (config.ExtendedStatistic === undefined)) {
    throw invalidCombination('Exactly one of Statistic and ExtendedStatistic must be specified.');
  }
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

/** A datum's contribution as a statistic set; it carries exactly one of Value, Values (+Counts) and StatisticValues. */
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
    };
  }
  if (datum.Value === undefined) throw missing(`${path}.Value`);
  return { count: 1, sum: datum.Value, min: datum.Value, max: datum.Value };
}

function metricStatOf(
  query: MetricDataQuery,
): NonNullable<MetricDataQuery['MetricStat']> & { Stat: Statistic } {
  if (query.Expression !== undefined) {
    throw invalidValue(`Metric math expressions are not supported by the sandbox (query ${query.Id}).`);
  }
  if (!query.MetricStat)
    throw new AwsError(
      VALIDATION,
      `The parameter MetricDataQueries.member.${query.Id}.MetricStat is required.`,
    );
  const stat = query.MetricStat.Stat;
  if (!isStatistic(stat)) {
    throw invalidValue(
      `The statistic ${stat} is not supported by the sandbox; use one of ${STATISTICS.join(', ')}.`,
    );
  }
  return { ...query.MetricStat, Stat: stat };
}

const isStatistic = (value: string): value is Statistic => (STATISTICS as readonly string[]).includes(value);

/** One value per period that has data, in time order; periods are aligned on the epoch. */
function aggregate(points: readonly StoredDatum[], periodMs: number, stat: Statistic): [number, number][] {
  const buckets = new Map<number, Omit<StoredDatum, 't' | 'unit'>>();
  for (const point of points) {
    const start = Math.floor(point.t / periodMs) * periodMs;
    const bucket = buckets.get(start);
    buckets.set(
      start,
      bucket
        ? {
            count: bucket.count + point.count,
            sum: bucket.sum + point.sum,
            min: Math.min(bucket.min, point.min),
            max: Math.max(bucket.max, point.max),
          }
        : point,
    );
  }
  const value = (bucket: Omit<StoredDatum, 't' | 'unit'>): number => {
    switch (stat) {
      case 'Sum':
        return bucket.sum;
      case 'Average':
        return bucket.sum / bucket.count;
      case 'Minimum':
        return bucket.min;
      case 'Maximum':
        return bucket.max;
      case 'SampleCount':
        return bucket.count;
    }
  };
  return [...buckets.entries()].sort(([a], [b]) => a - b).map(([start, bucket]) => [start, value(bucket)]);
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
