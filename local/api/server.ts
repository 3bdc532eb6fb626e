import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { z } from 'zod';
import { errorResult, pathProblem } from '../../functions/api/http.ts';
import { functionName, functions } from '../../functions/registry.ts';
import { ValidationError } from '../../functions/shared/errors.ts';
import { ALL_SCOPES, type Route, routeKey, routes } from '../../schema/api/routes.ts';
import { ACCOUNT_ID, PROJECT_ROOT, REGION, STACK_PREFIX } from '../constants.ts';
import { createLambdaRuntime } from '../lambda.ts';
import { type Claims, type LocalIssuer, startIssuer } from './jwt.ts';

/**
 * The local API Gateway: an HTTP API with the routes of `schema/api/routes.ts`, a JWT authorizer (the local
 * issuer's tokens, the routes' scopes), payload format 2.0 proxy events to the api function of the registry
 * (run in-process by the sandbox's Lambda runtime), and API Gateway's own answers where it answers itself
 * (`{"message":"Unauthorized"}`, `Forbidden`, `Not Found`).
 *
 * Beside the routes, as an identity provider would serve them: `/.well-known/jwks.json` and
 * `/.well-known/openid-configuration`; and, sandbox only (like the AWS endpoint's `/_sandbox/chaos`),
 * `POST /_sandbox/token` with `{ sub?, scopes?, expiresInSeconds? }` answering `{ token }`, for tests and
 * scripts that need a token with chosen scopes.
 */
export interface ApiServerOptions {
  readonly host: string;
  /** 0 for any free port. */
  readonly port: number;
  /** The sandbox directory, where the JWT signing key is kept. */
  readonly dir: string;
  readonly log: (line: string) => void;
}

export interface ApiServer {
  readonly url: string;
  /** A token with every scope, valid for 30 days. */
  readonly devToken: string;
  close(): Promise<void>;
}

/** The registry's id of the function behind every route. */
export const API_FUNCTION_ID = 'Api';
/** API Gateway's payload limit. */
const MAX_PAYLOAD_BYTES = 10 * 1024 * 1024;
const DEV_TOKEN_SECONDS = 30 * 24 * 3600;

interface CompiledRoute {
  readonly route: Route;
  readonly pattern: RegExp;
  readonly names: readonly string[];
}

function compile(route: Route): CompiledRoute {
  const names: string[] = [];
  const source = route.path
    .split('/')
    .map((segment) => {
      const parameter = /^\{(\w+)\}$/.exec(segment);
      if (!parameter?.[1]) return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      names.push(parameter[1]);
      return '([^/]+)';
    })
    .join('/');
  return { route, pattern: new RegExp(`^${source}$`), names };
}

const TokenRequest = z.strictObject({
  sub: z.string().min(1).max(128).optional(),
  scopes: z.array(z.string()).optional(),
  expiresInSeconds: z.int().min(1).max(DEV_TOKEN_SECONDS).optional(),
});

