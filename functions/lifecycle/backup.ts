import { createHash } from 'node:crypto';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { BACKUP_KINDS, BackupId } from '../../schema/api/lifecycle.ts';
import { databaseName, ident } from '../../schema/names.ts';
import * as z from '../../schema/zod.ts';
import { databaseExists } from '../provision/database.ts';
import { deleteVersionsUnder } from '../provision/storage.ts';
import type { DataApi, Sql } from '../shared/data-api.ts';
import { BackupCorruptError } from '../shared/errors.ts';
import { currentVersion } from '../shared/migrations.ts';
import { type BackupRetentionDays, backupTags, taggingHeader, tenantEncryption } from '../shared/storage.ts';
import { publicTable, TenantDatabase } from '../shared/tenant-db.ts';

/**
 * Logical backups of a tenant database through the Data API: every table as JSON lines (one `row_to_json` text a
 * row, in primary-key order, read in pages inside one REPEATABLE READ snapshot, so the tables agree with each
 * other), plus a manifest with the schema version, each table's row count and the sha256 of its data file, under
 * `backups/<tenantId>/<backupId>/`. The same canonical reading of a restored database must give the same counts and
 * checksums, which is how a restore is verified.
 */

export const BACKUP_FORMAT = 'tenant-provisioner-backup/1';
export const BACKUPS_ROOT = 'backups/';
export const backupPrefix = (tenantId: string, backupId: string): string =>
  `${BACKUPS_ROOT}${tenantId}/${backupId}/`;
export const MANIFEST_NAME = 'manifest.json';

/**
 * A page of a table is cut by bytes, not rows: the Data API refuses a result over 1 MiB and a row over 64 KB
 * ("Limitations for the Amazon RDS Data API"). A page query reads at most {@link PAGE_ROWS} rows and returns the
 * longest run of them whose texts (and keys) add up to {@link PAGE_BYTES}, at least one; a row whose text is longer
 * than {@link ROW_BYTES} comes back without it and is read in pieces of {@link PIECE_CHARS} characters (at most 4
 * bytes each in UTF-8), so that no answer comes near either limit and no row is left out.
 */
export const PAGE_ROWS = 500;
export const PAGE_BYTES = 512 * 1024;
export const ROW_BYTES = 48 * 1024;
export const PIECE_CHARS = 12 * 1024;

const Column = z.object({
  name: z.string(),
  type: z.string(),
  /** An identity column: loaded with OVERRIDING SYSTEM VALUE, its sequence reset after. */
  identity: z.boolean(),
  /** A generated (stored) column: computed on load, never inserted. */
  generated: z.boolean(),
  /** The column's sequence (identity or serial), if any. */
  sequence: z.nullable(z.string()),
});
export type Column = z.infer<typeof Column>;

export const TableSpec = z.object({
  name: z.string(),
  columns: z.array(Column),
  /** Primary key columns in key order; empty when the table has none (rows are then ordered by their text). */
  primaryKey: z.array(z.string()),
  /** Tables this one references (foreign keys), loaded before it. */
  references: z.array(z.string()),
});
export type TableSpec = z.infer<typeof TableSpec>;

export const ManifestTable = z.extend(TableSpec, {
  key: z.string(),
  rows: z.int().check(z.minimum(0)),
  bytes: z.int().check(z.minimum(0)),
  sha256: z.string().check(z.regex(/^[0-9a-f]{64}$/)),
});
export type ManifestTable = z.infer<typeof ManifestTable>;

export const Manifest = z.object({
  format: z.literal(BACKUP_FORMAT),
  tenantId: z.string(),
  backupId: BackupId,
  kind: z.enum(BACKUP_KINDS),
  database: z.string(),
  schemaVersion: z.int().check(z.minimum(0)),
  completedAt: z.string(),
  tables: z.array(ManifestTable),
  /** Tables of `public` a tenant role owns (made before tenant roles lost CREATE there): not read, see tenant-db.ts. */
  skipped: z.optional(z.array(z.string())),
});
export type Manifest = z.infer<typeof Manifest>;

