import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { DescribeExecutionCommand, StartExecutionCommand } from '@aws-sdk/client-sfn';
import pg from 'pg';
import { z } from 'zod';
import { PROJECT_ROOT, STAGE, stateMachineArn } from '../../local/constants.ts';
import { serverLogFile } from '../../local/postgres.ts';
import { figure, type ScenarioResult } from '../report.ts';
import { SandboxUnderTest } from '../sandbox.ts';
import { createTenant, tenantRequest, uniqueName, waitSettled } from '../tenants.ts';
import { registryRows } from '../traces.ts';

/**
 * A hostile tenant, with nothing but its own admin role's credentials from Secrets Manager, plants code everywhere
 * the control plane could meet it (CVE-2018-1058's search-path hijacks and their kin), then every path that reaches
 * its database runs through the API. Planted: an overload of every built-in function the control plane's SQL names,
 * with the exact types a call site could pass (integers for bigints, a table's row type for `record`, `name` for
 * `text`, and the same signature), in the tenant's own schema and, as a tenant made before tenant roles lost CREATE
 * on `public` would have them, in `public`; operators on the types the control plane compares; a cast and an enum;
 * a table of its own in `public` with triggers, a forced row-security policy, a default and an index expression that
 * call its code; triggers, row security, rules and foreign keys attempted on each table of the control plane.
 *
 * Every planted function calls `tenant.hostile_probe`, which writes a WARNING to the server log (so that it is seen
 * even inside a read-only or failed transaction) and, when it finds itself running as anyone but the tenant's own
 * roles, tries the takeover of issue 14: granting the victim's admin role to the attacker's. The figures: objects
 * planted, attachments refused, paths run, and executions with the control plane's rights, which must be 0.
 */
export async function hostileTenant(): Promise<ScenarioResult> {
  const schemaDir = await mkdtemp(join(tmpdir(), 'hostile-schema-'));
  await cp(join(PROJECT_ROOT, 'schema'), schemaDir, { recursive: true });
  const sut = await SandboxUnderTest.start({ scheduleSeconds: 2, schemaDir });
  try {
    return await run(sut, schemaDir);
  } finally {
    await sut.stop();
    await rm(schemaDir, { recursive: true, force: true });
  }
}

const SCENARIO = 'hostile tenant';

const Credentials = z.object({ username: z.string(), password: z.string(), dbname: z.string() });
const Accepted = z.looseObject({ executionArn: z.string(), backupId: z.string().optional() });
const Created = z.looseObject({ tenantId: z.string(), executionArn: z.string() });
const MigrationRun = z.looseObject({ id: z.string(), status: z.string() });

/** A path of the control plane that reaches the tenant's database, and how it ended. */
interface PathRun {
  readonly path: string;
  readonly outcome: string;
  readonly ok: boolean;
}

/** A line `hostile_probe` wrote to the server log. */
interface Execution {
  readonly currentUser: string;
  readonly sessionUser: string;
  readonly what: string;
}

