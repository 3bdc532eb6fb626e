import { createHash, randomUUID } from 'node:crypto';
import { GetMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { STORAGE_BUCKET } from '../../local/constants.ts';
import { storagePrefix } from '../../schema/names.ts';
import { activeTenant, connectAs, request } from '../lifecycle/helpers.ts';
import { clients, eventsFor } from '../provision/helpers.ts';
import { collectUsage, databaseSize, lowerStorageQuota, putTenantObject, usageOf } from './helpers.ts';

/** A minute-aligned time a little ahead, distinct per call, so that runs of different tests never share a slot. */
let slot = 0;
const nextSlot = () => new Date(Math.floor(Date.now() / 60_000) * 60_000 + 60_000 * (1 + slot++));

/** Adds a live API key, in one session of the app role per tenant (the role has a handful). */
const sessions = new Map<string, ReturnType<typeof connectAs>>();
async function addApiKey(tenantId: string, name: string): Promise<string> {
  let session = sessions.get(tenantId);
  if (!session) {
    session = connectAs(tenantId, 'app');
    sessions.set(tenantId, session);
  }
  const app = await session;
  const key = randomUUID();
  const { rows } = await app.query<{ id: string }>(
    `INSERT INTO public.api_keys (name, key_prefix, key_hash) VALUES ($1, $2, $3) RETURNING id`,
    [name, key.slice(0, 8), createHash('sha256').update(key).digest('hex')],
  );
  return rows[0]?.id ?? '';
}

async function storedBytes(tenantId: string): Promise<number> {
  const listing = await clients.s3.send(
    new ListObjectsV2Command({ Bucket: STORAGE_BUCKET, Prefix: storagePrefix(tenantId) }),
  );
  return (listing.Contents ?? []).reduce((sum, object) => sum + (object.Size ?? 0), 0);
}

describe('the usage collector', () => {
  it("measures an active tenant's storage, sessions, users, API keys and database, for GET /tenants/{id}/usage", async () => {
    const tenant = await activeTenant({ plan: 'professional', limits: { maxConnections: 20 } });
    const before = await usageOf(tenant.id);
    expect(before).toMatchObject({ measuredAt: null, readings: {}, exceeded: [] });

    await putTenantObject(tenant.id, 'files/a.bin', 10_000);
    await addApiKey(tenant.id, 'ci');
    await connectAs(tenant.id, 'readonly');
    const at = nextSlot();
    const run = await collectUsage(at);
    expect(run.tenants).toBeGreaterThanOrEqual(1);

    const usage = await usageOf(tenant.id);
    expect(usage.measuredAt).toBe(at.toISOString());
    // addApiKey's session as the app role and the readonly one: two sessions of the tenant's roles.
    expect(usage.readings.connections).toEqual({ used: 2, unit: 'Count', limit: 20, share: 0.1 });
    expect(usage.readings.users).toEqual({ used: 1, unit: 'Count', limit: 50, share: 0.02 });
    expect(usage.readings.apiKeys).toEqual({ used: 1, unit: 'Count', limit: 10, share: 0.1 });
    const bytes = await storedBytes(tenant.id);
    expect(bytes).toBeGreaterThan(10_000);
    expect(usage.readings.storageBytes).toMatchObject({ used: bytes, unit: 'Bytes', limit: 100 * 1024 ** 3 });
    const size = await databaseSize(tenant.id);
    expect(usage.readings.databaseBytes?.used).toBeGreaterThan(size * 0.9);
    expect(usage.readings.databaseBytes?.used).toBeLessThan(size * 1.1);
    expect(usage.problems).toEqual([]);
  });

  it('publishes a professional tenant’s readings with its TenantId and a basic tenant’s only in the plan sums', async () => {
    const [professional, basic] = await Promise.all([
      activeTenant({ plan: 'professional' }),
      activeTenant({ plan: 'basic' }),
    ]);
    await putTenantObject(professional.id, 'x.bin', 4096);
    const at = nextSlot();
    await collectUsage(at);
    const metric = (tenantId: string, name: string) => ({
      Id: `m${name.toLowerCase()}${tenantId}`,
      MetricStat: {
        Metric: {
          Namespace: 'TenantProvisioner/Tenants',
          MetricName: name,
          Dimensions: [{ Name: 'TenantId', Value: tenantId }],
        },
        Period: 60,
        Stat: 'Maximum',
      },
    });
    const { MetricDataResults } = await clients.cloudWatch.send(
      new GetMetricDataCommand({
        StartTime: new Date(at.getTime() - 60_000),
        EndTime: new Date(at.getTime() + 60_000),
        MetricDataQueries: [
          metric(professional.id, 'StorageBytes'),
          metric(professional.id, 'Users'),
          metric(basic.id, 'StorageBytes'),
        ],
      }),
    );
    const [storage, users, basicStorage] = MetricDataResults ?? [];
    expect(storage?.Values).toEqual([await storedBytes(professional.id)]);
    expect(storage?.Timestamps?.map((t) => t.toISOString())).toEqual([at.toISOString()]);
    expect(users?.Values).toEqual([1]);
    expect(basicStorage?.Values).toEqual([]);
    // The basic tenant is still measured and recorded.
    expect((await usageOf(basic.id)).measuredAt).toBe(at.toISOString());
  });

  it('announces a quota crossing once, with what and by how much, and again only after it went back under', async () => {
    const tenant = await activeTenant({ plan: 'basic', limits: { maxApiKeys: 2 } });
    const keys = [];
    for (const name of ['a', 'b', 'c']) keys.push(await addApiKey(tenant.id, name));
    await collectUsage(nextSlot());
    const first = await eventsFor(tenant.id, 'Tenant Quota Exceeded');
    expect(first).toHaveLength(1);
    expect(first[0]?.detail).toMatchObject({
      tenantId: tenant.id,
      plan: 'basic',
      measure: 'apiKeys',
      used: 3,
      limit: 2,
      over: 1,
      share: 1.5,
    });
    expect((await usageOf(tenant.id)).exceeded).toEqual(['apiKeys']);

    await collectUsage(nextSlot());
    expect(await eventsFor(tenant.id, 'Tenant Quota Exceeded')).toHaveLength(1);

    const app = await (sessions.get(tenant.id) ?? connectAs(tenant.id, 'app'));
    await app.query('UPDATE public.api_keys SET revoked_at = now() WHERE id = ANY($1::uuid[])', [
      keys.slice(1),
    ]);
    await collectUsage(nextSlot());
    expect((await usageOf(tenant.id)).exceeded).toEqual([]);
    expect(await eventsFor(tenant.id, 'Tenant Quota Exceeded')).toHaveLength(1);

    await addApiKey(tenant.id, 'd');
    await addApiKey(tenant.id, 'e');
    await collectUsage(nextSlot());
    expect(await eventsFor(tenant.id, 'Tenant Quota Exceeded')).toHaveLength(2);
  });

  it("watches a basic tenant's alarm thresholds itself: storage past 80% of a lowered quota is announced", async () => {
    const tenant = await activeTenant({ plan: 'basic' });
    // 64 KiB of quota: 80% is 52,429 bytes.
    await lowerStorageQuota(tenant.id, 64 / 1024 ** 2);
    await putTenantObject(tenant.id, 'big.bin', 53_000);
    await collectUsage(nextSlot());
    const crossed = await eventsFor(tenant.id, 'Tenant Usage Threshold Crossed');
    expect(crossed).toHaveLength(1);
    expect(crossed[0]?.detail).toMatchObject({ measure: 'storageBytes', threshold: 0.8, limit: 65_536 });
    expect(await eventsFor(tenant.id, 'Tenant Quota Exceeded')).toEqual([]);

    await putTenantObject(tenant.id, 'more.bin', 20_000);
    await collectUsage(nextSlot());
    const exceeded = await eventsFor(tenant.id, 'Tenant Quota Exceeded');
    expect(exceeded).toHaveLength(1);
    expect(exceeded[0]?.detail).toMatchObject({ measure: 'storageBytes', limit: 65_536 });
    expect(Number(exceeded[0]?.detail.over)).toBeGreaterThan(0);
    expect(await eventsFor(tenant.id, 'Tenant Usage Threshold Crossed')).toHaveLength(1);
  });

  it('measures the rest when a tenant locks its own tables, and says what it could not measure', async () => {
    const [locker, neighbour] = await Promise.all([activeTenant(), activeTenant()]);
    const app = await connectAs(locker.id, 'app');
    await app.query('BEGIN');
    await app.query('LOCK TABLE public.users IN ACCESS EXCLUSIVE MODE');
    try {
      const at = nextSlot();
      await collectUsage(at);
      const usage = await usageOf(locker.id);
      expect(usage.measuredAt).toBe(at.toISOString());
      expect(usage.readings.users).toBeUndefined();
      expect(usage.readings.apiKeys).toBeUndefined();
      expect(usage.readings.connections?.used).toBe(1);
      expect(usage.readings.storageBytes?.used).toBeGreaterThan(0);
      expect(usage.problems).toEqual([
        { measures: ['users', 'apiKeys'], reason: expect.stringContaining('TenantDatabaseBusyError') },
      ]);
      const other = await usageOf(neighbour.id);
      expect(other.readings.users?.used).toBe(1);
      expect(other.problems).toEqual([]);
    } finally {
      await app.query('ROLLBACK');
    }
  });

  it('answers 404 for a tenant that does not exist', async () => {
    expect((await request('GET', '/tenants/tdoesnotexist0000/usage')).status).toBe(404);
    expect((await request('GET', '/tenants/not-an-id/usage')).status).toBe(404);
  });
});
