import { createHash } from 'node:crypto';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Manifest } from '../../functions/lifecycle/backup.ts';
import { loadMigrations } from '../../functions/shared/migrations.ts';
import { PROJECT_ROOT, STORAGE_BUCKET } from '../../local/constants.ts';
import { databaseName } from '../../schema/names.ts';
import { NOTHING_LEFT, tenantTraces } from '../provision/helpers.ts';
import { removeFaults, sandbox, superuserPool } from '../support/sandbox.ts';
import {
  activeTenant,
  canConnect,
  clients,
  failBackupUploadPartWay,
  operate,
  registry,
  request,
  waitForExecution,
} from './helpers.ts';

const TABLES = [
  'activity_log',
  'api_keys',
  'app_roles',
  'email_templates',
  'feature_flags',
  'invitations',
  'security_policy',
  'users',
];

/** Every row of every template table, as PostgreSQL writes it, in key order: what "row for row" compares. */
async function rowsOf(tenantId: string): Promise<Record<string, string[]>> {
  const db = superuserPool(databaseName(tenantId));
  const rows: Record<string, string[]> = {};
  for (const table of TABLES) {
    const result = await db.query<{ r: string }>(
      `SELECT row_to_json(t)::text AS r FROM ${table} AS t ORDER BY ${table === 'security_policy' ? 'singleton' : table === 'feature_flags' ? 'key' : 'id'}`,
    );
    rows[table] = result.rows.map((row) => row.r);
  }
  return rows;
}

/** Users with awkward values, API keys with scopes, and enough activity to take several pages. */
async function addData(tenantId: string): Promise<void> {
  const db = superuserPool(databaseName(tenantId));
  await db.query(
    `INSERT INTO users (email, role_id, first_name, last_name, status, password_hash, mfa_enabled, last_login_at)
     SELECT 'user' || n || '@example.com', (SELECT id FROM app_roles WHERE name = 'Member'),
       CASE WHEN n % 3 = 0 THEN NULL ELSE 'Zoë "' || n || E'" O''Brien\\n' END, 'Ünïcødé ✓',
       'active', 'hash' || n, n % 2 = 0, timestamptz '2024-02-29 23:59:59.123456+05:30' + n * interval '1 day'
     FROM generate_series(1, 25) AS n`,
  );
  await db.query(
    `INSERT INTO api_keys (name, key_prefix, key_hash, scopes, expires_at)
     SELECT 'key ' || n, 'tpk' || n || 'xx', encode(sha256(convert_to('key' || n, 'UTF8')), 'hex'),
       ARRAY['read', 'write ' || n, NULL::text, 'a"b'], now() + interval '30 days'
     FROM generate_series(1, 4) AS n`,
  );
  await db.query(
    `INSERT INTO activity_log (actor, action, resource_type, resource_id, details, ip_address, user_agent)
     SELECT 'user' || (n % 25), 'item.updated', 'item', n::text,
       jsonb_build_object('n', n, 'ratio', n / 7.0, 'nested', jsonb_build_object('ok', n % 2 = 0), 'tags', jsonb_build_array('x', n)),
       ('10.0.' || (n % 250) || '.' || (n % 200))::inet, 'agent/' || n
     FROM generate_series(1, 1234) AS n`,
  );
  // A gap in the identity column: the restored sequence must continue after the largest id, not the count.
  await db.query('DELETE FROM activity_log WHERE id % 10 = 3');
}

const Listed = z.object({
  items: z.array(
    z.object({
      backupId: z.string(),
      kind: z.string(),
      schemaVersion: z.number(),
      tables: z.number(),
      rows: z.number(),
      location: z.object({ bucket: z.string(), prefix: z.string(), manifest: z.string() }),
    }),
  ),
});

async function objectText(key: string): Promise<string> {
  const output = await clients.s3.send(new GetObjectCommand({ Bucket: STORAGE_BUCKET, Key: key }));
  return (await output.Body?.transformToString('utf8')) ?? '';
}

