import { join } from 'node:path';
import { SFNClient, StopExecutionCommand } from '@aws-sdk/client-sfn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { migrateChunk, planChunks } from '../../functions/fleet/migrate.ts';
import { FleetStore, newMigrationId } from '../../functions/fleet/store.ts';
import { loadMigrations } from '../../functions/shared/migrations.ts';
import { databaseName } from '../../schema/names.ts';
import { runCli } from '../cli/cli.ts';
import { databasesWithTable, FleetSandbox, Run, schemaVersions, waitForRun } from './fleet.ts';

/**
 * Fleet migrations, in a sandbox of their own (its tenants are all this file's, and its template a copy to which
 * the tests add migrations): 100 active tenants, 4 provisioned through bulk onboarding and 96 made directly (database
 * and registry row) for speed.
 */
const TEMPLATE_VERSION = 3;
const NOTES = `CREATE TABLE public.fleet_notes (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  note text NOT NULL
);
CREATE INDEX fleet_notes_note_idx ON public.fleet_notes (note);
`;

let sandbox: FleetSandbox;
let tenants: string[] = [];

/** A chaos rule of the sandbox (local/aws/chaos.ts). */
interface Fault {
  service: string;
  operation: string;
  match: string;
  latencyMs: number;
}

async function faults(method: 'PATCH' | 'DELETE', rules: readonly Fault[]): Promise<void> {
  const response = await fetch(`${sandbox.info.awsEndpoint}/_sandbox/chaos/faults`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(rules),
  });
  if (!response.ok) throw new Error(`chaos ${method}: ${response.status}`);
}

/**
 * Makes a tenant's database refuse a migration as a drifted database would (an object already named as the
 * migration names its own), or undoes that, as the superuser.
 */
async function drift(tenantIds: readonly string[], sql: string): Promise<void> {
  for (const id of tenantIds) {
    const db = await sandbox.superuser(databaseName(id));
    try {
      await db.query(sql);
    } finally {
      await db.end();
    }
  }
}

/** A run planned as POST /migrations plans one, over few enough tenants for one chunk, to be run chunk by chunk. */
async function planRun(targetVersion: number, tenantIds: readonly string[], defaultPercentage: number) {
  const cluster = sandbox.provisioner();
  const store = new FleetStore(cluster);
  const migrations = await loadMigrations(join(sandbox.schemaDir, 'tenant'));
  const runId = newMigrationId();
  await store.plan({
    id: runId,
    targetVersion,
    tenantIds,
    thresholds: {},
    defaultPercentage,
    createdBy: 'fleet-test',
  });
  const { chunks } = await planChunks(store, runId);
  const [chunk] = chunks;
  if (!chunk || chunks.length !== 1) throw new Error(`chunks: ${JSON.stringify(chunks)}`);
  return { cluster, store, migrations, runId, chunk };
}

const cli = (args: readonly string[]) =>
  runCli(args, { apiUrl: sandbox.info.apiUrl, token: sandbox.info.token });

beforeAll(async () => {
  sandbox = await FleetSandbox.start();
  const [provisioned, made] = await Promise.all([
    sandbox.provision(4, 'Fleet'),
    sandbox.makeTenants(96, 'Fleet made'),
  ]);
  tenants = [...provisioned, ...made].sort();
}, 300_000);

afterAll(async () => {
  await sandbox?.stop();
});

