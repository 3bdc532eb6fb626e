import * as z from '../../schema/zod.ts';
import { cloudWatchClient, eventBridgeClient, s3Client } from '../shared/clients.ts';
import { step, stepSetup } from '../shared/step.ts';
import {
  ChunkInput,
  type CollectDeps,
  collectChunk,
  finishCollection,
  planCollection,
  RunInput,
} from './collect.ts';
import { UsageStore } from './store.ts';

/** The collect-usage state machine's tasks (statemachines/collect-usage.asl.json). */
const { env, cluster } = stepSetup(['STORAGE_BUCKET', 'EVENT_BUS_NAME']);
const store = new UsageStore(cluster);

export const planUsageCollection = /* @__PURE__ */ step('Plan', { input: RunInput }, ({ input }) =>
  planCollection(store, input),
);

const deps: CollectDeps = {
  cluster,
  store,
  s3: s3Client(),
  bucket: env.STORAGE_BUCKET,
  cloudWatch: cloudWatchClient(),
  events: eventBridgeClient(),
  busName: env.EVENT_BUS_NAME,
};

export const collectUsage = /* @__PURE__ */ step('CollectChunk', { input: ChunkInput }, ({ input }) =>
  collectChunk(deps, input),
);

/** A chunk's result, or the failure its Catch recorded in its place. */
const ChunkOutcome = z.union([
  z.object({ failed: z.string() }),
  z.object({
    tenants: z.number(),
    incomplete: z.number(),
    problems: z.array(z.string()),
    metricData: z.number(),
    events: z.number(),
  }),
]);

export const finishUsageCollection = /* @__PURE__ */ step(
  'Finish',
  { input: z.object({ results: z.array(ChunkOutcome) }) },
  async ({ input }) => finishCollection(input.results),
);
