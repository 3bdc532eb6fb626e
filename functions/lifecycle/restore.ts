import { createHash } from 'node:crypto';
import { ident } from '../../schema/names.ts';
import * as z from '../../schema/zod.ts';
import { expectedObjects, recreateEmptyTenantDatabase, validateTenantSchema } from '../provision/database.ts';
import type { DataApi, Sql } from '../shared/data-api.ts';
import { BackupCorruptError, BackupVerificationError } from '../shared/errors.ts';
import { applyMigrations, currentVersion, type Migration } from '../shared/migrations.ts';
import { publicTable, TenantDatabase } from '../shared/tenant-db.ts';
import {
  type BackupDeps,
  beginCanonicalSnapshot,
  canonicalTable,
  listTables,
  type Manifest,
  type ManifestTable,
  readManifest,
  readObject,
} from './backup.ts';

/**
 * Brings a fresh tenant database to the template as it was at `version` (the backup's), not further: the data of a
 * backup fits the schema it was taken from. Later migrations are applied after the data is loaded and verified.
 */
export async function restoreTenantSchema(
  cluster: DataApi,
  tenantId: string,
  migrations: readonly Migration[],
  version: number,
): Promise<{ version: number; applied: number[] }> {
  const latest = migrations.length;
  if (version > latest) {
    throw new BackupCorruptError(
      `The backup is at template version ${version}, newer than this deployment's (${latest}); deploy the newer template first`,
    );
  }
  const template = migrations.slice(0, version);
  // CreateDatabase copied the latest template: a backup of an older version starts from an empty database.
  if ((await currentVersion(TenantDatabase.of(cluster, tenantId))) > version) {
    await recreateEmptyTenantDatabase(cluster, tenantId);
  }
  const db = TenantDatabase.of(cluster, tenantId);
  const result = await applyMigrations(db, template);
  await validateTenantSchema(db, expectedObjects(template));
  return result;
}

/** Tables in an order that loads each after those it references (foreign keys); the manifest's order otherwise. */
export function loadOrder(tables: readonly ManifestTable[]): ManifestTable[] {
  const byName = new Map(tables.map((table) => [table.name, table]));
  const ordered: ManifestTable[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (table: ManifestTable) => {
    const seen = state.get(table.name);
    if (seen === 'done') return;
    if (seen === 'visiting') throw new BackupCorruptError(`Foreign keys form a cycle through ${table.name}`);
    state.set(table.name, 'visiting');
    for (const name of table.references) {
      const referenced = byName.get(name);
      if (referenced) visit(referenced);
    }
    state.set(table.name, 'done');
    ordered.push(table);
  };
  for (const table of tables) visit(table);
  return ordered;
}

/** Characters of JSON a load statement carries at most. */
const LOAD_BATCH_CHARS = 256 * 1024;

/** A data file's lines, after checking its size, line count and sha256 against the manifest. */
function verifiedLines(table: ManifestTable, data: Buffer): string[] {
  const sha256 = createHash('sha256').update(data).digest('hex');
  if (data.length !== table.bytes || sha256 !== table.sha256) {
    throw new BackupCorruptError(
      `The data of ${table.name} does not match the manifest (sha256 ${sha256}, ${data.length} bytes; expected ${table.sha256}, ${table.bytes})`,
    );
  }
  const text = data.toString('utf8');
  const lines = text === '' ? [] : text.slice(0, -1).split('\n');
  if (lines.length !== table.rows) {
    throw new BackupCorruptError(
      `${table.name}: ${lines.length} rows in the data, ${table.rows} in the manifest`,
    );
  }
  return lines;
}

/** Loads one table's rows, batch by batch, as the table's own row type reads them (`json_populate_recordset`). */
async function loadTable(tx: Sql, table: ManifestTable, lines: readonly string[]): Promise<void> {
  const columns = table.columns.filter((column) => !column.generated).map((column) => ident(column.name));
  const target = publicTable(table.name);
  const sql = `INSERT INTO ${target} (${columns.join(', ')}) OVERRIDING SYSTEM VALUE
    SELECT ${columns.join(', ')} FROM pg_catalog.json_populate_recordset(NULL::${target}, CAST(:rows AS json))`;
  let batch: string[] = [];
  let size = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    await tx.execute(sql, { rows: `[${batch.join(',')}]` });
    batch = [];
    size = 0;
  };
  for (const line of lines) {
    if (size + line.length > LOAD_BATCH_CHARS) await flush();
    batch.push(line);
    size += line.length + 1;
  }
  await flush();
}