async function run(sut: SandboxUnderTest, schemaDir: string): Promise<ScenarioResult> {
  const problems: string[] = [];
  const active = async (label: string) => {
    const { created } = await createTenant(sut, tenantRequest(uniqueName(label)));
    const row = created ? await waitSettled(sut, created.tenantId) : undefined;
    if (!created || row?.status !== 'active') throw new Error(`${label} could not be provisioned`);
    return created.tenantId;
  };
  const victim = await active('Hostile victim');
  const attacker = await active('Hostile attacker');
  const tenantRoles = ['admin', 'app', 'readonly', 'auditor'].map((role) => `tenant_${attacker}_${role}`);

  const admin = await connectAsAdmin(sut, attacker);
  const planted = await plant(sut, admin, attacker, victim);

  const paths: PathRun[] = [];
  const operate = async (path: string, method: string, url: string, body?: unknown) => {
    const tenantId = url.split('/')[2]?.split('?')[0] ?? attacker;
    const answer = await sut.request(method, url, {
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      headers: { 'content-type': 'application/json' },
    });
    const accepted = Accepted.safeParse(answer.body);
    if (answer.status !== 202 || !accepted.success) {
      paths.push({ path, outcome: `HTTP ${answer.status}`, ok: false });
      return undefined;
    }
    const status = await executionStatus(sut, accepted.data.executionArn);
    paths.push({ path, outcome: `${status} ${await failureOf(sut, tenantId)}`, ok: status === 'SUCCEEDED' });
    return accepted.data;
  };

  const backup = await operate('backup', 'POST', `/tenants/${attacker}/backups`, { reason: 'hostile' });
  await operate('plan change (limits, feature flags)', 'PATCH', `/tenants/${attacker}`, {
    plan: 'professional',
  });
  paths.push(await whileLocked(sut, admin, attacker));
  await admin.end();
  await operate('suspend', 'POST', `/tenants/${attacker}/suspend`, { reason: 'hostile' });
  await operate('resume', 'POST', `/tenants/${attacker}/resume`, { reason: 'hostile' });
  paths.push(await usageCollection(sut));

  // A fleet migration: a new version of the template, as a deployment brings it (the functions read it afresh).
  await writeFile(
    join(
      schemaDir,
      'tenant',
      `${String((await migrationCount(schemaDir)) + 1).padStart(4, '0')}_hostile.sql`,
    ),
    `CREATE TABLE public.hostile_run_notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, note text NOT NULL);
CREATE INDEX hostile_run_notes_note_idx ON public.hostile_run_notes (note);
ALTER TABLE public.users ADD COLUMN locale text;
UPDATE public.feature_flags SET updated_at = now();`,
  );
  await sut.restart('SIGTERM');
  paths.push(await fleetMigration(sut));

  // The drift reconciler runs every 2 s in this sandbox: wait for two rounds over the tenant.
  await sleep(5_000);
  paths.push({ path: 'drift reconciler (2 rounds)', outcome: 'ran', ok: true });

  if (backup?.backupId) {
    const answer = await sut.request('POST', `/tenants/${attacker}/restore`, {
      body: JSON.stringify({ backup: backup.backupId, name: uniqueName('Hostile restored') }),
      headers: { 'content-type': 'application/json' },
    });
    const created = Created.safeParse(answer.body);
    const status = created.success
      ? await executionStatus(sut, created.data.executionArn)
      : `HTTP ${answer.status}`;
    const failure = created.success ? await failureOf(sut, created.data.tenantId) : '';
    paths.push({
      path: 'restore into a new tenant',
      outcome: `${status} ${failure}`,
      ok: status === 'SUCCEEDED',
    });
  }

  // The victim first, while the attacker's database still holds privileges for its roles; then the attacker.
  for (const [who, id] of [
    ['victim', victim],
    ['attacker', attacker],
  ] as const) {
    const [row] = await registryRows(sut, 'id = $1', [id]);
    const path = `delete the ${who} with a final backup`;
    await operate(path, 'DELETE', `/tenants/${id}?confirm=${encodeURIComponent(row?.slug ?? '')}`);
    const [after] = await registryRows(sut, 'id = $1', [id]);
    if (after?.status !== 'deleted') problems.push(`the ${who} ended ${after?.status}, not deleted`);
  }

  const executions = await probeExecutions(sut);
  const escalated = executions.filter((execution) => !tenantRoles.includes(execution.currentUser));
  for (const execution of escalated.slice(0, 10)) {
    problems.push(
      `planted ${execution.what} ran as ${execution.currentUser} (session ${execution.sessionUser})`,
    );
  }
  const memberships = await sut.superuser().query<{ member: string; role: string }>(
    `SELECT u.rolname AS member, r.rolname AS role FROM pg_auth_members m
       JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
       WHERE r.rolname LIKE $1 AND u.rolname LIKE $2`,
    [`tenant\\_${victim}\\_%`, `tenant\\_${attacker}\\_%`],
  );
  for (const { member, role } of memberships.rows) problems.push(`${member} was granted ${role}`);
  for (const path of paths.filter((path) => !path.ok)) problems.push(`${path.path}: ${path.outcome}`);
  problems.push(...planted.problems);

  return {
    problems,
    figures: [
      figure(SCENARIO, 'objects planted by the tenant', planted.objects, '> 0', planted.objects > 0),
      figure(
        SCENARIO,
        "attachments to the control plane's tables refused",
        `${planted.refused}/${planted.attempted}`,
        'all',
        planted.attempted > 0 && planted.refused === planted.attempted,
      ),
      figure(
        SCENARIO,
        'paths run through the API',
        `${paths.filter((path) => path.ok).length}/${paths.length}`,
        'all succeed',
        paths.length > 0 && paths.every((path) => path.ok),
      ),
      figure(
        SCENARIO,
        'planted code run with the tenant’s own rights',
        executions.length - escalated.length,
        '-',
        true,
      ),
      figure(
        SCENARIO,
        "executions with the control plane's rights",
        escalated.length,
        '0',
        escalated.length === 0,
      ),
      figure(
        SCENARIO,
        "the victim's roles granted to the attacker's",
        memberships.rows.length,
        '0',
        memberships.rows.length === 0,
      ),
    ],
  };
}

