import { randomBytes, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DEFAULT_TIMEOUT_SECONDS, type FunctionDefinition, functionName } from '../functions/registry.ts';

export interface LambdaRuntimeOptions {
  readonly region: string;
  readonly accountId: string;
  /** The stack's prefix of function names, e.g. `tenant-provisioner-local`. */
  readonly functionNamePrefix: string;
  readonly functions: readonly FunctionDefinition[];
  /** What the registry's `entry` paths are relative to. */
  readonly projectRoot: string;
}

/** The functions of the registry, run in-process as Lambda would run them. */
export interface LambdaRuntime {
  /** ARN of a function of the registry, by its id; throws for an unknown id. */
  arnOf(id: string): string;
  /**
   * Invokes the function named by its ARN (qualifier `$LATEST` or none) or its name, with the payload
   * and result passed through JSON as over the wire. A handler's error becomes a {@link LambdaInvocationError};
   * an unknown function a {@link LambdaServiceError} named `Lambda.ResourceNotFoundException`.
   */
  invoke(functionArnOrName: string, payload: unknown): Promise<unknown>;
}

/** The `context` a Node.js Lambda handler receives (the fields handlers and Powertools read). */
export interface LambdaContext {
  readonly functionName: string;
  readonly functionVersion: string;
  readonly invokedFunctionArn: string;
  readonly memoryLimitInMB: string;
  readonly awsRequestId: string;
  readonly logGroupName: string;
  readonly logStreamName: string;
  getRemainingTimeInMillis(): number;
  callbackWaitsForEmptyEventLoop: boolean;
}

/** What Lambda reports when a function fails: the body of an `Invoke` response with `FunctionError` set. */
export interface FunctionErrorPayload {
  readonly errorType: string;
  readonly errorMessage: string;
  readonly trace?: readonly string[];
}

/**
 * A function's own failure, as Lambda reports it: `name` is the `errorType` (the thrown error's `name`,
 * which Step Functions matches in `ErrorEquals`).
 *
 * A timeout is reported as `Sandbox.Timedout` with Lambda's "Task timed out after N.00 seconds" message,
 * as the current Node.js runtimes do (older documentation calls it `Lambda.Unknown`); Step Functions'
 * `States.TaskFailed` and `States.ALL` match it, `States.Timeout` does not (that is a Task's own TimeoutSeconds).
 * The handler cannot be stopped in-process: after a timeout it runs on, its result ignored.
 */
export class LambdaInvocationError extends Error {
  readonly errorType: string;
  readonly errorMessage: string;
  readonly trace: readonly string[] | undefined;

  constructor(payload: FunctionErrorPayload) {
    super(payload.errorMessage);
    this.name = payload.errorType;
    this.errorType = payload.errorType;
    this.errorMessage = payload.errorMessage;
    this.trace = payload.trace;
  }

  /** The error payload Lambda returns, which Step Functions puts, as a JSON string, in `Cause`. */
  toPayload(): FunctionErrorPayload {
    return {
      errorType: this.errorType,
      errorMessage: this.errorMessage,
      ...(this.trace ? { trace: this.trace } : {}),
    };
  }
}

/** A failure of the Lambda service itself (no such function), named as Step Functions names it: `Lambda.<code>`. */
export class LambdaServiceError extends Error {
  constructor(code: string, message: string) {
    super(message);
    this.name = `Lambda.${code}`;
  }
}

type Handler = (event: unknown, context: LambdaContext) => unknown;

const MEMORY_MB = '128';

