import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import {
  AwsError,
  type HttpRequest,
  type JsonObject,
  jsonService,
  type ServiceHandler,
} from '../protocol.ts';
import { json } from '../server.ts';
import { KeyedLock, offsetToken, parseInput, type ServiceDeps } from './deps.ts';

const VALIDATION = 'ValidationException';
const DEFAULT_BUS = 'default';
const MAX_TARGETS_PER_RULE = 5;

const busNameSchema = z.string().min(1).max(1600);
const ruleNameSchema = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[.\-_A-Za-z0-9]+$/);
const tagsSchema = z.array(z.object({ Key: z.string().min(1).max(128), Value: z.string().max(256) }));
const limitSchema = z.number().int().min(1).max(100).optional();

const putEventsSchema = z.object({
  Entries: z
    .array(
      z.object({
        Time: z.number().optional(),
        Source: z.string().optional(),
        Resources: z.array(z.string()).optional(),
        DetailType: z.string().optional(),
        Detail: z.string().optional(),
        EventBusName: busNameSchema.optional(),
        TraceHeader: z.string().optional(),
      }),
    )
    .min(1)
    .max(10),
  EndpointId: z.string().optional(),
});
type EventEntry = z.infer<typeof putEventsSchema>['Entries'][number];

const putRuleSchema = z.object({
  Name: ruleNameSchema,
  ScheduleExpression: z.string().max(256).optional(),
  EventPattern: z.string().max(4096).optional(),
  State: z.enum(['ENABLED', 'DISABLED', 'ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS']).optional(),
  Description: z.string().max(512).optional(),
  RoleArn: z.string().min(1).max(1600).optional(),
  Tags: tagsSchema.optional(),
  EventBusName: busNameSchema.optional(),
});
const ruleSchema = z.object({ Name: ruleNameSchema, EventBusName: busNameSchema.optional() });
const listRulesSchema = z.object({
  NamePrefix: z.string().min(1).max(64).optional(),
  EventBusName: busNameSchema.optional(),
  NextToken: z.string().optional(),
  Limit: limitSchema,
});
// Targets carry many optional parameter blocks (Input, SqsParameters, RetryPolicy, ...): kept as given.
const targetSchema = z.looseObject({
  Id: z
    .string()
    .min(1)
    .max(64)
    .regex(/^[.\-_A-Za-z0-9]+$/),
  Arn: z.string().min(1).max(1600),
});
type Target = z.infer<typeof targetSchema>;
const putTargetsSchema = z.object({
  Rule: ruleNameSchema,
  EventBusName: busNameSchema.optional(),
  Targets: z.array(targetSchema).min(1).max(10),
});
const removeTargetsSchema = z.object({
  Rule: ruleNameSchema,
  EventBusName: busNameSchema.optional(),
  Ids: z.array(z.string().min(1).max(64)).min(1).max(100),
  Force: z.boolean().optional(),
});
const listTargetsSchema = z.object({
  Rule: ruleNameSchema,
  EventBusName: busNameSchema.optional(),
  NextToken: z.string().optional(),
  Limit: limitSchema,
});
const createBusSchema = z.object({
  Name: z
    .string()
    .min(1)
    .max(256)
    .regex(/^[.\-_A-Za-z0-9]+$/),
  EventSourceName: z.string().optional(),
  Description: z.string().max(512).optional(),
  KmsKeyIdentifier: z.string().max(2048).optional(),
  DeadLetterConfig: z.object({ Arn: z.string().optional() }).optional(),
  Tags: tagsSchema.optional(),
});
const busSchema = z.object({ Name: busNameSchema.optional() });

interface Tag {
  readonly Key: string;
  readonly Value: string;
}

/** A custom event bus; the `default` bus is not stored, it always exists. Times in epoch milliseconds. */
interface StoredBus {
  readonly description?: string;
  readonly kmsKeyIdentifier?: string;
  readonly deadLetterConfig?: { readonly Arn?: string };
  readonly tags: readonly Tag[];
  readonly created: number;
}