async function keysUnder(prefix: string): Promise<string[]> {
  const { Contents } = await clients.s3.send(
    new ListObjectsV2Command({ Bucket: STORAGE_BUCKET, Prefix: prefix }),
  );
  return (Contents ?? []).flatMap((object) => (object.Key ? [object.Key] : []));
}

const RestoreAnswer = z.object({
  tenantId: z.string(),
  slug: z.string(),
  status: z.literal('provisioning'),
  executionArn: z.string(),
  restoredFrom: z.object({ tenantId: z.string(), backupId: z.string() }),
});

describe('backing up and restoring a tenant', () => {
  let source: Awaited<ReturnType<typeof activeTenant>>;
  let backupId: string;
  let latest: number;

  beforeAll(async () => {
    latest = (await loadMigrations(`${PROJECT_ROOT}/schema/tenant`)).length;
    source = await activeTenant({
      plan: 'professional',
      config: { securityPolicy: { allowedIpRanges: ['203.0.113.0/24', '2001:db8::/32'] } },
    });
    await addData(source.id);
  });

  it('writes every table as data with a manifest of counts and checksums, and lists it', async () => {
    // Act
    const { accepted, execution } = await operate('POST', `/tenants/${source.id}/backups`);
    backupId = accepted.backupId ?? '';
    const listed = await request('GET', `/tenants/${source.id}/backups`);

    // Assess
    expect(execution.status).toBe('SUCCEEDED');
    expect(backupId).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(listed.status).toBe(200);
    const [item] = Listed.parse(listed.body).items;
    expect(item).toMatchObject({ backupId, kind: 'on_demand', schemaVersion: latest, tables: TABLES.length });
    const manifest = Manifest.parse(JSON.parse(await objectText(item?.location.manifest ?? '')));
    expect(manifest.tables.map((table) => table.name)).toEqual(TABLES);
    const expected = await rowsOf(source.id);
    for (const table of manifest.tables) {
      const data = await objectText(table.key);
      expect(table.rows, table.name).toBe(expected[table.name]?.length);
      expect(createHash('sha256').update(data, 'utf8').digest('hex'), table.name).toBe(table.sha256);
    }
    expect(item?.rows).toBe(manifest.tables.reduce((sum, table) => sum + table.rows, 0));
  });

  it('restores into a new tenant that matches the source row for row', async () => {
    // Act
    const answer = await request('POST', `/tenants/${source.id}/restore`, { body: { backup: backupId } });
    const restored = RestoreAnswer.parse(answer.body);
    const execution = await waitForExecution(restored.executionArn);

    // Assess
    expect(answer.status).toBe(202);
    expect(execution.status).toBe('SUCCEEDED');
    expect(restored.tenantId).not.toBe(source.id);
    expect(restored.slug).toBe(`${source.slug}-restored`);
    const tenant = await registry.tenants.require(restored.tenantId);
    expect(tenant).toMatchObject({ status: 'active', plan: 'professional', schemaVersion: latest });
    expect(await rowsOf(restored.tenantId)).toEqual(await rowsOf(source.id));
    const next = await superuserPool(databaseName(restored.tenantId)).query<{ id: string }>(
      "INSERT INTO activity_log (actor, action) VALUES ('test', 'after.restore') RETURNING id",
    );
    const { rows } = await superuserPool(databaseName(source.id)).query<{ max: string }>(
      'SELECT max(id)::text AS max FROM activity_log',
    );
    expect(Number(next.rows[0]?.id)).toBe(Number(rows[0]?.max) + 1);
    expect(await canConnect(restored.tenantId, 'app')).toBe('ok');
    expect((await registry.audit.entries(restored.tenantId)).map((entry) => entry.action)).toContain(
      'TENANT_RESTORED',
    );
  });

  it('refuses a backup the tenant does not have', async () => {
    // Act
    const answer = await request('POST', `/tenants/${source.id}/restore`, {
      body: { backup: '2001-01-01T00:00:00.000Z' },
    });

    // Assess
    expect(answer.status).toBe(404);
  });

  it('undoes a restore whose data does not read back as the manifest says', async () => {
    // Prepare: a second backup whose users file is rewritten with equal values in another notation (the manifest
    // updated to match the file): it loads, but the database reads it back canonically, so the checksums differ.
    const { accepted } = await operate('POST', `/tenants/${source.id}/backups`);
    const second = accepted.backupId ?? '';
    const manifestKey = `backups/${source.id}/${second}/manifest.json`;
    const manifest = Manifest.parse(JSON.parse(await objectText(manifestKey)));
    const users = manifest.tables.find((table) => table.name === 'users');
    if (!users) throw new Error('no users table in the manifest');
    const tampered = (await objectText(users.key)).replace(
      /"last_login_at":"(\d{4}-\d\d-\d\d)T([^"]+)"/,
      '"last_login_at":"$1 $2"',
    );
    const body = Buffer.from(tampered, 'utf8');
    users.sha256 = createHash('sha256').update(body).digest('hex');
    users.bytes = body.length;
    await clients.s3.send(new PutObjectCommand({ Bucket: STORAGE_BUCKET, Key: users.key, Body: body }));
    await clients.s3.send(
      new PutObjectCommand({ Bucket: STORAGE_BUCKET, Key: manifestKey, Body: JSON.stringify(manifest) }),
    );

    // Act
    const answer = await request('POST', `/tenants/${source.id}/restore`, { body: { backup: second } });
    const restored = RestoreAnswer.parse(answer.body);
    const execution = await waitForExecution(restored.executionArn);

    // Assess
    expect(execution.status).toBe('FAILED');
    expect(await registry.tenants.require(restored.tenantId)).toMatchObject({
      status: 'failed',
      failure: {
        step: 'LoadBackup',
        error: 'BackupVerificationError',
        cause: expect.stringContaining('users'),
      },
    });
    expect(await tenantTraces(restored.tenantId)).toEqual(NOTHING_LEFT);
    expect((await registry.tenants.require(source.id)).status).toBe('active');
  });

  it('deletes what a failed backup wrote; the tenant keeps its status', async () => {
    // Prepare: a table of a later migration (the provisioner's), named after the tenant, is written last (after
    // the template's eight), and its upload fails.
    const tenant = await activeTenant();
    const fault = await failBackupUploadPartWay(tenant.id, 'zz_extra');
    const calls = await fetch(`${sandbox.awsEndpoint}/_sandbox/calls`).then((response) => response.json());
    const since =
      z
        .array(z.object({ seq: z.number() }))
        .parse(calls)
        .at(-1)?.seq ?? 0;

    // Act
    let execution: Awaited<ReturnType<typeof operate>>['execution'];
    try {
      ({ execution } = await operate('POST', `/tenants/${tenant.id}/backups`, { reason: 'before upgrade' }));
    } finally {
      await removeFaults([fault]);
    }

    // Assess
    expect(execution.status).toBe('FAILED');
    expect(await registry.tenants.require(tenant.id)).toMatchObject({
      status: 'active',
      failure: { step: 'BackupDatabase', error: 'AccessDenied' },
    });
    const written = z
      .array(
        z.object({
          service: z.string(),
          operation: z.string(),
          subject: z.string().optional(),
          fault: z.string().optional(),
        }),
      )
      .parse(
        await fetch(`${sandbox.awsEndpoint}/_sandbox/calls?since=${since}`).then((response) =>
          response.json(),
        ),
      )
      .filter(
        (call) =>
          call.operation === 'PutObject' && call.subject?.includes(`backups/${tenant.id}/`) && !call.fault,
      );
    expect(written).toHaveLength(TABLES.length);
    expect(await keysUnder(`backups/${tenant.id}/`)).toEqual([]);
    const listed = await request('GET', `/tenants/${tenant.id}/backups`);
    expect(Listed.parse(listed.body).items).toEqual([]);
  });
});
