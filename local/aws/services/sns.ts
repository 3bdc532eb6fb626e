import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import {
  AwsError,
  type CallContext,
  type HttpRequest,
  type JsonObject,
  type ServiceHandler,
} from '../protocol.ts';
import { formMap, queryProtocol } from '../query.ts';
import { json } from '../server.ts';
import { offsetToken, parseInput, type ServiceDeps } from './deps.ts';

// SNS speaks the query protocol only (API version 2010-03-31): the SDK's AwsQueryProtocol, the CLI's `aws sns`.
const VERSION = '2010-03-31';
const invalidParameter = (what: string) => new AwsError('InvalidParameter', `Invalid parameter: ${what}`);
/** SNS API Reference, Publish, Errors: NotFound, "Indicates that the requested resource does not exist" (404). */
const topicNotFound = () => new AwsError('NotFound', 'Topic does not exist', 404);

/** Publish (API Reference): "The maximum message size, including the message body and attributes, is 256 KB". */
const MAX_MESSAGE_BYTES = 256 * 1024;
/** Publish (API Reference): at most 10 message attributes. */
const MAX_ATTRIBUTES = 10;
const LIST_TOPICS_PAGE = 100;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what a Subject may not hold
const CONTROL = /[\u0000-\u001f\u007f]/;

const attributeValueSchema = z.object({
  DataType: z.string().optional(),
  StringValue: z.string().optional(),
  BinaryValue: z.string().optional(),
});
const publishSchema = z.object({
  TopicArn: z.string().optional(),
  TargetArn: z.string().optional(),
  PhoneNumber: z.string().optional(),
  Message: z.string().optional(),
  Subject: z.string().optional(),
  MessageStructure: z.string().optional(),
  MessageAttributes: formMap(attributeValueSchema, { key: 'Name', value: 'Value' }).optional(),
  MessageDeduplicationId: z.string().optional(),
  MessageGroupId: z.string().optional(),
});
type MessageAttributes = NonNullable<z.infer<typeof publishSchema>['MessageAttributes']>;
const createTopicSchema = z.object({
  Name: z.string().optional(),
  Attributes: formMap(z.string(), { key: 'key', value: 'value' }).optional(),
  Tags: z.array(z.object({ Key: z.string(), Value: z.string() })).optional(),
  DataProtectionPolicy: z.string().optional(),
});
const listTopicsSchema = z.object({ NextToken: z.string().optional() });

interface StoredTopic {
  readonly arn: string;
  readonly attributes: Readonly<Record<string, string>>;
  readonly created: number;
}

/** A published message as `GET /_sandbox/sns/messages` returns it. */
export interface KeptMessage {
  readonly messageId: string;
  readonly topicArn: string;
  readonly subject?: string;
  readonly message: string;
  readonly messageAttributes: MessageAttributes;
  /** When the sandbox received it (ISO-8601): what `since` compares with. */
  readonly receivedAt: string;
}

export interface SnsService extends ServiceHandler {
  /** Publishes as `Publish` does (same checks, same errors): CloudWatch's alarm actions call it in-process. */
  publish(topicArn: string, message: string, subject?: string): Promise<string>;
}

/**
 * SNS (the query protocol): topics (`CreateTopic`, `ListTopics`) and `Publish`, which keeps every message for tests
 * to read at `GET /_sandbox/sns/messages`; nothing is delivered to subscribers (there are none).
 */
