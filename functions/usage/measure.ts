import type { S3Client } from '@aws-sdk/client-s3';
import { databaseName } from '../../schema/names.ts';
import * as z from '../../schema/zod.ts';
import { tenantObjectListing } from '../provision/storage.ts';
import { type DataApi, json } from '../shared/data-api.ts';
import { TenantDatabase } from '../shared/tenant-db.ts';

/** What a tenant uses now, measured where it lives: its database, its storage prefix, its sessions. */
export interface TenantUsage {
  /** Users that hold a seat: invited or active (a disabled user holds none). */
  readonly users: number;
  /** API keys neither revoked nor expired. */
  readonly apiKeys: number;
  /** Bytes of every object under `tenants/<id>/`: what the storage quota counts. */
  readonly storageBytes: number;
  /** Open sessions of the tenant's roles on its database: what its connection limit counts. */
  readonly connections: number;
  /** The database's size on disk (`pg_database_size`); no quota counts it, it is published beside. */
  readonly databaseBytes: number;
}

/** A measure and why it could not be taken this time. */
export interface MeasureProblem {
  readonly measures: readonly (keyof TenantUsage)[];
  readonly reason: string;
}

/** What one measurement of a tenant found: the measures taken, and a problem for each that could not be. */
export interface Measurement {
  readonly usage: Partial<TenantUsage>;
  readonly problems: readonly MeasureProblem[];
}

export interface MeasureDeps {
  /** The provisioner on any database of the cluster (the registry's). */
  readonly cluster: DataApi;
  readonly s3: S3Client;
  readonly bucket: string;
}

export interface MeasureOptions {
  /** A measure that cannot be taken fails the call with its error, instead of being left out (the plan change). */
  readonly strict?: boolean;
}

/** Tenants measured at once: each costs a Data API call into its database and one or more S3 listings. */
export const MEASURE_CONCURRENCY = 8;

const DatabaseRow = z.object({
  name: z.string(),
  bytes: z.coerce.number(),
  connections: z.coerce.number(),
});
const SeatsRow = z.object({ users: z.coerce.number(), api_keys: z.coerce.number() });

/**
 * Measures the tenants with a fixed number of Data API calls: one for every database's size and sessions
 * (catalog views of the cluster, read from the registry database), then one into each tenant database for its users
 * and live API keys; storage is S3 listings of each prefix. A tenant without a database (yet, or any longer) has
 * none of the database's measures. A measure that cannot be taken (the tenant's sessions lock its tables, or fill
 * its connection limit so that the provisioner cannot connect either) is left out with its reason: the others are
 * still good.
 *
 * By the rules of `functions/shared/tenant-db.ts`: in the tenant database the query names only tables the control
 * plane owns (`public.users`, `public.api_keys`), under the pinned search path; counting runs no code of the
 * tenant's (they cannot attach triggers, rules or policies to those tables, and a SELECT fires no trigger anyway).
 */
export async function measureTenants(
  deps: MeasureDeps,
  tenantIds: readonly string[],
  options: MeasureOptions = {},
): Promise<Map<string, Measurement>> {
  const databases = new Map<string, z.infer<typeof DatabaseRow>>();
  if (tenantIds.length > 0) {
    // Sessions of the tenant's own roles (tenant_<id>_<role>): the provisioner's, this query's, are not the tenant's.
    const rows = await deps.cluster.query(
      `SELECT d.datname AS name, pg_catalog.pg_database_size(d.oid) AS bytes,
         (SELECT count(*) FROM pg_catalog.pg_stat_activity a
          WHERE a.datid = d.oid AND pg_catalog.starts_with(a.usename::text, d.datname::text || '_')) AS connections
       FROM pg_catalog.pg_database d
       WHERE d.datname::text = ANY(ARRAY(SELECT pg_catalog.jsonb_array_elements_text(CAST(:names AS jsonb))))`,
      { names: json(tenantIds.map(databaseName)) },
      DatabaseRow,
    );
    for (const row of rows) databases.set(row.name, row);
  }
  const measurements = new Map<string, Measurement>();
  const queue = [...tenantIds];
  await Promise.all(
    Array.from({ length: Math.min(MEASURE_CONCURRENCY, queue.length) }, async () => {
      for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
        measurements.set(id, await measureOne(deps, id, databases.get(databaseName(id)), options));
      }
    }),
  );
  return measurements;
}

/** Every measure of one tenant, or the error that kept one from being taken (the plan change's check). */
export async function measureTenant(deps: MeasureDeps, tenantId: string): Promise<TenantUsage> {
  const measurement = (await measureTenants(deps, [tenantId], { strict: true })).get(tenantId);
  const usage = measurement?.usage ?? {};
  return {
    users: usage.users ?? 0,
    apiKeys: usage.apiKeys ?? 0,
    storageBytes: usage.storageBytes ?? 0,
    connections: usage.connections ?? 0,
    databaseBytes: usage.databaseBytes ?? 0,
  };
}

async function measureOne(
  deps: MeasureDeps,
  tenantId: string,
  database: z.infer<typeof DatabaseRow> | undefined,
  options: MeasureOptions,
): Promise<Measurement> {
  const problems: MeasureProblem[] = [];
  const leaveOut =
    (measures: MeasureProblem['measures']) =>
    (error: unknown): undefined => {
      if (options.strict) throw error;
      problems.push({ measures, reason: reasonOf(error) });
      return undefined;
    };
  const [seats, storageBytes] = await Promise.all([
    database
      ? seatsOf(deps.cluster, tenantId).catch(leaveOut(['users', 'apiKeys']))
      : { users: 0, apiKeys: 0 },
    storageBytesOf(deps, tenantId).catch(leaveOut(['storageBytes'])),
  ]);
  return {
    usage: {
      ...(seats ?? {}),
      ...(storageBytes !== undefined ? { storageBytes } : {}),
      ...(database
        ? { connections: database.connections, databaseBytes: database.bytes }
        : { connections: 0, databaseBytes: 0 }),
    },
    problems,
  };
}

async function seatsOf(cluster: DataApi, tenantId: string): Promise<{ users: number; apiKeys: number }> {
  const [row] = await TenantDatabase.of(cluster, tenantId).query(
    `SELECT (SELECT count(*) FROM public.users WHERE status <> 'disabled') AS users,
       (SELECT count(*) FROM public.api_keys
        WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > pg_catalog.now())) AS api_keys`,
    {},
    SeatsRow,
  );
  return { users: row?.users ?? 0, apiKeys: row?.api_keys ?? 0 };
}

async function storageBytesOf(deps: Pick<MeasureDeps, 's3' | 'bucket'>, tenantId: string): Promise<number> {
  let bytes = 0;
  for await (const objects of tenantObjectListing(deps, tenantId)) {
    for (const object of objects) bytes += object.Size ?? 0;
  }
  return bytes;
}

/** A problem as the registry and the API show it: the error's name and message, never more. */
const reasonOf = (error: unknown): string =>
  error instanceof Error ? `${error.name}: ${error.message}` : String(error);
