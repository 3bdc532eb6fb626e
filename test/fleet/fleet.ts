import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { RDSDataClient } from '@aws-sdk/client-rds-data';
import pg from 'pg';
import { z } from 'zod';
import { DataApi } from '../../functions/shared/data-api.ts';
import { loadMigrations } from '../../functions/shared/migrations.ts';
import { TenantConfig } from '../../functions/shared/tenants.ts';
import { PROJECT_ROOT, type SandboxInfo } from '../../local/constants.ts';
import { removeDir, type SandboxProcess, spawnSandbox } from '../../local/spawn.ts';
import { databaseName, ident, newTenantId } from '../../schema/names.ts';
import { effectiveLimits } from '../../schema/plans.ts';

/**
 * A sandbox of its own for fleet migrations, whose functions read the SQL migrations from a copy of `schema/`
 * (SANDBOX_SCHEMA_DIR): a test or benchmark adds a tenant migration to the copy, as a deployment would bring one,
 * without touching the product's template or the shared test sandbox's tenants.
 */
export class FleetSandbox {
  readonly schemaDir: string;
  #process: SandboxProcess;

  private constructor(schemaDir: string, process: SandboxProcess) {
    this.schemaDir = schemaDir;
    this.#process = process;
  }

  static async start(): Promise<FleetSandbox> {
    const schemaDir = await mkdtemp(join(tmpdir(), 'fleet-schema-'));
    await cp(join(PROJECT_ROOT, 'schema'), schemaDir, { recursive: true });
    const process = await spawnSandbox({
      env: { SANDBOX_SCHEMA_DIR: schemaDir, SANDBOX_SCHEDULE_SECONDS: '0' },
    });
    return new FleetSandbox(schemaDir, process);
  }

  get info(): SandboxInfo {
    return this.#process.info;
  }

  /** The sandbox process (its PostgreSQL runs under it). */
  get pid(): number | undefined {
    return this.#process.child.pid;
  }

  /** What the sandbox process has printed: its log, and the functions' JSON log lines. */
  output(): string {
    return this.#process.output();
  }

  /** Adds `schema/tenant/<file>` to the copy, as a new version of the product would bring it. */
  async addTenantMigration(file: string, sql: string): Promise<void> {
    await writeFile(join(this.schemaDir, 'tenant', file), sql);
  }

  /**
   * Restarts the sandbox on the same data, as a deployment replaces the functions: their caches (the template
   * ApplyMigrations read at cold start) start afresh.
   */
  async restart(): Promise<void> {
    const { dir } = this.#process;
    await this.#process.stop();
    this.#process = await spawnSandbox({
      dir,
      postgresPort: this.#process.info.postgres.port,
      env: { SANDBOX_SCHEMA_DIR: this.schemaDir, SANDBOX_SCHEDULE_SECONDS: '0' },
    });
  }

  async stop(): Promise<void> {
    await this.#process.stop();
    await removeDir(this.#process.dir);
    await rm(this.schemaDir, { recursive: true, force: true });
  }

  /** An HTTP call to the sandbox's API with its development token; the body parsed as JSON. */
  async call(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
    const response = await fetch(`${this.info.apiUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${this.info.token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    return { status: response.status, body: text === '' ? undefined : JSON.parse(text) };
  }

  /** The provisioner through this sandbox's Data API, as the functions reach the cluster. */
  provisioner(database = 'control_plane'): DataApi {
    return new DataApi(
      new RDSDataClient({
        endpoint: this.info.awsEndpoint,
        region: this.info.region,
        credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
      }),
      { resourceArn: this.info.clusterArn, secretArn: this.info.provisionerSecretArn, database },
    );
  }

  /** A superuser client on a database of the sandbox's PostgreSQL (to be ended by the caller). */
  async superuser(database = 'control_plane'): Promise<pg.Client> {
    const client = new pg.Client({ ...this.info.postgres, database });
    await client.connect();
    return client;
  }

  /** One statement as the superuser on a database of the sandbox's PostgreSQL, on a connection of its own. */
  async query<Row extends pg.QueryResultRow>(
    sql: string,
    values: unknown[] = [],
    database = 'control_plane',
  ): Promise<Row[]> {
    const client = await this.superuser(database);
    try {
      return (await client.query<Row>(sql, values)).rows;
    } finally {
      await client.end();
    }
  }

  /** Provisions `count` tenants through the API (bulk onboarding), waiting for every one to be active. */
  async provision(count: number, label: string): Promise<string[]> {
    const tenants = Array.from({ length: count }, (_, i) => ({
      name: `${label} ${i} ${Date.now()}`,
      plan: 'basic',
      adminUser: { email: `admin${i}@fleet.example` },
    }));
    const created = await this.call('POST', '/tenant-batches', { tenants });
    if (created.status !== 202) throw new Error(`bulk: ${created.status} ${JSON.stringify(created.body)}`);
    const { batchId, rows } = z
      .object({ batchId: z.string(), rows: z.array(z.object({ tenantId: z.string() })) })
      .parse(created.body);
    for (;;) {
      const batch = await this.call('GET', `/tenant-batches/${batchId}`);
      const { status } = z.object({ status: z.string() }).parse(batch.body);
      if (status === 'succeeded') return rows.map((row) => row.tenantId);
      if (status !== 'running') throw new Error(`bulk ${batchId}: ${JSON.stringify(batch.body)}`);
      await sleep(250);
    }
  }

  /**
   * `count` more active tenants, made quickly for scale: each database created as provisioning creates it (owned
   * by the provisioner) with the tenant template of this sandbox's schema applied in one round trip (as the
   * provisioner, versions recorded in `schema_migrations` as the runner records them), and a registry row at that
   * version. They have no roles, secrets, storage or alarms: a fleet migration touches only the database and the
   * registry. Four times faster than provisioning, which matters for a fleet of hundreds.
   */
  async makeTenants(count: number, label: string, concurrency = 4): Promise<string[]> {
    const migrations = await loadMigrations(join(this.schemaDir, 'tenant'));
    const version = migrations.at(-1)?.version ?? 0;
    const template = [
      'SET ROLE provisioner',
      ...migrations.flatMap((migration) => migration.statements),
      `CREATE TABLE schema_migrations (
         version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
      `INSERT INTO schema_migrations (version, name) VALUES ${migrations
        .map((migration) => `(${migration.version}, '${migration.name}')`)
        .join(', ')}`,
    ].join(';\n');
    const ids = Array.from({ length: count }, () => newTenantId());
    const queue = [...ids];
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        const admin = await this.superuser('postgres');
        try {
          for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
            await admin.query(`CREATE DATABASE ${ident(databaseName(id))} OWNER provisioner`);
            const db = await this.superuser(databaseName(id));
            try {
              await db.query(template);
            } finally {
              await db.end();
            }
          }
        } finally {
          await admin.end();
        }
      }),
    );
    const registry = await this.superuser();
    try {
      const config = TenantConfig.parse({ adminUser: { email: 'made@fleet.example' } });
      await registry.query(
        `INSERT INTO tenants (id, slug, name, plan, status, limits, config, resources, schema_version, created_by, updated_by)
         SELECT id, 'made-' || id, $2 || ' ' || id, 'basic', 'active', $3::jsonb, $4::jsonb,
           jsonb_build_object('database', 'tenant_' || id), $5, 'fleet-fixture', 'fleet-fixture'
         FROM unnest($1::text[]) AS id`,
        [ids, label, JSON.stringify(effectiveLimits('basic')), JSON.stringify(config), version],
      );
    } finally {
      await registry.end();
    }
    return ids;
  }
}