const count = z.object({ n: z.coerce.number() });

/** Sets each identity or serial sequence past the largest value loaded, so that new rows do not collide. */
async function resetSequences(tx: Sql, table: ManifestTable): Promise<void> {
  for (const column of table.columns) {
    if (!column.sequence) continue;
    await tx.execute(
      `SELECT pg_catalog.setval(CAST(:sequence AS regclass),
         (coalesce((SELECT max(${ident(column.name)}) FROM ${publicTable(table.name)}), 0) + 1)::bigint, false)`,
      { sequence: column.sequence },
    );
  }
}

export interface RestoreResult {
  readonly tables: number;
  readonly rows: number;
  /** Whether this call loaded the data (false: an earlier attempt had, and only the check ran). */
  readonly loaded: boolean;
}

/**
 * Loads a backup into the new tenant's database (at the backup's template version, empty) and checks it: every
 * data file against the manifest first (sha256, size, rows), then, in one transaction, each table in foreign-key
 * order and its sequences reset, and last the database read back canonically, which must give the manifest's row
 * count and sha256 for every table, else a {@link BackupVerificationError} naming each mismatch (the run then undoes
 * the new tenant). A rerun after a committed load only checks.
 */
export async function restoreBackup(
  deps: Pick<BackupDeps, 'cluster' | 's3' | 'bucket'>,
  tenantId: string,
  source: { tenantId: string; backupId: string },
): Promise<RestoreResult> {
  const manifest: Manifest = await readManifest(deps, source.tenantId, source.backupId);
  const db = TenantDatabase.of(deps.cluster, tenantId);
  const present = new Map((await listTables(db)).map((table) => [table.name, table]));
  const missing = manifest.tables.filter((table) => !present.has(table.name)).map((table) => table.name);
  if (missing.length > 0) {
    throw new BackupVerificationError(
      `The template at version ${manifest.schemaVersion} has no table ${missing.join(', ')} (made outside the template?)`,
    );
  }
  for (const table of manifest.tables) {
    const columns = present
      .get(table.name)
      ?.columns.map((column) => column.name)
      .join(',');
    if (columns !== table.columns.map((column) => column.name).join(',')) {
      throw new BackupVerificationError(`${table.name}: the columns differ from the backup's`);
    }
  }
  const [existing] = await db.query(
    `SELECT (${manifest.tables.map((table) => `(SELECT count(*) FROM ${publicTable(table.name)})`).join(' + ') || '0'})::int AS n`,
    {},
    count,
  );
  const loaded = (existing?.n ?? 0) === 0;
  if (loaded) {
    const data = new Map<string, string[]>();
    for (const table of manifest.tables) {
      data.set(table.name, verifiedLines(table, await readObject(deps.s3, deps.bucket, table.key)));
    }
    await db.transaction(async (tx) => {
      for (const table of loadOrder(manifest.tables)) {
        await loadTable(tx, table, data.get(table.name) ?? []);
        await resetSequences(tx, table);
      }
    });
  }
  await verifyAgainstManifest(db, manifest);
  return {
    tables: manifest.tables.length,
    rows: manifest.tables.reduce((sum, table) => sum + table.rows, 0),
    loaded,
  };
}

/** Reads every table of the manifest back canonically; a {@link BackupVerificationError} lists what differs. */
export async function verifyAgainstManifest(db: Sql, manifest: Manifest): Promise<void> {
  const mismatches = await db.transaction(async (tx) => {
    await beginCanonicalSnapshot(tx);
    const found: string[] = [];
    for (const table of manifest.tables) {
      const { rows, sha256 } = await canonicalTable(tx, table);
      if (rows !== table.rows) found.push(`${table.name}: ${rows} rows, the backup has ${table.rows}`);
      else if (sha256 !== table.sha256)
        found.push(`${table.name}: checksum ${sha256}, the backup has ${table.sha256}`);
    }
    return found;
  });
  if (mismatches.length > 0) {
    throw new BackupVerificationError(
      `The restored database differs from the backup: ${mismatches.join('; ')}`,
    );
  }
}
