import { ListSecretsCommand } from '@aws-sdk/client-secrets-manager';
import { describe, expect, it } from 'vitest';
import { STAGE } from '../../local/constants.ts';
import { secretPrefix } from '../../schema/names.ts';
import { runReconciler } from '../reconcile/helpers.ts';
import { superuserPool } from '../support/sandbox.ts';
import {
  activeTenant,
  canConnect,
  clients,
  operate,
  registry,
  roleLogins,
  upgradeFailingInAlarms,
} from './helpers.ts';

/** The role secrets under the tenant's prefix (`db/<role>`), those scheduled for deletion included. */
async function roleSecretsOf(tenantId: string): Promise<string[]> {
  const prefix = `${secretPrefix(STAGE, tenantId)}db/`;
  const { SecretList } = await clients.secrets.send(
    new ListSecretsCommand({ Filters: [{ Key: 'name', Values: [prefix] }], IncludePlannedDeletion: true }),
  );
  return (SecretList ?? []).map((secret) => (secret.Name ?? '').slice(prefix.length)).sort();
}

const HOUR = 3_600_000;

describe("a plan change and the plan's standing roles", () => {
  it('upgrading issues the new standing roles; downgrading gives them a day, after which the reconciler revokes them', async () => {
    // Prepare
    const tenant = await activeTenant({ plan: 'basic' });

    // Act
    const up = await operate('PATCH', `/tenants/${tenant.id}`, { plan: 'professional' });

    // Assess: admin and readonly stand, log in, expire never; the auditor still has nothing.
    expect(up.execution.status).toBe('SUCCEEDED');
    expect(await roleSecretsOf(tenant.id)).toEqual(['admin', 'app', 'readonly']);
    expect(await canConnect(tenant.id, 'admin')).toBe('ok');
    expect(await canConnect(tenant.id, 'readonly')).toBe('ok');
    expect((await roleLogins(tenant.id)).auditor).toEqual({ login: false, password: false });
    const upgraded = await registry.tenants.require(tenant.id);
    expect(Object.keys(upgraded.resources.secrets ?? {}).sort()).toEqual(['admin', 'app', 'readonly']);
    expect(upgraded.resources.credentialExpiries ?? {}).toEqual({});

    // Act
    const before = Date.now();
    const down = await operate('PATCH', `/tenants/${tenant.id}`, { plan: 'basic' });

    // Assess: still working, for a day, with the same secrets.
    expect(down.execution.status).toBe('SUCCEEDED');
    const downgraded = await registry.tenants.require(tenant.id);
    expect(downgraded.resources.secrets).toEqual(upgraded.resources.secrets);
    const expiries = downgraded.resources.credentialExpiries ?? {};
    expect(Object.keys(expiries).sort()).toEqual(['admin', 'readonly']);
    for (const at of Object.values(expiries)) {
      expect(Date.parse(at)).toBeGreaterThanOrEqual(before + 24 * HOUR);
      expect(Date.parse(at)).toBeLessThanOrEqual(Date.now() + 24 * HOUR);
    }
    expect(await canConnect(tenant.id, 'admin')).toBe('ok');

    // Prepare: the day is over.
    await superuserPool('control_plane').query(
      `UPDATE tenants SET resources = jsonb_set(resources, '{credentialExpiries}',
         jsonb_build_object('admin', (now() - interval '1 minute')::text, 'readonly', (now() - interval '1 minute')::text))
       WHERE id = $1`,
      [tenant.id],
    );

    // Act
    const report = await runReconciler({ invitationChecksPerPass: 0 });

    // Assess
    expect(report.revoked).toContainEqual({ tenantId: tenant.id, roles: ['admin', 'readonly'] });
    expect(await roleSecretsOf(tenant.id)).toEqual(['app']);
    expect(await roleLogins(tenant.id)).toEqual({
      admin: { login: false, password: false },
      app: { login: true, password: true },
      readonly: { login: false, password: false },
      auditor: { login: false, password: false },
    });
  });

  it("upgrades a suspended tenant without letting it in: the new roles' passwords wait for the resume", async () => {
    // Prepare
    const tenant = await activeTenant({ plan: 'basic' });
    await operate('POST', `/tenants/${tenant.id}/suspend`, { reason: 'Unpaid' });

    // Act
    const up = await operate('PATCH', `/tenants/${tenant.id}`, { plan: 'enterprise' });

    // Assess
    expect(up.execution.status).toBe('SUCCEEDED');
    expect(await roleSecretsOf(tenant.id)).toEqual(['admin', 'app', 'auditor', 'readonly']);
    expect(Object.values(await roleLogins(tenant.id))).toEqual(
      Array.from({ length: 4 }, () => ({ login: false, password: true })),
    );

    // Act
    await operate('POST', `/tenants/${tenant.id}/resume`, { reason: 'Paid' });

    // Assess
    expect(await canConnect(tenant.id, 'auditor')).toBe('ok');
    expect(await canConnect(tenant.id, 'admin')).toBe('ok');
  });

  it('gives the credentials a failed upgrade issued an expiry when its undo puts the old plan back', async () => {
    // Prepare: the upgrade fails after ApplyLimits, in its alarms.
    const tenant = await activeTenant({ plan: 'basic' });

    // Act
    const execution = await upgradeFailingInAlarms(tenant.id);

    // Assess
    expect(execution.status).toBe('FAILED');
    const record = await registry.tenants.require(tenant.id);
    expect(record.plan).toBe('basic');
    expect(Object.keys(record.resources.credentialExpiries ?? {}).sort()).toEqual([
      'admin',
      'auditor',
      'readonly',
    ]);
    expect(record.resources.credentialExpiries?.app).toBeUndefined();
  });
});
