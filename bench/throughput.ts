import { availableParallelism } from 'node:os';
import { PROVISIONING_STEPS } from '../functions/provision/step.ts';
import { type Figure, ms, type SectionResult } from './lib/report.ts';
import type { BenchSandbox } from './lib/sandbox.ts';
import { round, summarize } from './lib/stats.ts';

/** Goal of the issue: at concurrency 16, at least 5 tenants a second on 2 cores. */
/** The standing goal: at concurrency 16, at least 85% of the CPU ceiling the same run measured (latency section). */
export const THROUGHPUT_GOAL = { concurrency: 16, ceilingShare: 0.85 } as const;

interface Level {
  readonly concurrency: number;
  readonly tenants: number;
  readonly seconds: number;
  readonly tenantsPerSecond: number;
  readonly latencyMs: ReturnType<typeof summarize>;
  /** Mean recorded duration of each step, and what is left of the mean latency: API, orchestration, polling. */
  readonly whereTheTimeGoesMs: Record<string, number>;
}

/**
 * Provisioning throughput: `tenants` tenants through the API with `concurrency` requests in flight, for each
 * level; tenants per second from the first POST to the last tenant done. Where the time goes: the mean recorded
 * duration of each step (the registry's `tenant_steps`), and the rest of the mean latency, outside the steps.
 */
export async function runThroughput(
  sandbox: BenchSandbox,
  tenants: number,
  levels: readonly number[],
  ceilingPerSecond: number | undefined,
): Promise<SectionResult> {
  const results: Level[] = [];
  // Seconds of work per level: a 25 ms polling step costs the rate under 1%, and the poller's CPU the machine.
  sandbox.pollMs = 25;
  try {
    for (const concurrency of levels) results.push(await runLevel(sandbox, tenants, concurrency));
  } finally {
    sandbox.pollMs = 5;
  }
  const figures: Figure[] = results.map((level) => {
    const goal =
      level.concurrency === THROUGHPUT_GOAL.concurrency && ceilingPerSecond !== undefined
        ? {
            text: `≥ ${THROUGHPUT_GOAL.ceilingShare * 100}% of the CPU ceiling (${ceilingPerSecond.toFixed(1)}/s)`,
            met: level.tenantsPerSecond >= THROUGHPUT_GOAL.ceilingShare * ceilingPerSecond,
          }
        : undefined;
    return {
      label: `throughput, concurrency ${level.concurrency} (${level.tenants} tenants)`,
      value: `${level.tenantsPerSecond.toFixed(2)} tenants/s`,
      beside: `latency p50 ${ms(level.latencyMs.p50)}, p95 ${ms(level.latencyMs.p95)}; ${availableParallelism()} cores`,
      ...(goal ? { goal } : {}),
    };
  });
  return { figures, details: { levels: results } };
}

async function runLevel(sandbox: BenchSandbox, tenants: number, concurrency: number): Promise<Level> {
  const latencies: number[] = [];
  const ids: string[] = [];
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < tenants) {
      next += 1;
      const begun = performance.now();
      const { tenantId } = await sandbox.create(`c${concurrency}`);
      ids.push(tenantId);
      await sandbox.done(tenantId);
      latencies.push(performance.now() - begun);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - started) / 1000;
  const latencyMs = summarize(latencies);
  const steps = await sandbox.stepDurations(ids);
  const whereTheTimeGoesMs: Record<string, number> = {};
  let inSteps = 0;
  for (const step of PROVISIONING_STEPS) {
    const mean = summarize(steps.get(step) ?? []).mean;
    whereTheTimeGoesMs[step] = mean;
    inSteps += mean;
  }
  whereTheTimeGoesMs['outside the steps (API, Step Functions, Lambda invokes, step bookkeeping)'] = round(
    latencyMs.mean - inSteps,
  );
  return {
    concurrency,
    tenants,
    seconds: round(seconds, 2),
    tenantsPerSecond: round(tenants / seconds, 2),
    latencyMs,
    whereTheTimeGoesMs,
  };
}
