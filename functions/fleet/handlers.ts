import { join } from 'node:path';
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import { causeMessage } from '../bulk/rows.ts';
import { stepSetup } from '../provision/step.ts';
import { loadMigrations } from '../shared/migrations.ts';
import * as z from '../shared/zod.ts';
import { ChunkFailureInput, ChunkInput, migrateChunk, planChunks, RunInput, selectionOf } from './migrate.ts';
import { FleetStore } from './store.ts';

/** The migrate-fleet state machine's tasks (statemachines/migrate-fleet.asl.json). */
const { env, cluster } = stepSetup({ SCHEMA_DIR: z.string().check(z.minLength(1)) });
const store = new FleetStore(cluster);
const logger = new Logger({ serviceName: 'tenant-provisioner-fleet' });

interface Context {
  getRemainingTimeInMillis(): number;
}

function task<Input extends { migrationId: string }, Result>(
  name: string,
  schema: z.ZodMiniType<Input>,
  work: (input: Input, context: Context) => Promise<Result>,
) {
  return middy(async (event: unknown, context: Context): Promise<Result> => {
    const input = schema.parse(event);
    logger.appendKeys({ migrationId: input.migrationId, task: name });
    const result = await work(input, context);
    logger.info('Task done', { result });
    return result;
  }).use(injectLambdaContext(logger, { resetKeys: true }));
}

export const planFleetMigration = /* @__PURE__ */ task('Plan', RunInput, (input) =>
  planChunks(store, input.migrationId),
);

export const migrateTenants = /* @__PURE__ */ task('MigrateChunk', ChunkInput, async (input, context) => {
  // Read per invocation, not per container: the folder is the deployed code's, so this costs a few small file
  // reads, and a migration added to a running sandbox is seen without a restart.
  const migrations = await loadMigrations(join(env.SCHEMA_DIR, 'tenant'));
  return migrateChunk(
    { store, cluster, migrations, remainingMs: () => context.getRemainingTimeInMillis() },
    input,
  );
});

export const recordFleetChunkFailure = /* @__PURE__ */ task(
  'RecordChunkFailure',
  ChunkFailureInput,
  async (input) => {
    await store.failPending(input.migrationId, selectionOf(input), {
      error: input.error.Error,
      cause: causeMessage(input.error.Cause),
    });
    return { chunk: input.chunk };
  },
);

export const finishFleetMigration = /* @__PURE__ */ task('Finish', RunInput, async (input) => {
  const { status, counts } = await store.finish(input.migrationId);
  return { migrationId: input.migrationId, status, ...counts };
});

const FailInput = z.extend(RunInput, {
  error: z.object({ Error: z.string(), Cause: z.optional(z.string()) }),
});

export const failFleetMigration = /* @__PURE__ */ task('Fail', FailInput, async (input) => {
  await store.fail(input.migrationId, { error: input.error.Error, cause: causeMessage(input.error.Cause) });
  return { migrationId: input.migrationId, status: 'failed' as const };
});
