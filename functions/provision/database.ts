import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { databaseName, ident, literal } from '../../schema/names.ts';
import * as z from '../../schema/zod.ts';
import type { DataApi, Sql } from '../shared/data-api.ts';
import { SchemaValidationError } from '../shared/errors.ts';
import { applyMigrations, type Migration, MigrationOrderError } from '../shared/migrations.ts';
import { TENANT_SCHEMA, TenantDatabase } from '../shared/tenant-db.ts';

/** SQLSTATE 42P04, duplicate_database, as the Data API reports it in the message. */
const DUPLICATE_DATABASE = 'SQLState: 42P04';
/** SQLSTATE 3D000, invalid_catalog_name: CREATE DATABASE's template does not exist. */
const MISSING_DATABASE = 'SQLState: 3D000';
/** SQLSTATE 42P01, undefined_table. */
const UNDEFINED_TABLE = 'SQLState: 42P01';
/**
 * DROP DATABASE … WITH (FORCE) refused to end a session it may not end (SQLSTATE 42501). Besides a superuser's
 * session, that is an autovacuum worker that happened to be in the database at that moment: only a superuser may
 * end one, and it is gone a moment later.
 */
const TERMINATE_DENIED = 'permission denied to terminate process';

const hasState = (error: unknown, state: string): boolean =>
  error instanceof Error && error.message.includes(state);

const exists = z.object({ found: z.number() });

/** Whether the database exists on the cluster. */
export async function databaseExists(cluster: DataApi, name: string): Promise<boolean> {
  const rows = await cluster.query(
    'SELECT 1 AS found FROM pg_database WHERE datname = :name',
    { name },
    exists,
  );
  return rows.length > 0;
}

/** What a template holds besides the migrations ({@link buildTemplate}); a new layout makes new templates. */
const TEMPLATE_LAYOUT = `layout 2: schema ${TENANT_SCHEMA}`;

/**
 * The layout of a tenant database beside its migrations: PUBLIC has nothing on `public` (each tenant role gets
 * exactly its grants, `grantsBlock` in roles.ts), and the tenant's own schema exists, open to nobody yet.
 */
const LAYOUT = [
  'REVOKE ALL ON SCHEMA public FROM PUBLIC',
  `CREATE SCHEMA IF NOT EXISTS ${TENANT_SCHEMA}`,
  `REVOKE ALL ON SCHEMA ${TENANT_SCHEMA} FROM PUBLIC`,
];

/** Every template database's name starts so; not `tenant_`, which is the tenants' (and the reconciler's). */
export const TEMPLATE_PREFIX = 'template_tenant_';

/**
 * The template database of a migration set: `template_tenant_v<version>_<hash of every statement>`. The name says
 * which set a template holds, so finding it by name is finding the right one, and a changed set gets a new one.
 */
export function templateName(migrations: readonly Migration[]): string {
  const hash = createHash('sha256').update(`${TEMPLATE_LAYOUT}\0`);
  for (const migration of migrations) {
    hash.update(`${migration.version}\0${migration.name}\0${migration.statements.join('\0')}\0`);
  }
  return `${TEMPLATE_PREFIX}v${migrations.at(-1)?.version ?? 0}_${hash.digest('hex').slice(0, 12)}`;
}

/**
 * Creates `tenant_<id>` as a copy of the migration set's template database (made on first use, see
 * {@link buildTemplate}) with the plan's connection limit, owned by the provisioner (who owns every object of the
 * template), and closes it to PUBLIC: no CONNECT or TEMPORARY on the database, nothing on its `public` schema
 * (revoked in the template, so in the copy). Copying a template that is migrated once is what PostgreSQL's
 * CREATE DATABASE does anyway (from `template1` by default); it saves each tenant the template's DDL, dozens of
 * statements. Each tenant role gets exactly its grants later.
 *
 * Idempotent: an existing database gets the limit and the revocations again. `cluster` is the provisioner on any
 * database; CREATE DATABASE runs outside a transaction, as the Data API runs a statement without a transaction id.
 */
