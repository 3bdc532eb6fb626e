import { join } from 'node:path';
import { ident } from '../../schema/names.ts';
import * as z from '../../schema/zod.ts';
import type { DataApi } from '../shared/data-api.ts';
import { applyMigrations, loadMigrations } from '../shared/migrations.ts';

/**
 * Creates the registry database if it is missing and brings it to the latest control-plane migration.
 * Runs on deploy (a custom resource on AWS) and when the sandbox starts; `db` is the provisioner on any
 * database of the cluster. Only the provisioner (its owner) may connect to the registry.
 */
export async function setupControlPlane(
  db: DataApi,
  options: { readonly database: string; readonly schemaDir: string },
): Promise<{ applied: number[]; version: number }> {
  const exists = await db.query(
    'SELECT 1 AS found FROM pg_catalog.pg_database WHERE datname = :name',
    { name: options.database },
    z.object({ found: z.number() }),
  );
  if (exists.length === 0) {
    await db.execute(`CREATE DATABASE ${ident(options.database)}`).catch(async (error: unknown) => {
      // A concurrent deploy may have created it between the check and here (42P04: duplicate_database).
      if (!(error instanceof Error && error.message.includes('42P04'))) throw error;
    });
  }
  await db.execute(`REVOKE CONNECT, TEMPORARY ON DATABASE ${ident(options.database)} FROM PUBLIC`);
  // The provisioner's sessions pin their search path to pg_catalog and give up on a lock after a while
  // (tenant-db.ts); the registry, which no tenant reaches, is the one database where its own unqualified tables
  // resolve and where it waits for its own locks as long as they are held.
  for (const setting of ['search_path = "$user", public', 'lock_timeout = 0']) {
    await db.execute(`ALTER ROLE CURRENT_USER IN DATABASE ${ident(options.database)} SET ${setting}`);
  }
  const migrations = await loadMigrations(join(options.schemaDir, 'control-plane'));
  return applyMigrations(db.on(options.database), migrations);
}
