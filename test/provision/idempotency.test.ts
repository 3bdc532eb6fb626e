import { DescribeAlarmsCommand } from '@aws-sdk/client-cloudwatch';
import { GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { StartExecutionCommand } from '@aws-sdk/client-sfn';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { databaseName } from '../../schema/names.ts';
import { sandbox, superuserPool } from '../support/sandbox.ts';
import {
  asRole,
  clients,
  outcome,
  PROVISION_STATE_MACHINE,
  provision,
  registry,
  tenantTraces,
  waitForExecution,
} from './helpers.ts';

const RecordedCalls = z.array(z.object({ service: z.string(), subject: z.string().optional() }));

/** What a rerun must leave as it was: secret values, rows, alarms, objects, audit entries. */
async function snapshot(tenantId: string) {
  const tenant = await registry.tenants.require(tenantId);
  const arns = [...Object.values(tenant.resources.secrets ?? {}), tenant.resources.invitationSecretArn];
  const secretValues = await Promise.all(
    arns.map(
      async (arn) => (await clients.secrets.send(new GetSecretValueCommand({ SecretId: arn }))).SecretString,
    ),
  );
  const pg = superuserPool(databaseName(tenantId));
  const rows = await pg.query(
    `SELECT (SELECT count(*) FROM app_roles)::int AS roles, (SELECT count(*) FROM users)::int AS users,
       (SELECT count(*) FROM invitations)::int AS invitations, (SELECT count(*) FROM email_templates)::int AS templates,
       (SELECT count(*) FROM feature_flags)::int AS flags, (SELECT count(*) FROM activity_log)::int AS activity,
       (SELECT count(*) FROM security_policy)::int AS policies, (SELECT max(version) FROM schema_migrations) AS version`,
  );
  const alarms = await clients.cloudWatch.send(
    new DescribeAlarmsCommand({ AlarmNamePrefix: `tenant-${tenantId}-` }),
  );
  return {
    status: tenant.status,
    resources: tenant.resources,
    secretValues,
    rows: rows.rows,
    alarms: (alarms.MetricAlarms ?? []).map((alarm) => [alarm.AlarmName, alarm.Threshold]),
    traces: await tenantTraces(tenantId),
    audit: (await registry.audit.entries(tenantId)).map((entry) => entry.action),
  };
}

/** Starts the state machine again for a tenant, under another execution name (a rerun by an operator). */
async function provisionAgain(tenantId: string) {
  const { executionArn } = await clients.sfn.send(
    new StartExecutionCommand({
      stateMachineArn: PROVISION_STATE_MACHINE,
      name: `${tenantId}-again`,
      input: JSON.stringify({ tenantId }),
    }),
  );
  return waitForExecution(executionArn ?? '');
}

describe('provisioning again', () => {
  it('runs every step a second time to the same state, passwords and invitation kept', async () => {
    // Prepare: a tenant provisioned, then set back to provisioning as if its run had been cut short after Activate.
    const first = await provision({ plan: 'professional' });
    expect(first.execution.status).toBe('SUCCEEDED');
    const before = await snapshot(first.id);
    await registry.tenants.setStatus(first.id, 'provisioning', 'provision-test');

    // Act
    const again = await provisionAgain(first.id);

    // Assess
    expect(again.status).toBe('SUCCEEDED');
    const after = await snapshot(first.id);
    expect(after).toEqual(before);
    const steps = await registry.progress.steps(first.id);
    expect(steps.every((step) => step.status === 'succeeded')).toBe(true);
    const app = before.resources.secrets?.app ?? '';
    expect(await outcome(asRole(app, databaseName(first.id)).execute('SELECT count(*) FROM users'))).toBe(
      'ok',
    );
  }, 120_000);

  it('refuses an active tenant without touching it (no step runs, nothing is undone)', async () => {
    // Prepare
    const tenant = await provision();
    const before = await snapshot(tenant.id);
    const stepsBefore = await registry.progress.steps(tenant.id);

    // Act
    const again = await provisionAgain(tenant.id);

    // Assess
    expect(again.status).toBe('FAILED');
    expect(again.error).toBe('TenantStateError');
    expect(await snapshot(tenant.id)).toEqual(before);
    expect(await registry.progress.steps(tenant.id)).toEqual(stepsBefore);
  }, 120_000);

  it('never sends a password in the SQL text of a Data API call', async () => {
    // Prepare
    const tenant = await provision();
    const passwords = await Promise.all(
      Object.values((await registry.tenants.require(tenant.id)).resources.secrets ?? {}).map(async (arn) => {
        const { SecretString } = await clients.secrets.send(new GetSecretValueCommand({ SecretId: arn }));
        return z.object({ password: z.string() }).parse(JSON.parse(SecretString ?? '')).password;
      }),
    );

    // Act
    const response = await fetch(`${sandbox.awsEndpoint}/_sandbox/calls`);
    const calls = RecordedCalls.parse(await response.json());

    // Assess
    const roleStatements = calls.filter(
      (call) =>
        call.service === 'rds-data' &&
        new RegExp(`ROLE "tenant_${tenant.id}_[a-z]+" WITH`).test(call.subject ?? ''),
    );
    expect(roleStatements.length).toBeGreaterThanOrEqual(4);
    // A role with credentials gets a SCRAM verifier; one without (basic: all but app) gets none at all.
    const login = roleStatements.filter((call) => / WITH LOGIN /.test(call.subject ?? ''));
    expect(login.length).toBeGreaterThanOrEqual(1);
    expect(login.every((call) => call.subject?.includes("PASSWORD 'SCRAM-SHA-256$4096:"))).toBe(true);
    expect(
      roleStatements
        .filter((call) => !login.includes(call))
        .every((call) => / WITH NOLOGIN .*PASSWORD NULL$/.test(call.subject ?? '')),
    ).toBe(true);
    const everything = JSON.stringify(calls);
    for (const password of passwords) expect(everything).not.toContain(password);
  }, 120_000);
});