export async function createTenantDatabase(
  cluster: DataApi,
  tenantId: string,
  connectionLimit: number,
  migrations: readonly Migration[],
): Promise<{ name: string; template: string }> {
  const name = databaseName(tenantId);
  const limit = z.int().check(z.minimum(1)).parse(connectionLimit);
  const template = templateName(migrations);
  const create = () =>
    cluster.execute(`CREATE DATABASE ${ident(name)} TEMPLATE ${ident(template)} CONNECTION LIMIT ${limit}`);
  let existed = false;
  try {
    await create().catch(async (error: unknown) => {
      if (!hasState(error, MISSING_DATABASE)) throw error;
      await buildTemplateOnce(cluster, template, migrations, create);
    });
  } catch (error) {
    // Made by an earlier attempt (a retry whose answer was lost, a rerun): it gets the limit and revocations again.
    if (!hasState(error, DUPLICATE_DATABASE)) throw error;
    existed = true;
    await cluster.execute(`ALTER DATABASE ${ident(name)} CONNECTION LIMIT ${limit}`);
  }
  await cluster.execute(`REVOKE CONNECT, TEMPORARY ON DATABASE ${ident(name)} FROM PUBLIC`);
  // An existing database may not be a copy of the template (made before templates, or by hand).
  if (existed) await TenantDatabase.of(cluster, tenantId).block('layout', LAYOUT);
  return { name, template };
}

const connectionLimit = z.object({ limit: z.number() });

/**
 * Replaces the tenant database by an empty one with the same connection limit and the tenant layout, not a copy of
 * the template: for a restore of a backup taken at an older template version, which its own migrations bring up.
 * Only for a database no tenant role has reached yet (a restore's, before activation).
 */
export async function recreateEmptyTenantDatabase(cluster: DataApi, tenantId: string): Promise<void> {
  const name = databaseName(tenantId);
  const [row] = await cluster.query(
    'SELECT datconnlimit AS limit FROM pg_catalog.pg_database WHERE datname = :name',
    { name },
    connectionLimit,
  );
  if (!row) throw new Error(`The tenant database ${name} does not exist`);
  await dropDatabase(cluster, name);
  await cluster.execute(`CREATE DATABASE ${ident(name)} CONNECTION LIMIT ${z.int().parse(row.limit)}`);
  await cluster.execute(`REVOKE CONNECT, TEMPORARY ON DATABASE ${ident(name)} FROM PUBLIC`);
  await TenantDatabase.of(cluster, tenantId).block('layout', LAYOUT);
}

/** How long a provisioning waits for a template another one is building (a build takes about a second). */
const TEMPLATE_WAIT_MS = 10_000;
const TEMPLATE_POLL_MS = 250;

const lockTaken = z.object({ taken: z.boolean() });

/**
 * The first tenants after a deploy arrive together and all find the template missing: one builds it, holding a
 * transaction-scoped advisory lock on the registry database for the length of the build, and the others retry
 * `create` until the template is there. A builder that died releases its lock (its transaction ends); a waiter
 * that waited TEMPLATE_WAIT_MS builds the template itself (racing builds are safe, see {@link buildTemplate}).
 */
async function buildTemplateOnce(
  cluster: DataApi,
  template: string,
  migrations: readonly Migration[],
  create: () => Promise<unknown>,
): Promise<void> {
  const key = Number.parseInt(createHash('sha256').update(template).digest('hex').slice(0, 12), 16);
  const built = await cluster.transaction(async (tx) => {
    const [lock] = await tx.query(
      'SELECT pg_catalog.pg_try_advisory_xact_lock(CAST(:key AS bigint)) AS taken',
      { key },
      lockTaken,
    );
    if (!lock?.taken) return false;
    await buildTemplate(cluster, template, migrations);
    return true;
  });
  if (!built) {
    for (let waited = 0; waited < TEMPLATE_WAIT_MS; waited += TEMPLATE_POLL_MS) {
      await new Promise((resolve) => setTimeout(resolve, TEMPLATE_POLL_MS));
      try {
        await create();
        return;
      } catch (error) {
        if (!hasState(error, MISSING_DATABASE)) throw error;
      }
    }
    await buildTemplate(cluster, template, migrations);
  }
  await create();
}

