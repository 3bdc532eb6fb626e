import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { literal } from '../../schema/names.ts';
import * as z from '../../schema/zod.ts';
import type { Sql } from './data-api.ts';

/** One numbered, forward-only migration: `schema/<set>/NNNN_name.sql`. */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly statements: readonly string[];
}

const FILE_PATTERN = /^(\d{4})_([a-z0-9_]+)\.sql$/;

/** Reads a migration folder, in version order; refuses gaps and duplicates. */
export async function loadMigrations(dir: string): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((file) => file.endsWith('.sql')).sort();
  const migrations: Migration[] = [];
  for (const file of files) {
    const match = FILE_PATTERN.exec(file);
    if (!match) throw new Error(`${file}: migration files are named NNNN_name.sql`);
    const version = Number(match[1]);
    if (version !== migrations.length + 1)
      throw new Error(`${file}: expected version ${migrations.length + 1}`);
    migrations.push({
      version,
      name: match[2] ?? file,
      statements: splitStatements(await readFile(join(dir, file), 'utf8')),
    });
  }
  return migrations;
}

/**
 * The advisory lock runners on one database serialise on, called exactly: an integer argument would let an
 * `integer` overload made anywhere on the search path win over pg_catalog's `bigint` one (CVE-2018-1058).
 */
const LOCK_KEY = '7100001::bigint';
const LOCK = `pg_catalog.pg_advisory_xact_lock(${LOCK_KEY})`;
/** SQLSTATE 42P01, undefined_table, as the Data API reports it in the message. */
const UNDEFINED_TABLE = 'SQLState: 42P01';

/**
 * Applies the migrations a database lacks, each in its own transaction with its version recorded in
 * `schema_migrations`. Runners racing on one database serialise on an advisory lock, so each version is
 * applied once. Returns the versions applied and the version the database is at. `version`, when the caller
 * has just read it (or knows it from elsewhere), saves reading it again: a migration finds the database at another
 * version than the one before its own refuses with {@link MigrationOrderError}, and one applied already is skipped.
 *
 * A migration's statements go as one: a DO block that takes the lock, checks the version, runs them and records
 * the version. One statement is one transaction, so the block is sent alone, without BeginTransaction: one Data
 * API call whatever the migration's length, instead of four and one a statement (and no second connection for a
 * transaction). A migration too long for one call goes statement by statement in a transaction. The block runs
 * on past the Data API's 45 s call timeout (continueAfterTimeout) and its outcome is awaited; the statements of a
 * migration too long for one block each have 45 s (a transaction's statement cannot run on while the transaction
 * waits: its next call would be refused).
 *
 * `then`, PL/pgSQL statements, run in the transaction of the last migration, after it (a check that fails undoes
 * that migration with it), or in a DO block of their own when this call applies none.
 */