export function createSns({ store, region, accountId }: ServiceDeps): SnsService {
  const topics = store.collection<StoredTopic>('sns', 'topic');
  const messages = store.collection<KeptMessage>('sns', 'message');
  const arnPrefix = `arn:aws:sns:${region}:${accountId}:`;
  let sequence = 0;

  /** The topic an ARN names, or NotFound: a well-formed ARN of no topic here (another account or Region, too). */
  async function topicOf(arn: string): Promise<StoredTopic> {
    if (!/^arn:aws:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$/.test(arn)) {
      throw invalidParameter('TopicArn');
    }
    const topic = arn.startsWith(arnPrefix) ? await topics.get(arn.slice(arnPrefix.length)) : undefined;
    if (!topic) throw topicNotFound();
    return topic;
  }

  async function keep(input: {
    topicArn: string;
    message: string;
    subject?: string | undefined;
    attributes?: MessageAttributes | undefined;
  }): Promise<string> {
    if (input.message.length === 0) throw invalidParameter('Empty message');
    // Publish, Subject: "UTF-8 text with no line breaks or control characters, and less than 100 characters long".
    if (input.subject !== undefined && (input.subject.length >= 100 || CONTROL.test(input.subject))) {
      throw invalidParameter('Subject');
    }
    const attributes = input.attributes ?? {};
    checkAttributes(attributes);
    if (messageBytes(input.message, attributes) > MAX_MESSAGE_BYTES)
      throw invalidParameter('Message too long');
    await topicOf(input.topicArn);
    const messageId = randomUUID();
    const receivedAt = new Date().toISOString();
    sequence += 1;
    await messages.put(`${receivedAt}/${String(sequence).padStart(12, '0')}`, {
      messageId,
      topicArn: input.topicArn,
      ...(input.subject === undefined ? {} : { subject: input.subject }),
      message: input.message,
      messageAttributes: attributes,
      receivedAt,
    });
    return messageId;
  }

  async function publish(raw: JsonObject): Promise<JsonObject> {
    const input = parseInput(publishSchema, raw, 'InvalidParameter');
    if (input.PhoneNumber !== undefined) {
      throw invalidParameter('PhoneNumber Reason: the sandbox sends no SMS; publish to a topic');
    }
    const topicArn = input.TopicArn ?? input.TargetArn;
    if (topicArn === undefined)
      throw invalidParameter('TopicArn or TargetArn Reason: no value for required parameter');
    if (input.Message === undefined) {
      throw new AwsError(
        'ValidationError',
        "1 validation error detected: Value null at 'message' failed to satisfy constraint: Member must not be null",
      );
    }
    const MessageId = await keep({
      topicArn,
      message: input.Message,
      subject: input.Subject,
      attributes: input.MessageAttributes,
    });
    return { MessageId };
  }

  async function createTopic(raw: JsonObject): Promise<JsonObject> {
    const input = parseInput(createTopicSchema, raw, 'InvalidParameter');
    const fifo = input.Attributes?.FifoTopic === 'true';
    // CreateTopic, Name: "uppercase and lowercase ASCII letters, numbers, underscores, and hyphens, … between 1
    // and 256 characters long"; a FIFO topic's name ends in `.fifo`.
    const pattern = fifo ? /^[A-Za-z0-9_-]{1,251}\.fifo$/ : /^[A-Za-z0-9_-]{1,256}$/;
    if (input.Name === undefined || !pattern.test(input.Name)) throw invalidParameter('Topic Name');
    const arn = `${arnPrefix}${input.Name}`;
    // CreateTopic is idempotent: a topic of that name is answered with its ARN.
    await topics.insert(input.Name, { arn, attributes: input.Attributes ?? {}, created: Date.now() });
    return { TopicArn: arn };
  }

  async function listTopics(raw: JsonObject): Promise<JsonObject> {
    const input = parseInput(listTopicsSchema, raw, 'InvalidParameter');
    const offset = input.NextToken === undefined ? 0 : offsetToken.decode(input.NextToken);
    if (offset === undefined) throw invalidParameter('NextToken');
    const all = await topics.list();
    const page = all.slice(offset, offset + LIST_TOPICS_PAGE);
    const end = offset + LIST_TOPICS_PAGE;
    return {
      Topics: page.map(({ doc }) => ({ TopicArn: doc.arn })),
      NextToken: end < all.length ? offsetToken.encode(end) : undefined,
    };
  }

  const operations: Record<string, (input: JsonObject) => Promise<JsonObject | undefined>> = {
    Publish: publish,
    CreateTopic: createTopic,
    ListTopics: listTopics,
  };
  const query = queryProtocol({
    version: VERSION,
    xmlNamespace: `http://sns.amazonaws.com/doc/${VERSION}/`,
    inputs: { Publish: publishSchema, CreateTopic: createTopicSchema, ListTopics: listTopicsSchema },
  });

  /** `GET /_sandbox/sns/messages?topicArn=&since=`: the published messages, oldest first. */
  async function listMessages(request: HttpRequest) {
    const topicArn = request.query.get('topicArn') ?? undefined;
    const since = request.query.get('since') ?? undefined;
    const sinceMs = since === undefined ? undefined : Date.parse(since);
    if (sinceMs !== undefined && Number.isNaN(sinceMs))
      return json(400, { error: `since is not a time: ${since}` });
    const after = sinceMs === undefined ? undefined : new Date(sinceMs - 1).toISOString();
    const sinceIso = sinceMs === undefined ? undefined : new Date(sinceMs).toISOString();
    const kept = (await messages.list({ after })).map(({ doc }) => doc);
    return json(
      200,
      kept.filter(
        (message) =>
          (sinceIso === undefined || message.receivedAt >= sinceIso) &&
          (topicArn === undefined || message.topicArn === topicArn),
      ),
    );
  }

  return {
    service: 'sns',
    signingName: 'sns',
    async handle(request, context: CallContext) {
      return query.handle(request, (name, input) => {
        const operation = Object.hasOwn(operations, name) ? operations[name] : undefined;
        if (!operation)
          throw new AwsError('InvalidAction', `The action ${name} is not valid for this web service.`);
        context.admit({ service: 'sns', operation: name, subject: chaosSubject(input) });
        return operation(input);
      });
    },
    publish: (topicArn, message, subject) => keep({ topicArn, message, subject }),
    routes: {
      'GET /_sandbox/sns/messages': listMessages,
      'DELETE /_sandbox/sns/messages': async () => {
        await messages.deletePrefix('');
        return json(200, []);
      },
    },
  };
}