/** A rule, keyed `<bus>|<name>` (`|` occurs in neither). Targets are kept, never invoked. */
interface StoredRule {
  readonly name: string;
  readonly bus: string;
  readonly arn: string;
  readonly eventPattern?: string;
  readonly scheduleExpression?: string;
  readonly state: string;
  readonly description?: string;
  readonly roleArn?: string;
  readonly tags: readonly Tag[];
  readonly targets: readonly Target[];
}

/** An event as `GET /_sandbox/events` returns it. */
export interface KeptEvent {
  readonly id: string;
  /** The event's time, as AWS puts it in the event envelope: to the second. */
  readonly time: string;
  readonly bus: string;
  readonly source: string;
  readonly detailType: string;
  readonly detail: unknown;
  readonly resources: readonly string[];
}

interface StoredEvent extends KeptEvent {
  /** When the sandbox received the event; what `since` compares with. */
  readonly receivedAt: string;
}

type EntryResult = { EventId: string } | { ErrorCode: string; ErrorMessage: string };

/**
 * EventBridge (awsJson1.1): PutEvents keeps every event, for tests to read at `GET /_sandbox/events`;
 * rules, targets and buses are stored and described, but nothing is delivered.
 */
export function createEventBridge({ store, region, accountId }: ServiceDeps): ServiceHandler {
  const buses = store.collection<StoredBus>('events', 'bus');
  const rules = store.collection<StoredRule>('events', 'rule');
  const events = store.collection<StoredEvent>('events', 'event');
  const lock = new KeyedLock();
  const arnBase = `arn:aws:events:${region}:${accountId}:`;
  const busArn = (name: string) => `${arnBase}event-bus/${name}`;
  const ruleArn = (bus: string, name: string) =>
    `${arnBase}rule/${bus === DEFAULT_BUS ? '' : `${bus}/`}${name}`;
  const ruleKey = (bus: string, name: string) => `${bus}|${name}`;

  /** A bus's name, from its name or its ARN. */
  function busName(nameOrArn = DEFAULT_BUS): string {
    const marker = ':event-bus/';
    const at = nameOrArn.startsWith('arn:') ? nameOrArn.indexOf(marker) : -1;
    return at < 0 ? nameOrArn : nameOrArn.slice(at + marker.length);
  }

  async function busExists(name: string): Promise<boolean> {
    return name === DEFAULT_BUS || (await buses.get(name)) !== undefined;
  }

  async function existingBus(nameOrArn?: string): Promise<string> {
    const name = busName(nameOrArn);
    if (!(await busExists(name)))
      throw new AwsError('ResourceNotFoundException', `Event bus ${name} does not exist.`);
    return name;
  }

  async function existingRule(name: string, busNameOrArn?: string): Promise<StoredRule> {
    const bus = busName(busNameOrArn);
    const rule = await rules.get(ruleKey(bus, name));
    if (!rule)
      throw new AwsError('ResourceNotFoundException', `Rule ${name} does not exist on EventBus ${bus}.`);
    return rule;
  }

  async function putEvents(raw: JsonObject): Promise<JsonObject> {
    const { Entries } = parseInput(putEventsSchema, raw, VALIDATION);
    const receivedAt = new Date();
    const results = await Promise.all(Entries.map((entry, index) => putEvent(entry, receivedAt, index)));
    return { FailedEntryCount: results.filter((result) => 'ErrorCode' in result).length, Entries: results };
  }

  async function putEvent(entry: EventEntry, receivedAt: Date, index: number): Promise<EntryResult> {
    for (const field of ['Source', 'DetailType', 'Detail'] as const) {
      if (entry[field] === undefined) {
        return {
          ErrorCode: 'InvalidArgument',
          ErrorMessage: `Parameter ${field} is not valid. Reason: ${field} is a required argument.`,
        };
      }
    }
    const detail = parseDetail(entry.Detail ?? '');
    if (detail === undefined) return { ErrorCode: 'MalformedDetail', ErrorMessage: 'Detail is malformed.' };
    const id = randomUUID();
    const time = entry.Time === undefined ? receivedAt : new Date(entry.Time * 1000);
    // AWS answers success even for a bus that does not exist (and drops the event); keeping it under the
    // name it was sent to lets a test see the mistake.
    const event: StoredEvent = {
      id,
      time: time.toISOString().replace(/\.\d{3}Z$/, 'Z'),
      bus: busName(entry.EventBusName),
      source: entry.Source ?? '',
      detailType: entry.DetailType ?? '',
      detail,
      resources: entry.Resources ?? [],
      receivedAt: receivedAt.toISOString(),
    };
    // The index keeps the entries of one call in their order under the same receipt time.
    await events.put(`${event.receivedAt}/${String(index).padStart(2, '0')}/${id}`, event);
    return { EventId: id };
  }

  async function putRule(raw: JsonObject): Promise<JsonObject> {
    const input = parseInput(putRuleSchema, raw, VALIDATION);
    if (input.EventPattern === undefined && input.ScheduleExpression === undefined) {
      throw new AwsError(VALIDATION, 'Parameter(s) EventPattern or ScheduleExpression must be specified.');
    }
    if (input.EventPattern !== undefined && parseDetail(input.EventPattern) === undefined) {
      throw new AwsError(
        'InvalidEventPatternException',
        'Event pattern is not valid. Reason: it is not a JSON object.',
      );
    }
    const bus = await existingBus(input.EventBusName);
    if (input.ScheduleExpression !== undefined && bus !== DEFAULT_BUS) {
      throw new AwsError(VALIDATION, 'ScheduleExpression is supported only on the default event bus.');
    }
    const key = ruleKey(bus, input.Name);
    return lock.run(key, async () => {
      const existing = await rules.get(key);
      const rule: StoredRule = {
        name: input.Name,
        bus,
        arn: ruleArn(bus, input.Name),
        eventPattern: input.EventPattern,
        scheduleExpression: input.ScheduleExpression,
        state: input.State ?? 'ENABLED',
        description: input.Description,
        roleArn: input.RoleArn,
        tags: existing?.tags ?? input.Tags ?? [],
        targets: existing?.targets ?? [],
      };
      await rules.put(key, rule);
      return { RuleArn: rule.arn };
    });
  }

  async function deleteRule(raw: JsonObject): Promise<undefined> {
    const input = parseInput(ruleSchema, raw, VALIDATION);
    const key = ruleKey(busName(input.EventBusName), input.Name);
    await lock.run(key, async () => {
      const rule = await rules.get(key);
      // Deleting a rule that is not there succeeds, as AWS documents.
      if (!rule) return;
      if (rule.targets.length > 0)
        throw new AwsError(VALIDATION, "Rule can't be deleted since it has targets.");
      await rules.delete(key);
    });
    return undefined;
  }

  async function describeRule(raw: JsonObject): Promise<JsonObject> {
    const input = parseInput(ruleSchema, raw, VALIDATION);
    return { ...describedRule(await existingRule(input.Name, input.EventBusName)), CreatedBy: accountId };
  }

  async function listRules(raw: JsonObject): Promise<JsonObject> {
    const input = parseInput(listRulesSchema, raw, VALIDATION);
    const bus = await existingBus(input.EventBusName);
    const all = await rules.list({ prefix: ruleKey(bus, input.NamePrefix ?? '') });
    const { page, nextToken } = paginate(all, input.NextToken, input.Limit ?? 100);
    return { Rules: page.map(({ doc }) => describedRule(doc)), NextToken: nextToken };
  }

  async function putTargets(raw: JsonObject): Promise<JsonObject> {
    const input = parseInput(putTargetsSchema, raw, VALIDATION);
    const bus = busName(input.EventBusName);
    await lock.run(ruleKey(bus, input.Rule), async () => {
      const rule = await existingRule(input.Rule, bus);
      const ids = new Set(input.Targets.map((target) => target.Id));
      const targets = [...rule.targets.filter((target) => !ids.has(target.Id)), ...input.Targets];
      if (targets.length > MAX_TARGETS_PER_RULE) {
        throw new AwsError(
          'LimitExceededException',
          `The requested resource exceeds the maximum number allowed: a rule has at most ${MAX_TARGETS_PER_RULE} targets.`,
        );
      }
      await rules.put(ruleKey(bus, input.Rule), { ...rule, targets });
    });
    return { FailedEntryCount: 0, FailedEntries: [] };
  }

  async function removeTargets(raw: JsonObject): Promise<JsonObject> {
    const input = parseInput(removeTargetsSchema, raw, VALIDATION);
    const bus = busName(input.EventBusName);
    await lock.run(ruleKey(bus, input.Rule), async () => {
      const rule = await existingRule(input.Rule, bus);
      const targets = rule.targets.filter((target) => !input.Ids.includes(target.Id));
      await rules.put(ruleKey(bus, input.Rule), { ...rule, targets });
    });
    return { FailedEntryCount: 0, FailedEntries: [] };
  }

  async function listTargetsByRule(raw: JsonObject): Promise<JsonObject> {
    const input = parseInput(listTargetsSchema, raw, VALIDATION);
    const rule = await existingRule(input.Rule, input.EventBusName);
    const { page, nextToken } = paginate(rule.targets, input.NextToken, input.Limit ?? 100);
    return { Targets: page, NextToken: nextToken };
  }

  async function createEventBus(raw: JsonObject): Promise<JsonObject> {
    const input = parseInput(createBusSchema, raw, VALIDATION);
    const bus: StoredBus = {
      description: input.Description,
      kmsKeyIdentifier: input.KmsKeyIdentifier,
      deadLetterConfig: input.DeadLetterConfig,
      tags: input.Tags ?? [],
      created: Date.now(),
    };
    if (input.Name === DEFAULT_BUS || !(await buses.insert(input.Name, bus))) {
      throw new AwsError('ResourceAlreadyExistsException', `Event bus ${input.Name} already exists.`);
    }
    return {
      EventBusArn: busArn(input.Name),
      Description: bus.description,
      KmsKeyIdentifier: bus.kmsKeyIdentifier,
      DeadLetterConfig: bus.deadLetterConfig,
    };
  }

  async function describeEventBus(raw: JsonObject): Promise<JsonObject> {
    const name = busName(parseInput(busSchema, raw, VALIDATION).Name);
    if (name === DEFAULT_BUS) return { Name: name, Arn: busArn(name) };
    const bus = await buses.get(name);
    if (!bus) throw new AwsError('ResourceNotFoundException', `Event bus ${name} does not exist.`);
    return {
      Name: name,
      Arn: busArn(name),
      Description: bus.description,
      KmsKeyIdentifier: bus.kmsKeyIdentifier,
      DeadLetterConfig: bus.deadLetterConfig,
      CreationTime: bus.created / 1000,
      LastModifiedTime: bus.created / 1000,
    };
  }

  async function deleteEventBus(raw: JsonObject): Promise<undefined> {
    const name = busName(parseInput(busSchema, raw, VALIDATION).Name);
    if (name === DEFAULT_BUS) throw new AwsError(VALIDATION, 'Cannot delete event bus default.');
    // A bus's rules go with it; deleting a bus that is not there succeeds.
    await rules.deletePrefix(ruleKey(name, ''));
    await buses.delete(name);
    return undefined;
  }

  /** `GET /_sandbox/events?source=&detailType=&bus=&since=`: the kept events, oldest first. */
  async function listEvents(request: HttpRequest) {
    const filter = (name: string) => request.query.get(name) ?? undefined;
    const since = filter('since');
    const sinceMs = since === undefined ? undefined : Date.parse(since);
    if (sinceMs !== undefined && Number.isNaN(sinceMs))
      return json(400, { error: `since is not a time: ${since}` });
    const bus = filter('bus');
    const wanted = {
      source: filter('source'),
      detailType: filter('detailType'),
      bus: bus === undefined ? undefined : busName(bus),
    };
    // Keys start with the receipt time, so the store skips what came earlier; the filter settles the millisecond.
    const sinceIso = sinceMs === undefined ? undefined : new Date(sinceMs).toISOString();
    const after = sinceMs === undefined ? undefined : new Date(sinceMs - 1).toISOString();
    const kept = (await events.list({ after })).map(({ doc }) => doc);
    const matching = kept.filter(
      (event) =>
        (sinceIso === undefined || event.receivedAt >= sinceIso) &&
        (wanted.source === undefined || event.source === wanted.source) &&
        (wanted.detailType === undefined || event.detailType === wanted.detailType) &&
        (wanted.bus === undefined || event.bus === wanted.bus),
    );
    return json(
      200,
      matching.map(({ receivedAt: _receivedAt, ...event }) => event),
    );
  }

  const handler = jsonService({
    service: 'eventbridge',
    signingName: 'events',
    targetPrefix: 'AWSEvents',
    contentType: 'application/x-amz-json-1.1',
    operations: {
      PutEvents: putEvents,
      PutRule: putRule,
      DeleteRule: deleteRule,
      DescribeRule: describeRule,
      ListRules: listRules,
      PutTargets: putTargets,
      RemoveTargets: removeTargets,
      ListTargetsByRule: listTargetsByRule,
      CreateEventBus: createEventBus,
      DescribeEventBus: describeEventBus,
      DeleteEventBus: deleteEventBus,
    },
    subject: (_operation, input) => chaosSubject(input),
  });

  return {
    ...handler,
    routes: {
      'GET /_sandbox/events': listEvents,
      'DELETE /_sandbox/events': async () => {
        await events.deletePrefix('');
        return json(200, []);
      },
    },
  };
}