const jsonText = <T>(schema: z.ZodMiniType<T>) =>
  z.pipe(
    z.pipe(
      z.nullable(z.string()),
      z.transform((text) => (text === null ? [] : (JSON.parse(text) as unknown))),
    ),
    schema,
  );

const TableRow = z.pipe(
  z.object({
    name: z.string(),
    columns: jsonText(z.array(Column)),
    primary_key: jsonText(z.array(z.string())),
    refs: jsonText(z.array(z.string())),
  }),
  z.transform(
    (row): TableSpec => ({
      name: row.name,
      columns: row.columns,
      primaryKey: row.primary_key,
      references: row.refs,
    }),
  ),
);

/** The tables of `public` a backup considers (`c` is pg_class, `n` pg_namespace), whoever owns them. */
const PUBLIC_TABLES = `n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
       AND c.relname <> 'schema_migrations'`;

/**
 * The control plane's tables of the `public` schema (the migrations'; not the runner's own `schema_migrations`, not
 * any a tenant role owns), with what loading them needs.
 */
export async function listTables(db: Sql): Promise<TableSpec[]> {
  return db.query(
    `SELECT c.relname AS name,
       (SELECT json_agg(json_build_object(
            'name', a.attname,
            'type', format_type(a.atttypid, a.atttypmod),
            'identity', a.attidentity <> '',
            'generated', a.attgenerated <> '',
            'sequence', pg_get_serial_sequence(format('%I.%I', n.nspname, c.relname), a.attname))
          ORDER BY a.attnum)::text
        FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
       (SELECT json_agg(a.attname ORDER BY array_position(i.indkey::int2[], a.attnum))::text
        FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
        WHERE i.indrelid = c.oid AND i.indisprimary) AS primary_key,
       (SELECT json_agg(DISTINCT f.relname)::text FROM pg_constraint k JOIN pg_class f ON f.oid = k.confrelid
        WHERE k.conrelid = c.oid AND k.contype = 'f' AND k.confrelid <> c.oid) AS refs
     FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE ${PUBLIC_TABLES} AND pg_catalog.pg_get_userbyid(c.relowner) = current_user
     ORDER BY c.relname`,
    {},
    TableRow,
  );
}

/** Tables of `public` a tenant role owns: the control plane does not read them (`functions/shared/tenant-db.ts`). */
export async function foreignTables(db: Sql): Promise<string[]> {
  const rows = await db.query(
    `SELECT c.relname AS name FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE ${PUBLIC_TABLES} AND pg_catalog.pg_get_userbyid(c.relowner) <> current_user ORDER BY c.relname`,
    {},
    z.object({ name: z.string() }),
  );
  return rows.map((row) => row.name);
}

/**
 * The settings every canonical read runs under, so that a value has one text whoever reads it (a backup on one
 * cluster, its verification on another): UTC, ISO dates, shortest exact floats, hex bytea.
 */
export const CANONICAL_SETTINGS = [
  "SET LOCAL TimeZone = 'UTC'",
  "SET LOCAL DateStyle = 'ISO, YMD'",
  "SET LOCAL IntervalStyle = 'postgres'",
  'SET LOCAL extra_float_digits = 1',
  "SET LOCAL bytea_output = 'hex'",
] as const;

/** Opens a read-only snapshot with the canonical settings; the first statement of the transaction. */
export async function beginCanonicalSnapshot(tx: Sql): Promise<void> {
  await tx.execute('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY');
  for (const statement of CANONICAL_SETTINGS) await tx.execute(statement);
}

const PageRow = z.object({
  /** The row's text, or null when it is longer than ROW_BYTES (then read in pieces). */
  r: z.nullable(z.string()),
  /** The row's key, as a JSON array of texts. */
  k: z.string(),
  /** How many rows the page query read before it was cut to PAGE_BYTES. */
  read: z.number(),
});
const Piece = z.object({ p: z.nullable(z.string()) });

