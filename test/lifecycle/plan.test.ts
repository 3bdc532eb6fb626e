import { DescribeAlarmsCommand } from '@aws-sdk/client-cloudwatch';
import { describe, expect, it } from 'vitest';
import { planChangeProblems } from '../../functions/lifecycle/usage.ts';
import { TenantConfig } from '../../functions/shared/tenants.ts';
import { ChangePlanRequest } from '../../schema/api/lifecycle.ts';
import { databaseName } from '../../schema/names.ts';
import { PLANS } from '../../schema/plans.ts';
import { eventsFor } from '../provision/helpers.ts';
import { superuserPool } from '../support/sandbox.ts';
import {
  activeTenant,
  alarmActions,
  clients,
  connectAs,
  operate,
  registry,
  request,
  upgradeFailingInAlarms,
} from './helpers.ts';

async function connectionLimit(tenantId: string): Promise<number> {
  const { rows } = await superuserPool().query<{ datconnlimit: number }>(
    'SELECT datconnlimit FROM pg_database WHERE datname = $1',
    [databaseName(tenantId)],
  );
  return rows[0]?.datconnlimit ?? -1;
}

async function thresholds(tenantId: string): Promise<Record<string, number | undefined>> {
  const { MetricAlarms } = await clients.cloudWatch.send(
    new DescribeAlarmsCommand({ AlarmNamePrefix: `tenant-${tenantId}-` }),
  );
  return Object.fromEntries(
    (MetricAlarms ?? []).map((alarm) => [
      alarm.AlarmName?.replace(`tenant-${tenantId}-`, '') ?? '',
      alarm.Threshold,
    ]),
  );
}

/** Adds users (beyond the invited admin) and live API keys to the tenant's database. */
async function addUsage(tenantId: string, users: number, apiKeys: number): Promise<void> {
  const db = superuserPool(databaseName(tenantId));
  await db.query(
    `INSERT INTO users (email, role_id)
     SELECT 'user' || n || '@example.com', (SELECT id FROM app_roles WHERE name = 'Member') FROM generate_series(1, $1) AS n`,
    [users],
  );
  await db.query(
    `INSERT INTO api_keys (name, key_prefix, key_hash)
     SELECT 'key ' || n, 'tpk' || n || 'xx', encode(sha256(convert_to('key' || n || $2, 'UTF8')), 'hex')
     FROM generate_series(1, $1) AS n`,
    [apiKeys, tenantId],
  );
}

