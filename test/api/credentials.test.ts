import {
  GetSecretValueCommand,
  ListSecretsCommand,
  PutSecretValueCommand,
} from '@aws-sdk/client-secrets-manager';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { STAGE } from '../../local/constants.ts';
import { DATABASE_ROLES, databaseName, secretPrefix } from '../../schema/names.ts';
import {
  activeTenant,
  canConnect,
  clients,
  connectAs,
  operate,
  registry,
  request,
  roleLogins,
} from '../lifecycle/helpers.ts';
import { asRole, outcome } from '../provision/helpers.ts';
import { runReconciler } from '../reconcile/helpers.ts';
import { superuserPool } from '../support/sandbox.ts';

/** The names under the tenant's secret prefix, after it, those scheduled for deletion included. */
async function secretsOf(tenantId: string): Promise<string[]> {
  const prefix = secretPrefix(STAGE, tenantId);
  const { SecretList } = await clients.secrets.send(
    new ListSecretsCommand({ Filters: [{ Key: 'name', Values: [prefix] }], IncludePlannedDeletion: true }),
  );
  return (SecretList ?? []).map((secret) => (secret.Name ?? '').slice(prefix.length)).sort();
}

const Issued = z.strictObject({
  tenantId: z.string(),
  role: z.enum(DATABASE_ROLES),
  secretArn: z.string(),
  expiresAt: z.string().optional(),
});

const HOUR = 3_600_000;

/** Moves the role's issued credentials' expiry into the past, in the registry (as time passing would). */
async function expire(tenantId: string, role: string): Promise<void> {
  await superuserPool('control_plane').query(
    `UPDATE tenants SET resources = jsonb_set(resources, ARRAY['credentialExpiries', $2::text],
       to_jsonb((now() - interval '1 minute')::text)) WHERE id = $1`,
    [tenantId, role],
  );
}

