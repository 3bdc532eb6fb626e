import { RDSDataClient } from '@aws-sdk/client-rds-data';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { DataApi } from '../../functions/shared/data-api.ts';
import { Registry } from '../../functions/shared/registry.ts';
import type { TenantStatus } from '../../functions/shared/tenants.ts';
import { TenantConfig, TenantListResponse, TenantResponse } from '../../schema/api/tenants.ts';
import { newTenantId } from '../../schema/names.ts';
import { effectiveLimits, type PlanName } from '../../schema/plans.ts';
import { clientConfig, sandbox, uniqueName } from '../support/sandbox.ts';
import { type ApiUnderTest, apiUnderTest, CreatedBody, call, ErrorBody, validBody } from './api.ts';

let api: ApiUnderTest;
let reader: string;
beforeAll(async () => {
  api = await apiUnderTest();
  reader = await api.token({ scopes: ['tenants/read'] });
});
const rdsData = new RDSDataClient(clientConfig);
afterAll(() => rdsData.destroy());
/** The registry as the provisioning steps use it, to put a tenant in a known state without running them. */
const registry = new Registry(
  new DataApi(rdsData, {
    resourceArn: sandbox.clusterArn,
    secretArn: sandbox.provisionerSecretArn,
    database: 'control_plane',
  }),
);

/** A tenant written straight to the registry (no execution), in the given status. */
async function registryTenant(plan: PlanName, status: TenantStatus = 'provisioning'): Promise<string> {
  const id = newTenantId();
  const reserved = await registry.tenants.reserve(
    {
      id,
      slug: uniqueName('reg').toLowerCase(),
      name: uniqueName('Registry Tenant'),
      plan,
      limits: effectiveLimits(plan, { maxUsers: 5 }),
      config: TenantConfig.parse({ adminUser: { email: 'admin@example.com', firstName: 'Ada' } }),
    },
    'test',
  );
  if (!reserved) throw new Error('slug taken');
  if (status !== 'provisioning') await registry.tenants.setStatus(id, status, 'test');
  return id;
}

describe('GET /tenants/{tenantId}', () => {
  it('answers the tenant a POST created, with its configuration and defaults', async () => {
    // Prepare
    const admin = await api.token({ scopes: ['tenants/admin'] });
    const body = validBody({
      plan: 'enterprise',
      limits: { storageQuotaGb: 50 },
      features: { customBranding: true },
    });
    const created = CreatedBody.parse((await call(api, 'POST', '/tenants', { token: admin, body })).body);

    // Act
    const answer = await call(api, 'GET', `/tenants/${created.tenantId}`, { token: reader });

    // Assess
    expect(answer.status).toBe(200);
    const tenant = TenantResponse.parse(answer.body);
    expect(tenant).toMatchObject({
      id: created.tenantId,
      slug: created.slug,
      name: body.name,
      plan: 'enterprise',
      executionArn: created.executionArn,
      limits: { ...effectiveLimits('enterprise'), storageQuotaGb: 50 },
      adminUser: { email: 'owner@example.com' },
      features: { auth: ['password'], customBranding: true, storage: true, email: true },
      securityPolicy: { session: { timeoutSeconds: 3600 }, mfaRequired: false, allowedIpRanges: [] },
      compliance: { retentionDays: 365, encryptionLevel: 'standard' },
      settings: {},
      links: { self: `/tenants/${created.tenantId}` },
    });
    expect(tenant.createdBy).toMatch(/^api:test-caller-/);
    expect(Date.parse(tenant.createdAt)).toBeGreaterThan(Date.now() - 60_000);
  });

  it('shows resources by name and ARN, the failure, and each step with its attempts, duration and error', async () => {
    // Prepare
    const id = await registryTenant('professional');
    const secretArn = `arn:aws:secretsmanager:us-east-1:000000000000:secret:tenants/local/${id}/db/app-AbCdEf`;
    await registry.progress.stepStarted(id, 'CreateDatabase');
    await registry.progress.stepSucceeded(id, 'CreateDatabase');
    await registry.progress.stepStarted(id, 'CreateRoles');
    await registry.progress.stepStarted(id, 'CreateRoles');
    await registry.progress.stepFailed(id, 'CreateRoles', {
      error: 'DatabaseErrorException',
      cause: 'role exists',
    });
    await registry.tenants.mergeResources(id, { database: `tenant_${id}`, secrets: { app: secretArn } });
    await registry.tenants.mergeResources(id, { alarms: [`tenant-${id}-storage`] });
    await registry.tenants.setStatus(id, 'failed', 'provision-tenant', {
      failure: { step: 'CreateRoles', error: 'DatabaseErrorException', cause: 'role exists' },
    });

    // Act
    const answer = await call(api, 'GET', `/tenants/${id}`, { token: reader });

    // Assess
    const tenant = TenantResponse.parse(answer.body);
    expect(tenant.status).toBe('failed');
    expect(tenant.updatedBy).toBe('provision-tenant');
    expect(tenant.resources).toEqual({
      database: `tenant_${id}`,
      secrets: { app: secretArn },
      alarms: [`tenant-${id}-storage`],
    });
    expect(tenant.failure).toEqual({
      step: 'CreateRoles',
      error: 'DatabaseErrorException',
      cause: 'role exists',
    });
    expect(tenant.progress.map(({ step, status, attempts }) => ({ step, status, attempts }))).toEqual([
      { step: 'CreateDatabase', status: 'succeeded', attempts: 1 },
      { step: 'CreateRoles', status: 'failed', attempts: 2 },
    ]);
    const [database, roles] = tenant.progress;
    expect(database?.durationMs).toBeGreaterThanOrEqual(0);
    expect(Date.parse(database?.endedAt ?? '')).toBeGreaterThanOrEqual(Date.parse(database?.startedAt ?? ''));
    expect(database?.error).toBeNull();
    expect(roles?.error).toEqual({ error: 'DatabaseErrorException', cause: 'role exists' });
    expect(tenant.adminUser).toEqual({ email: 'admin@example.com', firstName: 'Ada' });
  });

  it('answers 404 for an unknown id and for a malformed one alike', async () => {
    // Act
    const unknown = await call(api, 'GET', `/tenants/${newTenantId()}`, { token: reader });
    const malformed = await call(api, 'GET', `/tenants/${encodeURIComponent("x' OR 1=1")}`, {
      token: reader,
    });

    // Assess
    for (const answer of [unknown, malformed]) {
      expect(answer.status).toBe(404);
      expect(ErrorBody.parse(answer.body).error.code).toBe('not_found');
    }
  });
});

