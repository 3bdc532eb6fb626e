import { GetObjectCommand } from '@aws-sdk/client-s3';
import { beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Manifest, PAGE_BYTES, ROW_BYTES } from '../../functions/lifecycle/backup.ts';
import { STORAGE_BUCKET } from '../../local/constants.ts';
import { databaseName } from '../../schema/names.ts';
import { superuserPool } from '../support/sandbox.ts';
import { activeTenant, clients, operate, registry, request, waitForExecution } from './helpers.ts';

// A tenant whose rows are wide: 340 rows of about 60 KB in activity_log (20 MB), and two rows longer than a Data
// API answer may be (300 KB and 2 MB of text). The Data API refuses a row over 64 KB and a result over 1 MiB, as
// the sandbox now does: a backup read 500 rows a page failed here as it would on Aurora.
const WIDE_ROWS = 340;
const WIDE_CHARS = 60 * 1024;

async function addWideRows(tenantId: string): Promise<void> {
  const db = superuserPool(databaseName(tenantId));
  // md5 text does not compress away, and a quote and a backslash in each row are escaped by row_to_json.
  await db.query(
    `INSERT INTO public.activity_log (actor, action, details, user_agent)
     SELECT 'user' || n, 'item.updated', jsonb_build_object('n', n),
       left(repeat(md5(n::text) || E'"\\\\é', ${Math.ceil(WIDE_CHARS / 35)}), ${WIDE_CHARS} - n)
     FROM generate_series(1, ${WIDE_ROWS}) AS n`,
  );
  await db.query(
    `INSERT INTO public.activity_log (actor, action, user_agent)
     VALUES ('wide', 'huge.300k', repeat('ü', 300 * 1024)), ('wide', 'huge.2m', repeat(md5('x'), 64 * 1024))`,
  );
}

/** Every activity_log row as PostgreSQL writes it, in key order. */
async function activity(tenantId: string): Promise<string[]> {
  const { rows } = await superuserPool(databaseName(tenantId)).query<{ r: string }>(
    'SELECT row_to_json(t)::text AS r FROM public.activity_log AS t ORDER BY id',
  );
  return rows.map((row) => row.r);
}

describe('backups of wide rows page by bytes', () => {
  let source: Awaited<ReturnType<typeof activeTenant>>;
  let backupId = '';

  beforeAll(async () => {
    source = await activeTenant({ plan: 'professional' });
    await addWideRows(source.id);
  }, 120_000);

  it('backs up a 20 MB table of 60 KB rows, and rows over the 64 KB limit, within the Data API limits', async () => {
    // Act
    const { accepted, execution } = await operate('POST', `/tenants/${source.id}/backups`);
    backupId = accepted.backupId ?? '';

    // Assess
    expect(execution.status).toBe('SUCCEEDED');
    const listed = await request('GET', `/tenants/${source.id}/backups`);
    const item = z
      .object({ items: z.array(z.object({ location: z.object({ manifest: z.string() }) })) })
      .parse(listed.body).items[0];
    const object = await clients.s3.send(
      new GetObjectCommand({ Bucket: STORAGE_BUCKET, Key: item?.location.manifest ?? '' }),
    );
    const manifest = Manifest.parse(JSON.parse((await object.Body?.transformToString('utf8')) ?? ''));
    const log = manifest.tables.find((table) => table.name === 'activity_log');
    expect(log?.rows).toBe((await activity(source.id)).length);
    expect(log?.bytes).toBeGreaterThan(20 * 1024 * 1024);
    expect(ROW_BYTES + PAGE_BYTES).toBeLessThan(1024 * 1024);
  }, 180_000);

  it('restores it verified against the manifest, row for row', async () => {
    // Act
    const answer = await request('POST', `/tenants/${source.id}/restore`, { body: { backup: backupId } });
    const restored = z.object({ tenantId: z.string(), executionArn: z.string() }).parse(answer.body);
    const execution = await waitForExecution(restored.executionArn);

    // Assess
    expect(answer.status).toBe(202);
    expect(execution.status).toBe('SUCCEEDED');
    expect((await registry.tenants.require(restored.tenantId)).status).toBe('active');
    expect(await activity(restored.tenantId)).toEqual(await activity(source.id));
  }, 180_000);
});
