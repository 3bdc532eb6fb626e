import { removeDir, sandboxDir, spawnSandbox } from '../local/spawn.ts';

/**
 * `npm run bench:sandbox`: how long `npm start` takes until `sandbox.json` is written, on a fresh data
 * directory (cold: initdb and first-time setup) and on an existing one (warm). Medians of RUNS starts each.
 */
const runs = Number(process.env.RUNS ?? 5);
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;

async function timedStart(dir: string): Promise<number> {
  const started = performance.now();
  const sandbox = await spawnSandbox({ dir });
  const elapsed = performance.now() - started;
  await sandbox.stop();
  return elapsed;
}

const cold: number[] = [];
const warm: number[] = [];
for (let run = 0; run < runs; run += 1) {
  const dir = await sandboxDir();
  try {
    cold.push(await timedStart(dir));
    warm.push(await timedStart(dir));
  } finally {
    await removeDir(dir);
  }
}
console.table({
  cold: { 'median ms': Math.round(median(cold)), 'max ms': Math.round(Math.max(...cold)), runs },
  warm: { 'median ms': Math.round(median(warm)), 'max ms': Math.round(Math.max(...warm)), runs },
});
