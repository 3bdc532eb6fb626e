import { createHash } from 'node:crypto';
import {
  DescribeAlarmsCommand,
  ListTagsForResourceCommand,
  type MetricAlarm,
} from '@aws-sdk/client-cloudwatch';
import { GetObjectCommand, GetObjectTaggingCommand } from '@aws-sdk/client-s3';
import { DescribeSecretCommand, GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { PROVISIONING_STEPS } from '../../functions/provision/step.ts';
import type { Tenant } from '../../functions/shared/tenants.ts';
import { ALARM_TOPIC_ARN, STAGE, STORAGE_BUCKET } from '../../local/constants.ts';
import { DATABASE_ROLES, type DatabaseRole, databaseName, roleName } from '../../schema/names.ts';
import { PLANS } from '../../schema/plans.ts';
import { superuserPool } from '../support/sandbox.ts';
import { asRole, clients, eventsFor, outcome, provision, provisioner, registry } from './helpers.ts';

const TEMPLATE_TABLES = [
  'activity_log',
  'api_keys',
  'app_roles',
  'email_templates',
  'feature_flags',
  'invitations',
  'schema_migrations',
  'security_policy',
  'users',
];

const RoleSecret = z.object({
  engine: z.literal('postgres'),
  host: z.string(),
  port: z.number(),
  username: z.string(),
  password: z.string(),
  dbname: z.string(),
});

async function secretValue<T>(arn: string, schema: z.ZodType<T>): Promise<T> {
  const { SecretString } = await clients.secrets.send(new GetSecretValueCommand({ SecretId: arn }));
  return schema.parse(JSON.parse(SecretString ?? ''));
}

describe('provisioning a tenant', () => {
  let enterprise: Awaited<ReturnType<typeof provision>>;
  let basic: Awaited<ReturnType<typeof provision>>;
  let tenant: Tenant;
  let other: Tenant;
  let secrets: Record<DatabaseRole, string>;
  let db: string;

  beforeAll(async () => {
    // Prepare / Act: two tenants, one to look at and one to be kept out of.
    [enterprise, basic] = await Promise.all([
      provision({
        plan: 'enterprise',
        limits: { maxConnections: 40, storageQuotaGb: 200 },
        config: {
          features: { auth: ['password', 'passkey', 'sso'], customBranding: true, apiAccess: true },
          securityPolicy: {
            passwordPolicy: { minLength: 16 },
            mfaRequired: true,
            allowedIpRanges: ['203.0.113.0/24', '2001:db8::/32'],
          },
          compliance: { retentionDays: 90, encryptionLevel: 'enhanced' },
        },
      }),
      provision({ plan: 'basic' }),
    ]);
    tenant = await registry.tenants.require(enterprise.id);
    other = await registry.tenants.require(basic.id);
    db = databaseName(tenant.id);
    const found = tenant.resources.secrets ?? {};
    secrets = {
      admin: found.admin ?? '',
      app: found.app ?? '',
      readonly: found.readonly ?? '',
      auditor: found.auditor ?? '',
    };
  }, 120_000);

  it('ends active, with every step recorded and the run audited', async () => {
    // Assess
    expect(enterprise.execution.status).toBe('SUCCEEDED');
    expect(basic.execution.status).toBe('SUCCEEDED');
    expect(tenant.status).toBe('active');
    expect(tenant.failure).toBeNull();
    expect(tenant.schemaVersion).toBe(3);
    const steps = await registry.progress.steps(tenant.id);
    expect(steps.map((step) => step.step)).toEqual(PROVISIONING_STEPS);
    expect(steps.every((step) => step.status === 'succeeded' && step.endedAt !== null)).toBe(true);
    const audit = await registry.audit.entries(tenant.id);
    expect(audit.map((entry) => entry.action)).toEqual(['TENANT_CREATED', 'TENANT_PROVISIONED']);
    expect(audit[1]?.actor).toBe('provision-tenant');
  });

  it('keeps state payloads small and free of secrets', async () => {
    // Prepare
    const passwords = await Promise.all(
      DATABASE_ROLES.map(async (role) => (await secretValue(secrets[role], RoleSecret)).password),
    );
    const invitation = await secretValue(
      tenant.resources.invitationSecretArn ?? '',
      z.object({ token: z.string() }),
    );

    // Act
    const output = enterprise.execution.output ?? '';
    const events = await eventsFor(tenant.id, 'Tenant Provisioned');

    // Assess
    expect(JSON.parse(output)).toMatchObject({
      tenantId: tenant.id,
      database: { name: db },
      schema: { version: 3 },
      roles: { secrets },
      storage: { bucket: STORAGE_BUCKET, prefix: `tenants/${tenant.id}/` },
    });
    expect(output.length).toBeLessThan(4096);
    expect(events).toHaveLength(1);
    const event = JSON.stringify(events);
    for (const secret of [...passwords, invitation.token]) {
      expect(output).not.toContain(secret);
      expect(event).not.toContain(secret);
      expect(JSON.stringify(tenant)).not.toContain(secret);
    }
  });

  it('announces the tenant with its names and ARNs', async () => {
    // Act
    const [event] = await eventsFor(tenant.id, 'Tenant Provisioned');

    // Assess
    expect(event).toMatchObject({
      bus: 'tenant-provisioner-local',
      source: 'tenant-provisioner',
      detail: {
        tenantId: tenant.id,
        slug: tenant.slug,
        plan: 'enterprise',
        database: db,
        secrets,
        invitationSecretArn: tenant.resources.invitationSecretArn,
        storage: { bucket: STORAGE_BUCKET, prefix: `tenants/${tenant.id}/` },
        alarms: tenant.resources.alarms,
      },
    });
    expect(event?.resources).toEqual(expect.arrayContaining(Object.values(secrets)));
  });

  it('makes the database from the template, closed to PUBLIC, with the connection limit', async () => {
    // Act
    const pg = superuserPool(db);
    const tables = await pg.query<{ tablename: string }>(
      "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
    );
    const indexes = await pg.query<{ indexname: string }>(
      "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'",
    );
    const versions = await pg.query<{ version: number }>(
      'SELECT version FROM schema_migrations ORDER BY version',
    );
    const database = await pg.query<{ datconnlimit: number; owner: string; public_connect: boolean }>(
      `SELECT datconnlimit, pg_get_userbyid(datdba) AS owner,
         EXISTS (SELECT 1 FROM aclexplode(datacl) a WHERE a.grantee = 0 AND a.privilege_type = 'CONNECT') AS public_connect
       FROM pg_database WHERE datname = $1`,
      [db],
    );
    const owners = await pg.query<{ owner: string }>(
      "SELECT DISTINCT tableowner AS owner FROM pg_tables WHERE schemaname = 'public'",
    );

    // Assess
    expect(tables.rows.map((row) => row.tablename)).toEqual(TEMPLATE_TABLES);
    expect(indexes.rows.map((row) => row.indexname)).toEqual(
      expect.arrayContaining([
        'users_email_key',
        'invitations_token_hash_key',
        'activity_log_created_at_idx',
      ]),
    );
    expect(versions.rows.map((row) => row.version)).toEqual([1, 2, 3]);
    expect(database.rows).toEqual([{ datconnlimit: 40, owner: 'provisioner', public_connect: false }]);
    expect(owners.rows).toEqual([{ owner: 'provisioner' }]);
  });

  it('seeds the defaults and invites the admin with only a hash of the token in the database', async () => {
    // Prepare
    const pg = superuserPool(db);
    const invitation = await secretValue(
      tenant.resources.invitationSecretArn ?? '',
      z.object({ tenantId: z.string(), email: z.string(), token: z.string() }),
    );

    // Act
    const roles = await pg.query('SELECT name, scopes FROM app_roles ORDER BY name');
    const users = await pg.query(
      'SELECT u.email, u.status, r.name AS role FROM users u JOIN app_roles r ON r.id = u.role_id',
    );
    const invitations = await pg.query<{ token_hash: string }>('SELECT token_hash FROM invitations');
    const policy = await pg.query(
      "SELECT password_policy->>'minLength' AS min_length, mfa_required, auth_methods, allowed_ip_ranges::text[] AS ranges FROM security_policy",
    );
    const templates = await pg.query('SELECT key FROM email_templates ORDER BY key');
    const flags = await pg.query('SELECT key, enabled FROM feature_flags ORDER BY key');
    const activity = await pg.query('SELECT action, actor FROM activity_log');

    // Assess
    expect(roles.rows).toEqual([
      { name: 'Admin', scopes: ['read', 'write', 'delete', 'admin'] },
      { name: 'Member', scopes: ['read', 'write'] },
      { name: 'Viewer', scopes: ['read'] },
    ]);
    expect(users.rows).toEqual([
      { email: `Admin.${tenant.id}@example.com`, status: 'invited', role: 'Admin' },
    ]);
    expect(invitation).toMatchObject({ tenantId: tenant.id, email: `Admin.${tenant.id}@example.com` });
    expect(invitations.rows).toEqual([
      { token_hash: createHash('sha256').update(invitation.token).digest('hex') },
    ]);
    expect(policy.rows).toEqual([
      {
        min_length: '16',
        mfa_required: true,
        auth_methods: ['password', 'passkey', 'sso'],
        ranges: ['203.0.113.0/24', '2001:db8::/32'],
      },
    ]);
    expect(templates.rows.map((row) => row.key)).toEqual([
      'password_reset',
      'security_alert',
      'verification',
      'welcome',
    ]);
    expect(flags.rows).toEqual(
      expect.arrayContaining([
        { key: 'customBranding', enabled: true },
        { key: 'apiAccess', enabled: true },
        { key: 'auditExport', enabled: false },
      ]),
    );
    expect(activity.rows).toEqual([{ action: 'user.invited', actor: 'provision-tenant' }]);
  });

  it('keeps each role password only in its tagged RDS-format secret', async () => {
    for (const role of DATABASE_ROLES) {
      // Act
      const value = await secretValue(secrets[role], RoleSecret);
      const described = await clients.secrets.send(new DescribeSecretCommand({ SecretId: secrets[role] }));

      // Assess
      expect(described.Name).toBe(`tenants/${STAGE}/${tenant.id}/db/${role}`);
      expect(value).toMatchObject({ engine: 'postgres', username: roleName(tenant.id, role), dbname: db });
      expect(value.password).toMatch(/^[A-Za-z0-9_-]{32,}$/);
      expect(described.Tags).toEqual(
        expect.arrayContaining([
          { Key: 'TenantId', Value: tenant.id },
          { Key: 'Stage', Value: STAGE },
          { Key: 'Role', Value: role },
        ]),
      );
    }
  });

  it('gives each role exactly its grants, through the Data API with its own secret', async () => {
    // Prepare
    const admin = asRole(secrets.admin, db);
    const app = asRole(secrets.app, db);
    const readonly = asRole(secrets.readonly, db);
    const auditor = asRole(secrets.auditor, db);
    const user = (email: string) => ({ email });
    const insertUser = `INSERT INTO users (email, role_id) SELECT :email, id FROM app_roles WHERE name = 'Member'`;

    // Act / Assess: the application role reads and writes data, and nothing more.
    expect(await outcome(app.execute(insertUser, user(`app.${tenant.id}@example.com`)))).toBe('ok');
    expect(await outcome(app.execute("UPDATE users SET first_name = 'A' WHERE email LIKE 'app.%'"))).toBe(
      'ok',
    );
    expect(await outcome(app.execute('CREATE TABLE app_made (id int)'))).toBe('DatabaseErrorException');
    expect(await outcome(app.execute("INSERT INTO schema_migrations (version, name) VALUES (99, 'x')"))).toBe(
      'DatabaseErrorException',
    );
    // The read-only role reads, never writes.
    expect(await outcome(readonly.execute('SELECT count(*) FROM users'))).toBe('ok');
    expect(await outcome(readonly.execute(insertUser, user(`ro.${tenant.id}@example.com`)))).toBe(
      'DatabaseErrorException',
    );
    // The auditor reads the activity log and the security tables only.
    expect(await outcome(auditor.execute('SELECT count(*) FROM activity_log'))).toBe('ok');
    expect(await outcome(auditor.execute('SELECT count(*) FROM security_policy'))).toBe('ok');
    expect(await outcome(auditor.execute('SELECT count(*) FROM users'))).toBe('DatabaseErrorException');
    expect(await outcome(auditor.execute('SELECT count(*) FROM invitations'))).toBe('DatabaseErrorException');
    // The admin has DML in public and DDL in its own schema, where its unqualified names go; nothing of its own in
    // public, and no foreign key into the control plane's tables (tenant-db.ts says why).
    expect(await outcome(admin.execute('CREATE TABLE admin_made (id int)'))).toBe('ok');
    expect(await outcome(admin.execute('SELECT count(*) FROM tenant.admin_made'))).toBe('ok');
    expect(await outcome(admin.execute('CREATE TABLE public.admin_made (id int)'))).toBe(
      'DatabaseErrorException',
    );
    expect(await outcome(admin.execute('CREATE TABLE refs (u uuid REFERENCES public.users (id))'))).toBe(
      'DatabaseErrorException',
    );
    expect(await outcome(admin.execute('DELETE FROM feature_flags WHERE false'))).toBe('ok');
    expect(
      await outcome(admin.execute("INSERT INTO schema_migrations (version, name) VALUES (99, 'x')")),
    ).toBe('DatabaseErrorException');
  });

  it('lets no role take more: no provisioner, no other role, no role attributes, no triggers on its tables', async () => {
    // Prepare
    const attempts = [
      'SET ROLE provisioner',
      `SET ROLE ${roleName(tenant.id, 'admin')}`,
      'CREATE ROLE intruder LOGIN',
      `ALTER ROLE ${roleName(tenant.id, 'app')} CREATEDB`,
      `GRANT ${roleName(tenant.id, 'admin')} TO ${roleName(tenant.id, 'app')}`,
      `CREATE FUNCTION steal() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$`,
      'CREATE TRIGGER steal BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION steal()',
      'ALTER TABLE users OWNER TO CURRENT_USER',
      'DROP TABLE users',
    ];
    const pg = superuserPool(db);

    // Act
    const results: Record<string, string> = {};
    for (const sql of attempts) {
      // The application role tries to become others; the admin, to gain rights in its own database.
      const as = sql.startsWith('SET ROLE') || sql.startsWith('ALTER ROLE') ? 'app' : 'admin';
      results[sql] = await outcome(asRole(secrets[as], db).execute(sql));
    }
    await asRole(secrets.admin, db)
      .execute(`GRANT SELECT ON users TO ${roleName(tenant.id, 'auditor')}`)
      .catch(() => {});
    const auditorOnUsers = await pg.query<{ granted: boolean }>(
      "SELECT has_table_privilege($1, 'users', 'SELECT') AS granted",
      [roleName(tenant.id, 'auditor')],
    );
    const members = await pg.query(
      `SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid
       JOIN pg_roles u ON u.oid = m.member WHERE u.rolname LIKE $1 || '%'`,
      [db],
    );

    // Assess: the function itself may be made (CREATE on public), everything that gains rights may not.
    expect(results).toEqual({
      'SET ROLE provisioner': 'DatabaseErrorException',
      [`SET ROLE ${roleName(tenant.id, 'admin')}`]: 'DatabaseErrorException',
      'CREATE ROLE intruder LOGIN': 'DatabaseErrorException',
      [`ALTER ROLE ${roleName(tenant.id, 'app')} CREATEDB`]: 'DatabaseErrorException',
      [`GRANT ${roleName(tenant.id, 'admin')} TO ${roleName(tenant.id, 'app')}`]: 'DatabaseErrorException',
      [attempts[5] ?? '']: 'ok',
      [attempts[6] ?? '']: 'DatabaseErrorException',
      'ALTER TABLE users OWNER TO CURRENT_USER': 'DatabaseErrorException',
      'DROP TABLE users': 'DatabaseErrorException',
    });
    expect(auditorOnUsers.rows).toEqual([{ granted: false }]);
    expect(members.rows).toEqual([]);
  });

  it("gives the provisioner's future tables to the roles by default privileges", async () => {
    // Prepare
    await provisioner.on(db).execute('CREATE TABLE public.later_migration (id int)');

    // Act
    const read = await outcome(asRole(secrets.readonly, db).execute('SELECT * FROM later_migration'));
    const write = await outcome(asRole(secrets.app, db).execute('INSERT INTO later_migration VALUES (1)'));
    const readOnlyWrite = await outcome(
      asRole(secrets.readonly, db).execute('INSERT INTO later_migration VALUES (2)'),
    );
    const auditor = await outcome(asRole(secrets.auditor, db).execute('SELECT * FROM later_migration'));

    // Assess
    expect({ read, write, readOnlyWrite, auditor }).toEqual({
      read: 'ok',
      write: 'ok',
      readOnlyWrite: 'DatabaseErrorException',
      auditor: 'DatabaseErrorException',
    });
  });

  it("keeps a tenant's roles out of other tenants' databases and the registry", async () => {
    // Prepare
    const otherDb = databaseName(other.id);
    const otherApp = other.resources.secrets?.app ?? '';

    // Act
    const intoOther = await outcome(asRole(secrets.app, otherDb).execute('SELECT 1'));
    const adminIntoOther = await outcome(asRole(secrets.admin, otherDb).execute('SELECT 1'));
    const otherIntoThis = await outcome(asRole(otherApp, db).execute('SELECT 1'));
    const intoRegistry = await outcome(asRole(secrets.admin, 'control_plane').execute('SELECT 1'));
    const intoPostgres = await outcome(asRole(secrets.admin, 'postgres').execute('SELECT 1'));
    const ownDatabase = await outcome(asRole(otherApp, otherDb).execute('SELECT 1'));

    // Assess
    expect({ intoOther, adminIntoOther, otherIntoThis, intoRegistry, intoPostgres, ownDatabase }).toEqual({
      intoOther: 'DatabaseErrorException',
      adminIntoOther: 'DatabaseErrorException',
      otherIntoThis: 'DatabaseErrorException',
      intoRegistry: 'DatabaseErrorException',
      intoPostgres: 'DatabaseErrorException',
      ownDatabase: 'ok',
    });
  });

  it('marks the storage prefix with a tagged marker object', async () => {
    // Act
    const key = `tenants/${tenant.id}/.tenant`;
    const marker = await clients.s3.send(new GetObjectCommand({ Bucket: STORAGE_BUCKET, Key: key }));
    const tags = await clients.s3.send(new GetObjectTaggingCommand({ Bucket: STORAGE_BUCKET, Key: key }));

    // Assess
    expect(JSON.parse((await marker.Body?.transformToString()) ?? '')).toEqual({
      tenantId: tenant.id,
      createdAt: tenant.createdAt,
    });
    // No retention tag: the lifecycle rules would count it from now and expire the marker of an active tenant.
    expect(tags.TagSet).toEqual([
      { Key: 'TenantId', Value: tenant.id },
      { Key: 'Stage', Value: STAGE },
    ]);
  });

  it("sets the alarms with the plan's thresholds, to the stage's topic, tagged", async () => {
    // Act
    const described = await clients.cloudWatch.send(
      new DescribeAlarmsCommand({ AlarmNamePrefix: `tenant-${tenant.id}-` }),
    );
    const otherAlarms = await clients.cloudWatch.send(
      new DescribeAlarmsCommand({ AlarmNamePrefix: `tenant-${other.id}-` }),
    );
    const byName = new Map(
      (described.MetricAlarms ?? []).map((alarm): [string, MetricAlarm] => [alarm.AlarmName ?? '', alarm]),
    );
    const tags = await clients.cloudWatch.send(
      new ListTagsForResourceCommand({ ResourceARN: byName.get(`tenant-${tenant.id}-storage`)?.AlarmArn }),
    );

    // Assess
    expect([...byName.keys()].sort()).toEqual(
      ['connections', 'error-rate', 'latency', 'storage'].map((what) => `tenant-${tenant.id}-${what}`),
    );
    expect(tenant.resources.alarms?.sort()).toEqual([...byName.keys()].sort());
    expect(byName.get(`tenant-${tenant.id}-storage`)).toMatchObject({
      Threshold: 0.8 * 200 * 1024 ** 3,
      MetricName: 'StorageBytes',
      Namespace: 'TenantProvisioner/Tenants',
      Dimensions: [{ Name: 'TenantId', Value: tenant.id }],
      AlarmActions: [ALARM_TOPIC_ARN],
    });
    expect(byName.get(`tenant-${tenant.id}-connections`)?.Threshold).toBe(32);
    expect(byName.get(`tenant-${tenant.id}-error-rate`)?.Threshold).toBe(0.05);
    expect(byName.get(`tenant-${tenant.id}-latency`)).toMatchObject({
      Threshold: PLANS.enterprise.alarms.latencyP99Ms,
      ExtendedStatistic: 'p99',
    });
    expect(tags.Tags).toEqual(
      expect.arrayContaining([
        { Key: 'TenantId', Value: tenant.id },
        { Key: 'Stage', Value: STAGE },
      ]),
    );
    // basic: no alarms of its own (perTenantMonitoring): the usage collector watches its thresholds.
    expect(otherAlarms.MetricAlarms).toEqual([]);
    expect(other.resources.alarms).toEqual([]);
  });
});
