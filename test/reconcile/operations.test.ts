import { setTimeout as sleep } from 'node:timers/promises';
import { StopExecutionCommand } from '@aws-sdk/client-sfn';
import { describe, expect, it } from 'vitest';
import {
  Accepted,
  activeTenant,
  alarmActions,
  canConnect,
  clients,
  operate,
  operationsOf,
  registry,
  request,
  suspensionStoppedHalfway,
  waitForExecution,
} from '../lifecycle/helpers.ts';
import { eventsFor, tenantTraces } from '../provision/helpers.ts';
import {
  addFaults,
  eventually,
  type FaultRuleInput,
  held,
  removeFaults,
  superuserPool,
} from '../support/sandbox.ts';
import { runReconciler } from './helpers.ts';

const reason = 'Reconciler test';
const REFUSED = /not permitted to log in|permission denied/;
// The reconciler leaves a run that ended a moment ago to whoever may act on it; the tests wait that out.
const SETTLE = { settleSeconds: 1 };
const settled = () => sleep(1_100);

describe('the reconciler and lifecycle operations whose run died', () => {
  it('does a suspension stopped half-way again: registry and database agree, and resume works', async () => {
    // Prepare: the roles cannot log in, the registry says active, the operation runs with no run.
    const tenant = await activeTenant({ plan: 'professional' });
    await suspensionStoppedHalfway(tenant.id, reason);
    expect(await canConnect(tenant.id, 'app')).toMatch(REFUSED);
    expect((await registry.tenants.require(tenant.id)).status).toBe('active');
    expect(await operationsOf(tenant.id)).toMatchObject([{ operation: 'suspend', status: 'running' }]);
    await settled();

    // Act
    const report = await runReconciler(SETTLE);

    // Assess
    const outcome = report.operations.find((item) => item.tenantId === tenant.id);
    expect(outcome).toMatchObject({ operation: 'suspend', action: 'resumed' });
    expect((await waitForExecution(outcome?.execution ?? '')).status).toBe('SUCCEEDED');
    expect((await registry.tenants.require(tenant.id)).status).toBe('suspended');
    expect(await canConnect(tenant.id, 'app')).toMatch(REFUSED);
    expect(Object.values(await alarmActions(tenant.id))).toEqual([false, false, false]);
    expect(await operationsOf(tenant.id)).toMatchObject([
      { operation: 'suspend', status: 'failed', failure: { error: 'Test.Stopped' } },
      { operation: 'suspend', status: 'succeeded' },
    ]);
    const audit = (await registry.audit.entries(tenant.id)).map((entry) => entry.action);
    expect(audit).toContain('TENANT_RECONCILED');
    expect(audit).toContain('TENANT_SUSPENDED');
    const resumed = await operate('POST', `/tenants/${tenant.id}/resume`, { reason: 'Back' });
    expect(resumed.execution.status).toBe('SUCCEEDED');
    expect(await canConnect(tenant.id, 'app')).toBe('ok');
  });

  it('finishes a deletion cut short in its removal whose run has vanished', async () => {
    // Prepare: held while retiring the secrets (the final backup taken, alarms gone), stopped, and the record of
    // its run lost.
    const tenant = await activeTenant({ plan: 'professional' });
    const slow: FaultRuleInput = {
      service: 'secrets-manager',
      operation: 'DeleteSecret',
      match: tenant.id,
      count: 1,
      latencyMs: 5_000,
    };
    await addFaults([slow]);
    try {
      const answer = await request(
        'DELETE',
        `/tenants/${tenant.id}?confirm=${encodeURIComponent(tenant.slug)}`,
      );
      expect(answer.status).toBe(202);
      const { executionArn } = Accepted.parse(answer.body);
      expect(await held('DeleteSecret', tenant.id)).toBe(true);
      await clients.sfn.send(new StopExecutionCommand({ executionArn }));
    } finally {
      await removeFaults([slow]);
    }
    await superuserPool('control_plane').query(
      "UPDATE tenant_operations SET execution_arn = execution_arn || '-vanished' WHERE tenant_id = $1",
      [tenant.id],
    );
    expect((await registry.tenants.require(tenant.id)).status).toBe('deprovisioning');
    const before = await tenantTraces(tenant.id);
    expect(before.alarms).toEqual([]);
    expect(before.databases).toHaveLength(1);

    // Act
    const report = await runReconciler(SETTLE);

    // Assess
    const outcome = report.operations.find((item) => item.tenantId === tenant.id);
    expect(outcome).toMatchObject({ operation: 'delete', action: 'resumed' });
    expect((await waitForExecution(outcome?.execution ?? '')).status).toBe('SUCCEEDED');
    const record = await registry.tenants.require(tenant.id);
    expect(record.status).toBe('deleted');
    expect(record.resources.finalBackup).toBeDefined();
    const traces = await tenantTraces(tenant.id);
    expect(traces.databases).toEqual([]);
    expect(traces.roles).toEqual([]);
    expect(traces.alarms).toEqual([]);
    expect(await operationsOf(tenant.id)).toMatchObject([
      { operation: 'delete', status: 'failed', failure: { error: 'ExecutionDoesNotExist' } },
      { operation: 'delete', status: 'succeeded' },
    ]);
  });

  it('starts an operation whose claim never got its run, once the grace period is over', async () => {
    // Prepare: a claim as the API writes it, by a request that died before StartExecution, ten minutes ago.
    const tenant = await activeTenant({ plan: 'professional' });
    await superuserPool('control_plane').query(
      `INSERT INTO tenant_operations (tenant_id, operation, request, from_status, requested_by)
       VALUES ($1, 'suspend', $2, 'active', 'api:reconciler-test')`,
      [tenant.id, JSON.stringify({ reason, claimedAt: Date.now() - 600_000 })],
    );

    // Act
    const report = await runReconciler(SETTLE);

    // Assess
    const outcome = report.operations.find((item) => item.tenantId === tenant.id);
    expect(outcome).toMatchObject({ operation: 'suspend', action: 'resumed' });
    expect((await waitForExecution(outcome?.execution ?? '')).status).toBe('SUCCEEDED');
    expect((await registry.tenants.require(tenant.id)).status).toBe('suspended');
    expect(await operationsOf(tenant.id)).toMatchObject([
      { operation: 'suspend', status: 'failed', failure: { error: 'ExecutionNotStarted' } },
      { operation: 'suspend', status: 'succeeded' },
    ]);
  });

  it('gives an operation up for a person after its runs died too often, stating the tenant suspended', async () => {
    // Prepare
    const tenant = await activeTenant({ plan: 'professional' });
    await suspensionStoppedHalfway(tenant.id, reason);
    await settled();

    // Act
    const report = await runReconciler({ ...SETTLE, maxResumes: 0 });

    // Assess
    expect(report.operations.find((item) => item.tenantId === tenant.id)).toMatchObject({
      operation: 'suspend',
      action: 'escalated',
    });
    const record = await registry.tenants.require(tenant.id);
    expect(record.status).toBe('suspended');
    expect(record.failure).toMatchObject({ error: 'Test.Stopped' });
    expect(await operationsOf(tenant.id)).toMatchObject([{ operation: 'suspend', status: 'failed' }]);
    expect(await eventsFor(tenant.id, 'Tenant Suspension Failed')).toHaveLength(1);
    // A person resumes it: every part of the suspension is undone.
    const resumed = await operate('POST', `/tenants/${tenant.id}/resume`, { reason: 'Checked' });
    expect(resumed.execution.status).toBe('SUCCEEDED');
    expect(await canConnect(tenant.id, 'app')).toBe('ok');
  });

  it('leaves an operation whose run is alive alone', async () => {
    // Prepare
    const tenant = await activeTenant({ plan: 'professional' });
    const slow: FaultRuleInput = {
      service: 'cloudwatch',
      operation: 'DisableAlarmActions',
      match: tenant.id,
      count: 1,
      latencyMs: 3_000,
    };
    await addFaults([slow]);
    let executionArn: string;
    try {
      const answer = await request('POST', `/tenants/${tenant.id}/suspend`, { body: { reason } });
      executionArn = Accepted.parse(answer.body).executionArn;
      expect(await held('DisableAlarmActions', tenant.id)).toBe(true);

      // Act
      const report = await runReconciler({ settleSeconds: 0, graceSeconds: 0 });

      // Assess
      expect(report.operations.filter((item) => item.tenantId === tenant.id)).toEqual([]);
    } finally {
      await removeFaults([slow]);
    }
    expect((await waitForExecution(executionArn)).status).toBe('SUCCEEDED');
    expect(
      await eventually(async () => (await registry.tenants.require(tenant.id)).status === 'suspended'),
    ).toBe(true);
    expect(await operationsOf(tenant.id)).toMatchObject([{ operation: 'suspend', status: 'succeeded' }]);
  });
});
