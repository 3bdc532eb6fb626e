import type { IncomingHttpHeaders } from 'node:http';
import type { QueryProtocol } from './query.ts';

/** Services answered by the sandbox, named as in the SDK's endpoint variables (lower case, hyphens). */
export const SERVICE_NAMES = [
  'rds-data',
  'secrets-manager',
  'cloudwatch',
  's3',
  'sfn',
  'eventbridge',
  'sns',
  'logs',
] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];

/** An AWS API error, encoded by each service in its own wire protocol. */
export class AwsError extends Error {
  readonly code: string;
  readonly statusCode: number;

  constructor(code: string, message: string, statusCode = 400) {
    super(message);
    this.name = code;
    this.code = code;
    this.statusCode = statusCode;
  }

  /** Whether AWS blames the caller (`Sender`) or itself (`Receiver`). */
  get fault(): 'Sender' | 'Receiver' {
    return this.statusCode < 500 ? 'Sender' : 'Receiver';
  }
}

export interface HttpRequest {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

export interface HttpResponse {
  readonly statusCode: number;
  readonly headers?: Record<string, string>;
  readonly body?: Buffer | string;
}

/** One API call as the chaos rules and the call log see it. */
export interface ApiCall {
  readonly service: ServiceName;
  readonly operation: string;
  /** What a chaos rule's `match` is tested against: SQL, secret name, alarm name, object key, … */
  readonly subject?: string;
}

/** Given to a service for each request: `admit` records the call and throws the error a chaos rule asks for. */
export interface CallContext {
  admit(call: ApiCall): void;
}

/** A sandbox-only route, such as the chaos API; its path is under `/_sandbox/`. */
export type SandboxRoute = (request: HttpRequest) => Promise<HttpResponse>;

export interface ServiceHandler {
  readonly service: ServiceName;
  /** The service name in the SigV4 credential scope, which routes a request to its service. */
  readonly signingName: string;
  handle(request: HttpRequest, context: CallContext): Promise<HttpResponse>;
  /** Sandbox-only routes the service adds, keyed `METHOD /_sandbox/…` (EventBridge's event list, say). */
  readonly routes?: Readonly<Record<string, SandboxRoute>>;
  /** Releases what the service holds (connections, timers). */
  close?(): Promise<void>;
}

export type JsonObject = Record<string, unknown>;
export type Operation = (input: JsonObject) => Promise<JsonObject | undefined>;

export interface JsonServiceOptions {
  readonly service: ServiceName;
  readonly signingName: string;
  /** The `X-Amz-Target` prefix, e.g. `secretsmanager` or `GraniteServiceVersion20100801`. */
  readonly targetPrefix: string;
  readonly contentType: 'application/x-amz-json-1.0' | 'application/x-amz-json-1.1';
  /** Query-compatible services (CloudWatch) also name the error in `x-amzn-query-error`. */
  readonly queryCompatible?: boolean;
  readonly operations: Readonly<Record<string, Operation>>;
  readonly subject?: (operation: string, input: JsonObject) => string | undefined;
  /** Serve the query protocol too, by the same operations (CloudWatch: `queryProtocol` of ./query.ts). */
  readonly query?: QueryProtocol;
}

/**
 * A service spoken in awsJson1.0 or awsJson1.1: `X-Amz-Target: <prefix>.<Operation>`, JSON in and out. An
 * operation gives timestamps as `Date`, which awsJson sends as epoch seconds.
 */
export function jsonService(options: JsonServiceOptions): ServiceHandler {
  const encodeError = (error: AwsError): HttpResponse => {
    const headers: Record<string, string> = {
      'content-type': options.contentType,
      'x-amzn-errortype': error.code,
    };
    if (options.queryCompatible) headers['x-amzn-query-error'] = `${error.code};${error.fault}`;
    return {
      statusCode: error.statusCode,
      headers,
      body: JSON.stringify({ __type: error.code, message: error.message }),
    };
  };
  const operationNamed = (name: string): Operation | undefined =>
    Object.hasOwn(options.operations, name) ? options.operations[name] : undefined;
  const invoke = (operation: Operation, name: string, input: JsonObject, context: CallContext) => {
    context.admit({ service: options.service, operation: name, subject: options.subject?.(name, input) });
    return operation(input);
  };
  return {
    service: options.service,
    signingName: options.signingName,
    async handle(request, context) {
      if (options.query?.accepts(request)) {
        return options.query.handle(request, (name, input) => {
          const operation = operationNamed(name);
          if (!operation)
            throw new AwsError('InvalidAction', `The action ${name} is not valid for this web service.`);
          return invoke(operation, name, input, context);
        });
      }
      try {
        const target = String(request.headers['x-amz-target'] ?? '');
        const [prefix, name = ''] = target.split('.');
        const operation = operationNamed(name);
        if (prefix !== options.targetPrefix || !operation) {
          throw new AwsError('UnknownOperationException', `Operation ${target} is not supported`);
        }
        const output = await invoke(operation, name, parseJsonObject(request.body), context);
        return {
          statusCode: 200,
          headers: { 'content-type': options.contentType },
          body: JSON.stringify(output ?? {}, epochSecondDates),
        };
      } catch (error) {
        return encodeError(toAwsError(error));
      }
    },
  };
}

/** JSON.stringify's replacer for awsJson: a `Date` (which `toJSON` has made ISO text by now) as epoch seconds. */
function epochSecondDates(this: Record<string, unknown>, key: string, value: unknown): unknown {
  const original = this[key];
  return original instanceof Date ? original.getTime() / 1000 : value;
}

export function parseJsonObject(body: Buffer): JsonObject {
  if (body.length === 0) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw new AwsError('SerializationException', 'Request body is not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new AwsError('SerializationException', 'Request body must be a JSON object');
  }
  return parsed as JsonObject;
}

/** An unexpected failure inside the sandbox becomes AWS's generic 500, with the reason kept in the message. */
export function toAwsError(error: unknown): AwsError {
  if (error instanceof AwsError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new AwsError('InternalFailure', `Sandbox failure: ${message}`, 500);
}
