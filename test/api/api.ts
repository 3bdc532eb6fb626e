import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { z } from 'zod';
import { stateMachineArn } from '../../local/constants.ts';
import { sandbox, superuserPool, uniqueName } from '../support/sandbox.ts';
import { setApiEnvironment } from './contract.ts';

/**
 * The API under test, reached over HTTP with fetch: the sandbox's own (`apiUrl` in sandbox.json) when it has
 * one, otherwise a local API server started in this test file's process against the sandbox, with the
 * environment the sandbox gives its functions.
 */
export interface ApiUnderTest {
  readonly url: string;
  readonly stateMachineArn: string;
  /** A token of the sandbox's issuer with these scopes (every scope by default). */
  token(options?: TokenOptions): Promise<string>;
}

export interface TokenOptions {
  readonly scopes?: readonly string[];
  readonly sub?: string;
  readonly expiresInSeconds?: number;
}

export const PROVISION_STATE_MACHINE = stateMachineArn('provision-tenant');

const SandboxApi = z.object({ apiUrl: z.url() });

/** The environment the api function reads, as the sandbox sets it. */
function setFunctionEnvironment(overrides: Record<string, string> = {}): void {
  setApiEnvironment(sandbox, overrides);
}

async function tokenFrom(url: string, options: TokenOptions = {}): Promise<string> {
  const response = await fetch(`${url}/_sandbox/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ sub: options.sub ?? uniqueName('test-caller'), ...options }),
  });
  if (!response.ok) throw new Error(`token: ${response.status} ${await response.text()}`);
  return z.object({ token: z.string() }).parse(await response.json()).token;
}

/**
 * An API server in this process (for a test that needs its own environment, e.g. another state machine).
 * Closed after the file.
 */
export async function startLocalApi(environment: Record<string, string> = {}): Promise<ApiUnderTest> {
  setFunctionEnvironment(environment);
  const { startApiServer } = await import('../../local/api/server.ts');
  const dir = await mkdtemp(join(tmpdir(), 'api-test-'));
  const server = await startApiServer({ host: '127.0.0.1', port: 0, dir, log: () => {} });
  afterAll(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });
  return {
    url: server.url,
    stateMachineArn: process.env.PROVISION_STATE_MACHINE_ARN ?? PROVISION_STATE_MACHINE,
    token: (options) => tokenFrom(server.url, options),
  };
}

/** The sandbox's API if it serves one, else one in this process. */
export async function apiUnderTest(): Promise<ApiUnderTest> {
  const served = SandboxApi.safeParse(sandbox);
  if (!served.success) return startLocalApi();
  return {
    url: served.data.apiUrl,
    stateMachineArn: PROVISION_STATE_MACHINE,
    token: (options) => tokenFrom(served.data.apiUrl, options),
  };
}

export interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly body: unknown;
}

/** An HTTP call to the API, the body as JSON. */
export async function call(
  api: ApiUnderTest,
  method: string,
  path: string,
  options: { token?: string; body?: unknown; rawBody?: string; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  let body: string | undefined = options.rawBody;
  if (options.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(options.body);
  }
  const response = await fetch(`${api.url}${path}`, {
    method,
    headers,
    ...(body !== undefined ? { body } : {}),
  });
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    body: text === '' ? undefined : JSON.parse(text),
  };
}

export { ErrorBody } from './contract.ts';

export const CreatedBody = z.strictObject({
  tenantId: z.string().regex(/^t[a-z0-9]{15}$/),
  slug: z.string(),
  status: z.literal('provisioning'),
  executionArn: z.string(),
  links: z.strictObject({ self: z.string() }),
});

/** A valid body with a unique name (and so a unique derived slug). */
export function validBody(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const name = uniqueName('Api Test');
  return { name, plan: 'basic', adminUser: { email: 'owner@example.com' }, ...overrides };
}

const TenantRow = z.object({
  id: z.string(),
  slug: z.string(),
  name: z.string(),
  plan: z.string(),
  status: z.string(),
  execution_arn: z.string().nullable(),
  limits: z.record(z.string(), z.number()),
  config: z.record(z.string(), z.unknown()),
  created_by: z.string(),
});

/** The registry's rows with this name or slug, read as the superuser, for asserting what was (not) created. */
export async function tenantsNamed(name: string, slug = '') {
  const { rows } = await superuserPool('control_plane').query(
    'SELECT id, slug, name, plan, status, execution_arn, limits, config, created_by FROM tenants WHERE name = $1 OR slug = $2',
    [name, slug],
  );
  return z.array(TenantRow).parse(rows);
}

/** Audit entries of a tenant. */
export async function auditOf(tenantId: string) {
  const { rows } = await superuserPool('control_plane').query(
    'SELECT action, actor, details FROM audit_log WHERE tenant_id = $1 ORDER BY id',
    [tenantId],
  );
  return z
    .array(z.object({ action: z.string(), actor: z.string(), details: z.record(z.string(), z.unknown()) }))
    .parse(rows);
}