export function createLambdaRuntime(options: LambdaRuntimeOptions): LambdaRuntime {
  const arnPrefix = `arn:aws:lambda:${options.region}:${options.accountId}:function:`;
  const byName = new Map(options.functions.map((fn) => [functionName(options.functionNamePrefix, fn), fn]));
  const byId = new Map(options.functions.map((fn) => [fn.id, fn]));
  // Modules load once, as in a warm container; a failed import is retried on the next call.
  const handlers = new Map<string, Promise<Handler>>();

  const loadHandler = (fn: FunctionDefinition): Promise<Handler> => {
    let handler = handlers.get(fn.id);
    if (!handler) {
      handler = importHandler(options.projectRoot, fn);
      handlers.set(fn.id, handler);
      handler.catch(() => handlers.delete(fn.id));
    }
    return handler;
  };

  const resolve = (functionArnOrName: string): { name: string; fn: FunctionDefinition } => {
    const name = functionNameOf(functionArnOrName, arnPrefix);
    const fn = name === undefined ? undefined : byName.get(name);
    if (name === undefined || !fn) {
      throw new LambdaServiceError(
        'ResourceNotFoundException',
        `Function not found: ${functionArnOrName} (Service: Lambda, Status Code: 404, Error Code: ResourceNotFoundException)`,
      );
    }
    return { name, fn };
  };

  return {
    arnOf(id) {
      const fn = byId.get(id);
      if (!fn) throw new Error(`No function ${id} in the registry`);
      return arnPrefix + functionName(options.functionNamePrefix, fn);
    },

    async invoke(functionArnOrName, payload) {
      const { name, fn } = resolve(functionArnOrName);
      const event = overTheWire(payload);
      const timeoutMs = (fn.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS) * 1000;
      const deadline = Date.now() + timeoutMs;
      const awsRequestId = randomUUID();
      const context: LambdaContext = {
        functionName: name,
        functionVersion: '$LATEST',
        invokedFunctionArn: arnPrefix + name,
        memoryLimitInMB: MEMORY_MB,
        awsRequestId,
        logGroupName: `/aws/lambda/${name}`,
        logStreamName: logStreamName(),
        getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
        callbackWaitsForEmptyEventLoop: true,
      };
      const handler = await loadHandler(fn);
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          reject(
            new LambdaInvocationError({
              errorType: 'Sandbox.Timedout',
              errorMessage: `RequestId: ${awsRequestId} Error: Task timed out after ${(timeoutMs / 1000).toFixed(2)} seconds`,
            }),
          );
        }, timeoutMs);
      });
      try {
        const result = await Promise.race([callHandler(handler, event, context), timedOut]);
        return overTheWire(result);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** The function name in an ARN (`$LATEST` or no qualifier) or a plain name; undefined for another account or version. */
function functionNameOf(functionArnOrName: string, arnPrefix: string): string | undefined {
  if (!functionArnOrName.startsWith('arn:')) return functionArnOrName;
  if (!functionArnOrName.startsWith(arnPrefix)) return undefined;
  const [name, qualifier, ...rest] = functionArnOrName.slice(arnPrefix.length).split(':');
  if (rest.length > 0 || (qualifier !== undefined && qualifier !== '$LATEST')) return undefined;
  return name;
}

async function importHandler(projectRoot: string, fn: FunctionDefinition): Promise<Handler> {
  const exportName = fn.handler ?? 'handler';
  let module: Record<string, unknown>;
  try {
    module = await import(pathToFileURL(join(projectRoot, fn.entry)).href);
  } catch (error) {
    throw new LambdaInvocationError({ ...errorPayload(error), errorType: 'Runtime.ImportModuleError' });
  }
  const handler = module[exportName];
  if (typeof handler !== 'function') {
    throw new LambdaInvocationError({
      errorType: 'Runtime.HandlerNotFound',
      errorMessage: `${fn.entry}.${exportName} is undefined or not exported`,
    });
  }
  // The one boundary where an imported module's export is taken as a handler; its type was checked above.
  return handler as Handler;
}

async function callHandler(handler: Handler, event: unknown, context: LambdaContext): Promise<unknown> {
  try {
    return await handler(event, context);
  } catch (error) {
    throw new LambdaInvocationError(errorPayload(error));
  }
}

/** How the Node.js runtime reports a thrown value: its name as `errorType`, its stack as `trace`. */
function errorPayload(error: unknown): FunctionErrorPayload {
  if (error instanceof Error) {
    return { errorType: error.name, errorMessage: error.message, trace: error.stack?.split('\n') ?? [] };
  }
  return { errorType: typeof error, errorMessage: String(error), trace: [] };
}

/** A value as the other side of Lambda's API sees it: JSON, `undefined` becoming `null`. */
function overTheWire(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value) ?? 'null');
}

function logStreamName(): string {
  const day = new Date().toISOString().slice(0, 10).replaceAll('-', '/');
  return `${day}/[$LATEST]${randomBytes(16).toString('hex')}`;
}