/**
 * A table's rows as canonical text (`row_to_json`), a page at a time: in primary-key order (keyset pagination:
 * each page starts after the last key of the previous one), or by the row text for a table without a key.
 * `tx` is a transaction opened by {@link beginCanonicalSnapshot}. Pages are cut by bytes (see {@link PAGE_BYTES});
 * how many rows the next page reads follows from what the last one could hold.
 */
export async function* canonicalRows(tx: Sql, table: TableSpec): AsyncGenerator<string[]> {
  // ONLY: a table's rows, not those of tables inheriting from it.
  const from = `ONLY ${publicTable(table.name)} AS t`;
  const keyed = table.primaryKey.length > 0;
  const keyColumns = table.primaryKey.map((name) => `t.${ident(name)}`);
  const keyTypes = table.primaryKey.map((name) => {
    const type = table.columns.find((column) => column.name === name)?.type;
    if (!type) throw new Error(`${table.name}: no column ${name} of its primary key`);
    return type;
  });
  const keyMatch = (prefix: string) =>
    `(${keyColumns.join(', ')}) = (${keyTypes.map((type, i) => `CAST(:${prefix}${i} AS ${type})`).join(', ')})`;
  const keyParams = (prefix: string, key: readonly string[]) =>
    Object.fromEntries(key.map((value, i) => [`${prefix}${i}`, value]));
  let last: string[] | undefined;
  let offset = 0;
  let limit = PAGE_ROWS;
  for (;;) {
    const order = keyed ? keyColumns.join(', ') : 'pg_catalog.row_to_json(t)::text';
    const after =
      keyed && last
        ? `WHERE (${keyColumns.join(', ')}) > (${keyTypes.map((type, i) => `CAST(:k${i} AS ${type})`).join(', ')})`
        : '';
    const window = keyed
      ? `ORDER BY ${order} LIMIT ${limit}`
      : `ORDER BY ${order} LIMIT ${limit} OFFSET ${offset}`;
    const key = keyed
      ? `pg_catalog.json_build_array(${keyColumns.map((c) => `${c}::text`).join(', ')})::text`
      : "'[]'";
    const page = await tx.query(
      `SELECT CASE WHEN s.n <= ${ROW_BYTES} THEN s.r END AS r, s.k, s.read::int AS read
       FROM (SELECT a.r, a.k, a.ord, a.n, pg_catalog.count(*) OVER () AS read,
               pg_catalog.sum(CASE WHEN a.n <= ${ROW_BYTES} THEN a.n ELSE 0 END + pg_catalog.octet_length(a.k))
                 OVER (ORDER BY a.ord) AS running
             FROM (SELECT b.r, b.k, b.ord, pg_catalog.octet_length(b.r) AS n
                   FROM (SELECT pg_catalog.row_to_json(t)::text AS r, ${key} AS k,
                           pg_catalog.row_number() OVER (ORDER BY ${order}) AS ord
                         FROM ${from} ${after} ${window}) AS b) AS a) AS s
       WHERE s.running <= ${PAGE_BYTES} OR s.ord = 1
       ORDER BY s.ord`,
      keyParams('k', last ?? []),
      PageRow,
    );
    const rows: string[] = [];
    for (const [index, row] of page.entries()) {
      if (row.r !== null) {
        rows.push(row.r);
        continue;
      }
      // Too long for one answer: the row's text in pieces, by its key (or its place in a table without one).
      const rowKey = z.array(z.string()).parse(JSON.parse(row.k));
      const source = keyed
        ? { sql: `FROM ${from} WHERE ${keyMatch('w')}`, params: keyParams('w', rowKey) }
        : { sql: `FROM ${from} ORDER BY ${order} LIMIT 1 OFFSET ${offset + index}`, params: {} };
      let text = '';
      for (let start = 1; ; start += PIECE_CHARS) {
        const [piece] = await tx.query(
          `SELECT pg_catalog.substr(s.r, ${start}, ${PIECE_CHARS}) AS p
           FROM (SELECT pg_catalog.row_to_json(t)::text AS r ${source.sql}) AS s`,
          source.params,
          Piece,
        );
        if (!piece || piece.p === null) throw new Error(`${table.name}: a row changed while it was read`);
        text += piece.p;
        if (piece.p.length < PIECE_CHARS) break;
      }
      rows.push(text);
    }
    if (rows.length > 0) yield rows;
    const read = page[0]?.read ?? 0;
    if (rows.length === read && read < limit) return;
    const lastRow = page.at(-1);
    if (!lastRow) return;
    if (keyed) last = z.array(z.string()).parse(JSON.parse(lastRow.k));
    offset += rows.length;
    // A page cut by bytes: read about as many as fitted next time; a full page that fitted: read more.
    limit =
      rows.length < read
        ? Math.max(1, Math.min(PAGE_ROWS, Math.ceil(rows.length * 1.5)))
        : Math.min(PAGE_ROWS, limit * 2);
  }
}