export async function startApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const found = functions.find((fn) => fn.id === API_FUNCTION_ID);
  if (!found) throw new Error(`The function registry has no ${API_FUNCTION_ID} function`);
  const api = found;
  const lambda = createLambdaRuntime({
    region: REGION,
    accountId: ACCOUNT_ID,
    functionNamePrefix: STACK_PREFIX,
    functions: [api],
    projectRoot: PROJECT_ROOT,
  });
  const compiled = routes.map(compile);
  let issuer: LocalIssuer | undefined;

  const server = createServer((request, response) => {
    const started = Date.now();
    handle(request, response)
      .catch((error: unknown) => {
        options.log(
          `api: ${request.method} ${request.url}: ${error instanceof Error ? error.stack : String(error)}`,
        );
        if (!response.headersSent) send(response, 500, { message: 'Internal Server Error' });
        else response.destroy();
      })
      .finally(() => {
        options.log(
          `api: ${request.method} ${request.url} ${response.statusCode} ${Date.now() - started} ms`,
        );
      });
  });

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    if (!issuer) throw new Error('The issuer is not ready');
    const target = requestUrl(request.url ?? '/');
    if ('problem' in target) {
      // Answered as the api function answers such a path when API Gateway passes it on, before any route.
      const result = errorResult(
        new ValidationError('The request path is malformed', [{ path: 'path', message: target.problem }]),
      );
      response.writeHead(result.statusCode, result.headers);
      response.end(result.body);
      return;
    }
    const { url } = target;
    const method = request.method ?? 'GET';
    if (method === 'GET' && url.pathname === '/.well-known/jwks.json')
      return send(response, 200, issuer.jwks());
    if (method === 'GET' && url.pathname === '/.well-known/openid-configuration') {
      return send(response, 200, {
        issuer: issuer.issuer,
        jwks_uri: `${issuer.issuer}/.well-known/jwks.json`,
      });
    }
    if (method === 'POST' && url.pathname === '/_sandbox/token') return mintToken(issuer, request, response);

    const match = matchRoute(compiled, method, url.pathname);
    if (!match) return send(response, 404, { message: 'Not Found' });
    const body = await readBody(request);
    if (body === undefined) return send(response, 413, { message: 'Request Entity Too Large' });

    let authorizer: { jwt: { claims: Record<string, string>; scopes: string[] } } | undefined;
    if (match.route.scopes !== null) {
      const token = bearerToken(request.headers.authorization);
      const verified = token === undefined ? undefined : issuer.verify(token);
      if (!verified?.ok) {
        return send(response, 401, { message: 'Unauthorized' }, { 'www-authenticate': 'Bearer' });
      }
      if (!match.route.scopes.some((scope) => verified.scopes.includes(scope))) {
        return send(response, 403, { message: 'Forbidden' });
      }
      authorizer = { jwt: { claims: stringClaims(verified.claims), scopes: verified.scopes } };
    }

    const event = proxyEvent(request, url, match, body, authorizer);
    let result: unknown;
    try {
      result = await lambda.invoke(functionName(STACK_PREFIX, api), event);
    } catch (error) {
      options.log(
        `api: the function failed: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`,
      );
      return send(response, 500, { message: 'Internal Server Error' });
    }
    writeResult(response, result, event.requestContext.requestId);
  }

  async function mintToken(local: LocalIssuer, request: IncomingMessage, response: ServerResponse) {
    const body = await readBody(request);
    let input: unknown = {};
    try {
      input = body && body.length > 0 ? JSON.parse(body.toString('utf8')) : {};
    } catch {
      return send(response, 400, { message: 'The body is not JSON' });
    }
    const parsed = TokenRequest.safeParse(input);
    if (!parsed.success) return send(response, 400, { message: z.prettifyError(parsed.error) });
    return send(response, 200, { token: local.mint(parsed.data) });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('The API server has no TCP address');
  const url = `http://${options.host.includes(':') ? `[${options.host}]` : options.host}:${address.port}`;
  try {
    issuer = await startIssuer(options.dir, url);
  } catch (error) {
    server.close();
    throw error;
  }
  options.log(`api: ${url} (JWT issuer ${url}, audience ${issuer.audience})`);
  return {
    url,
    devToken: issuer.mint({ sub: 'sandbox-dev', scopes: ALL_SCOPES, expiresInSeconds: DEV_TOKEN_SECONDS }),
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}

/**
 * The request target as a URL, or why it is refused (see `pathProblem`). Parsed with the origin written in front
 * rather than against a base URL, which would read `//` or `//host/x` as a host (or throw).
 */
function requestUrl(target: string): { url: URL } | { problem: string } {
  if (!target.startsWith('/')) return { problem: 'Not a request path' };
  let url: URL;
  try {
    url = new URL(`http://localhost${target}`);
  } catch {
    return { problem: 'Not a request path' };
  }
  const problem = pathProblem(url.pathname);
  return problem === undefined ? { url } : { problem };
}

interface RouteMatch {
  readonly route: Route;
  readonly pathParameters: Record<string, string>;
}

function matchRoute(
  compiled: readonly CompiledRoute[],
  method: string,
  path: string,
): RouteMatch | undefined {
  for (const { route, pattern, names } of compiled) {
    if (route.method !== method) continue;
    const found = pattern.exec(path);
    if (!found) continue;
    const pathParameters: Record<string, string> = {};
    names.forEach((name, i) => {
      pathParameters[name] = decodeURIComponent(found[i + 1] ?? '');
    });
    return { route, pathParameters };
  }
  return undefined;
}

/** API Gateway takes the token with or without the `Bearer ` prefix. */
function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const token = header.replace(/^Bearer\s+/i, '').trim();
  return token === '' ? undefined : token;
}

/** The authorizer context holds every claim as a string, arrays as `[a b]`, as API Gateway writes them. */
function stringClaims(claims: Claims): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [name, value] of Object.entries(claims)) {
    result[name] = Array.isArray(value) ? `[${value.join(' ')}]` : String(value);
  }
  return result;
}

/**
 * The body, or undefined when it exceeds API Gateway's limit. An oversized body is still read to its end, and
 * dropped: leaving the loop early would destroy the socket, and the client would see a reset instead of the 413.
 */
async function readBody(request: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += buffer.length;
    if (size <= MAX_PAYLOAD_BYTES) chunks.push(buffer);
  }
  return size > MAX_PAYLOAD_BYTES ? undefined : Buffer.concat(chunks);
}

const TEXT_TYPES =
  /^(text\/|application\/(json|[\w.+-]+\+json|xml|[\w.+-]+\+xml|x-www-form-urlencoded|javascript))/i;

