import { z } from 'zod';
import {
  AwsError,
  type HttpRequest,
  type JsonObject,
  jsonService,
  type ServiceHandler,
} from '../protocol.ts';
import { json } from '../server.ts';
import { parseInput, type ServiceDeps } from './deps.ts';

const INVALID = 'InvalidParameterException';
const groupNotFound = () =>
  new AwsError('ResourceNotFoundException', 'The specified log group does not exist.');

const MINUTE = 60_000;
/** PutLogEvents (API Reference): the batch size counts every message's UTF-8 bytes plus 26 bytes an event. */
const MAX_BATCH_BYTES = 1_048_576;
const EVENT_OVERHEAD_BYTES = 26;
const TOO_OLD_MS = 14 * 24 * 60 * MINUTE;
const TOO_NEW_MS = 2 * 60 * MINUTE;
const MAX_SPAN_MS = 24 * 60 * MINUTE;

// API Reference, CreateLogGroup and CreateLogStream: the names' lengths and patterns.
const groupNameSchema = z
  .string()
  .min(1)
  .max(512)
  .regex(/^[.\-_/#A-Za-z0-9]+$/, 'Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+');
const streamNameSchema = z
  .string()
  .min(1)
  .max(512)
  .regex(/^[^:*]*$/, 'Member must satisfy regular expression pattern: [^:*]*');
const createGroupSchema = z.object({ logGroupName: groupNameSchema });
const createStreamSchema = z.object({ logGroupName: groupNameSchema, logStreamName: streamNameSchema });
const putEventsSchema = createStreamSchema.extend({
  logEvents: z
    .array(z.object({ timestamp: z.number().int().nonnegative(), message: z.string().min(1) }))
    .min(1)
    .max(10_000),
  sequenceToken: z.string().optional(),
});

// "Specification: Embedded metric format" (CloudWatch User Guide): the metadata object, MetricDirective and
// MetricDefinition objects. Units, namespaces, dimension values and timestamps are PutMetricData's to check.
const metricDefinitionSchema = z.object({
  Name: z.string().min(1),
  Unit: z.string().optional(),
  StorageResolution: z.union([z.literal(1), z.literal(60)]).optional(),
});
const directiveSchema = z.object({
  Namespace: z.string().min(1),
  // "A DimensionSet MUST NOT contain more than 30 dimension keys."
  Dimensions: z.array(z.array(z.string()).max(30)),
  // "A MetricDirective MUST NOT contain more than 100 MetricDefinition objects."
  Metrics: z.array(metricDefinitionSchema).max(100),
});
const emfSchema = z.object({
  _aws: z.object({ Timestamp: z.number(), CloudWatchMetrics: z.array(directiveSchema) }),
});
/** The root node: "The LogEvent message MUST be a valid JSON object". */
const rootSchema = z.record(z.string(), z.unknown());
/** Target members: a metric's value is a number or an array of up to 100 numbers; a dimension's, a string. */
const metricValueSchema = z.union([z.number(), z.array(z.number()).min(1).max(100)]);

/** What became of an event that is an embedded metric format document: its data put, or why none was. */
type Extraction = { readonly data: number } | { readonly problem: string };

/** One event as the store keeps it, keyed `<group>:<stream>:<timestamp>:<ingestion time>:<sequence>`. */
interface StoredEvent {
  readonly logStreamName: string;
  readonly timestamp: number;
  readonly message: string;
  readonly ingestionTime: number;
  readonly emf?: Extraction;
}

interface StoredGroup {
  readonly arn: string;
  readonly creationTime: number;
}

export interface LogsOptions {
  /** CloudWatch's PutMetricData (cloudwatch.ts `putMetricData`), through which EMF events' metrics are put. */
  readonly putMetricData: (input: JsonObject) => Promise<void>;
}

// Group names cannot hold `:` and stream names neither, so `<group>:` is a prefix of that group's keys only.
const streamKey = (group: string, stream: string) => `${group}:${stream}`;
const timeKey = (ms: number): string => String(ms).padStart(15, '0');

/**
 * CloudWatch Logs (awsJson1.1, `Logs_20140328.<Operation>`): log groups and streams, and PutLogEvents with its
 * documented limits. Events that are embedded metric format documents have their metrics put into the sandbox's
 * CloudWatch. The events are readable at `GET /_sandbox/logs/events?logGroupName=&logStreamName=`.
 */
export function createLogs({ store, region, accountId }: ServiceDeps, options: LogsOptions): ServiceHandler {
  const groups = store.collection<StoredGroup>('logs', 'group');
  const streams = store.collection<{ readonly creationTime: number }>('logs', 'stream');
  const events = store.collection<StoredEvent>('logs', 'event');
  let sequence = 0;

  async function createLogGroup(raw: JsonObject): Promise<undefined> {
    const { logGroupName } = parseInput(createGroupSchema, raw, INVALID);
    const arn = `arn:aws:logs:${region}:${accountId}:log-group:${logGroupName}`;
    if (!(await groups.insert(logGroupName, { arn, creationTime: Date.now() }))) {
      throw new AwsError('ResourceAlreadyExistsException', 'The specified log group already exists');
    }
    return undefined;
  }

  async function createLogStream(raw: JsonObject): Promise<undefined> {
    const { logGroupName, logStreamName } = parseInput(createStreamSchema, raw, INVALID);
    if (!(await groups.get(logGroupName))) throw groupNotFound();
    if (!(await streams.insert(streamKey(logGroupName, logStreamName), { creationTime: Date.now() }))) {
      throw new AwsError('ResourceAlreadyExistsException', 'The specified log stream already exists');
    }
    return undefined;
  }

  /**
   * PutLogEvents (API Reference): a batch of more than 1,048,576 bytes, out of chronological order, or whose valid
   * events span more than 24 hours fails; events more than 2 hours ahead or 14 days old are rejected "while
   * processing remaining valid events", and said so in `rejectedLogEventsInfo`. The sequence token is ignored.
   */
  async function putLogEvents(raw: JsonObject): Promise<JsonObject> {
    const input = parseInput(putEventsSchema, raw, INVALID);
    if (!(await groups.get(input.logGroupName))) throw groupNotFound();
    if (!(await streams.get(streamKey(input.logGroupName, input.logStreamName)))) {
      throw new AwsError('ResourceNotFoundException', 'The specified log stream does not exist.');
    }
    const bytes = input.logEvents.reduce(
      (total, event) => total + Buffer.byteLength(event.message, 'utf8') + EVENT_OVERHEAD_BYTES,
      0,
    );
    if (bytes > MAX_BATCH_BYTES) {
      throw new AwsError(INVALID, `Upload too large: ${bytes} bytes exceeds limit of ${MAX_BATCH_BYTES}`);
    }
    const times = input.logEvents.map((event) => event.timestamp);
    if (times.some((t, index) => index > 0 && t < (times[index - 1] ?? t))) {
      throw new AwsError(
        INVALID,
        'Log events in a single PutLogEvents request must be in chronological order.',
      );
    }
    const now = Date.now();
    // In chronological order, the events too old are a head of the batch and those too new a tail.
    const tooOldEnd = input.logEvents.findIndex((event) => event.timestamp >= now - TOO_OLD_MS);
    const oldEnd = tooOldEnd === -1 ? input.logEvents.length : tooOldEnd;
    const tooNewStart = input.logEvents.findIndex((event) => event.timestamp > now + TOO_NEW_MS);
    const newStart = tooNewStart === -1 ? input.logEvents.length : Math.max(tooNewStart, oldEnd);
    const accepted = input.logEvents.slice(oldEnd, newStart);
    const first = accepted[0];
    const last = accepted.at(-1);
    if (first && last && last.timestamp - first.timestamp > MAX_SPAN_MS) {
      throw new AwsError(
        INVALID,
        'The batch of log events in a single PutLogEvents request cannot span more than 24 hours.',
      );
    }
    const prefix = streamKey(input.logGroupName, input.logStreamName);
    const rows = [];
    for (const event of accepted) {
      const emf = await extract(event.message);
      sequence += 1;
      rows.push({
        key: `${prefix}:${timeKey(event.timestamp)}:${timeKey(now)}:${String(sequence).padStart(12, '0')}`,
        doc: { logStreamName: input.logStreamName, ...event, ingestionTime: now, ...(emf ? { emf } : {}) },
      });
    }
    await events.putMany(rows);
    const rejected = {
      ...(oldEnd > 0 ? { tooOldLogEventEndIndex: oldEnd } : {}),
      ...(newStart < input.logEvents.length ? { tooNewLogEventStartIndex: newStart } : {}),
    };
    return Object.keys(rejected).length > 0 ? { rejectedLogEventsInfo: rejected } : {};
  }

  /**
   * The metrics of an embedded metric format event, put as PutMetricData would be with its namespace, each of its
   * dimension sets, its timestamp and units; undefined for an event that is no EMF document (no `_aws` member).
   * An event that breaks the specification, or whose data PutMetricData refuses, stays a log line with no metric.
   * The `x-amzn-logs-format: json/emf` header is accepted and not needed: "Using the PutLogEvents API to send
   * manually-created embedded metric format logs" calls it optional.
   */
  async function extract(message: string): Promise<Extraction | undefined> {
    let document: unknown;
    try {
      document = JSON.parse(message);
    } catch {
      return undefined;
    }
    const root = rootSchema.safeParse(document);
    if (!root.success || !Object.hasOwn(root.data, '_aws')) return undefined;
    const members = root.data;
    const parsed = emfSchema.safeParse(members);
    if (!parsed.success) return { problem: z.prettifyError(parsed.error) };
    const { Timestamp, CloudWatchMetrics } = parsed.data._aws;
    const requests: { Namespace: string; MetricData: JsonObject[] }[] = [];
    for (const directive of CloudWatchMetrics) {
      const dimensionSets = directive.Dimensions.length > 0 ? directive.Dimensions : [[]];
      const sets: { Name: string; Value: string }[][] = [];
      for (const set of dimensionSets) {
        const dimensions = [];
        for (const name of set) {
          const value = members[name];
          if (typeof value !== 'string')
            return { problem: `Dimension ${name} is not a string member of the root` };
          dimensions.push({ Name: name, Value: value });
        }
        sets.push(dimensions);
      }
      const metricData: JsonObject[] = [];
      for (const metric of directive.Metrics) {
        const value = metricValueSchema.safeParse(members[metric.Name]);
        if (!value.success)
          return { problem: `Metric ${metric.Name} is not a number or an array of numbers` };
        for (const Dimensions of sets) {
          metricData.push({
            MetricName: metric.Name,
            Dimensions,
            Timestamp: Timestamp / 1000,
            ...(Array.isArray(value.data) ? { Values: value.data } : { Value: value.data }),
            ...(metric.Unit === undefined ? {} : { Unit: metric.Unit }),
            ...(metric.StorageResolution === undefined
              ? {}
              : { StorageResolution: metric.StorageResolution }),
          });
        }
      }
      if (metricData.length > 0) requests.push({ Namespace: directive.Namespace, MetricData: metricData });
    }
    let data = 0;
    for (const request of requests) {
      try {
        await options.putMetricData(request);
      } catch (error) {
        if (!(error instanceof AwsError)) throw error;
        return { problem: `${error.code}: ${error.message}` };
      }
      data += request.MetricData.length;
    }
    return { data };
  }

  /** `GET /_sandbox/logs/events?logGroupName=&logStreamName=`: a group's kept events, oldest first. */
  async function listEvents(request: HttpRequest) {
    const group = request.query.get('logGroupName');
    if (group === null) return json(400, { error: 'logGroupName is required' });
    const stream = request.query.get('logStreamName');
    const kept = await events.list({
      prefix: stream === null ? `${group}:` : `${streamKey(group, stream)}:`,
    });
    const ordered = kept
      .map(({ doc }) => doc)
      .sort((a, b) => a.timestamp - b.timestamp || a.ingestionTime - b.ingestionTime);
    return json(
      200,
      ordered.map((event) => ({ logGroupName: group, ...event })),
    );
  }

  const handler = jsonService({
    service: 'logs',
    signingName: 'logs',
    targetPrefix: 'Logs_20140328',
    contentType: 'application/x-amz-json-1.1',
    operations: {
      CreateLogGroup: createLogGroup,
      CreateLogStream: createLogStream,
      PutLogEvents: putLogEvents,
    },
    subject: (_operation, input) => (typeof input.logGroupName === 'string' ? input.logGroupName : undefined),
  });
  return { ...handler, routes: { 'GET /_sandbox/logs/events': listEvents } };
}
