import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { DataApi } from './data-api.ts';

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

const LOCK_KEY = 7_100_001;

/**
 * Applies the migrations a database lacks, each in its own transaction with its version recorded in
 * `schema_migrations`. Runners racing on one database serialise on an advisory lock, so each version is
 * applied once. Returns the versions applied and the version the database is at.
 */
export async function applyMigrations(
  db: DataApi,
  migrations: readonly Migration[],
): Promise<{ applied: number[]; version: number }> {
  await db.execute(
    `CREATE TABLE IF NOT EXISTS schema_migrations (
       version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
  );
  const applied: number[] = [];
  let version = await currentVersion(db);
  for (const migration of migrations) {
    if (migration.version <= version) continue;
    const done = await db.transaction(async (tx) => {
      await tx.execute('SELECT pg_advisory_xact_lock(:key)', { key: LOCK_KEY });
      if ((await currentVersion(tx)) >= migration.version) return false;
      for (const statement of migration.statements) await tx.execute(statement);
      await tx.execute('INSERT INTO schema_migrations (version, name) VALUES (:version, :name)', {
        version: migration.version,
        name: migration.name,
      });
      return true;
    });
    if (done) applied.push(migration.version);
    version = migration.version;
  }
  return { applied, version };
}

export async function currentVersion(db: DataApi): Promise<number> {
  const [row] = await db.query(
    'SELECT coalesce(max(version), 0)::int AS version FROM schema_migrations',
    {},
    z.object({ version: z.number() }),
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