async function connectAsAdmin(sut: SandboxUnderTest, tenantId: string): Promise<pg.Client> {
  const secret = await sut.clients.secrets.send(
    new GetSecretValueCommand({ SecretId: `tenants/${STAGE}/${tenantId}/db/admin` }),
  );
  const credentials = Credentials.parse(JSON.parse(secret.SecretString ?? '{}'));
  const client = new pg.Client({
    host: sut.info.postgres.host,
    port: sut.info.postgres.port,
    user: credentials.username,
    password: credentials.password,
    database: credentials.dbname,
  });
  client.on('error', () => {});
  await client.connect();
  return client;
}

const Overload = z.object({
  name: z.string(),
  args: z.array(z.string()),
  ret: z.string(),
  setof: z.boolean(),
});
type Overload = z.infer<typeof Overload>;

/** Types whose functions cannot be written in PL/pgSQL, or that no call of the control plane passes. */
const UNPLANTABLE =
  /^(internal|cstring|trigger|event_trigger|language_handler|fdw_handler|index_am_handler|table_am_handler|tsm_handler|opaque|"char"\[\]|pg_ddl_command|anyrange|anymultirange|anycompatiblerange|anycompatiblemultirange)$/;
const POLYMORPHIC =
  /^(record|anyelement|anyarray|anynonarray|anyenum|anycompatible|anycompatiblearray|anycompatiblenonarray|"any")$/;
const NUMERIC = /^(bigint|smallint|numeric|real|double precision|oid)$/;

/**
 * The overloads a hostile tenant plants for one of pg_catalog's: each argument as the call site might really pass it
 * (an integer literal where pg_catalog takes a bigint, a table's row where it takes a record, a `name` column where it
 * takes text), and the same signature. Polymorphic results become text.
 */
function hijacks(overload: Overload, rowTypes: readonly string[]): { args: string[]; ret: string }[] {
  const ret = POLYMORPHIC.test(overload.ret) || overload.ret.startsWith('any') ? 'text' : overload.ret;
  const variants = [overload.args];
  const poly = overload.args.some((arg) => POLYMORPHIC.test(arg));
  for (const row of poly ? rowTypes : ['public.users']) {
    variants.push(
      overload.args.map((arg) => (NUMERIC.test(arg) ? 'integer' : POLYMORPHIC.test(arg) ? row : arg)),
    );
    variants.push(
      overload.args.map((arg) =>
        NUMERIC.test(arg) ? 'integer' : POLYMORPHIC.test(arg) ? row : arg === 'text' ? 'name' : arg,
      ),
    );
  }
  const seen = new Set<string>();
  return variants
    .filter((args) => args.every((arg) => !POLYMORPHIC.test(arg) && !arg.startsWith('any')))
    .filter((args) => {
      const key = args.join(',');
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    })
    .map((args) => ({ args, ret }));
}

