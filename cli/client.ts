import { z } from 'zod';
import type { ApiConfig } from './config.ts';

/** An error answer of the API: `{"error": {"code", "message", "details", "suggestions"}}`, or a gateway's. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  readonly status: number;
  readonly code: string;
  readonly details: readonly { path: string; message: string }[];
  readonly suggestions: readonly string[];

  constructor(
    status: number,
    body: {
      code: string;
      message: string;
      details?: { path: string; message: string }[];
      suggestions?: string[];
    },
  ) {
    super(body.message);
    this.status = status;
    this.code = body.code;
    this.details = body.details ?? [];
    this.suggestions = body.suggestions ?? [];
  }
}

/** The API could not be reached (connection refused, DNS, timeout). */
export class UnreachableError extends Error {
  override readonly name = 'UnreachableError';
}

const ErrorBody = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    details: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
    suggestions: z.array(z.string()).optional(),
  }),
});
const GatewayBody = z.object({ message: z.string() });

/** A successful answer: its status and its body, parsed as JSON. */
export interface Answer {
  readonly status: number;
  readonly body: unknown;
}

export interface RequestOptions {
  readonly json?: unknown;
  /** A raw body with its content type (a CSV file). */
  readonly text?: { readonly body: string; readonly contentType: string };
  readonly query?: Readonly<Record<string, string | undefined>>;
  readonly headers?: Readonly<Record<string, string>>;
}

const REQUEST_TIMEOUT_MS = 30_000;

/** The HTTPS API, with the bearer token; an error answer becomes an {@link ApiError}. */
export class ApiClient {
  readonly #config: ApiConfig;

  constructor(config: ApiConfig) {
    this.#config = config;
  }

  get baseUrl(): string {
    return this.#config.apiUrl;
  }

  async request(method: string, path: string, options: RequestOptions = {}): Promise<Answer> {
    const url = new URL(`${this.#config.apiUrl}${path}`);
    for (const [name, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) url.searchParams.set(name, value);
    }
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.#config.token}`,
      accept: 'application/json',
      ...options.headers,
    };
    let body: string | undefined;
    if (options.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.json);
    } else if (options.text) {
      headers['content-type'] = options.text.contentType;
      body = options.text.body;
    }
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers,
        ...(body !== undefined ? { body } : {}),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    } catch (error) {
      const cause =
        error instanceof Error && error.cause instanceof Error ? error.cause.message : String(error);
      throw new UnreachableError(`Cannot reach the API at ${this.#config.apiUrl} (${cause})`);
    }
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (response.ok) return { status: response.status, body: parsed };
    const error = ErrorBody.safeParse(parsed);
    if (error.success) throw new ApiError(response.status, error.data.error);
    const gateway = GatewayBody.safeParse(parsed);
    throw new ApiError(response.status, {
      code: `http_${response.status}`,
      message: gateway.success ? gateway.data.message : `HTTP ${response.status} ${response.statusText}`,
    });
  }

  /** A request whose answer is checked against a schema (loose: fields the CLI does not know are kept). */
  async get<T>(path: string, schema: z.ZodType<T>, query?: RequestOptions['query']): Promise<T> {
    const answer = await this.request('GET', path, query ? { query } : {});
    return schema.parse(answer.body);
  }
}
