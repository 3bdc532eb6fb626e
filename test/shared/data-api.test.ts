import { RDSDataClient } from '@aws-sdk/client-rds-data';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { DataApi, TransactionAbortedError } from '../../functions/shared/data-api.ts';
import { applyMigrations, MigrationFailedError } from '../../functions/shared/migrations.ts';
import {
  clientConfig,
  sandbox,
  superuserPool,
  uniqueName,
  withStatementTimeout,
} from '../support/sandbox.ts';

// The product within the Data API's transaction and timeout rules (docs/sandbox-data-api.md), against the sandbox,
// which keeps them as AWS documents them.

const client = new RDSDataClient(clientConfig);
const cluster = new DataApi(client, {
  resourceArn: sandbox.clusterArn,
  secretArn: sandbox.provisionerSecretArn,
  database: 'control_plane',
});
const admin = superuserPool();
const databases: string[] = [];

afterAll(async () => {
  for (const name of databases) await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  client.destroy();
});

/** A database of its own for one test, reached as the provisioner. */
async function scratchDatabase(): Promise<DataApi> {
  const name = uniqueName('data_api').replaceAll('-', '_');
  databases.push(name);
  await cluster.execute(`CREATE DATABASE ${name}`);
  return cluster.on(name);
}

describe('DataApi transactions', () => {
  it('refuses a statement after one that failed, before it is sent, and rolls the transaction back', async () => {
    // Prepare
    const db = await scratchDatabase();
    await db.execute('CREATE TABLE public.kept (v integer)');

    // Act
    const outcome = await db
      .transaction(async (tx) => {
        await tx.execute('INSERT INTO public.kept VALUES (1)');
        await tx.execute('SELECT 1 / 0').catch(() => 0);
        await tx.execute('INSERT INTO public.kept VALUES (2)');
      })
      .catch((error: unknown) => error);

    // Assess: the sandbox, like AWS, would have answered TransactionNotFoundException had it been sent.
    expect(outcome).toBeInstanceOf(TransactionAbortedError);
    const rows = await db.query(
      'SELECT count(*)::int AS n FROM public.kept',
      {},
      z.object({ n: z.number() }),
    );
    expect(rows).toEqual([{ n: 0 }]);
  });
});

describe('migrations past the Data API call timeout', () => {
  it('lets a migration run on after its call times out, and waits for it to commit', async () => {
    // Prepare: a migration that takes 3 s where calls end after 1 s (45 s on AWS).
    const db = await scratchDatabase();
    const marker = uniqueName('slow-migration');
    const migration = {
      version: 1,
      name: 'slow',
      statements: [`CREATE TABLE public.slow AS SELECT 1 AS v FROM pg_catalog.pg_sleep(3) /* ${marker} */`],
    };

    // Act
    const result = await withStatementTimeout(marker, 1_000, () => applyMigrations(db, [migration]));

    // Assess
    expect(result).toEqual({ applied: [1], version: 1 });
    const rows = await db.query('SELECT v FROM public.slow', {}, z.object({ v: z.number() }));
    expect(rows).toEqual([{ v: 1 }]);
  }, 30_000);

  it('reports a migration that rolled back after its call timed out, its version not recorded', async () => {
    // Prepare
    const db = await scratchDatabase();
    const marker = uniqueName('failing-migration');
    const migration = {
      version: 1,
      name: 'failing',
      statements: [
        `CREATE TABLE public.half AS SELECT 1 AS v FROM pg_catalog.pg_sleep(3) /* ${marker} */`,
        'SELECT 1 / 0',
      ],
    };

    // Act
    const outcome = await withStatementTimeout(marker, 1_000, () =>
      applyMigrations(db, [migration]).catch((error: unknown) => error),
    );

    // Assess
    expect(outcome).toBeInstanceOf(MigrationFailedError);
    const tables = await db.query(
      "SELECT count(*)::int AS n FROM pg_catalog.pg_tables WHERE schemaname = 'public' AND tablename IN ('half')",
      {},
      z.object({ n: z.number() }),
    );
    expect(tables).toEqual([{ n: 0 }]);
    const versions = await db.query(
      'SELECT count(*)::int AS n FROM public.schema_migrations',
      {},
      z.object({ n: z.number() }),
    );
    expect(versions).toEqual([{ n: 0 }]);
  }, 30_000);
});