describe('a basic tenant', () => {
  it('has one role secret, its app role logging in; the others are NOLOGIN without a password', async () => {
    // Prepare / Act
    const tenant = await activeTenant({ plan: 'basic' });

    // Assess
    expect(await secretsOf(tenant.id)).toEqual(['db/app', 'invitation/admin']);
    const record = await registry.tenants.require(tenant.id);
    expect(Object.keys(record.resources.secrets ?? {})).toEqual(['app']);
    expect(await canConnect(tenant.id, 'app')).toBe('ok');
    expect(await roleLogins(tenant.id)).toEqual({
      admin: { login: false, password: false },
      app: { login: true, password: true },
      readonly: { login: false, password: false },
      auditor: { login: false, password: false },
    });
    const got = await request('GET', `/tenants/${tenant.id}`);
    expect(got.body).toMatchObject({ resources: { secrets: { app: record.resources.secrets?.app } } });
    expect(
      Object.keys(
        z.object({ resources: z.object({ secrets: z.record(z.string(), z.string()) }) }).parse(got.body)
          .resources.secrets,
      ),
    ).toEqual(['app']);
  });

  it("issues the admin's credentials when asked: a secret that logs in, expiring, then revoked by the reconciler", async () => {
    // Prepare
    const tenant = await activeTenant({ plan: 'basic' });
    const before = Date.now();

    // Act
    const first = await request('POST', `/tenants/${tenant.id}/credentials`, { body: { role: 'admin' } });
    const again = await request('POST', `/tenants/${tenant.id}/credentials`, {
      body: { role: 'admin', ttlHours: 100 },
    });

    // Assess: 201 with the ARN and an expiry a day away (the default); again: the same, 200.
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    const issued = Issued.parse(first.body);
    expect(issued).toMatchObject({ tenantId: tenant.id, role: 'admin' });
    expect(issued.secretArn).toContain(`:secret:${secretPrefix(STAGE, tenant.id)}db/admin`);
    const expiresAt = Date.parse(issued.expiresAt ?? '');
    expect(expiresAt).toBeGreaterThanOrEqual(before + 24 * HOUR);
    expect(expiresAt).toBeLessThanOrEqual(Date.now() + 24 * HOUR);
    expect(again.status).toBe(200);
    expect(again.body).toEqual(first.body);
    expect(JSON.stringify(first.body)).not.toMatch(/password/i);
    const db = databaseName(tenant.id);
    expect(await outcome(asRole(issued.secretArn, db).execute('CREATE TABLE tenant.by_admin (id int)'))).toBe(
      'ok',
    );
    expect(await secretsOf(tenant.id)).toEqual(['db/admin', 'db/app', 'invitation/admin']);
    const record = await registry.tenants.require(tenant.id);
    expect(record.resources.secrets?.admin).toBe(issued.secretArn);
    expect(record.resources.credentialExpiries?.admin).toBe(issued.expiresAt);
    expect((await registry.audit.entries(tenant.id)).map((entry) => entry.action)).toContain(
      'TENANT_CREDENTIALS_ISSUED',
    );

    // Prepare: a session of the admin open, and its credentials' time up.
    const session = await connectAs(tenant.id, 'admin');
    const ended = new Promise<string>((resolve) => session.on('end', () => resolve('ended')));
    await expire(tenant.id, 'admin');

    // Act
    const report = await runReconciler({ invitationChecksPerPass: 0 });

    // Assess: NOLOGIN without a password, the session ended, the secret deleted outright, the record without them.
    expect(report.revoked).toContainEqual({ tenantId: tenant.id, roles: ['admin'] });
    expect(await ended).toBe('ended');
    expect((await roleLogins(tenant.id)).admin).toEqual({ login: false, password: false });
    expect(await secretsOf(tenant.id)).toEqual(['db/app', 'invitation/admin']);
    expect(await outcome(asRole(issued.secretArn, db).execute('SELECT 1'))).not.toBe('ok');
    const after = await registry.tenants.require(tenant.id);
    expect(after.resources.secrets).toEqual({ app: record.resources.secrets?.app });
    expect(after.resources.credentialExpiries).toEqual({});
    expect(report.missing.filter((item) => item.tenantId === tenant.id)).toEqual([]);
    expect(await canConnect(tenant.id, 'app')).toBe('ok');

    // Act: issued again after the revocation: a new secret, a fresh password, the ttl asked for.
    const reissued = await request('POST', `/tenants/${tenant.id}/credentials`, {
      body: { role: 'admin', ttlHours: 2 },
    });

    // Assess
    expect(reissued.status).toBe(201);
    const second = Issued.parse(reissued.body);
    expect(Date.parse(second.expiresAt ?? '')).toBeLessThanOrEqual(Date.now() + 2 * HOUR);
    expect(await outcome(asRole(second.secretArn, db).execute('SELECT 1'))).toBe('ok');
  });

  it('answers 400 for a bad body, 404 for an unknown tenant and 409 for a suspended one', async () => {
    // Prepare
    const tenant = await activeTenant({ plan: 'basic' });
    const path = `/tenants/${tenant.id}/credentials`;

    // Act
    const bad = await Promise.all(
      [
        {},
        { role: 'owner' },
        { role: 'admin', ttlHours: 0 },
        { role: 'admin', ttlHours: 169 },
        { role: 'admin', ttlHours: 1.5 },
        { role: 'admin', password: 'mine' },
      ].map((body) => request('POST', path, { body })),
    );
    const unknown = await request('POST', '/tenants/tzzzzzzzzzzzzzzz/credentials', { body: { role: 'app' } });
    const malformed = await request('POST', '/tenants/nope/credentials', { body: { role: 'app' } });
    await operate('POST', `/tenants/${tenant.id}/suspend`, { reason: 'Unpaid' });
    const suspended = await request('POST', path, { body: { role: 'admin' } });

    // Assess
    expect(bad.map((answer) => answer.status)).toEqual([400, 400, 400, 400, 400, 400]);
    expect(unknown.status).toBe(404);
    expect(malformed.status).toBe(404);
    expect(suspended.status).toBe(409);
    expect(suspended.body).toMatchObject({ error: { code: 'invalid_state' } });
    expect(await secretsOf(tenant.id)).toEqual(['db/app', 'invitation/admin']);
    expect(Object.values(await roleLogins(tenant.id)).map((role) => role.login)).toEqual([
      false,
      false,
      false,
      false,
    ]);
  });
});