/** What a chaos rule's `match` sees: the topic ARN (Publish) or name (CreateTopic). */
function chaosSubject(input: JsonObject): string | undefined {
  const subject = input.TopicArn ?? input.TargetArn ?? input.Name;
  return typeof subject === 'string' ? subject : undefined;
}

/** Publish, MessageAttributes: each needs a DataType, and a value of that type. */
function checkAttributes(attributes: MessageAttributes): void {
  const names = Object.keys(attributes);
  if (names.length > MAX_ATTRIBUTES) {
    throw invalidParameter(
      `MessageAttributes Reason: Number of message attributes [${names.length}] exceeds the allowed maximum [${MAX_ATTRIBUTES}].`,
    );
  }
  for (const [name, value] of Object.entries(attributes)) {
    const type = value.DataType ?? '';
    if (type === '') {
      throw new AwsError(
        'ParameterValueInvalid',
        `The message attribute '${name}' must contain non-empty message attribute type.`,
      );
    }
    const base = type.split('.')[0];
    if (base !== 'String' && base !== 'Number' && base !== 'Binary') {
      throw new AwsError(
        'ParameterValueInvalid',
        `The message attribute '${name}' has an invalid message attribute type, the set of supported type prefixes is Binary, Number, and String.`,
      );
    }
    const given = base === 'Binary' ? value.BinaryValue : value.StringValue;
    if (given === undefined || given === '') {
      throw new AwsError(
        'ParameterValueInvalid',
        `The message attribute '${name}' with type '${base}' must contain non-empty message attribute value.`,
      );
    }
    if (base === 'Number' && !/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(given)) {
      throw new AwsError(
        'ParameterValueInvalid',
        `The message attribute '${name}' with type 'Number' has an invalid numeric value: '${given}'.`,
      );
    }
  }
}

/** The size Publish limits: the body and every attribute's name, type and value, in bytes. */
function messageBytes(message: string, attributes: MessageAttributes): number {
  let bytes = Buffer.byteLength(message, 'utf8');
  for (const [name, value] of Object.entries(attributes)) {
    bytes += Buffer.byteLength(name) + Buffer.byteLength(value.DataType ?? '');
    bytes += value.BinaryValue !== undefined ? Buffer.from(value.BinaryValue, 'base64').length : 0;
    bytes += Buffer.byteLength(value.StringValue ?? '');
  }
  return bytes;
}