describe('changing a tenant plan', () => {
  it('upgrades: connection limit, quotas and alarm thresholds follow', async () => {
    // Prepare
    const tenant = await activeTenant({ plan: 'basic' });

    // Act
    const { accepted, execution } = await operate('PATCH', `/tenants/${tenant.id}`, { plan: 'professional' });

    // Assess
    expect(execution.status).toBe('SUCCEEDED');
    expect(accepted.operation).toBe('change_plan');
    const record = await registry.tenants.require(tenant.id);
    expect(record.plan).toBe('professional');
    expect(record.limits).toEqual(PLANS.professional.limits);
    expect(await connectionLimit(tenant.id)).toBe(50);
    expect(await thresholds(tenant.id)).toMatchObject({
      connections: 40,
      storage: Math.round(0.8 * 100 * 1024 ** 3),
    });
    const flags = await superuserPool(databaseName(tenant.id)).query<{ config: Record<string, number> }>(
      "SELECT config FROM feature_flags WHERE key = 'apiAccess'",
    );
    expect(flags.rows[0]?.config).toMatchObject({ maxApiKeys: 10, requestsPerMinute: 600 });
    expect((await eventsFor(tenant.id, 'Tenant Plan Changed'))[0]?.detail).toMatchObject({
      plan: 'professional',
      previous: { plan: 'basic' },
    });
  });

  it('downgrades a suspended tenant: the latency alarm goes, the others keep their actions off', async () => {
    // Prepare
    const tenant = await activeTenant({ plan: 'enterprise' });
    await operate('POST', `/tenants/${tenant.id}/suspend`, { reason: 'plan review' });

    // Act
    const { execution } = await operate('PATCH', `/tenants/${tenant.id}`, {
      plan: 'professional',
      limits: { maxConnections: 20 },
    });

    // Assess
    expect(execution.status).toBe('SUCCEEDED');
    expect(await alarmActions(tenant.id)).toEqual({
      [`tenant-${tenant.id}-connections`]: false,
      [`tenant-${tenant.id}-error-rate`]: false,
      [`tenant-${tenant.id}-storage`]: false,
    });
    expect(await connectionLimit(tenant.id)).toBe(20);
    expect(await registry.tenants.require(tenant.id)).toMatchObject({
      status: 'suspended',
      plan: 'professional',
      limits: { ...PLANS.professional.limits, maxConnections: 20 },
    });
  });

  it('refuses a downgrade that current usage exceeds, naming each excess, and changes nothing', async () => {
    // Prepare
    const tenant = await activeTenant({ plan: 'professional', config: { features: { apiAccess: true } } });
    await addUsage(tenant.id, 11, 3);
    await connectAs(tenant.id, 'app');
    await connectAs(tenant.id, 'app');

    // Act
    const downgrade = await request('PATCH', `/tenants/${tenant.id}`, { body: { plan: 'basic' } });
    const fewerConnections = await request('PATCH', `/tenants/${tenant.id}`, {
      body: { limits: { maxConnections: 1 } },
    });
    const aboveThePlan = await request('PATCH', `/tenants/${tenant.id}`, {
      body: { limits: { maxUsers: 51 } },
    });
    const empty = await request('PATCH', `/tenants/${tenant.id}`, { body: {} });

    // Assess
    expect(downgrade.status).toBe(409);
    expect(downgrade.body).toMatchObject({ error: { code: 'plan_change_refused' } });
    const paths = (downgrade.body as { error: { details: { path: string; message: string }[] } }).error
      .details;
    expect(paths.map((detail) => detail.path).sort()).toEqual([
      'features.apiAccess',
      'limits.maxApiKeys',
      'limits.maxUsers',
    ]);
    expect(paths.find((detail) => detail.path === 'limits.maxUsers')?.message).toContain('12 in use');
    expect(fewerConnections.status).toBe(409);
    expect(fewerConnections.body).toMatchObject({
      error: { details: [{ path: 'limits.maxConnections', message: expect.stringContaining('2 in use') }] },
    });
    expect(aboveThePlan.status).toBe(400);
    expect(aboveThePlan.body).toMatchObject({ error: { details: [{ path: 'limits.maxUsers' }] } });
    expect(empty.status).toBe(400);
    expect(await registry.tenants.require(tenant.id)).toMatchObject({
      plan: 'professional',
      status: 'active',
    });
    expect(await connectionLimit(tenant.id)).toBe(50);
  });

  it('refuses a request whose limits are above the plan it asks for, or that asks for nothing', () => {
    // Act
    const above = ChangePlanRequest.safeParse({ plan: 'basic', limits: { maxUsers: 11, maxApiKeys: 2 } });
    const nothing = ChangePlanRequest.safeParse({ limits: {} });
    const within = ChangePlanRequest.safeParse({ plan: 'basic', limits: { maxUsers: 10 } });

    // Assess
    expect(above.error?.issues.map(({ path, message }) => ({ path, message }))).toEqual([
      { path: ['limits', 'maxUsers'], message: 'maxUsers may not exceed 10 on the basic plan' },
    ]);
    expect(nothing.error?.issues.map(({ message }) => message)).toEqual([
      'Give a plan, limits or a backup policy',
    ]);
    expect(within.success).toBe(true);
  });

  it('names storage above a lowered quota', () => {
    // Prepare
    const config = TenantConfig.parse({ adminUser: { email: 'a@example.com' } });

    // Act
    const problems = planChangeProblems(
      { config },
      { plan: 'basic', limits: { ...PLANS.basic.limits, storageQuotaGb: 1 } },
      { users: 1, apiKeys: 0, connections: 0, storageBytes: 2 * 1024 ** 3 },
    );

    // Assess
    expect(problems).toEqual([
      { path: 'limits.storageQuotaGb', message: expect.stringContaining(`${2 * 1024 ** 3} bytes in use`) },
    ]);
  });

  it('puts the previous limits back when a step fails, and records the failure', async () => {
    // Prepare
    const tenant = await activeTenant({ plan: 'professional' });

    // Act
    const execution = await upgradeFailingInAlarms(tenant.id);

    // Assess
    expect(execution.status).toBe('FAILED');
    expect(await registry.tenants.require(tenant.id)).toMatchObject({
      status: 'active',
      plan: 'professional',
      limits: PLANS.professional.limits,
      failure: { step: 'ApplyAlarmThresholds' },
    });
    expect(await connectionLimit(tenant.id)).toBe(50);
    expect(await thresholds(tenant.id)).toMatchObject({ connections: 40 });
    expect(Object.keys(await thresholds(tenant.id))).not.toContain('latency');
  });
});