/**
 * Builds the migration set's template database, as the provisioner: a database under a temporary name, PUBLIC's
 * rights on its `public` schema revoked, the migrations applied and checked; then closed to every connection
 * (a template must have none while it is copied), marked a template (which DROP DATABASE refuses) and renamed to
 * its final name in one step, so that no half-made template is ever copied. Builds racing each other (the first
 * tenants after a deploy) each make their own; the first rename wins and the others drop theirs. Templates of
 * other migration sets are dropped once this one is in place; a build that died half-way leaves a
 * `<template>_build_<hex>` database behind, never copied.
 */
export async function buildTemplate(
  cluster: DataApi,
  template: string,
  migrations: readonly Migration[],
): Promise<void> {
  const building = `${template}_build_${randomBytes(4).toString('hex')}`;
  await cluster.execute(`CREATE DATABASE ${ident(building)}`);
  try {
    const db = TenantDatabase.named(cluster, building);
    await db.block('layout', LAYOUT);
    await applyMigrations(db, migrations);
    await validateTenantSchema(db, expectedObjects(migrations));
    await cluster.execute(`REVOKE CONNECT, TEMPORARY ON DATABASE ${ident(building)} FROM PUBLIC`);
    await cluster.execute(`ALTER DATABASE ${ident(building)} WITH ALLOW_CONNECTIONS false IS_TEMPLATE true`);
    // The build's own sessions (the Data API keeps its connections) would block the rename and every copy.
    // Only its own: an autovacuum worker may be in the new database too, and ending it takes a superuser
    // (42501); the rename itself tells autovacuum workers to leave.
    await cluster.execute(
      `SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity
       WHERE datname = :building AND usename = current_user AND pid <> pg_catalog.pg_backend_pid()`,
      { building },
    );
    await cluster.execute(`ALTER DATABASE ${ident(building)} RENAME TO ${ident(template)}`);
  } catch (error) {
    await dropTemplate(cluster, building).catch(() => {
      // Left behind under its build name, which nothing copies; the error worth reporting is the build's.
    });
    if (hasState(error, DUPLICATE_DATABASE)) return; // another build renamed first: theirs is as good
    throw error;
  }
  const others = await cluster.query(
    `SELECT datname FROM pg_database
     WHERE starts_with(datname, :prefix) AND datname <> :template AND datname NOT LIKE '%\\_build\\_%'
       AND datdba = (SELECT oid FROM pg_roles WHERE rolname = current_user)`,
    { prefix: TEMPLATE_PREFIX, template },
    z.object({ datname: z.string() }),
  );
  for (const { datname } of others) await dropTemplate(cluster, datname);
}

async function dropTemplate(cluster: DataApi, name: string): Promise<void> {
  await cluster.execute(`ALTER DATABASE ${ident(name)} WITH IS_TEMPLATE false`).catch((error: unknown) => {
    if (!hasState(error, MISSING_DATABASE)) throw error;
  });
  await dropDatabase(cluster, name);
}

/**
 * Drops the tenant database, ending any session still in it (WITH (FORCE)); nothing to do when it is gone.
 * The name is derived from the id, so a database whose creation was never recorded goes too.
 */
export async function dropTenantDatabase(cluster: DataApi, tenantId: string): Promise<{ dropped: string }> {
  const name = databaseName(tenantId);
  await dropDatabase(cluster, name);
  return { dropped: name };
}

/** Drops a database and ends its sessions; tried again a few times while an autovacuum worker is in it. */
async function dropDatabase(cluster: DataApi, name: string): Promise<void> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      await cluster.execute(`DROP DATABASE IF EXISTS ${ident(name)} WITH (FORCE)`);
      return;
    } catch (error) {
      if (attempt >= 5 || !hasState(error, TERMINATE_DENIED)) throw error;
      await sleep(100 * attempt);
    }
  }
}

