import { MIGRATION_ID_PATTERN } from '../../schema/api/fleet.ts';
import { TENANT_ID_PATTERN } from '../../schema/names.ts';
import * as z from '../../schema/zod.ts';
import { migrateTenantDatabase } from '../provision/database.ts';
import type { DataApi } from '../shared/data-api.ts';
import { ConfigurationError } from '../shared/errors.ts';
import type { Migration } from '../shared/migrations.ts';
import { describeError } from '../shared/step.ts';
import { type ChunkSelection, type FleetStore, THRESHOLD_EXCEEDED } from './store.ts';

/**
 * Tenants per MigrateTenants invocation. With the Map's MaxConcurrency of 8 and {@link TENANT_CONCURRENCY} tenants
 * at a time inside each invocation, 40 tenant databases migrate at once; 1,000 tenants are 40 invocations.
 */
export const CHUNK_SIZE = 25;
/** Tenants migrated at once inside one invocation. */
export const TENANT_CONCURRENCY = 5;
/** An invocation starts no tenant with less than this left before its timeout: the rest go to the next one. */
export const TIME_MARGIN_MS = 60_000;
/**
 * How often a chunk reads the run's failures again: other chunks' failures count towards the threshold too, and a
 * chunk that sees it exceeded starts no more tenants. At most one query a second per chunk.
 */
export const THRESHOLD_REFRESH_MS = 1_000;

export const RunInput = z.object({ migrationId: z.string().check(z.regex(MIGRATION_ID_PATTERN)) });

/**
 * A Map item: a range of the run's tenant ids (`from` to `to`, both included). `tenantIds`, when given, are the
 * tenants of the range an earlier invocation had no time for.
 */
export const ChunkInput = z.extend(RunInput, {
  chunk: z.int().check(z.minimum(0)),
  from: z.string().check(z.regex(TENANT_ID_PATTERN)),
  to: z.string().check(z.regex(TENANT_ID_PATTERN)),
  tenantIds: z.optional(z.array(z.string().check(z.regex(TENANT_ID_PATTERN))).check(z.minLength(1))),
});
export type ChunkInput = z.infer<typeof ChunkInput>;

/** A Catch's `$.error` on a chunk whose invocation failed beyond its retries. */
export const ChunkFailureInput = z.extend(ChunkInput, {
  error: z.object({ Error: z.string(), Cause: z.optional(z.string()) }),
});

/** The chunk an input names: the ids left over, or the whole range. */
export const selectionOf = (input: ChunkInput): ChunkSelection =>
  input.tenantIds ? { tenantIds: input.tenantIds } : { from: input.from, to: input.to };

/**
 * The run's pending tenants cut into chunks, the Map's items: ranges of ids (two ids a chunk, whatever the chunk
 * size), so that a fleet of tens of thousands stays far within the 256 KB a state's data may hold.
 */
export async function planChunks(
  store: FleetStore,
  migrationId: string,
  chunkSize = CHUNK_SIZE,
): Promise<{ tenants: number; chunks: { chunk: number; from: string; to: string }[] }> {
  const { tenants, chunks } = await store.chunks(migrationId, chunkSize);
  return { tenants, chunks: chunks.map((range, chunk) => ({ chunk, ...range })) };
}

export interface ChunkDeps {
  readonly store: FleetStore;
  /** The provisioner on the cluster (any database): tenant databases are reached with `on`. */
  readonly cluster: DataApi;
  /** The tenant template, as this function's code has it. */
  readonly migrations: readonly Migration[];
  readonly concurrency?: number;
  /** Milliseconds left before the invocation times out. */
  readonly remainingMs?: () => number;
}

export interface ChunkResult {
  readonly chunk: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly skipped: number;
  /** Tenants not started for lack of time: the state machine runs them in another invocation. */
  readonly remaining: string[];
  readonly remainingCount: number;
}

/**
 * Migrates a chunk of a run's tenants, a few at a time: each tenant database gets the template's migrations it
 * lacks (each in its own transaction, as provisioning applies them) and is validated, then its outcome and the
 * registry's schema version are written in one statement. A tenant's failure is recorded with its error and does
 * not stop the others, until the run's failures pass its threshold: then the tenants not yet started are skipped.
 * A tenant no longer active is skipped; one already done by an earlier attempt is left as it is. Tenants are left
 * for another invocation when time runs short.
 */
export async function migrateChunk(deps: ChunkDeps, input: ChunkInput): Promise<ChunkResult> {
  const { migrationId } = input;
  const latest = deps.migrations.at(-1)?.version ?? 0;
  const { tolerated, failed: failedBefore, targetVersion } = await deps.store.threshold(migrationId);
  if (latest < targetVersion) {
    throw new ConfigurationError(
      `The run targets template version ${targetVersion}, this function has version ${latest}`,
    );
  }
  const tenants = await deps.store.chunkTenants(migrationId, selectionOf(input));
  const pending = tenants.filter((tenant) => tenant.outcome === 'pending');
  let stopped = failedBefore > tolerated;
  let checkedAt = Date.now();
  const exceeded = async (): Promise<boolean> => {
    if (!stopped && Date.now() - checkedAt >= THRESHOLD_REFRESH_MS) {
      checkedAt = Date.now();
      stopped = (await deps.store.threshold(migrationId)).failed > tolerated;
    }
    return stopped;
  };
  const notActive = pending.filter((tenant) => tenant.tenantStatus !== 'active');
  for (const tenant of notActive) {
    await deps.store.skip(migrationId, [tenant.tenantId], {
      error: 'TenantNotActive',
      cause: `The tenant is ${tenant.tenantStatus ?? 'gone'}; only active tenants are migrated`,
    });
  }
  const queue = pending.filter((tenant) => tenant.tenantStatus === 'active');
  const notStarted: string[] = [];
  const remaining: string[] = [];
  let succeeded = 0;
  let failed = 0;

  const worker = async () => {
    for (let tenant = queue.shift(); tenant !== undefined; tenant = queue.shift()) {
      const { tenantId } = tenant;
      if (await exceeded()) {
        notStarted.push(tenantId);
        continue;
      }
      if (deps.remainingMs && deps.remainingMs() < TIME_MARGIN_MS) {
        remaining.push(tenantId);
        continue;
      }
      const started = Date.now();
      try {
        const { version, applied } = await migrateTenantDatabase(
          deps.cluster,
          tenantId,
          deps.migrations,
          tenant.schemaVersion ?? undefined,
        );
        await deps.store.tenantSucceeded(migrationId, tenantId, {
          version,
          applied,
          durationMs: Date.now() - started,
        });
        succeeded += 1;
      } catch (error) {
        failed += 1;
        const failures = await deps.store.tenantFailed(
          migrationId,
          tenantId,
          describeError(error),
          Date.now() - started,
        );
        if (failures > tolerated) stopped = true;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, deps.concurrency ?? TENANT_CONCURRENCY) }, worker));
  if (stopped)
    await deps.store.skip(migrationId, [...notStarted, ...remaining], THRESHOLD_EXCEEDED(tolerated));
  return {
    chunk: input.chunk,
    succeeded,
    failed,
    skipped: notActive.length + (stopped ? notStarted.length + remaining.length : 0),
    remaining: stopped ? [] : remaining,
    remainingCount: stopped ? 0 : remaining.length,
  };
}
