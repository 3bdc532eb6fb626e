import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { gunzipSync } from 'node:zlib';
import { z } from 'zod';
import { type Chaos, faultRulesSchema } from './chaos.ts';
import {
  type ApiCall,
  AwsError,
  type CallContext,
  type HttpRequest,
  type HttpResponse,
  type SandboxRoute,
  type ServiceHandler,
} from './protocol.ts';

const MAX_BODY_BYTES = 64 * 1024 * 1024;

/** One call made to the endpoint, as `GET /_sandbox/calls` lists it. */
export interface RecordedCall extends ApiCall {
  readonly seq: number;
  readonly at: string;
  /** The error code a chaos rule made the call fail with. */
  readonly fault?: string;
  /** How long a chaos latency rule held the call's answer back. */
  readonly latencyMs?: number;
}

/** Every API call the endpoint answered, in order; tests and benchmarks count and replay them. */
export class CallLog {
  #calls: RecordedCall[] = [];
  #seq = 0;

  record(call: ApiCall, fault?: string, latencyMs?: number): void {
    this.#seq += 1;
    this.#calls.push({
      ...call,
      seq: this.#seq,
      at: new Date().toISOString(),
      ...(fault ? { fault } : {}),
      ...(latencyMs ? { latencyMs } : {}),
    });
    if (this.#calls.length > 200_000) this.#calls.splice(0, 100_000);
  }

  since(seq: number): RecordedCall[] {
    return this.#calls.filter((call) => call.seq > seq);
  }

  clear(): void {
    this.#calls = [];
  }
}

export interface AwsEndpointOptions {
  readonly host: string;
  readonly port: number;
  readonly services: readonly ServiceHandler[];
  readonly chaos: Chaos;
  readonly calls: CallLog;
}

export interface AwsEndpoint {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/**
 * The one local endpoint (LocalStack's convention) that answers every AWS API the functions call.
 * A request reaches its service by the service named in its SigV4 credential scope.
 */
export async function startAwsEndpoint(options: AwsEndpointOptions): Promise<AwsEndpoint> {
  const bySigningName = new Map(options.services.map((service) => [service.signingName, service]));
  const routes: Record<string, SandboxRoute> = chaosRoutes(options.chaos, options.calls);
  for (const service of options.services) Object.assign(routes, service.routes);
  /** One request's context: `held` collects the delay a chaos latency rule asks of its answer. */
  const contextFor = (held: { ms: number }): CallContext => ({
    admit(call) {
      let latencyMs: number;
      try {
        latencyMs = options.chaos.check(call);
      } catch (error) {
        options.calls.record(call, error instanceof AwsError ? error.code : 'Error');
        throw error;
      }
      options.calls.record(call, undefined, latencyMs);
      held.ms = Math.max(held.ms, latencyMs);
    },
  });

  const server = createServer((req, res) => {
    void answer(req, res);
  });

  async function answer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let response: HttpResponse;
    try {
      const request = await readRequest(req);
      if (request.path.startsWith('/_sandbox/')) {
        const route = routes[`${request.method} ${request.path}`];
        response = route ? await route(request) : json(404, { error: `No sandbox route ${request.path}` });
      } else {
        const service = bySigningName.get(signingNameOf(request) ?? 's3');
        const held = { ms: 0 };
        response = service
          ? await service.handle(request, contextFor(held))
          : json(400, { message: `The sandbox does not serve ${signingNameOf(request)}` });
        if (held.ms > 0) await sleep(held.ms);
      }
    } catch (error) {
      response = json(500, { message: error instanceof Error ? error.message : String(error) });
    }
    res.writeHead(response.statusCode, response.headers);
    res.end(response.body);
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${options.host}:${port}`,
    port,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function readRequest(req: IncomingMessage): Promise<HttpRequest> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new Error('Request body too large for the sandbox');
    chunks.push(chunk as Buffer);
  }
  const url = new URL(req.url ?? '/', 'http://sandbox');
  const body = Buffer.concat(chunks);
  return {
    method: req.method ?? 'GET',
    path: url.pathname,
    query: url.searchParams,
    headers: req.headers,
    // The SDK gzips large bodies of some operations (CloudWatch's PutMetricData past 10 KB).
    body: req.headers['content-encoding'] === 'gzip' ? gunzipSync(body) : body,
  };
}

/** The service of a SigV4-signed request: `Credential=<key>/<date>/<region>/<service>/aws4_request`. */
function signingNameOf(request: HttpRequest): string | undefined {
  const credential =
    /Credential=([^,\s]+)/.exec(String(request.headers.authorization ?? ''))?.[1] ??
    request.query.get('X-Amz-Credential') ??
    undefined;
  return credential?.split('/')[3];
}

export function json(statusCode: number, body: unknown): HttpResponse {
  return { statusCode, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
}

function parseRules(request: HttpRequest) {
  const parsed = faultRulesSchema.safeParse(
    request.body.length ? JSON.parse(request.body.toString('utf8')) : [],
  );
  if (!parsed.success) throw new AwsError('ValidationException', z.prettifyError(parsed.error));
  return parsed.data;
}

function chaosRoutes(chaos: Chaos, calls: CallLog): Record<string, SandboxRoute> {
  const guarded =
    (route: (request: HttpRequest) => HttpResponse): SandboxRoute =>
    async (request) => {
      try {
        return route(request);
      } catch (error) {
        return json(400, { error: error instanceof Error ? error.message : String(error) });
      }
    };
  return {
    'GET /_sandbox/health': guarded(() => json(200, { status: 'running' })),
    'GET /_sandbox/chaos/faults': guarded(() => json(200, chaos.list())),
    'POST /_sandbox/chaos/faults': guarded((request) => {
      chaos.set(parseRules(request));
      return json(200, chaos.list());
    }),
    'PATCH /_sandbox/chaos/faults': guarded((request) => {
      chaos.add(parseRules(request));
      return json(200, chaos.list());
    }),
    'DELETE /_sandbox/chaos/faults': guarded((request) => {
      chaos.remove(parseRules(request));
      return json(200, chaos.list());
    }),
    'GET /_sandbox/calls': guarded((request) =>
      json(200, calls.since(Number(request.query.get('since') ?? 0))),
    ),
    'DELETE /_sandbox/calls': guarded(() => {
      calls.clear();
      return json(200, []);
    }),
  };
}
