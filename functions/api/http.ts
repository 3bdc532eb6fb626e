import type { MiddlewareObj } from '@middy/core';
import type { ErrorResponse } from '../../schema/api/tenants.ts';
import { toStorable, unstorableText } from '../../schema/api/text.ts';
import * as z from '../../schema/zod.ts';
import {
  ForbiddenError,
  PlanChangeRefusedError,
  ProvisionerError,
  SlugTakenError,
  UnauthorizedError,
  ValidationError,
} from '../shared/errors.ts';
import { API_TRANSIENT_ERRORS } from '../shared/transient.ts';

/**
 * The fields of an API Gateway HTTP API proxy event (payload version 2.0) that the api Lambda reads, with a
 * JWT authorizer in front. Parsed rather than trusted: a malformed event is a wiring fault, not a client's.
 */
export const HttpEvent = z.object({
  version: z.literal('2.0'),
  routeKey: z.string(),
  rawPath: z.string(),
  headers: z._default(z.record(z.string(), z.string()), {}),
  queryStringParameters: z.optional(z.record(z.string(), z.string())),
  pathParameters: z.optional(z.record(z.string(), z.string())),
  body: z.optional(z.string()),
  isBase64Encoded: z._default(z.boolean(), false),
  requestContext: z.object({
    requestId: z.string(),
    domainName: z.optional(z.string()),
    http: z.object({ method: z.string(), path: z.string() }),
    authorizer: z.optional(
      z.object({
        jwt: z.object({
          claims: z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.array(z.string())])),
          scopes: z.optional(z.nullable(z.array(z.string()))),
        }),
      }),
    ),
  }),
});
export type HttpEvent = z.infer<typeof HttpEvent>;

/** What the api Lambda answers: API Gateway's structured v2 result. */
export interface HttpResult {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
}

/** Strings and keys as PostgreSQL can store them (a `JSON.stringify` replacer). */
function storableMember(_key: string, value: unknown): unknown {
  if (typeof value === 'string') return unstorableText(value) ? toStorable(value) : value;
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    if (Object.keys(value).some((key) => unstorableText(key))) {
      return Object.fromEntries(Object.entries(value).map(([key, member]) => [toStorable(key), member]));
    }
  }
  return value;
}

/**
 * A JSON answer. Its text is made storable (a NUL or a lone surrogate becomes U+FFFD, in keys too): an answer can
 * echo refused input (a batch report's name and slug, an unknown field's name), and the answer to an
 * Idempotency-Key is kept in PostgreSQL, which would refuse it, leaving the key in progress.
 */
export function jsonResult(
  statusCode: number,
  body: unknown,
  headers: Record<string, string> = {},
): HttpResult {
  return {
    statusCode,
    headers: { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers },
    body: JSON.stringify(body, storableMember),
  };
}

/** The caller, as the JWT authorizer vouched for it: `sub` (a client id for client-credentials tokens). */
export function callerOf(event: HttpEvent): string {
  const claims = event.requestContext.authorizer?.jwt.claims;
  const caller = claims?.sub ?? claims?.client_id;
  if (typeof caller !== 'string' || caller === '') throw new UnauthorizedError('No authorized caller');
  return caller;
}

/** The token's scopes: the authorizer's list, or the words of the `scope` claim (Cognito access tokens). */
export function scopesOf(event: HttpEvent): string[] {
  const jwt = event.requestContext.authorizer?.jwt;
  if (!jwt) return [];
  const claimed = typeof jwt.claims.scope === 'string' ? jwt.claims.scope.split(' ') : [];
  return [...new Set([...(jwt.scopes ?? []), ...claimed])].filter((scope) => scope !== '');
}

/**
 * The route's scopes checked again behind API Gateway's authorizer, so that a route deployed without its
 * authorizer or scopes fails closed: no authorizer context is a 401, no accepted scope a 403.
 */
export function requireScopes(event: HttpEvent, accepted: readonly string[] | null): void {
  if (accepted === null) return;
  if (!event.requestContext.authorizer) throw new UnauthorizedError('No authorized caller');
  const scopes = scopesOf(event);
  if (!accepted.some((scope) => scopes.includes(scope))) {
    throw new ForbiddenError(`This operation needs one of the scopes ${accepted.join(', ')}`);
  }
}

/**
 * Why a request path is refused, or undefined: an empty segment (`//`), a percent-encoding that does not decode
 * (`%E0%A4%A`), or decoded text PostgreSQL cannot store. API Gateway passes such paths to the function; the local
 * API server refuses them with the same answer.
 */