/** A table's canonical data: its JSON lines (each row and a newline), their count, bytes and sha256. */
export async function canonicalTable(
  tx: Sql,
  table: TableSpec,
): Promise<{ data: Buffer; rows: number; sha256: string }> {
  const chunks: Buffer[] = [];
  const hash = createHash('sha256');
  let rows = 0;
  for await (const page of canonicalRows(tx, table)) {
    const chunk = Buffer.from(page.map((row) => `${row}\n`).join(''), 'utf8');
    hash.update(chunk);
    chunks.push(chunk);
    rows += page.length;
  }
  return { data: Buffer.concat(chunks), rows, sha256: hash.digest('hex') };
}

export interface BackupDeps {
  /** The provisioner on any database of the cluster. */
  readonly cluster: DataApi;
  readonly s3: S3Client;
  readonly bucket: string;
  readonly stage: string;
  /** The stage's KMS key, for tenants whose encryption level is `enhanced`. */
  readonly keyArn: string;
}

export interface BackupRequest {
  readonly tenantId: string;
  readonly backupId: string;
  readonly kind: (typeof BACKUP_KINDS)[number];
  readonly encryptionLevel: 'standard' | 'enhanced';
  /** How long its objects are kept, by the bucket's backup rules (`backupLifecycleRules`): S3 counts from now. */
  readonly retentionDays: BackupRetentionDays;
}

/** What a completed backup is: where, and its totals (the manifest holds the rest). */
export interface BackupResult {
  readonly backupId: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly manifestKey: string;
  readonly manifestSha256: string;
  readonly schemaVersion: number;
  readonly tables: number;
  readonly rows: number;
  readonly bytes: number;
}

/**
 * Takes the backup: one read-only snapshot of the tenant database, each table's data file written as it is read,
 * then the manifest, written last (a folder without a manifest is an incomplete backup, which nothing lists).
 *
 * Only the control plane's own tables are read (`functions/shared/tenant-db.ts`): a table of `public` that a tenant
 * role owns is listed in the manifest as skipped.
 */
