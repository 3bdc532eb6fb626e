import { z } from 'zod';
import type { DataApi } from '../shared/data-api.ts';
import { SchemaValidationError } from '../shared/errors.ts';
import { applyMigrations, type Migration } from '../shared/migrations.ts';
import { databaseName, ident } from '../shared/names.ts';

/** SQLSTATE 42P04, duplicate_database, as the Data API reports it in the message. */
const DUPLICATE_DATABASE = 'SQLState: 42P04';

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

/**
 * Creates `tenant_<id>` with the plan's connection limit, owned by the provisioner (who runs the migrations and so
 * owns every object of the template), and closes it to PUBLIC: no CONNECT or TEMPORARY on the database, nothing on
 * its `public` schema. Each tenant role gets exactly its grants later. Idempotent: an existing database gets the
 * limit and the revocations again. `cluster` is the provisioner on any database; CREATE DATABASE runs outside a
 * transaction, as the Data API runs a statement without a transaction id.
 */
export async function createTenantDatabase(
  cluster: DataApi,
  tenantId: string,
  connectionLimit: number,
): Promise<{ name: string }> {
  const name = databaseName(tenantId);
  const limit = z.int().min(1).parse(connectionLimit);
  if (await databaseExists(cluster, name)) {
    await cluster.execute(`ALTER DATABASE ${ident(name)} CONNECTION LIMIT ${limit}`);
  } else {
    await cluster
      .execute(`CREATE DATABASE ${ident(name)} CONNECTION LIMIT ${limit}`)
      .catch(async (error: unknown) => {
        // Created by an earlier attempt whose answer was lost between our check and here.
        if (!(error instanceof Error && error.message.includes(DUPLICATE_DATABASE))) throw error;
        await cluster.execute(`ALTER DATABASE ${ident(name)} CONNECTION LIMIT ${limit}`);
      });
  }
  await cluster.execute(`REVOKE CONNECT, TEMPORARY ON DATABASE ${ident(name)} FROM PUBLIC`);
  await cluster.on(name).execute('REVOKE ALL ON SCHEMA public FROM PUBLIC');
  return { name };
}

/**
 * Drops the tenant database, ending any session still in it (WITH (FORCE)); nothing to do when it is gone.
 * The name is derived from the id, so a database whose creation was never recorded goes too.
 */
export async function dropTenantDatabase(cluster: DataApi, tenantId: string): Promise<{ dropped: string }> {
  const name = databaseName(tenantId);
  await cluster.execute(`DROP DATABASE IF EXISTS ${ident(name)} WITH (FORCE)`);
  return { dropped: name };
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

/** Seed 002's validate step: throws {@link SchemaValidationError} naming every promised table or index missing. */
export async function validateTenantSchema(db: DataApi, expected: SchemaObjects): Promise<void> {
  const rows = await db.query(
    `SELECT 'table' AS kind, tablename AS name FROM pg_tables WHERE schemaname = 'public'
     UNION ALL
     SELECT 'index' AS kind, indexname AS name FROM pg_indexes WHERE schemaname = 'public'`,
    {},
    schemaObject,
  );
  const present = new Set(rows.map((row) => `${row.kind} ${row.name}`));
  const missing = [
    ...expected.tables.map((name) => `table ${name}`),
    ...expected.indexes.map((name) => `index ${name}`),
  ].filter((object) => !present.has(object));
  if (missing.length > 0) {
    throw new SchemaValidationError(`The tenant database lacks ${missing.join(', ')}`);
  }
}

/**
 * Brings the tenant database to the template's latest version (each migration in its own transaction, its version
 * recorded in the database's `schema_migrations`), checks that every promised table and index exists, and notes
 * the tenant and version on the database itself, for a person looking at it (`\l+` in psql).
 */
export async function migrateTenantDatabase(
  cluster: DataApi,
  tenantId: string,
  migrations: readonly Migration[],
): Promise<{ version: number; applied: number[] }> {
  const name = databaseName(tenantId);
  const db = cluster.on(name);
  const { version, applied } = await applyMigrations(db, migrations);
  await validateTenantSchema(db, expectedObjects(migrations));
  await db.execute(
    `COMMENT ON DATABASE ${ident(name)} IS ${literal(`Tenant ${tenantId}, template version ${version}`)}`,
  );
  return { version, applied };
}

/** An SQL string literal; utility statements (COMMENT, CREATE ROLE) take no bind parameters. */
export const literal = (value: string): string => `'${value.replaceAll("'", "''")}'`;
