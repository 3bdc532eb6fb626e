import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import type { Answer, SandboxUnderTest } from './sandbox.ts';
import { type RegistryRow, registryRows } from './traces.ts';

/** A name (and so a slug) no other request of the suite uses. */
export const uniqueName = (prefix: string): string => `${prefix} ${randomUUID().slice(0, 8)}`;

/** The suite's usual request: a professional tenant with storage, four alarms. */
export function tenantRequest(name: string): Record<string, unknown> {
  return {
    name,
    plan: 'enterprise',
    adminUser: {
      email: `admin@${name.toLowerCase().replaceAll(/[^a-z0-9]+/g, '-')}.example`,
      firstName: 'Ada',
    },
    features: { apiAccess: true },
  };
}

/** The alarms of the usual request's plan (enterprise has a latency objective). */
export const USUAL_ALARMS = ['connections', 'error-rate', 'latency', 'storage'];

const Created = z.object({ tenantId: z.string(), slug: z.string(), executionArn: z.string() });

/**
 * POST /tenants as a careful client does: with an Idempotency-Key, and again with the same key after a 5xx
 * (a 503 asks for it; the key makes the retry safe), up to `attempts` times.
 */
export async function createTenant(
  sut: SandboxUnderTest,
  body: Record<string, unknown>,
  options: { attempts?: number; key?: string } = {},
): Promise<{ answers: Answer[]; created?: z.infer<typeof Created> }> {
  const key = options.key ?? randomUUID();
  const answers: Answer[] = [];
  for (let attempt = 1; attempt <= (options.attempts ?? 3); attempt += 1) {
    const answer = await sut.request('POST', '/tenants', {
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json', 'idempotency-key': key },
    });
    answers.push(answer);
    if (answer.status < 500) {
      const created = Created.safeParse(answer.body);
      return { answers, ...(answer.status === 202 && created.success ? { created: created.data } : {}) };
    }
    await sleep(200 * attempt);
  }
  return { answers };
}

/** The tenant with this slug, from the registry; undefined when there is none. */
export async function tenantBySlug(sut: SandboxUnderTest, slug: string): Promise<RegistryRow | undefined> {
  return (await registryRows(sut, 'slug = $1', [slug]))[0];
}

/**
 * Waits until the tenant leaves `provisioning` (read from the registry as the superuser, so that the wait adds
 * no AWS call); returns the last row read, `provisioning` still after the timeout.
 */
export async function waitSettled(
  sut: SandboxUnderTest,
  tenantId: string,
  timeoutMs = 60_000,
): Promise<RegistryRow | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [row] = await registryRows(sut, 'id = $1', [tenantId]);
    if (row?.status !== 'provisioning' || Date.now() > deadline) return row;
    await sleep(50);
  }
}