export async function backupTenantDatabase(deps: BackupDeps, request: BackupRequest): Promise<BackupResult> {
  const name = databaseName(request.tenantId);
  const db = TenantDatabase.of(deps.cluster, request.tenantId);
  const prefix = backupPrefix(request.tenantId, request.backupId);
  const put = (key: string, body: Buffer, contentType: string) =>
    deps.s3.send(
      new PutObjectCommand({
        Bucket: deps.bucket,
        Key: key,
        Body: body,
        ContentType: contentType,
        ...tenantEncryption(request.encryptionLevel, deps.keyArn, request.tenantId),
        Tagging: taggingHeader(
          backupTags({
            tenantId: request.tenantId,
            stage: deps.stage,
            backupId: request.backupId,
            kind: request.kind,
            retentionDays: request.retentionDays,
          }),
        ),
      }),
    );
  const { schemaVersion, tables, skipped } = await db.transaction(async (tx) => {
    await beginCanonicalSnapshot(tx);
    const schemaVersion = await currentVersion(tx);
    const written: ManifestTable[] = [];
    for (const table of await listTables(tx)) {
      const { data, rows, sha256 } = await canonicalTable(tx, table);
      const key = `${prefix}data/${encodeURIComponent(table.name)}.jsonl`;
      await put(key, data, 'application/x-ndjson');
      written.push({ ...table, key, rows, bytes: data.length, sha256 });
    }
    return { schemaVersion, tables: written, skipped: await foreignTables(tx) };
  });
  const manifest: Manifest = {
    format: BACKUP_FORMAT,
    tenantId: request.tenantId,
    backupId: request.backupId,
    kind: request.kind,
    database: name,
    schemaVersion,
    completedAt: new Date().toISOString(),
    tables,
    ...(skipped.length > 0 ? { skipped } : {}),
  };
  const body = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`, 'utf8');
  const manifestKey = `${prefix}${MANIFEST_NAME}`;
  await put(manifestKey, body, 'application/json');
  return {
    backupId: request.backupId,
    bucket: deps.bucket,
    prefix,
    manifestKey,
    manifestSha256: createHash('sha256').update(body).digest('hex'),
    schemaVersion,
    tables: tables.length,
    rows: tables.reduce((sum, table) => sum + table.rows, 0),
    bytes: tables.reduce((sum, table) => sum + table.bytes, 0),
  };
}

/** Whether the tenant has a database to back up. */
export const hasDatabase = (cluster: DataApi, tenantId: string): Promise<boolean> =>
  databaseExists(cluster, databaseName(tenantId));

/** An object's bytes. */
export async function readObject(s3: S3Client, bucket: string, key: string): Promise<Buffer> {
  const output = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  if (!output.Body) throw new BackupCorruptError(`s3://${bucket}/${key} has no body`);
  return Buffer.from(await output.Body.transformToByteArray());
}

/** A backup's manifest, checked against its schema and against the tenant and backup it should describe. */
export async function readManifest(
  deps: Pick<BackupDeps, 's3' | 'bucket'>,
  tenantId: string,
  backupId: string,
): Promise<Manifest> {
  const key = `${backupPrefix(tenantId, backupId)}${MANIFEST_NAME}`;
  let text: string;
  try {
    text = (await readObject(deps.s3, deps.bucket, key)).toString('utf8');
  } catch (error) {
    if (error instanceof Error && error.name === 'NoSuchKey') {
      throw new BackupCorruptError(`The backup ${backupId} of tenant ${tenantId} has no manifest (${key})`);
    }
    throw error;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new BackupCorruptError(`${key} is not JSON`);
  }
  const manifest = Manifest.safeParse(parsed);
  if (!manifest.success) throw new BackupCorruptError(`${key}: ${z.prettifyError(manifest.error)}`);
  if (manifest.data.tenantId !== tenantId || manifest.data.backupId !== backupId) {
    throw new BackupCorruptError(`${key} describes another backup`);
  }
  const outside = manifest.data.tables.find(
    (table) => !table.key.startsWith(backupPrefix(tenantId, backupId)),
  );
  if (outside) throw new BackupCorruptError(`${key}: the data of ${outside.name} is outside the backup`);
  return manifest.data;
}

/**
 * Deletes every object under a prefix for good, every version and delete marker by its version id (on a versioned
 * bucket a plain delete would leave the backup's data behind a delete marker); returns how many versions went.
 * Nothing there is fine.
 */
export function deleteObjectsUnder(
  deps: Pick<BackupDeps, 's3' | 'bucket'>,
  prefix: string,
): Promise<{ deleted: number }> {
  return deleteVersionsUnder(deps, prefix, prefix);
}