describe('GET /tenants', () => {
  it('filters by status and plan and pages with a cursor in id order', async () => {
    // Prepare: three suspended enterprise tenants, a suspended basic one and an active enterprise one.
    const mine = await Promise.all([1, 2, 3].map(() => registryTenant('enterprise', 'suspended')));
    const otherPlan = await registryTenant('basic', 'suspended');
    const otherStatus = await registryTenant('enterprise', 'active');

    // Act: walk every page, two at a time.
    const pages: z.infer<typeof TenantListResponse>[] = [];
    let cursor: string | null = null;
    do {
      const query: string = `status=suspended&plan=enterprise&limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const answer = await call(api, 'GET', `/tenants?${query}`, { token: reader });
      expect(answer.status).toBe(200);
      const page = TenantListResponse.parse(answer.body);
      pages.push(page);
      cursor = page.nextCursor;
    } while (cursor !== null && pages.length < 1000);

    // Assess
    const items = pages.flatMap((page) => page.items);
    const ids = items.map((item) => item.id);
    expect(pages.every((page) => page.items.length <= 2)).toBe(true);
    expect(items.every((item) => item.status === 'suspended' && item.plan === 'enterprise')).toBe(true);
    expect(ids).toEqual([...ids].sort());
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toEqual(expect.arrayContaining(mine));
    expect(ids).not.toContain(otherPlan);
    expect(ids).not.toContain(otherStatus);
    expect(pages.length).toBeGreaterThanOrEqual(2);
  });

  it('refuses an invalid filter, limit, cursor or an unknown parameter', async () => {
    // Act
    const answers = await Promise.all(
      [
        'status=gone',
        'plan=gold',
        'limit=0',
        'limit=101',
        'limit=two',
        'cursor=bm90LWEtY3Vyc29y',
        'sort=name',
      ].map((query) => call(api, 'GET', `/tenants?${query}`, { token: reader })),
    );

    // Assess
    for (const answer of answers) {
      expect(answer.status).toBe(400);
      expect(ErrorBody.parse(answer.body).error.code).toBe('invalid_request');
    }
    expect(ErrorBody.parse(answers[6]?.body).error.details[0]?.path).toBe('sort');
  });
});
