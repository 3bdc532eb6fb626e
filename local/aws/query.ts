// The AWS query protocol (awsQuery), as CloudWatch still serves it beside awsJson1.0: a form-encoded
// `Action=<Operation>&Version=<api version>&…` in, an XML document out. Older SDKs and the AWS CLI of Linux
// distributions (Debian's awscli 2.9) speak it. This front turns the form into the JSON input the service's
// operations take and their JSON output into the query protocol's XML, so that both protocols run the same code.
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { AwsError, type HttpRequest, type HttpResponse, type JsonObject, toAwsError } from './protocol.ts';
import { leaf, node } from './xml.ts';

const timestamps = new WeakSet<z.ZodType>();
const maps = new WeakMap<z.ZodType, { readonly key: string; readonly value: string }>();

/**
 * A timestamp member of an operation's input: epoch seconds in awsJson, ISO-8601 text in the query protocol
 * (botocore's query serializer writes `2024-05-01T12:00:00Z`). Keep the schema this returns as it is
 * (`.optional()` around it is fine; a refinement makes a new schema the front no longer knows as a timestamp).
 */
export function timestampSchema(): z.ZodNumber {
  const schema = z.number();
  timestamps.add(schema);
  return schema;
}

/**
 * A map member of an operation's input: a JSON object in awsJson, `<Member>.entry.N.<key>` and `.entry.N.<value>`
 * in the query protocol, with the names the service's model gives (SNS's MessageAttributes: `Name`, `Value`).
 */
export function formMap<V extends z.ZodType>(
  value: V,
  names: { readonly key: string; readonly value: string },
): z.ZodRecord<z.ZodString, V> {
  const schema = z.record(z.string(), value);
  maps.set(schema, names);
  return schema;
}

export interface QueryProtocolOptions {
  /** The API version a request must name in `Version`, e.g. `2010-08-01`. */
  readonly version: string;
  /** The namespace of every response document, e.g. `http://monitoring.amazonaws.com/doc/2010-08-01/`. */
  readonly xmlNamespace: string;
  /** Each operation's input schema, which says how the form's flat keys become JSON. */
  readonly inputs: Readonly<Record<string, z.ZodType>>;
}

/** Runs an operation on JSON input and gives its JSON output, as the awsJson side does. */
export type Invoke = (operation: string, input: JsonObject) => Promise<JsonObject | undefined>;

export interface QueryProtocol {
  /** Whether the request is in the query protocol: a form without `X-Amz-Target`, or a GET with `Action`. */
  accepts(request: HttpRequest): boolean;
  handle(request: HttpRequest, invoke: Invoke): Promise<HttpResponse>;
}