describe('the standing roles of the larger plans', () => {
  it('keeps three secrets for professional and four for enterprise; a standing role answers its own, without expiry', async () => {
    // Prepare / Act
    const [professional, enterprise] = await Promise.all([
      activeTenant({ plan: 'professional' }),
      activeTenant({ plan: 'enterprise' }),
    ]);
    const standing = await request('POST', `/tenants/${professional.id}/credentials`, {
      body: { role: 'readonly', ttlHours: 3 },
    });

    // Assess
    expect(await secretsOf(professional.id)).toEqual([
      'db/admin',
      'db/app',
      'db/readonly',
      'invitation/admin',
    ]);
    expect(await secretsOf(enterprise.id)).toEqual([
      'db/admin',
      'db/app',
      'db/auditor',
      'db/readonly',
      'invitation/admin',
    ]);
    expect((await roleLogins(professional.id)).auditor).toEqual({ login: false, password: false });
    expect(Object.values(await roleLogins(enterprise.id)).every((role) => role.login && role.password)).toBe(
      true,
    );
    expect(standing.status).toBe(200);
    const record = await registry.tenants.require(professional.id);
    expect(standing.body).toEqual({
      tenantId: professional.id,
      role: 'readonly',
      secretArn: record.resources.secrets?.readonly,
    });
    expect(record.resources.credentialExpiries ?? {}).toEqual({});
  });
});

describe("the admin's invitation secret", () => {
  it('is deleted once the invitation is accepted or has expired, and kept while it is open', async () => {
    // Prepare: three basic tenants; one's admin accepts (the application writes accepted_at, as the app role), one's
    // invitation expires (the secret's expiry, which the control plane wrote, passes), one's stays open.
    const [accepted, expired, open] = await Promise.all([
      activeTenant({ plan: 'basic' }),
      activeTenant({ plan: 'basic' }),
      activeTenant({ plan: 'basic' }),
    ]);
    const app = (await registry.tenants.require(accepted.id)).resources.secrets?.app ?? '';
    await asRole(app, databaseName(accepted.id)).execute(
      'UPDATE invitations SET accepted_at = now() WHERE accepted_at IS NULL',
    );
    const invitation = (await registry.tenants.require(expired.id)).resources.invitationSecretArn ?? '';
    const { SecretString } = await clients.secrets.send(new GetSecretValueCommand({ SecretId: invitation }));
    await clients.secrets.send(
      new PutSecretValueCommand({
        SecretId: invitation,
        SecretString: JSON.stringify({
          ...JSON.parse(SecretString ?? '{}'),
          expiresAt: new Date(Date.now() - 60_000).toISOString(),
        }),
      }),
    );

    // Act: enough tenants a pass for every one of the sandbox's.
    const report = await runReconciler({ invitationChecksPerPass: 10_000 });

    // Assess
    expect(report.invitations).toEqual(
      expect.arrayContaining([
        { tenantId: accepted.id, outcome: 'closed' },
        { tenantId: expired.id, outcome: 'expired' },
      ]),
    );
    expect(report.invitations.map((item) => item.tenantId)).not.toContain(open.id);
    expect(await secretsOf(accepted.id)).toEqual(['db/app']);
    expect(await secretsOf(expired.id)).toEqual(['db/app']);
    expect(await secretsOf(open.id)).toEqual(['db/app', 'invitation/admin']);
    expect((await registry.tenants.require(accepted.id)).resources.invitationSecretArn).toBeUndefined();
    expect((await registry.tenants.require(expired.id)).resources.invitationSecretArn).toBeUndefined();
    expect((await registry.tenants.require(open.id)).resources.invitationSecretArn).toBeDefined();
    expect(report.missing.filter((item) => [accepted.id, expired.id].includes(item.tenantId))).toEqual([]);
  });
});
