import { join } from 'node:path';
import * as z from '../../schema/zod.ts';
import { causeMessage } from '../bulk/rows.ts';
import { loadMigrations } from '../shared/migrations.ts';
import { step, stepSetup } from '../shared/step.ts';
import { ChunkFailureInput, ChunkInput, migrateChunk, planChunks, RunInput, selectionOf } from './migrate.ts';
import { FleetStore } from './store.ts';

/** The migrate-fleet state machine's tasks (statemachines/migrate-fleet.asl.json). */
const { env, cluster } = stepSetup(['SCHEMA_DIR']);
const store = new FleetStore(cluster);

// The migration's tasks record no tenant progress: the run keeps each tenant's outcome in its own table.
export const planFleetMigration = /* @__PURE__ */ step('Plan', { input: RunInput }, ({ input }) =>
  planChunks(store, input.migrationId),
);

export const migrateTenants = /* @__PURE__ */ step(
  'MigrateChunk',
  { input: ChunkInput },
  async ({ input, remainingMs }) => {
    // Read per invocation, not per container: the folder is the deployed code's, so this costs a few small file
    // reads, and a migration added to a running sandbox is seen without a restart.
    const migrations = await loadMigrations(join(env.SCHEMA_DIR, 'tenant'));
    return migrateChunk({ store, cluster, migrations, remainingMs }, input);
  },
);

export const recordFleetChunkFailure = /* @__PURE__ */ step(
  'RecordChunkFailure',
  { input: ChunkFailureInput },
  async ({ input }) => {
    await store.failPending(input.migrationId, selectionOf(input), {
      error: input.error.Error,
      cause: causeMessage(input.error.Cause),
    });
    return { chunk: input.chunk };
  },
);

export const finishFleetMigration = /* @__PURE__ */ step('Finish', { input: RunInput }, async ({ input }) => {
  const { status, counts } = await store.finish(input.migrationId);
  return { migrationId: input.migrationId, status, ...counts };
});

const FailInput = z.extend(RunInput, {
  error: z.object({ Error: z.string(), Cause: z.optional(z.string()) }),
});

export const failFleetMigration = /* @__PURE__ */ step('Fail', { input: FailInput }, async ({ input }) => {
  await store.fail(input.migrationId, { error: input.error.Error, cause: causeMessage(input.error.Cause) });
  return { migrationId: input.migrationId, status: 'failed' as const };
});