export const Run = z.looseObject({
  id: z.string(),
  status: z.string(),
  scope: z.string(),
  targetVersion: z.number(),
  toleratedFailures: z.number(),
  endedAt: z.string().nullable(),
  summary: z.object({
    tenants: z.number(),
    pending: z.number(),
    succeeded: z.number(),
    failed: z.number(),
    skipped: z.number(),
  }),
  failures: z.array(
    z.object({
      tenantId: z.string(),
      slug: z.string().nullable(),
      fromVersion: z.number().nullable(),
      error: z.object({ error: z.string(), cause: z.string() }),
    }),
  ),
  error: z.object({ error: z.string(), cause: z.string() }).nullable(),
  executionArn: z.string().nullable(),
  durationMs: z.number().nullable(),
});
export type Run = z.infer<typeof Run>;

/** Waits for a fleet migration run to leave `running`; a 503 is retried, as its `Retry-After` asks. */
export async function waitForRun(
  sandbox: FleetSandbox,
  id: string,
  timeoutMs = 180_000,
  pollMs = 100,
): Promise<Run> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const answer = await sandbox.call('GET', `/migrations/${id}`);
    if (answer.status === 503 && Date.now() < deadline) {
      await sleep(1_000);
      continue;
    }
    if (answer.status !== 200)
      throw new Error(`GET /migrations/${id}: ${answer.status} ${JSON.stringify(answer.body)}`);
    const run = Run.parse(answer.body);
    if (run.status !== 'running') return run;
    if (Date.now() > deadline) throw new Error(`run ${id} still running: ${JSON.stringify(run.summary)}`);
    await sleep(pollMs);
  }
}

/** The schema version each tenant has in the registry. */
export async function schemaVersions(
  sandbox: FleetSandbox,
  ids: readonly string[],
): Promise<Map<string, number | null>> {
  const rows = await sandbox.query<{ id: string; schema_version: number | null }>(
    'SELECT id, schema_version FROM tenants WHERE id = ANY($1)',
    [ids],
  );
  return new Map(rows.map((row) => [row.id, row.schema_version]));
}

/** Which of the tenants' databases have the table (read as the superuser, database by database). */
export async function databasesWithTable(sandbox: FleetSandbox, ids: readonly string[], table: string) {
  const having: string[] = [];
  for (const id of ids) {
    const [row] = await sandbox.query<{ found: string | null }>(
      'SELECT to_regclass($1)::text AS found',
      [table],
      databaseName(id),
    );
    if (row?.found) having.push(id);
  }
  return having;
}
