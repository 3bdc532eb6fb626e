import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { TENANT_CONCURRENCY } from '../functions/fleet/migrate.ts';
import { PROJECT_ROOT } from '../local/constants.ts';
import { databaseName } from '../schema/names.ts';
import { FleetSandbox, Run, waitForRun } from '../test/fleet/fleet.ts';
import { cpuSpent, treeCpu } from './lib/cpu.ts';

/**
 * `npm run bench:fleet` (`-- --quick`, `-- --tenants 1000`): a fleet migration in a sandbox of its own, over
 * TENANTS active tenants (200 by default; 20 with --quick) at the template's current version: the time from
 * `POST /migrations` to the run's end with a new migration (a table, an index, a column on an existing table),
 * then the time of the same request once every tenant is at the latest version ("nothing to migrate"). Beside the
 * run: the floor (below), and the CPU a tenant cost in each, by process (`node`: the functions and the AWS stand-ins;
 * `postgres`): on 2 cores the run is CPU-bound, so that is where its time goes.
 * The tenants are made directly (database with the template, registry row), not provisioned: a fleet migration
 * touches only their databases and the registry, and provisioning hundreds would dominate the run.
 * Run by `npm run bench` (bench/external.ts): its figures go to BENCH_RESULT_FILE when that is set.
 */
/** The standing goal for a fleet migration: at most this many times its floor. */
const FLEET_FLOOR_RATIO = 1.3;

const { values } = parseArgs({
  options: { quick: { type: 'boolean', default: false }, tenants: { type: 'string' } },
});
const count = Number(values.tenants ?? (values.quick ? 20 : 200));
if (!Number.isInteger(count) || count < 1) throw new Error(`--tenants: ${values.tenants}`);

const MIGRATION = `CREATE TABLE public.bench_notes (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id uuid REFERENCES public.users (id),
  note text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bench_notes_user_idx ON public.bench_notes (user_id);
ALTER TABLE public.users ADD COLUMN locale text;
`;

/** Tenant databases migrated at once by a run: the Map's MaxConcurrency times each invocation's. */
const RUN_CONCURRENCY =
  z
    .object({ States: z.object({ MigrateChunks: z.object({ MaxConcurrency: z.number() }) }) })
    .parse(JSON.parse(await readFile(join(PROJECT_ROOT, 'statemachines', 'migrate-fleet.asl.json'), 'utf8')))
    .States.MigrateChunks.MaxConcurrency * TENANT_CONCURRENCY;

const sum = (byCommand: Record<string, number>) => Object.values(byCommand).reduce((a, b) => a + b, 0);
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