export async function applyMigrations(
  db: Sql,
  migrations: readonly Migration[],
  options: { readonly version?: number; readonly then?: readonly string[] } = {},
): Promise<{ applied: number[]; version: number }> {
  const applied: number[] = [];
  // The table is made the first time only: a database that has it (nearly always) costs one query here, not two.
  let version =
    options.version ??
    (await currentVersion(db).catch(async (error: unknown) => {
      if (!(error instanceof Error && error.message.includes(UNDEFINED_TABLE))) throw error;
      await db.execute(
        `CREATE TABLE IF NOT EXISTS public.schema_migrations (
           version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
      );
      return 0;
    }));
  const then = options.then ?? [];
  const last = migrations.at(-1);
  let thenRan = then.length === 0;
  for (const migration of migrations) {
    if (migration.version <= version) continue;
    const tail = migration === last ? then : [];
    if (await applyMigration(db, migration, tail)) {
      applied.push(migration.version);
      thenRan ||= tail.length > 0;
    }
    version = migration.version;
  }
  if (!thenRan) await db.execute(doBlock(db, then));
  return { applied, version };
}

/** Raised by a migration's DO block when the database has the version already (a racing runner applied it). */
const ALREADY_APPLIED = 'tenant-provisioner: migration already applied';
/** Raised by a migration's DO block when the database is not at the version before it. */
const OUT_OF_ORDER = 'tenant-provisioner: the database is at version';
/** Room left for the Data API's other parameters under its 64 KB SQL limit. */
const MAX_BLOCK_LENGTH = 60_000;

/** A migration found its database at another version than the one before it; nothing was changed. */
export class MigrationOrderError extends Error {
  override readonly name = 'MigrationOrderError';
}

/** Applies one migration unless the database has it, then `then`; says whether this call applied it. */
async function applyMigration(db: Sql, migration: Migration, then: readonly string[]): Promise<boolean> {
  const block = migrationBlock(migration, then, db.blockPrologue);
  if (block !== undefined && block.length <= MAX_BLOCK_LENGTH) {
    // One statement, so one transaction of its own without a transactionId (the Data API autocommits each
    // statement): all of the migration and its schema_migrations row, or none of it. One call, not three.
    try {
      // DDL may outlast the Data API's 45 s call: it runs on, and its outcome is awaited, not guessed.
      await db.execute(block, {}, { continueAfterTimeout: true });
      return true;
    } catch (error) {
      if (error instanceof Error && error.name === STATEMENT_TIMEOUT) {
        return awaitMigration(db, migration.version);
      }
      // Rolled back: a racing runner had applied it.
      if (error instanceof Error && error.message.includes(ALREADY_APPLIED)) return false;
      if (error instanceof Error && error.message.includes(OUT_OF_ORDER)) {
        throw new MigrationOrderError(`Migration ${migration.version}: ${firstLine(error.message)}`);
      }
      throw error;
    }
  }
  return db.transaction(async (tx) => {
    await tx.execute(`SELECT ${LOCK}`);
    const current = await currentVersion(tx);
    if (current >= migration.version) return false;
    if (current !== migration.version - 1) {
      throw new MigrationOrderError(
        `Migration ${migration.version}: ${OUT_OF_ORDER} ${current}, not ${migration.version - 1}`,
      );
    }
    for (const statement of migration.statements) await tx.execute(statement);
    await tx.execute('INSERT INTO public.schema_migrations (version, name) VALUES (:version, :name)', {
      version: migration.version,
      name: migration.name,
    });
    if (then.length > 0) await tx.execute(doBlock(tx, then));
    return true;
  });
}

/** The Data API's answer to a call that ran past 45 s ("Controlling Data API timeout behavior"). */
const STATEMENT_TIMEOUT = 'StatementTimeoutException';
/**
 * How often {@link awaitMigration} looks, and for how long at most: after the 45 s call, within the 120 s of the
 * ApplyMigrations function. Longer, the step fails with {@link MigrationStillRunningError}; a rerun of the step (or
 * of the fleet migration) finds the migration applied or waits for it again.
 */
const AWAIT_POLL_MS = 2_000;
const AWAIT_MAX_MS = 60_000;

/** A migration's block still ran when this call stopped waiting for it; a rerun waits for it again. */
export class MigrationStillRunningError extends Error {
  override readonly name = 'MigrationStillRunningError';
}

/** A migration's block that outlasted its call ended without recording its version: rolled back. */
export class MigrationFailedError extends Error {
  override readonly name = 'MigrationFailedError';
}

/**
 * Waits for the outcome of a migration block that outlasted its call and runs on (continueAfterTimeout). The block
 * holds the runners' advisory lock until it commits or rolls back: while the lock is taken it is still running (or
 * a racing runner is, which comes to the same); once it is free, the version in schema_migrations says whether it
 * committed. `pg_try_advisory_xact_lock` in a statement of its own takes the lock only for that statement, and never
 * waits. True once the version is recorded (by this block or by a racing runner's: the database has it either way).
 */
async function awaitMigration(db: Sql, version: number, maxMs = AWAIT_MAX_MS): Promise<boolean> {
  const deadline = Date.now() + maxMs;
  for (;;) {
    const [state] = await db.query(
      `SELECT pg_catalog.pg_try_advisory_xact_lock(${LOCK_KEY}) AS free,
              EXISTS (SELECT 1 FROM public.schema_migrations WHERE version = :version) AS applied`,
      { version },
      MigrationState,
    );
    if (state?.applied) return true;
    if (state?.free) {
      throw new MigrationFailedError(
        `Migration ${version} ran past the Data API's 45 s call and then rolled back; nothing of it was kept`,
      );
    }
    if (Date.now() >= deadline) {
      throw new MigrationStillRunningError(
        `Migration ${version} still runs after ${Math.round(maxMs / 1000)} s; a rerun waits for it`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, AWAIT_POLL_MS));
  }
}

const MigrationState = z.object({ free: z.boolean(), applied: z.boolean() });

const firstLine = (message: string): string => message.split('\n')[0]?.replace(/^ERROR:\s*/, '') ?? message;

/** PL/pgSQL statements as one anonymous block, after the prologue of whatever runs it. */
const doBlock = (db: Sql, body: readonly string[]): string =>
  ['DO $block$ BEGIN', ...(db.blockPrologue ?? []), ...body, 'END $block$'].join('\n');

/**
 * The migration as one DO block: each statement run by EXECUTE from a dollar-quoted string (so that any SQL, even
 * one with dollar quotes of its own, goes as written), under a tag no statement contains, then `then`. Undefined
 * when no such tag is found (not in practice).
 */
export function migrationBlock(
  migration: Migration,
  then: readonly string[] = [],
  prologue: readonly string[] = [],
): string | undefined {
  const text = migration.statements.join('\n');
  const tag = ['$migration$', ...Array.from({ length: 8 }, (_, i) => `$migration_${i}$`)].find(
    (candidate) => !text.includes(candidate),
  );
  const outer = '$block$';
  if (!tag || text.includes(outer) || then.some((statement) => statement.includes(outer))) return undefined;
  const previous = migration.version - 1;
  return [
    `DO ${outer} DECLARE current integer; BEGIN`,
    ...prologue,
    `  PERFORM ${LOCK};`,
    '  SELECT coalesce(max(version), 0) INTO current FROM public.schema_migrations;',
    `  IF current >= ${migration.version} THEN`,
    `    RAISE EXCEPTION ${literal(ALREADY_APPLIED)};`,
    `  ELSIF current <> ${previous} THEN`,
    `    RAISE EXCEPTION '${OUT_OF_ORDER} %, not ${previous}', current;`,
    '  END IF;',
    ...migration.statements.map((statement) => `  EXECUTE ${tag}${statement}${tag};`),
    `  INSERT INTO public.schema_migrations (version, name) VALUES (${migration.version}, ${literal(migration.name)});`,
    ...then,
    `END ${outer}`,
  ].join('\n');
}

const VersionRow = z.object({ version: z.number() });

export async function currentVersion(db: Sql): Promise<number> {
  const [row] = await db.query(
    'SELECT coalesce(max(version), 0)::int AS version FROM public.schema_migrations',
    {},
    VersionRow,
  );
  return row?.version ?? 0;
}

/**
 * Splits a SQL script into statements at top-level semicolons, leaving alone those inside quotes,
 * quoted identifiers, dollar-quoted bodies and comments. The Data API runs one statement a call.
 */
export function splitStatements(script: string): string[] {
  const statements: string[] = [];
  let start = 0;
  let i = 0;
  const skipTo = (end: string, from: number) => {
    const found = script.indexOf(end, from);
    return found === -1 ? script.length : found + end.length;
  };
  while (i < script.length) {
    const char = script[i];
    const next = script[i + 1];
    if (char === "'" || char === '"') {
      i = skipTo(char, i + 1);
    } else if (char === '-' && next === '-') {
      i = skipTo('\n', i);
    } else if (char === '/' && next === '*') {
      i = skipTo('*/', i + 2);
    } else if (char === '$') {
      const tag = /^\$[A-Za-z_]*\$/.exec(script.slice(i))?.[0];
      i = tag ? skipTo(tag, i + tag.length) : i + 1;
    } else if (char === ';') {
      statements.push(script.slice(start, i));
      i += 1;
      start = i;
    } else {
      i += 1;
    }
  }
  statements.push(script.slice(start));
  return statements.map(stripComments).filter((statement) => statement.length > 0);
}

/** Drops whole-line comments and blank edges, so an all-comment tail is no statement. */
function stripComments(statement: string): string {
  return statement
    .split('\n')
    .filter((line) => !line.trim().startsWith('--'))
    .join('\n')
    .trim();
}