/** Every identifier the functions' source follows with a parenthesis: a superset of the built-ins their SQL calls. */
async function calledNames(): Promise<string[]> {
  const names = new Set<string>();
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.name.endsWith('.ts')) {
        for (const [, name] of (await readFile(path, 'utf8')).matchAll(/\b([a-z_][a-z0-9_]*)\s*\(/g)) {
          if (name) names.add(name);
        }
      }
    }
  };
  await walk(join(PROJECT_ROOT, 'functions'));
  return [...names];
}

interface Planted {
  readonly objects: number;
  readonly attempted: number;
  readonly refused: number;
  readonly problems: string[];
}

/** Plants the attacker's code, as its admin; `public` is opened to it for the while, as for a tenant of old. */
async function plant(
  sut: SandboxUnderTest,
  admin: pg.Client,
  attacker: string,
  victim: string,
): Promise<Planted> {
  const superuser = sut.superuser(`tenant_${attacker}`);
  const own = `tenant_${attacker}_`;
  const problems: string[] = [];
  let objects = 0;
  const create = async (sql: string): Promise<boolean> => {
    try {
      await admin.query(sql);
      objects += 1;
      return true;
    } catch {
      return false;
    }
  };
  const victimAdmin = `tenant_${victim}_admin`;
  const attackerAdmin = `tenant_${attacker}_admin`;
  // The probe: a WARNING in the server log whoever runs it; the takeover tried whenever it runs as a stranger.
  const probe = `CREATE FUNCTION tenant.hostile_probe(what text) RETURNS void LANGUAGE plpgsql AS $probe$
    BEGIN
      RAISE WARNING 'hostile-probe current_user=% session_user=% what=%', current_user, session_user, what;
      IF current_user::text NOT LIKE '${own}%' THEN
        BEGIN
          EXECUTE 'GRANT "${victimAdmin}" TO "${attackerAdmin}"';
        EXCEPTION WHEN OTHERS THEN NULL;
        END;
      END IF;
    END $probe$`;
  if (!(await create(probe)))
    return { objects, attempted: 0, refused: 0, problems: ['the probe could not be planted'] };
  await admin.query('GRANT EXECUTE ON FUNCTION tenant.hostile_probe(text) TO PUBLIC');

  await superuser.query(`GRANT CREATE ON SCHEMA public TO "${attackerAdmin}"`);
  try {
    const tables = (
      await admin.query<{ name: string }>(
        "SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
      )
    ).rows.map((row) => row.name);
    const rowTypes = tables.map((table) => `public.${table}`);
    const overloads = z.array(Overload).parse(
      (
        await admin.query(
          `SELECT p.proname AS name, p.proretset AS setof, pg_catalog.format_type(p.prorettype, NULL) AS ret,
             ARRAY(SELECT pg_catalog.format_type(t, NULL) FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS u(t, i)
                   ORDER BY i) AS args
           FROM pg_proc p
           WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.prokind = 'f' AND p.provariadic = 0
             AND p.pronargs <= 4 AND p.proname = ANY($1)`,
          [await calledNames()],
        )
      ).rows,
    );
    let n = 0;
    for (const overload of overloads) {
      if (UNPLANTABLE.test(overload.ret) || overload.args.some((arg) => UNPLANTABLE.test(arg))) continue;
      for (const { args, ret } of hijacks(overload, rowTypes)) {
        n += 1;
        const signature = `${overload.name}(${args.join(', ')})`;
        const result = ret === 'void' || overload.setof ? 'RETURN;' : 'RETURN NULL;';
        for (const schema of ['tenant', 'public']) {
          await create(
            `CREATE FUNCTION ${schema}."${overload.name}"(${args.join(', ')}) RETURNS ${overload.setof ? 'SETOF ' : ''}${ret}
             LANGUAGE plpgsql AS $f$ BEGIN PERFORM tenant.hostile_probe('${schema}.${signature.replaceAll("'", "''")} #${n}'); ${result} END $f$`,
          );
        }
      }
    }
    // Operators on the types the control plane compares and concatenates.
    const operands = [
      ['text', 'text'],
      ['name', 'text'],
      ['integer', 'integer'],
      ['integer', 'bigint'],
      ['bigint', 'bigint'],
      ['jsonb', 'jsonb'],
      ['uuid', 'uuid'],
    ];
    for (const [left, right] of operands) {
      const fn = `hostile_op_${left}_${right}`;
      await create(
        `CREATE FUNCTION tenant.${fn}(l ${left}, r ${right}) RETURNS boolean LANGUAGE plpgsql AS
         $f$ BEGIN PERFORM tenant.hostile_probe('operator ${left} ${right}'); RETURN true; END $f$`,
      );
      for (const schema of ['tenant', 'public']) {
        for (const op of ['=', '<>', '<', '>', '||', '@>']) {
          await create(
            `CREATE OPERATOR ${schema}.${op} (LEFTARG = ${left}, RIGHTARG = ${right}, FUNCTION = tenant.${fn})`,
          );
        }
      }
    }
    // A type of its own with casts, and a table of its own in public that calls its code on every touch.
    await create("CREATE TYPE tenant.mood AS ENUM ('calm', 'angry')");
    await create(
      `CREATE FUNCTION tenant.mood_text(m tenant.mood) RETURNS text LANGUAGE plpgsql AS
       $f$ BEGIN PERFORM tenant.hostile_probe('cast mood'); RETURN 'calm'; END $f$`,
    );
    await create('CREATE CAST (tenant.mood AS text) WITH FUNCTION tenant.mood_text(tenant.mood) AS IMPLICIT');
    await create(
      `CREATE FUNCTION tenant.hostile_trigger() RETURNS trigger LANGUAGE plpgsql AS
       $f$ BEGIN PERFORM tenant.hostile_probe('trigger ' || TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME || ' ' || TG_OP);
       RETURN NULL; END $f$`,
    );
    await create(
      `CREATE FUNCTION tenant.hostile_check(what text) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS
       $f$ BEGIN PERFORM tenant.hostile_probe(what); RETURN true; END $f$`,
    );
    await create(
      `CREATE TABLE public.legacy_notes (id int PRIMARY KEY, mood tenant.mood NOT NULL DEFAULT 'calm',
         note text CHECK (tenant.hostile_check('check legacy_notes')))`,
    );
    await create("INSERT INTO public.legacy_notes (id, note) VALUES (1, 'kept by the tenant')");
    await create("CREATE INDEX legacy_notes_probe ON public.legacy_notes ((tenant.hostile_check('index')))");
    await create('ALTER TABLE public.legacy_notes ENABLE ROW LEVEL SECURITY');
    await create('ALTER TABLE public.legacy_notes FORCE ROW LEVEL SECURITY');
    await create("CREATE POLICY hostile ON public.legacy_notes USING (tenant.hostile_check('policy'))");
    await create('CREATE TABLE tenant.notes (id int PRIMARY KEY, note text)');
    // Privileges for the victim's roles on the attacker's objects: PostgreSQL lets an owner grant to any role, and
    // each one, kept in the attacker's database, would stop the victim's roles from ever being dropped.
    const victimRoles = ['admin', 'app', 'readonly', 'auditor'].map((role) => `"tenant_${victim}_${role}"`);
    await create(`GRANT SELECT ON tenant.notes TO ${victimRoles.join(', ')}`);
    await create(`CREATE POLICY victims ON tenant.notes TO ${victimRoles[0]} USING (true)`);
    await create(`ALTER DEFAULT PRIVILEGES IN SCHEMA tenant GRANT SELECT ON TABLES TO ${victimRoles[1]}`);
    for (const table of ['public.legacy_notes', 'tenant.notes']) {
      for (const when of ['BEFORE', 'AFTER']) {
        await create(
          `CREATE TRIGGER hostile_${when.toLowerCase()} ${when} INSERT OR UPDATE OR DELETE OR TRUNCATE ON ${table}
           FOR EACH STATEMENT EXECUTE FUNCTION tenant.hostile_trigger()`,
        );
      }
    }

    // What a tenant may not do to the control plane's tables: each attempt must be refused.
    let attempted = 0;
    let refused = 0;
    const attempt = async (sql: string) => {
      attempted += 1;
      try {
        await admin.query(sql);
        problems.push(`the tenant's admin could: ${sql.split('\n')[0]}`);
      } catch {
        refused += 1;
      }
    };
    for (const table of tables.filter((name) => name !== 'legacy_notes')) {
      const target = `public.${table}`;
      await attempt(
        `CREATE TRIGGER hostile BEFORE INSERT OR UPDATE OR DELETE ON ${target} FOR EACH ROW EXECUTE FUNCTION tenant.hostile_trigger()`,
      );
      await attempt(`ALTER TABLE ${target} ENABLE ROW LEVEL SECURITY`);
      await attempt(`CREATE POLICY hostile ON ${target} USING (tenant.hostile_check('policy ${table}'))`);
      await attempt(
        `CREATE RULE hostile AS ON UPDATE TO ${target} DO ALSO SELECT tenant.hostile_check('rule')`,
      );
      await attempt(
        `ALTER TABLE ${target} ALTER COLUMN ${table === 'feature_flags' ? 'key' : 'id'} SET DEFAULT NULL`,
      );
      await attempt(`CREATE INDEX hostile_${table} ON ${target} ((tenant.hostile_check('index ${table}')))`);
      await attempt(
        `CREATE TABLE tenant.refs_${table} (r int, CONSTRAINT r FOREIGN KEY (r) REFERENCES ${target} ON DELETE CASCADE)`,
      );
      await attempt(`CREATE TABLE tenant.child_${table} () INHERITS (${target})`);
    }
    return { objects, attempted, refused, problems };
  } finally {
    await superuser.query(`REVOKE CREATE ON SCHEMA public FROM "${attackerAdmin}"`);
  }
}

