import { describe, expect, it } from 'vitest';
import { eventsFor } from '../provision/helpers.ts';
import { addFaults, type FaultRuleInput, removeFaults } from '../support/sandbox.ts';
import {
  activeTenant,
  alarmActions,
  canConnect,
  connectAs,
  operate,
  operationsOf,
  registry,
  request,
  roleLogins,
  suspensionStoppedHalfway,
} from './helpers.ts';

const reason = 'Invoice unpaid for 60 days';

describe('suspending and resuming a tenant', () => {
  it('ends open sessions, refuses logins and silences alarms; resuming undoes each, and only for roles with credentials', async () => {
    // Prepare
    const tenant = await activeTenant({ plan: 'professional' });
    const session = await connectAs(tenant.id, 'app');
    await session.query('SELECT count(*) FROM users');
    const ended = new Promise<string>((resolve) => session.on('end', () => resolve('ended')));

    // Act
    const suspended = await operate('POST', `/tenants/${tenant.id}/suspend`, { reason });

    // Assess
    expect(suspended.execution.status).toBe('SUCCEEDED');
    expect(suspended.accepted).toMatchObject({ tenantId: tenant.id, operation: 'suspend', status: 'active' });
    expect(await ended).toBe('ended');
    expect(await canConnect(tenant.id, 'app')).toMatch(/not permitted to log in|permission denied/);
    expect(Object.values(await roleLogins(tenant.id)).map((role) => role.login)).toEqual([
      false,
      false,
      false,
      false,
    ]);
    expect(Object.values(await alarmActions(tenant.id))).toEqual([false, false, false]);
    const record = await registry.tenants.require(tenant.id);
    expect(record.status).toBe('suspended');
    expect(record.executionArn).toBe(suspended.accepted.executionArn);
    expect((await registry.audit.entries(tenant.id)).map((entry) => entry.action)).toContain(
      'TENANT_SUSPENDED',
    );
    expect((await eventsFor(tenant.id, 'Tenant Suspended'))[0]?.detail).toMatchObject({ reason });

    // Act
    const resumed = await operate('POST', `/tenants/${tenant.id}/resume`, { reason: 'Paid' });

    // Assess
    expect(resumed.execution.status).toBe('SUCCEEDED');
    expect(await canConnect(tenant.id, 'app')).toBe('ok');
    // A professional tenant: app, admin and readonly stand; the auditor has no credentials and stays NOLOGIN,
    // without a password.
    expect(await roleLogins(tenant.id)).toEqual({
      admin: { login: true, password: true },
      app: { login: true, password: true },
      readonly: { login: true, password: true },
      auditor: { login: false, password: false },
    });
    expect(Object.values(await alarmActions(tenant.id))).toEqual([true, true, true]);
    expect((await registry.tenants.require(tenant.id)).status).toBe('active');
    expect(await operationsOf(tenant.id)).toMatchObject([
      { operation: 'suspend', status: 'succeeded' },
      { operation: 'resume', status: 'succeeded' },
    ]);
    expect(await eventsFor(tenant.id, 'Tenant Resumed')).toHaveLength(1);
  });

  it('refuses an operation the status does not allow, a second one while one runs, and unknown tenants', async () => {
    // Prepare
    const tenant = await activeTenant({ plan: 'professional' });

    // Act
    const resumeActive = await request('POST', `/tenants/${tenant.id}/resume`, { body: { reason } });
    const first = await request('POST', `/tenants/${tenant.id}/suspend`, { body: { reason } });
    const second = await request('POST', `/tenants/${tenant.id}/suspend`, { body: { reason } });
    const unknown = await request('POST', '/tenants/tzzzzzzzzzzzzzzz/suspend', { body: { reason } });
    const noReason = await request('POST', `/tenants/${tenant.id}/suspend`, { body: {} });

    // Assess
    expect(resumeActive.status).toBe(409);
    expect(resumeActive.body).toMatchObject({ error: { code: 'invalid_state' } });
    expect(first.status).toBe(202);
    expect(second.status).toBe(409);
    expect(second.body).toMatchObject({
      error: { code: expect.stringMatching(/operation_in_progress|invalid_state/) },
    });
    expect(unknown.status).toBe(404);
    expect(noReason.status).toBe(400);
    expect(noReason.body).toMatchObject({ error: { details: [{ path: 'reason' }] } });
  });

  it('does not stay locked by a run that ended without closing its operation', async () => {
    // Prepare: a suspension held in DisableAlarmActions, then stopped from outside (as an operator would).
    const tenant = await activeTenant({ plan: 'professional' });
    await suspensionStoppedHalfway(tenant.id, reason);

    // Act
    const { execution } = await operate('POST', `/tenants/${tenant.id}/suspend`, { reason });

    // Assess
    expect(execution.status).toBe('SUCCEEDED');
    expect((await registry.tenants.require(tenant.id)).status).toBe('suspended');
    expect(await operationsOf(tenant.id)).toMatchObject([
      { operation: 'suspend', status: 'failed', failure: { error: 'Test.Stopped' } },
      { operation: 'suspend', status: 'succeeded' },
    ]);
  });

  it('undoes a suspension whose step fails: the tenant stays active, the failure recorded', async () => {
    // Prepare
    const tenant = await activeTenant({ plan: 'professional' });
    const fault: FaultRuleInput = {
      service: 'cloudwatch',
      operation: 'DisableAlarmActions',
      match: tenant.id,
      error: { code: 'InvalidParameterValue', statusCode: 400, message: 'injected' },
    };
    await addFaults([fault]);

    // Act
    let execution: Awaited<ReturnType<typeof operate>>['execution'];
    try {
      ({ execution } = await operate('POST', `/tenants/${tenant.id}/suspend`, { reason }));
    } finally {
      await removeFaults([fault]);
    }

    // Assess
    expect(execution.status).toBe('FAILED');
    expect(execution.error).toBe('TenantSuspensionFailed');
    const record = await registry.tenants.require(tenant.id);
    expect(record.status).toBe('active');
    expect(record.failure).toMatchObject({
      step: 'DisableAlarmActions',
      error: expect.stringContaining('InvalidParameterValue'),
    });
    expect(await canConnect(tenant.id, 'app')).toBe('ok');
    expect(Object.values(await alarmActions(tenant.id))).toEqual([true, true, true]);
    expect(await operationsOf(tenant.id)).toMatchObject([{ operation: 'suspend', status: 'failed' }]);
    expect(await eventsFor(tenant.id, 'Tenant Suspension Failed')).toHaveLength(1);
  });

  it('re-suspends a resumption whose step fails: the tenant stays suspended', async () => {
    // Prepare
    const tenant = await activeTenant({ plan: 'professional' });
    await operate('POST', `/tenants/${tenant.id}/suspend`, { reason });
    const fault: FaultRuleInput = {
      service: 'cloudwatch',
      operation: 'EnableAlarmActions',
      match: tenant.id,
      error: { code: 'InvalidParameterValue', statusCode: 400, message: 'injected' },
    };
    await addFaults([fault]);

    // Act
    let execution: Awaited<ReturnType<typeof operate>>['execution'];
    try {
      ({ execution } = await operate('POST', `/tenants/${tenant.id}/resume`, { reason }));
    } finally {
      await removeFaults([fault]);
    }

    // Assess
    expect(execution.status).toBe('FAILED');
    const record = await registry.tenants.require(tenant.id);
    expect(record.status).toBe('suspended');
    expect(record.failure).toMatchObject({ step: 'EnableAlarmActions' });
    expect(await canConnect(tenant.id, 'app')).toMatch(/not permitted to log in|permission denied/);
  });
});