const sandbox = await FleetSandbox.start();
try {
  let started = performance.now();
  const ids = await sandbox.makeTenants(count, 'Bench fleet');
  const fixtureMs = performance.now() - started;
  console.log(`fleet: ${count} tenants made in ${seconds(fixtureMs)}`);

  await sandbox.addTenantMigration('0004_bench_notes.sql', MIGRATION);
  await settle(sandbox);
  const sessionsBefore = await tenantSessions(sandbox);
  const cpuBefore = await sandboxCpu(sandbox);
  const posted = Date.now();
  const answer = await sandbox.call('POST', '/migrations', {});
  if (answer.status !== 202)
    throw new Error(`POST /migrations: ${answer.status} ${JSON.stringify(answer.body)}`);
  // Polled once a second: each poll is an API call and registry queries, CPU the run would otherwise have. The time
  // is taken from the run's own end as the registry records it, so the poll's interval does not blur it.
  const run = await waitForRun(sandbox, Run.parse(answer.body).id, 30 * 60_000, 1_000);
  const unavailable = sandbox.output().match(/.*"statusCode":503.*|.*service_unavailable.*/g) ?? [];
  if (unavailable.length > 0)
    console.log(`fleet: 503s while polling:\n${unavailable.slice(0, 3).join('\n')}`);
  const migrateMs = Date.parse(run.endedAt ?? '') - posted;
  if (!Number.isFinite(migrateMs)) throw new Error(`run ${run.id} has no end time: ${run.endedAt}`);
  const runCpu = cpuSpent(cpuBefore, await sandboxCpu(sandbox));
  if (run.status !== 'succeeded' || run.summary.succeeded !== count) {
    throw new Error(
      `the run ended ${run.status}: ${JSON.stringify(run.summary)} ${JSON.stringify(run.failures.slice(0, 3))}`,
    );
  }
  // Backends report their session when they end; the pools close idle connections after 5 s.
  await sleep(6_000);
  const sessions = (await tenantSessions(sandbox)) - sessionsBefore;
  console.log(
    `fleet: ${count} tenants migrated in ${seconds(migrateMs)} (run ${run.id}); ${sessions} sessions on tenant databases`,
  );

  const tenantTimes = await runTenantTimes(sandbox, run.id);
  const busy = tenantTimes.sumMs / (migrateMs * RUN_CONCURRENCY);
  console.log(
    `fleet: a tenant's migration call took ${tenantTimes.meanMs.toFixed(0)} ms on average (p50 ${tenantTimes.p50Ms} ms); ` +
      `the ${RUN_CONCURRENCY} slots were busy ${(busy * 100).toFixed(0)}% of the run`,
  );

  await settle(sandbox);
  const floorCpuBefore = await sandboxCpu(sandbox);
  const clientCpuBefore = process.cpuUsage();
  const { totalMs: floorMs, meanMs: floorTenantMs } = await floor(sandbox, ids);
  const floorCpu = cpuSpent(floorCpuBefore, await sandboxCpu(sandbox));
  const { user, system } = process.cpuUsage(clientCpuBefore);
  floorCpu.set('client', (user + system) / 1000);
  console.log(
    `fleet: the same SQL straight to PostgreSQL over ${count} tenants in ${seconds(floorMs)} (${floorTenantMs.toFixed(0)} ms a tenant)`,
  );
  const perTenant = (cpu: Map<string, number>) =>
    Object.fromEntries(
      [...cpu].filter(([, ms]) => ms > 0).map(([command, ms]) => [command, Math.round(ms / count)]),
    );
  const cpuPerTenant = { run: perTenant(runCpu), floor: perTenant(floorCpu) };
  console.log(
    `fleet: CPU a tenant (ms): run ${JSON.stringify(cpuPerTenant.run)}, floor ${JSON.stringify(cpuPerTenant.floor)}`,
  );

  await sleep(100);
  started = performance.now();
  const again = await sandbox.call('POST', '/migrations', {});
  const noopMs = performance.now() - started;
  const noop = Run.parse(again.body);
  if (again.status !== 200 || noop.summary.tenants !== 0)
    throw new Error(`not a no-op: ${JSON.stringify(again.body)}`);
  console.log(`fleet: nothing to migrate over ${count} tenants answered in ${Math.round(noopMs)} ms`);

  const rate = count / (migrateMs / 1000);
  const projected = (1000 / rate) * 1000;
  const figures = [
    {
      label: `fleet migration, ${count} tenants`,
      value: `${seconds(migrateMs)} (${rate.toFixed(1)} tenants/s)`,
      beside:
        `1,000 tenants ≈ ${seconds(projected)} at this rate; floor ${seconds(floorMs)} (${(migrateMs / floorMs).toFixed(1)}×); ` +
        `CPU a tenant ${sum(cpuPerTenant.run)} ms (floor ${sum(cpuPerTenant.floor)} ms)`,
      // The standing goal: at most 1.3× the floor (the same tenants' migrations applied directly, no product).
      goal: { text: `≤ ${FLEET_FLOOR_RATIO}× floor`, met: migrateMs <= FLEET_FLOOR_RATIO * floorMs },
    },
    {
      label: `nothing to migrate, ${count} tenants`,
      value: `${Math.round(noopMs)} ms`,
      goal: { text: '< 10 s', met: noopMs < 10_000 },
    },
  ];
  const result = {
    figures,
    details: {
      tenants: count,
      fixtureMs,
      migrateMs,
      floorMs,
      tenantMeanMs: tenantTimes.meanMs,
      tenantP50Ms: tenantTimes.p50Ms,
      floorTenantMeanMs: floorTenantMs,
      slotsBusy: busy,
      cpuPerTenantMs: cpuPerTenant,
      sessions,
      noopMs,
      runId: run.id,
      durationMs: run.durationMs,
    },
  };
  if (process.env.BENCH_RESULT_FILE)
    await writeFile(process.env.BENCH_RESULT_FILE, JSON.stringify(result, null, 2));
  console.table(
    figures.map(({ label, value, beside }) => ({ figure: label, measured: value, beside: beside ?? '' })),
  );
} finally {
  await sandbox.stop();
}