const ErrorBody = z.object({ error: z.object({ code: z.string() }) });

/**
 * The tenant locks its own `users` table and holds the lock: a plan change, which counts the users first, must answer
 * 409 tenant_database_busy within the lock timeout, not wait or fail with a 5xx, and change nothing.
 */
async function whileLocked(sut: SandboxUnderTest, admin: pg.Client, tenantId: string): Promise<PathRun> {
  const path = 'plan change while the tenant holds a lock (409, nothing changed)';
  const limits = async () => (await registryLimits(sut, tenantId)) ?? '';
  const before = await limits();
  await admin.query('BEGIN');
  try {
    await admin.query('LOCK TABLE public.users IN ACCESS EXCLUSIVE MODE');
    const started = Date.now();
    const answer = await sut.request('PATCH', `/tenants/${tenantId}`, {
      body: JSON.stringify({ limits: { maxConnections: 20 } }),
      headers: { 'content-type': 'application/json' },
    });
    const code = ErrorBody.safeParse(answer.body);
    const outcome = `HTTP ${answer.status} ${code.success ? code.data.error.code : answer.text.slice(0, 200)} in ${Date.now() - started} ms`;
    await admin.query('COMMIT');
    const unchanged = (await limits()) === before;
    const busy = answer.status === 409 && code.success && code.data.error.code === 'tenant_database_busy';
    return { path, outcome: unchanged ? outcome : `${outcome}, limits changed`, ok: busy && unchanged };
  } catch (error) {
    await admin.query('ROLLBACK').catch(() => {});
    return { path, outcome: String(error), ok: false };
  }
}