export function queryProtocol(options: QueryProtocolOptions): QueryProtocol {
  const xml = (root: string, ...children: string[]) =>
    `<${root} xmlns="${options.xmlNamespace}">${children.join('')}</${root}>`;
  return {
    accepts(request) {
      if (request.headers['x-amz-target'] !== undefined) return false;
      if (request.method === 'GET') return request.query.has('Action');
      return String(request.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded');
    },
    async handle(request, invoke) {
      const requestId = randomUUID();
      const headers = { 'content-type': 'text/xml', 'x-amzn-requestid': requestId };
      try {
        const params =
          request.method === 'GET' ? request.query : new URLSearchParams(request.body.toString('utf8'));
        const action = params.get('Action');
        if (!action) throw new AwsError('MissingAction', 'The request must contain the parameter Action.');
        const schema = Object.hasOwn(options.inputs, action) ? options.inputs[action] : undefined;
        if (!schema)
          throw new AwsError('InvalidAction', `The action ${action} is not valid for this web service.`);
        const version = params.get('Version');
        if (!version)
          throw new AwsError('MissingParameter', 'The request must contain the parameter Version.');
        if (version !== options.version) {
          throw new AwsError('InvalidAction', `Could not find operation ${action} for version ${version}`);
        }
        const input = fromForm(formTree(params), schema);
        const output = await invoke(action, isObject(input) ? input : {});
        return {
          statusCode: 200,
          headers,
          // An operation without output answers with the response metadata alone, as AWS does.
          body: xml(
            `${action}Response`,
            output === undefined ? '' : xmlMember(`${action}Result`, output),
            node('ResponseMetadata', leaf('RequestId', requestId)),
          ),
        };
      } catch (caught) {
        const error = toAwsError(caught);
        return {
          statusCode: error.statusCode,
          headers,
          body: xml(
            'ErrorResponse',
            node(
              'Error',
              leaf('Type', error.fault),
              leaf('Code', error.code),
              leaf('Message', error.message),
            ),
            leaf('RequestId', requestId),
          ),
        };
      }
    },
  };
}

type FormNode = string | { [key: string]: FormNode };

const isObject = (value: unknown): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** The form's keys as a tree: `Dimensions.member.1.Name=x` becomes `{Dimensions: {member: {1: {Name: 'x'}}}}`. */
function formTree(params: URLSearchParams): { [key: string]: FormNode } {
  const root: { [key: string]: FormNode } = Object.create(null);
  for (const [key, value] of params) {
    if (key === 'Action' || key === 'Version') continue;
    const parts = key.split('.');
    const last = parts.pop() ?? key;
    let at = root;
    for (const part of parts) {
      let next = at[part];
      if (typeof next !== 'object') {
        next = Object.create(null) as { [key: string]: FormNode };
        at[part] = next;
      }
      at = next;
    }
    // `List=` says the list is empty; members given as well win over it.
    if (typeof at[last] !== 'object') at[last] = value;
  }
  return root;
}

function unwrapped(schema: z.ZodType): z.ZodType {
  let inner = schema;
  while (inner instanceof z.ZodOptional || inner instanceof z.ZodNullable || inner instanceof z.ZodDefault) {
    inner = inner.unwrap() as z.ZodType;
  }
  return inner;
}

/**
 * A form value as the JSON the schema takes: structures by member name, lists from `member.N` (1-based, `List=`
 * for an empty one), numbers, booleans and timestamps from their text. What does not fit is passed on as it is,
 * for the operation's own validation to refuse with the service's error.
 */
function fromForm(value: FormNode | undefined, schema: z.ZodType): unknown {
  if (value === undefined) return undefined;
  const inner = unwrapped(schema);
  if (inner instanceof z.ZodObject) {
    if (typeof value === 'string') return value;
    const shape: Record<string, z.ZodType> = inner.shape;
    const output: JsonObject = {};
    for (const [name, member] of Object.entries(shape)) {
      const converted = fromForm(value[name], member);
      if (converted !== undefined) output[name] = converted;
    }
    return output;
  }
  const map = maps.get(inner);
  if (map && inner instanceof z.ZodRecord) {
    const entries = typeof value === 'string' ? undefined : value.entry;
    if (entries === undefined || typeof entries === 'string') return value;
    const output: JsonObject = {};
    for (const entry of Object.values(entries)) {
      if (typeof entry === 'string') continue;
      const key = entry[map.key];
      if (typeof key === 'string') output[key] = fromForm(entry[map.value], inner.valueType as z.ZodType);
    }
    return output;
  }
  if (inner instanceof z.ZodArray) {
    if (value === '') return [];
    const members = typeof value === 'string' ? undefined : value.member;
    if (members === undefined || typeof members === 'string') return value;
    return Object.keys(members)
      .filter((index) => /^[1-9][0-9]*$/.test(index))
      .sort((a, b) => Number(a) - Number(b))
      .map((index) => fromForm(members[index], inner.element as z.ZodType));
  }
  if (typeof value !== 'string') return value;
  if (inner instanceof z.ZodNumber) return timestamps.has(inner) ? epochSecondsOf(value) : numberOf(value);
  if (inner instanceof z.ZodBoolean) return value === 'true' ? true : value === 'false' ? false : value;
  return value;
}

const NUMBER = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;

const numberOf = (text: string): number | string => (NUMBER.test(text.trim()) ? Number(text) : text);

function epochSecondsOf(text: string): number | string {
  if (NUMBER.test(text.trim())) return Number(text);
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? text : ms / 1000;
}

/**
 * A JSON output member in the query protocol's XML: a structure's members as child elements, a list's items as
 * `<member>` elements, timestamps (the operations give them as `Date`) in ISO-8601; absent members are left out.
 */
function xmlMember(name: string, value: unknown): string {
  if (value === undefined || value === null) return '';
  if (value instanceof Date) return leaf(name, value.toISOString());
  if (Array.isArray(value)) return node(name, ...value.map((item) => xmlMember('member', item)));
  if (typeof value === 'object') {
    return node(name, ...Object.entries(value).map(([member, item]) => xmlMember(member, item)));
  }
  return leaf(name, typeof value === 'string' ? value : String(value));
}