function describedRule(rule: StoredRule): JsonObject {
  return {
    Name: rule.name,
    Arn: rule.arn,
    EventPattern: rule.eventPattern,
    ScheduleExpression: rule.scheduleExpression,
    State: rule.state,
    Description: rule.description,
    RoleArn: rule.roleArn,
    EventBusName: rule.bus,
  };
}

/** A JSON object, or undefined: EventBridge takes nothing else as an event's detail or a rule's pattern. */
function parseDetail(text: string): JsonObject | undefined {
  try {
    const parsed: unknown = JSON.parse(text);
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
      ? { ...parsed }
      : undefined;
  } catch {
    return undefined;
  }
}

function paginate<T>(items: readonly T[], token: string | undefined, limit: number) {
  const offset = token === undefined ? 0 : offsetToken.decode(token);
  if (offset === undefined) throw new AwsError(VALIDATION, 'The NextToken value is not valid.');
  const end = offset + limit;
  return {
    page: items.slice(offset, end),
    nextToken: end < items.length ? offsetToken.encode(end) : undefined,
  };
}

const subjectSchema = z.object({
  Entries: z.array(z.object({ DetailType: z.string().optional() })).optional(),
  Name: z.string().optional(),
  Rule: z.string().optional(),
  NamePrefix: z.string().optional(),
});

/** What a chaos rule's `match` sees: PutEvents' detail types joined with commas, else the rule (or bus) name. */
function chaosSubject(raw: JsonObject): string | undefined {
  const parsed = subjectSchema.safeParse(raw);
  if (!parsed.success) return undefined;
  const { Entries, Name, Rule, NamePrefix } = parsed.data;
  if (Entries) return Entries.flatMap((entry) => entry.DetailType ?? []).join(',');
  return Rule ?? Name ?? NamePrefix;
}