describe('a fleet migration', () => {
  it('has nothing to do while every tenant is at the latest version', async () => {
    // Act
    const answer = await sandbox.call('POST', '/migrations', {});

    // Assess
    expect(answer.status).toBe(200);
    const run = Run.parse(answer.body);
    expect(run).toMatchObject({ status: 'succeeded', targetVersion: TEMPLATE_VERSION, executionArn: null });
    expect(run.summary.tenants).toBe(0);
  });

  it('applies a new migration to every active tenant, reporting exactly the one made to fail (tenants migrate, piped)', {
    timeout: 240_000,
  }, async () => {
    // Prepare: a new version of the product brings migration 0004; one tenant's database has drifted and refuses it.
    await sandbox.addTenantMigration('0004_fleet_notes.sql', NOTES);
    await sandbox.restart();
    const failing = tenants[42] ?? '';
    await drift([failing], 'CREATE SEQUENCE fleet_notes_note_idx');

    // Act
    let result: Awaited<ReturnType<typeof cli>>;
    try {
      result = await cli(['migrate']);
    } finally {
      await drift([failing], 'DROP SEQUENCE fleet_notes_note_idx');
    }

    // Assess
    expect(result.code).toBe(1);
    const runId = /migration (m[a-z0-9]{15})/.exec(result.stdout)?.[1] ?? '';
    const run = await waitForRun(sandbox, runId);
    expect(run.status).toBe('completed_with_failures');
    expect(run.summary).toEqual({ tenants: 100, pending: 0, succeeded: 99, failed: 1, skipped: 0 });
    expect(run.toleratedFailures).toBe(10);
    expect(run.failures).toEqual([
      {
        tenantId: failing,
        slug: expect.any(String),
        fromVersion: TEMPLATE_VERSION,
        error: {
          error: 'DatabaseErrorException',
          cause: expect.stringContaining('relation "fleet_notes_note_idx" already exists'),
        },
      },
    ]);
    const versions = await schemaVersions(sandbox, tenants);
    expect(tenants.filter((id) => versions.get(id) !== 4)).toEqual([failing]);
    expect(await databasesWithTable(sandbox, tenants, 'fleet_notes')).toEqual(
      tenants.filter((id) => id !== failing),
    );
    // Not a terminal: plain lines, the failure named, and how to retry it alone.
    expect(result.stdout).toContain('progress: ');
    expect(result.stdout).toContain(`failed: ${failing}`);
    expect(result.stdout).toContain(`retry them alone: tenants migrate --tenant ${failing}`);
    expect(result.stdout).not.toContain('\x1b[');
  });

  it('retries the failed tenant alone, and then has nothing left to do', { timeout: 60_000 }, async () => {
    // Prepare
    const versions = await schemaVersions(sandbox, tenants);
    const behind = tenants.filter((id) => versions.get(id) !== 4);
    expect(behind).toHaveLength(1);

    // Act
    const retry = await cli(['migrate', '--tenant', behind[0] ?? '', '--json']);
    const again = await sandbox.call('POST', '/migrations', {});
    const againCli = await cli(['migrate']);

    // Assess
    expect(retry.code).toBe(0);
    const retried = Run.parse(JSON.parse(retry.stdout));
    expect(retried).toMatchObject({ status: 'succeeded', scope: 'tenants', targetVersion: 4 });
    expect(retried.summary).toEqual({ tenants: 1, pending: 0, succeeded: 1, failed: 0, skipped: 0 });
    expect((await schemaVersions(sandbox, behind)).get(behind[0] ?? '')).toBe(4);
    expect(again.status).toBe(200);
    expect(Run.parse(again.body)).toMatchObject({ status: 'succeeded', executionArn: null });
    expect(Run.parse(again.body).summary.tenants).toBe(0);
    expect(againCli.code).toBe(0);
    expect(againCli.stdout).toContain('nothing to migrate: every active tenant is at version 4');
  });

  it('gives new tenants the latest template', { timeout: 60_000 }, async () => {
    // Act
    const [created] = await sandbox.provision(1, 'Fleet new');

    // Assess
    expect((await schemaVersions(sandbox, [created ?? ''])).get(created ?? '')).toBe(4);
    expect(await databasesWithTable(sandbox, [created ?? ''], 'fleet_notes')).toEqual([created]);
    tenants = [...tenants, created ?? ''].sort();
  });

  it('stops starting tenants once more fail than it tolerates, and fails', { timeout: 120_000 }, async () => {
    // Prepare: migration 0005 (read per run: no restart needed); three tenants of the first chunk have drifted and refuse it.
    await sandbox.addTenantMigration(
      '0005_fleet_note_authors.sql',
      'ALTER TABLE public.fleet_notes ADD COLUMN author text;',
    );
    const refusing = tenants.slice(0, 3);
    await drift(refusing, 'ALTER TABLE fleet_notes ADD COLUMN author text');

    // Act
    let answer: { status: number; body: unknown };
    let run: Run;
    try {
      answer = await sandbox.call('POST', '/migrations', { toleratedFailureCount: 1 });
      run = await waitForRun(sandbox, Run.parse(answer.body).id);
    } finally {
      await drift(refusing, 'ALTER TABLE fleet_notes DROP COLUMN author');
    }

    // Assess
    expect(answer.status).toBe(202);
    expect(run.status).toBe('failed');
    expect(run.toleratedFailures).toBe(1);
    expect(run.error?.error).toBe('ToleratedFailuresExceeded');
    expect(run.failures.map((failure) => failure.tenantId).sort()).toEqual(refusing);
    expect(run.summary.tenants).toBe(tenants.length);
    expect(run.summary.skipped).toBeGreaterThan(0);
    expect(run.summary.succeeded + run.summary.failed + run.summary.skipped).toBe(tenants.length);
    const execution = z.string().parse(run.executionArn);
    expect(execution).toContain(':execution:tenant-provisioner-local-migrate-fleet:');
  });

  it('leaves the tenants it has no time for to another invocation, then migrates them there', {
    timeout: 60_000,
  }, async () => {
    // Prepare: migration 0006, and a run planned as POST /migrations plans one, run here chunk by chunk.
    await sandbox.addTenantMigration(
      '0006_fleet_note_tags.sql',
      'ALTER TABLE public.fleet_notes ADD COLUMN tags text[];',
    );
    const { store, cluster, migrations, runId, chunk } = await planRun(6, tenants.slice(0, 4), 10);

    // Act
    const short = await migrateChunk(
      { store, cluster, migrations, remainingMs: () => 1_000 },
      { migrationId: runId, ...chunk },
    );
    const next = await migrateChunk(
      { store, cluster, migrations, remainingMs: () => 600_000 },
      { migrationId: runId, ...chunk, tenantIds: short.remaining },
    );
    const finished = await store.finish(runId);

    // Assess
    expect(short).toMatchObject({ succeeded: 0, failed: 0, remainingCount: 4 });
    expect(short.remaining.sort()).toEqual(tenants.slice(0, 4));
    expect(next).toMatchObject({ succeeded: 4, failed: 0, skipped: 0, remaining: [], remainingCount: 0 });
    expect(finished.status).toBe('succeeded');
    const versions = await schemaVersions(sandbox, tenants.slice(0, 4));
    expect([...versions.values()]).toEqual([6, 6, 6, 6]);
  });

  it('closes a run whose execution was stopped at the next request, which then runs', {
    timeout: 90_000,
  }, async () => {
    // Prepare: migration 0007, every tenant's migration slowed down so that the run is stopped mid-way.
    await sandbox.addTenantMigration(
      '0007_fleet_note_pins.sql',
      'ALTER TABLE public.fleet_notes ADD COLUMN pinned boolean;',
    );
    // Each tenant's migration is one statement, a DO block that carries the migration's SQL.
    const slow: Fault = {
      service: 'rds-data',
      operation: 'ExecuteStatement',
      match: 'ADD COLUMN pinned',
      latencyMs: 2_000,
    };
    await faults('PATCH', [slow]);
    let stopped: Run;
    let next: { status: number; body: unknown };
    try {
      const started = Run.parse((await sandbox.call('POST', '/migrations', {})).body);
      const sfn = new SFNClient({
        endpoint: sandbox.info.awsEndpoint,
        region: sandbox.info.region,
        credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
      });
      await sfn.send(
        new StopExecutionCommand({ executionArn: started.executionArn ?? '', error: 'Operator.Stopped' }),
      );

      // Act
      stopped = Run.parse((await sandbox.call('GET', `/migrations/${started.id}`)).body);
      next = await sandbox.call('POST', '/migrations', {});
    } finally {
      await faults('DELETE', [slow]);
    }

    // Assess
    expect(stopped.status).toBe('failed');
    expect(stopped.error?.error).toBe('Operator.Stopped');
    expect(next.status).toBe(202);
    const finished = await waitForRun(sandbox, Run.parse(next.body).id);
    expect(finished.status).toBe('succeeded');
    const versions = await schemaVersions(sandbox, tenants);
    expect(new Set(versions.values())).toEqual(new Set([7]));
  });

  it('migrates a tenant whose registry version is wrong from where its database is, and undoes a migration that leaves a promised index missing', {
    timeout: 60_000,
  }, async () => {
    // Prepare: migration 0008 over four tenants at version 7. The registry has one of them a version behind its
    // database, and one a version ahead (its database lost migration 7); one database lost a promised index.
    await sandbox.addTenantMigration(
      '0008_fleet_note_colors.sql',
      'ALTER TABLE public.fleet_notes ADD COLUMN color text;',
    );
    const [right, registryBehind, registryAhead, lacking] = tenants.slice(0, 4) as [
      string,
      string,
      string,
      string,
    ];
    const registry = await sandbox.superuser();
    try {
      await registry.query('UPDATE tenants SET schema_version = 6 WHERE id = $1', [registryBehind]);
    } finally {
      await registry.end();
    }
    await drift(
      [registryAhead],
      'ALTER TABLE fleet_notes DROP COLUMN pinned; DELETE FROM schema_migrations WHERE version = 7',
    );
    await drift([lacking], 'DROP INDEX fleet_notes_note_idx');
    const { store, cluster, migrations, runId, chunk } = await planRun(
      8,
      [right, registryBehind, registryAhead, lacking],
      50,
    );

    // Act
    let result: Awaited<ReturnType<typeof migrateChunk>>;
    try {
      result = await migrateChunk({ store, cluster, migrations }, { migrationId: runId, ...chunk });
    } finally {
      await drift([lacking], 'CREATE INDEX fleet_notes_note_idx ON fleet_notes (note)');
    }

    // Assess
    expect(result).toMatchObject({ succeeded: 3, failed: 1, skipped: 0 });
    const client = await sandbox.superuser();
    let outcomes: Map<string, { status: string; applied: number[] | null; cause: string | null }>;
    try {
      const { rows } = await client.query<{
        id: string;
        status: string;
        applied: number[] | null;
        cause: string | null;
      }>(
        `SELECT tenant_id AS id, status, applied, error ->> 'error' || ': ' || (error ->> 'cause') AS cause
         FROM fleet_migration_tenants WHERE migration_id = $1`,
        [runId],
      );
      outcomes = new Map(rows.map(({ id, ...outcome }) => [id, outcome]));
    } finally {
      await client.end();
    }
    expect(outcomes.get(right)).toMatchObject({ status: 'succeeded', applied: [8] });
    expect(outcomes.get(registryBehind)).toMatchObject({ status: 'succeeded', applied: [8] });
    expect(outcomes.get(registryAhead)).toMatchObject({ status: 'succeeded', applied: [7, 8] });
    expect(outcomes.get(lacking)).toMatchObject({
      status: 'failed',
      cause: 'SchemaValidationError: The tenant database lacks index fleet_notes_note_idx',
    });
    const versions = await schemaVersions(sandbox, [right, registryBehind, registryAhead, lacking]);
    expect([right, registryBehind, registryAhead, lacking].map((id) => versions.get(id))).toEqual([
      8, 8, 8, 7,
    ]);
    // The failed tenant's migration was undone with its check: no column, no version 8.
    const db = await sandbox.superuser(databaseName(lacking));
    try {
      const { rows } = await db.query<{ color: string | null; version: number }>(
        `SELECT (SELECT column_name::text FROM information_schema.columns
                 WHERE table_name = 'fleet_notes' AND column_name = 'color') AS color,
                (SELECT max(version) FROM schema_migrations) AS version`,
      );
      expect(rows[0]).toEqual({ color: null, version: 7 });
    } finally {
      await db.end();
    }
    expect(await databasesWithTable(sandbox, [registryAhead], 'fleet_notes')).toEqual([registryAhead]);
  });
});