export function pathProblem(rawPath: string): string | undefined {
  if (!rawPath.startsWith('/')) return 'A path starts with /';
  if (rawPath.includes('//')) return 'A path has no empty segment (//)';
  let decoded: string;
  try {
    decoded = decodeURIComponent(rawPath);
  } catch {
    return 'The percent-encoding does not decode: each % starts two hex digits, and the bytes are UTF-8';
  }
  return unstorableText(decoded);
}

/** A {@link ValidationError} at `path` when the request's path is malformed (see {@link pathProblem}). */
export function requireWellFormedPath(rawPath: string): void {
  const problem = pathProblem(rawPath);
  if (problem)
    throw new ValidationError('The request path is malformed', [{ path: 'path', message: problem }]);
}

export const MAX_BODY_BYTES = 256 * 1024;

/** The request body as JSON; a {@link ValidationError} when it is missing, too large or not JSON. */
export function jsonBody(event: HttpEvent): unknown {
  if (event.body === undefined || event.body === '') throw new ValidationError('A JSON body is required');
  const text = event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
  if (Buffer.byteLength(text) > MAX_BODY_BYTES) {
    throw new ValidationError(`The body exceeds ${MAX_BODY_BYTES} bytes`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new ValidationError('The body is not valid JSON');
  }
}

/** `a.b[2].c` from a zod issue path. */
export function formatPath(path: readonly PropertyKey[]): string {
  let text = '';
  for (const key of path) {
    if (typeof key === 'number') text += `[${key}]`;
    else text += text === '' ? String(key) : `.${String(key)}`;
  }
  return text;
}

/**
 * A zod error as a {@link ValidationError}: one detail per problem, an unknown field named at its own path
 * (zod reports all of an object's unknown keys at the object's path).
 */
export function validationError(
  error: z.core.$ZodError,
  message = 'The request is invalid',
): ValidationError {
  const details = error.issues.flatMap((issue) => {
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => ({ path: formatPath([...issue.path, key]), message: 'Unknown field' }));
    }
    return [{ path: formatPath(issue.path), message: issue.message }];
  });
  return new ValidationError(message, details);
}

/** Parses with a zod schema; a {@link ValidationError} with every problem otherwise. */
export function parseWith<T>(schema: z.ZodMiniType<T>, value: unknown, message?: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw validationError(parsed.error, message);
  return parsed.data;
}

const INTERNAL: ErrorResponse = {
  error: { code: 'internal_error', message: 'Internal server error', details: [] },
};

/**
 * An error as the API answers it: a {@link ProvisionerError} below 500 (and a 503, whose message is written
 * for clients) with its code, message and details; anything else a plain 500 that tells nothing of internals.
 */
export function errorResult(error: unknown): HttpResult {
  if (error instanceof ProvisionerError && (error.statusCode < 500 || error.statusCode === 503)) {
    const body: ErrorResponse = {
      error: {
        code: error.code,
        message: error.message,
        details:
          error instanceof ValidationError || error instanceof PlanChangeRefusedError
            ? [...error.details]
            : [],
        ...(error instanceof SlugTakenError ? { suggestions: [...error.suggestions] } : {}),
      },
    };
    if (error instanceof SlugTakenError) {
      body.error.details.push({ path: 'slug', message: error.message });
    }
    return jsonResult(error.statusCode, body, error.statusCode === 503 ? { 'retry-after': '5' } : {});
  }
  if (isTransientAwsError(error)) {
    return jsonResult(503, UNAVAILABLE, { 'retry-after': '5' });
  }
  return jsonResult(500, INTERNAL);
}

const UNAVAILABLE: ErrorResponse = {
  error: {
    code: 'service_unavailable',
    message: 'A service the API depends on is busy or unavailable; retry later',
    details: [],
  },
};

/**
 * A dependency's transient failure, which the client may retry (a 503), rather than the API's own fault: an AWS
 * error named in {@link API_TRANSIENT_ERRORS} (throttling, an Aurora cluster resuming from pause) or a service's own
 * 5xx.
 */
function isTransientAwsError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  return API_TRANSIENT_ERRORS.has(error.name) || ('$fault' in error && error.$fault === 'server');
}

/** Middy's onError: maps every error to an answer, logging those that are the product's fault. */
export function httpErrors(log: (error: unknown) => void): MiddlewareObj<unknown, HttpResult> {
  return {
    onError: (request) => {
      const result = errorResult(request.error);
      if (result.statusCode >= 500) log(request.error);
      request.response = result;
    },
  };
}