async function registryLimits(sut: SandboxUnderTest, tenantId: string): Promise<string | undefined> {
  const { rows } = await sut
    .superuser('control_plane')
    .query<{ limits: unknown }>('SELECT limits FROM tenants WHERE id = $1', [tenantId]);
  return rows[0] ? JSON.stringify(rows[0].limits) : undefined;
}

/** The failure the registry records for the tenant, as text; empty when there is none. */
async function failureOf(sut: SandboxUnderTest, tenantId: string): Promise<string> {
  const [row] = await registryRows(sut, 'id = $1', [tenantId]);
  return row?.failure ? JSON.stringify(row.failure) : '';
}

async function migrationCount(schemaDir: string): Promise<number> {
  return (await readdir(join(schemaDir, 'tenant'))).filter((file) => file.endsWith('.sql')).length;
}

async function executionStatus(sut: SandboxUnderTest, executionArn: string): Promise<string> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const { status, error, cause } = await sut.clients.sfn.send(
      new DescribeExecutionCommand({ executionArn }),
    );
    if (status === 'SUCCEEDED') return status;
    if (status !== 'RUNNING' || Date.now() > deadline)
      return `${status} ${error ?? ''} ${cause ?? ''}`.trim();
    await sleep(100);
  }
}

/** A run of the usage collector, as its schedule starts it: it counts the tenant's users and API keys. */
async function usageCollection(sut: SandboxUnderTest): Promise<PathRun> {
  const { executionArn } = await sut.clients.sfn.send(
    new StartExecutionCommand({ stateMachineArn: stateMachineArn('collect-usage'), input: '{}' }),
  );
  const status = await executionStatus(sut, executionArn ?? '');
  return {
    path: 'usage collection (sessions, users, API keys)',
    outcome: status,
    ok: status === 'SUCCEEDED',
  };
}