/** An API Gateway HTTP API proxy event, payload format 2.0. */
function proxyEvent(
  request: IncomingMessage,
  url: URL,
  match: RouteMatch,
  body: Buffer,
  authorizer: { jwt: { claims: Record<string, string>; scopes: string[] } } | undefined,
) {
  // Repeated headers joined with commas, names lower-cased; cookies moved to `cookies`.
  const headers: Record<string, string> = {};
  let cookies: string[] = [];
  for (let i = 0; i < request.rawHeaders.length; i += 2) {
    const name = (request.rawHeaders[i] ?? '').toLowerCase();
    const value = request.rawHeaders[i + 1] ?? '';
    if (name === 'cookie') {
      cookies = [...cookies, ...value.split(';').map((cookie) => cookie.trim())];
      continue;
    }
    headers[name] = headers[name] === undefined ? value : `${headers[name]},${value}`;
  }
  const sourceIp = request.socket.remoteAddress?.replace(/^::ffff:/, '') ?? '127.0.0.1';
  headers['x-forwarded-for'] = headers['x-forwarded-for']
    ? `${headers['x-forwarded-for']}, ${sourceIp}`
    : sourceIp;
  headers['x-forwarded-proto'] = 'http';
  headers['x-forwarded-port'] = String(request.socket.localPort ?? '');
  const requestId = `${randomBytes(6).toString('base64url')}=`;
  headers['x-amzn-trace-id'] =
    `Root=1-${Math.floor(Date.now() / 1000).toString(16)}-${randomBytes(12).toString('hex')}`;

  const queryStringParameters: Record<string, string> = {};
  for (const [name, value] of url.searchParams) {
    queryStringParameters[name] =
      queryStringParameters[name] === undefined ? value : `${queryStringParameters[name]},${value}`;
  }
  const isText = body.length === 0 || TEXT_TYPES.test(headers['content-type'] ?? '');
  const now = new Date();
  const host = headers.host ?? 'localhost';
  return {
    version: '2.0',
    routeKey: routeKey(match.route),
    rawPath: url.pathname,
    rawQueryString: url.search.replace(/^\?/, ''),
    ...(cookies.length > 0 ? { cookies } : {}),
    headers,
    ...(Object.keys(queryStringParameters).length > 0 ? { queryStringParameters } : {}),
    ...(Object.keys(match.pathParameters).length > 0 ? { pathParameters: match.pathParameters } : {}),
    requestContext: {
      accountId: ACCOUNT_ID,
      apiId: 'local',
      ...(authorizer ? { authorizer } : {}),
      domainName: host,
      domainPrefix: host.split('.')[0] ?? host,
      http: {
        method: match.route.method,
        path: url.pathname,
        protocol: `HTTP/${request.httpVersion}`,
        sourceIp,
        userAgent: headers['user-agent'] ?? '',
      },
      requestId,
      routeKey: routeKey(match.route),
      stage: '$default',
      time: apiGatewayTime(now),
      timeEpoch: now.getTime(),
    },
    ...(body.length > 0 ? { body: isText ? body.toString('utf8') : body.toString('base64') } : {}),
    isBase64Encoded: body.length > 0 && !isText,
  };
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
/** `12/Mar/2020:19:03:58 +0000`, API Gateway's `requestContext.time`. */
function apiGatewayTime(date: Date): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${pad(date.getUTCDate())}/${MONTHS[date.getUTCMonth()]}/${date.getUTCFullYear()}:${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())} +0000`;
}

const StructuredResult = z.object({
  statusCode: z.int().min(100).max(599),
  headers: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional(),
  cookies: z.array(z.string()).optional(),
  body: z.string().optional(),
  isBase64Encoded: z.boolean().optional(),
});

/**
 * The function's result as API Gateway (payload 2.0) answers it: a structured result (one with `statusCode`) as
 * given, or a 500 when malformed; any other value as a 200 with the value as JSON.
 */
function writeResult(response: ServerResponse, result: unknown, requestId: string): void {
  if (typeof result !== 'object' || result === null || !('statusCode' in result)) {
    send(response, 200, result, { 'apigw-requestid': requestId });
    return;
  }
  const structured = StructuredResult.safeParse(result);
  if (!structured.success) {
    send(response, 500, { message: 'Internal Server Error' }, { 'apigw-requestid': requestId });
    return;
  }
  const { statusCode, headers = {}, cookies = [], body = '', isBase64Encoded = false } = structured.data;
  const payload = isBase64Encoded ? Buffer.from(body, 'base64') : Buffer.from(body, 'utf8');
  const out: Record<string, string | string[]> = { 'content-type': 'application/json' };
  for (const [name, value] of Object.entries(headers)) out[name.toLowerCase()] = String(value);
  if (cookies.length > 0) out['set-cookie'] = cookies;
  out['apigw-requestid'] = requestId;
  out['content-length'] = String(payload.length);
  response.writeHead(statusCode, out);
  response.end(payload);
}

function send(
  response: ServerResponse,
  statusCode: number,
  body: unknown,
  headers: Record<string, string> = {},
) {
  const payload = Buffer.from(JSON.stringify(body) ?? 'null');
  response.writeHead(statusCode, {
    'content-type': 'application/json',
    'content-length': String(payload.length),
    ...headers,
  });
  response.end(payload);
}