/** The tables and indexes a migration set promises, read from its statements. */
export interface SchemaObjects {
  readonly tables: readonly string[];
  readonly indexes: readonly string[];
}

const CREATE_TABLE = /^CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(?:public\.)?"?([a-z_][a-z0-9_]*)"?/i;
const CREATE_INDEX =
  /^CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?"?([a-z_][a-z0-9_]*)"?/i;
const NAMED_KEY = /\bCONSTRAINT\s+"?([a-z_][a-z0-9_]*)"?\s+(UNIQUE|PRIMARY\s+KEY)\b/gi;
const PRIMARY_KEY = /\bPRIMARY\s+KEY\b/i;

/**
 * Every table and index the migrations create: tables and their primary keys (`<table>_pkey`), named unique and
 * primary key constraints, and CREATE INDEX statements; `schema_migrations` is the runner's own table.
 * Deriving the list from the template keeps the check in step with it: a new migration needs no second list.
 */
export function expectedObjects(migrations: readonly Migration[]): SchemaObjects {
  const tables = new Set<string>(['schema_migrations']);
  const indexes = new Set<string>(['schema_migrations_pkey']);
  for (const statement of migrations.flatMap((migration) => migration.statements)) {
    const table = CREATE_TABLE.exec(statement)?.[1];
    if (table) {
      tables.add(table);
      const keys = [...statement.matchAll(NAMED_KEY)];
      for (const [, name] of keys) if (name) indexes.add(name);
      const namedPrimaryKey = keys.some(([, , kind]) => kind?.toUpperCase().startsWith('PRIMARY'));
      if (PRIMARY_KEY.test(statement) && !namedPrimaryKey) indexes.add(`${table}_pkey`);
    }
    const index = CREATE_INDEX.exec(statement)?.[1];
    if (index) indexes.add(index);
  }
  return { tables: [...tables].sort(), indexes: [...indexes].sort() };
}

const schemaObject = z.object({ kind: z.enum(['table', 'index']), name: z.string() });

/** The tables and indexes of `public` that the control plane owns (a tenant's own never stand in for them). */
const SCHEMA_OBJECTS = `SELECT 'table' AS kind, tablename AS name FROM pg_catalog.pg_tables
  WHERE schemaname = 'public' AND tableowner = current_user
  UNION ALL
  SELECT 'index' AS kind, i.indexname AS name FROM pg_catalog.pg_indexes i
  JOIN pg_catalog.pg_tables t ON t.schemaname = i.schemaname AND t.tablename = i.tablename
  WHERE i.schemaname = 'public' AND t.tableowner = current_user`;

/** Throws {@link SchemaValidationError} naming every promised table or index not among `present`. */
function checkSchema(expected: SchemaObjects, present: ReadonlySet<string>): void {
  const missing = [
    ...expected.tables.map((name) => `table ${name}`),
    ...expected.indexes.map((name) => `index ${name}`),
  ].filter((object) => !present.has(object));
  if (missing.length > 0) {
    throw new SchemaValidationError(`The tenant database lacks ${missing.join(', ')}`);
  }
}

/** Seed 002's validate step: throws {@link SchemaValidationError} naming every promised table or index missing. */
export async function validateTenantSchema(db: Sql, expected: SchemaObjects): Promise<void> {
  const rows = await db.query(SCHEMA_OBJECTS, {}, schemaObject);
  checkSchema(expected, new Set(rows.map((row) => `${row.kind} ${row.name}`)));
}

const inspected = z.object({ kind: z.enum(['table', 'index', 'version']), name: z.string() });

/**
 * The database's schema version and tables and indexes, in one query; undefined when it has no
 * `schema_migrations` (never migrated).
 */