async function fleetMigration(sut: SandboxUnderTest): Promise<PathRun> {
  const path = 'fleet migration (guard, DDL, schema check)';
  const started = await sut.request('POST', '/migrations', {
    body: '{}',
    headers: { 'content-type': 'application/json' },
  });
  const accepted = MigrationRun.safeParse(started.body);
  if (!accepted.success) return { path, outcome: `HTTP ${started.status}`, ok: false };
  const deadline = Date.now() + 120_000;
  for (;;) {
    const answer = await sut.request('GET', `/migrations/${accepted.data.id}`);
    const current = MigrationRun.safeParse(answer.body);
    const status = current.success ? current.data.status : `HTTP ${answer.status}`;
    if (status !== 'running' || Date.now() > deadline) {
      return {
        path,
        outcome: `${status} ${JSON.stringify(answer.body).slice(0, 300)}`,
        ok: status === 'succeeded',
      };
    }
    await sleep(250);
  }
}

// The WARNING itself, not a logged statement that quotes the probe's source.
const PROBE_LINE = /WARNING:\s+hostile-probe current_user=(\S+) session_user=(\S+) what=(.*)$/;

/** Every run of planted code the server log holds. */
async function probeExecutions(sut: SandboxUnderTest): Promise<Execution[]> {
  const log = await readFile(serverLogFile(sut.process.dir), 'utf8').catch(() => '');
  return log.split('\n').flatMap((line) => {
    const match = PROBE_LINE.exec(line);
    return match ? [{ currentUser: match[1] ?? '', sessionUser: match[2] ?? '', what: match[3] ?? '' }] : [];
  });
}