/**
 * The floor: the migration's SQL (its objects renamed) sent straight to each tenant database, RUN_CONCURRENCY at a
 * time, a new connection each as the Data API makes, in one transaction; no inspection, check or registry.
 */
async function floor(
  sandbox: FleetSandbox,
  ids: readonly string[],
): Promise<{ totalMs: number; meanMs: number }> {
  const sql = `BEGIN;\n${MIGRATION.replaceAll('bench_notes', 'floor_notes').replace('locale', 'floor_locale')}COMMIT;`;
  const queue = [...ids];
  let tenantsMs = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: RUN_CONCURRENCY }, async () => {
      for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
        const tenantStarted = performance.now();
        const db = await sandbox.superuser(databaseName(id));
        try {
          await db.query(sql);
        } finally {
          await db.end();
        }
        tenantsMs += performance.now() - tenantStarted;
      }
    }),
  );
  return { totalMs: performance.now() - started, meanMs: tenantsMs / ids.length };
}

/**
 * How long each tenant's migration call took inside the run (the chunk function records it: the Data API call that
 * migrates the database, connection included), mean and median, and their sum (to see how busy the slots were).
 */
async function runTenantTimes(
  sandbox: FleetSandbox,
  runId: string,
): Promise<{ meanMs: number; p50Ms: number; sumMs: number }> {
  const [row] = await sandbox.query<{ mean: number; p50: number; sum: number }>(
    `SELECT avg(duration_ms)::float8 AS mean, percentile_disc(0.5) WITHIN GROUP (ORDER BY duration_ms) AS p50,
       sum(duration_ms)::float8 AS sum
     FROM fleet_migration_tenants WHERE migration_id = $1 AND status = 'succeeded'`,
    [runId],
  );
  if (!row) throw new Error(`no tenants recorded for run ${runId}`);
  return { meanMs: row.mean, p50Ms: row.p50, sumMs: row.sum };
}

/**
 * Writes out what the work before left to PostgreSQL's background (making 1,000 databases leaves gigabytes of
 * dirty pages and WAL for the checkpointer), so that the part timed next does not pay for it.
 */
async function settle(sandbox: FleetSandbox): Promise<void> {
  await sandbox.query('CHECKPOINT');
}

/** CPU the sandbox's processes (`node`: functions, AWS stand-ins, API; `postgres`) have used so far. */
async function sandboxCpu(sandbox: FleetSandbox): Promise<Map<string, number>> {
  return sandbox.pid === undefined ? new Map() : treeCpu(sandbox.pid);
}

/** Sessions ever opened on the tenants' databases (PostgreSQL counts one when a backend ends). */
async function tenantSessions(sandbox: FleetSandbox): Promise<number> {
  const [row] = await sandbox.query<{ sessions: number }>(
    "SELECT coalesce(sum(sessions), 0)::int AS sessions FROM pg_stat_database WHERE datname LIKE 'tenant\\_%'",
  );
  return row?.sessions ?? 0;
}