async function inspectSchema(db: Sql): Promise<{ version: number; present: Set<string> } | undefined> {
  let rows: z.infer<typeof inspected>[];
  try {
    rows = await db.query(
      `${SCHEMA_OBJECTS}
       UNION ALL
       SELECT 'version' AS kind, coalesce(max(version), 0)::text AS name FROM public.schema_migrations`,
      {},
      inspected,
    );
  } catch (error) {
    if (hasState(error, UNDEFINED_TABLE)) return undefined;
    throw error;
  }
  const version = Number(rows.find((row) => row.kind === 'version')?.name ?? 0);
  return { version, present: new Set(rows.map((row) => `${row.kind} ${row.name}`)) };
}

/** What a failed {@link sealStatements} check raises, before the list of what is missing. */
const INCOMPLETE = 'tenant-provisioner: the tenant database lacks ';

/**
 * The end of a migration, as PL/pgSQL statements run in its transaction: every promised table and index must exist
 * (else it is undone and {@link SchemaValidationError} names what is missing), and the database's comment names the
 * tenant and the version, for a person looking at it (`\l+` in psql).
 */
function sealStatements(expected: SchemaObjects, tenantId: string, version: number): string[] {
  const promised = [
    ...expected.tables.map((name) => `('table', ${literal(name)}, '{r,p}')`),
    ...expected.indexes.map((name) => `('index', ${literal(name)}, '{i,I}')`),
  ];
  return [
    '  DECLARE missing text; BEGIN',
    `    SELECT string_agg(kind || ' ' || name, ', ') INTO missing
     FROM (VALUES ${promised.join(', ')}) AS promised (kind, name, relkinds)
     WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_class WHERE relnamespace = 'public'::regnamespace
       AND relname = promised.name AND relkind = ANY (promised.relkinds::"char"[])
       AND pg_catalog.pg_get_userbyid(relowner) = current_user);`,
    `    IF missing IS NOT NULL THEN RAISE EXCEPTION '${INCOMPLETE}%', missing; END IF;`,
    `    EXECUTE format('COMMENT ON DATABASE %I IS %L', current_database(), ${literal(commentOf(tenantId, version))});`,
    '  END;',
  ];
}

const commentOf = (tenantId: string, version: number) => `Tenant ${tenantId}, template version ${version}`;

/**
 * Brings the tenant database to the template's latest version (each migration in its own transaction, its version
 * recorded in the database's `schema_migrations`), checks that every promised table and index exists, and notes
 * the tenant and version on the database itself. A database already at the latest version (a copy of the template,
 * a tenant migrated before) is checked with one query.
 *
 * `registryVersion`, the version the registry has for the tenant, lets a fleet migration skip that query: the
 * migrations after it go at once, the last one with the check and the note in its transaction, so a tenant one
 * version behind costs one Data API call. Should the database be elsewhere (a migration refuses to follow another
 * version than its own predecessor), it is looked at and migrated from where it is.
 */
export async function migrateTenantDatabase(
  cluster: DataApi,
  tenantId: string,
  migrations: readonly Migration[],
  registryVersion?: number,
): Promise<{ version: number; applied: number[] }> {
  const name = databaseName(tenantId);
  const db = TenantDatabase.of(cluster, tenantId);
  const expected = expectedObjects(migrations);
  const latest = migrations.at(-1)?.version ?? 0;
  const then = sealStatements(expected, tenantId, latest);
  try {
    if (registryVersion !== undefined && registryVersion < latest) {
      try {
        return await applyMigrations(db, migrations, { version: registryVersion, then });
      } catch (error) {
        if (!(error instanceof MigrationOrderError)) throw error;
      }
    }
    const current = await inspectSchema(db);
    if (current && current.version >= latest) {
      checkSchema(expected, current.present);
      await db.execute(
        `COMMENT ON DATABASE ${ident(name)} IS ${literal(commentOf(tenantId, current.version))}`,
      );
      return { version: current.version, applied: [] };
    }
    return await applyMigrations(db, migrations, { ...(current ? { version: current.version } : {}), then });
  } catch (error) {
    const missing =
      error instanceof Error ? error.message.split(INCOMPLETE)[1]?.split(/[\n;]/)[0] : undefined;
    if (missing) throw new SchemaValidationError(`The tenant database lacks ${missing}`);
    throw error;
  }
}
