import { GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { roleName } from '../../schema/names.ts';
import { activeTenant, canConnect, clients, connectAs, operate, registry } from '../lifecycle/helpers.ts';
import { sandbox, superuserPool } from '../support/sandbox.ts';
import { runReconciler } from './helpers.ts';

/** Makes the tenant the first due for a credential check (its last one a day ago). */
async function dueForCheck(tenantId: string): Promise<void> {
  await superuserPool('control_plane').query(
    "UPDATE tenants SET credentials_checked_at = now() - interval '1 day' WHERE id = $1",
    [tenantId],
  );
}

async function passwordOf(secretArn: string): Promise<string> {
  const { SecretString } = await clients.secrets.send(new GetSecretValueCommand({ SecretId: secretArn }));
  return z.object({ password: z.string() }).parse(JSON.parse(SecretString ?? '')).password;
}

describe('the reconciler and role secrets that no longer log in', () => {
  it('puts back the password of a role that changed its own, from its secret, and reports it', async () => {
    // Prepare: the tenant's admin changes its own password (PostgreSQL lets a role do that). Professional: its admin
    // stands; its auditor has no credentials, so the check does not try it.
    const tenant = await activeTenant({ plan: 'professional' });
    const admin = roleName(tenant.id, 'admin');
    const session = await connectAs(tenant.id, 'admin');
    await session.query("ALTER ROLE CURRENT_USER PASSWORD 'the-tenant-chose-this-one'");
    await session.end();
    expect(await canConnect(tenant.id, 'admin')).toMatch(/password authentication failed/);
    await dueForCheck(tenant.id);

    // Act
    const report = await runReconciler();

    // Assess
    expect(await canConnect(tenant.id, 'admin')).toBe('ok');
    expect(await canConnect(tenant.id, 'app')).toBe('ok');
    expect(report.credentials.find((item) => item.tenantId === tenant.id)).toEqual({
      tenantId: tenant.id,
      roles: [admin],
      restored: [admin],
    });
    const audit = await registry.audit.entries(tenant.id);
    expect(audit).toContainEqual(
      expect.objectContaining({
        action: 'TENANT_RECONCILED',
        actor: 'reconciler',
        details: expect.objectContaining({ action: 'password_restored', roles: [admin], restored: [admin] }),
      }),
    );
    expect(audit.map((entry) => entry.action)).toContain('TENANT_DRIFT_DETECTED');
    const drift = await driftEventsMentioning(tenant.id);
    expect(drift.length).toBeGreaterThan(0);
    // Only a SCRAM verifier went into SQL; no password in what the reconciler reported, audited or announced.
    const record = await registry.tenants.require(tenant.id);
    const password = await passwordOf(record.resources.secrets?.admin ?? '');
    const calls = await (await fetch(`${sandbox.awsEndpoint}/_sandbox/calls`)).text();
    expect(calls).toContain(`ALTER ROLE \\"${admin}\\" PASSWORD 'SCRAM-SHA-256$4096:`);
    for (const text of [calls, JSON.stringify(report), JSON.stringify(audit), JSON.stringify(drift)]) {
      expect(text).not.toContain(password);
      expect(text).not.toContain('the-tenant-chose-this-one');
    }
  });

  it('leaves a suspended tenant, whose roles cannot log in, alone', async () => {
    // Prepare
    const tenant = await activeTenant();
    await operate('POST', `/tenants/${tenant.id}/suspend`, { reason: 'Unpaid' });
    await dueForCheck(tenant.id);

    // Act
    const report = await runReconciler();

    // Assess
    expect(report.credentials.filter((item) => item.tenantId === tenant.id)).toEqual([]);
    expect(report.missing.filter((item) => item.tenantId === tenant.id)).toEqual([]);
    expect((await registry.audit.entries(tenant.id)).map((entry) => entry.action)).not.toContain(
      'TENANT_DRIFT_DETECTED',
    );
  });
});

/** Drift events whose detail names the tenant anywhere (the reconciler's are not about one tenant). */
async function driftEventsMentioning(tenantId: string): Promise<unknown[]> {
  const query = new URLSearchParams({ source: 'tenant-provisioner', detailType: 'Tenant Drift Detected' });
  const response = await fetch(`${sandbox.awsEndpoint}/_sandbox/events?${query}`);
  const events = z.array(z.unknown()).parse(await response.json());
  return events.filter((event) => JSON.stringify(event).includes(tenantId));
}
