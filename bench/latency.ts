import { availableParallelism } from 'node:os';
import { Floor } from './floor.ts';
import { cpuSpent } from './lib/cpu.ts';
import { type Figure, ms, ratio, type SectionResult } from './lib/report.ts';
import type { BenchSandbox, Provisioned, RecordedCall } from './lib/sandbox.ts';
import { round, summarize } from './lib/stats.ts';

/** Goals of the issue: p50 within 5× the floor and under half a second; p95 under a second. */
/** The standing goals: p50 at most 2× its floor (the same path without the product's steps), p95 under 1 s. */
export const LATENCY_GOALS = { floorRatio: 2, p95Ms: 1000 } as const;

export interface LatencyRun {
  readonly result: SectionResult;
  /** The timed provisionings, in order. */
  readonly runs: readonly Provisioned[];
  /** Every call the sandbox answered during the timed provisionings (the floor makes none). */
  readonly calls: readonly RecordedCall[];
  /** Provisionings a second the sandbox's CPU allows, from the CPU one takes (undefined where not measured). */
  readonly ceilingPerSecond: number | undefined;
}

/**
 * Provisioning latency: `count` tenants one after another, POST /tenants to done, each followed by the floor
 * (the same SQL straight to PostgreSQL) and its template variant, interleaved so that both see the same
 * machine. Untimed warm-ups first: the first run of each handler imports its module, as a cold Lambda, and the
 * first provisioning builds the template database.
 */
export async function runLatency(sandbox: BenchSandbox, count: number, warmUps = 2): Promise<LatencyRun> {
  const floor = await Floor.open(sandbox);
  try {
    for (let i = 0; i < warmUps; i += 1) {
      await sandbox.provision('warm-up');
      await floor.provision();
      await floor.provision({ template: true });
    }
    const runs: Provisioned[] = [];
    const floorMs: number[] = [];
    const templateFloorMs: number[] = [];
    let callsSeen = await sandbox.lastCall();
    const calls: RecordedCall[] = [];
    // CPU time of the sandbox's processes, read around each run (outside its timing): what one provisioning
    // costs the machine, far less skewed than wall time by what else runs on it.
    const cpu = { provisioning: new Map<string, number>(), floor: new Map<string, number>() };
    const withCpu = async <T>(into: Map<string, number>, work: () => Promise<T>): Promise<T> => {
      const before = await sandbox.cpu();
      const result = await work();
      for (const [command, spent] of cpuSpent(before, await sandbox.cpu())) {
        into.set(command, (into.get(command) ?? 0) + spent);
      }
      return result;
    };
    for (let i = 0; i < count; i += 1) {
      runs.push(await withCpu(cpu.provisioning, () => sandbox.provision(`latency ${i}`)));
      // Read the log between runs: it only keeps so many calls.
      const recent = await sandbox.calls(callsSeen);
      calls.push(...recent);
      callsSeen = recent.at(-1)?.seq ?? callsSeen;
      floorMs.push(await withCpu(cpu.floor, () => floor.provision()));
      templateFloorMs.push(await floor.provision({ template: true }));
    }
    const perRun = (spent: Map<string, number>) =>
      Object.fromEntries(
        [...spent].filter(([, ms]) => ms > 0).map(([command, ms]) => [command, Math.round(ms / count)]),
      );
    const cpuMs = { provisioning: perRun(cpu.provisioning), floor: perRun(cpu.floor) };
    const total = (byCommand: Record<string, number>) =>
      Object.values(byCommand).reduce((sum, ms) => sum + ms, 0);
    const api = summarize(runs.map((run) => run.ms));
    const bare = summarize(floorMs);
    const copy = summarize(templateFloorMs);
    const figures: Figure[] = [
      {
        label: `provisioning p50 (${count} sequential)`,
        value: ms(api.p50),
        beside: `floor p50 ${ms(bare.p50)} (${ratio(api.p50, bare.p50)}); template-copy floor ${ms(copy.p50)} (${ratio(api.p50, copy.p50)})`,
        goal: {
          text: `≤ ${LATENCY_GOALS.floorRatio}× floor`,
          met: api.p50 <= LATENCY_GOALS.floorRatio * bare.p50,
        },
      },
      {
        label: 'provisioning p95',
        value: ms(api.p95),
        beside: `floor p95 ${ms(bare.p95)}`,
        goal: { text: `< ${LATENCY_GOALS.p95Ms} ms`, met: api.p95 < LATENCY_GOALS.p95Ms },
      },
      { label: 'provisioning max', value: ms(api.max), beside: `floor max ${ms(bare.max)}` },
    ];
    let ceilingPerSecond: number | undefined;
    if (total(cpuMs.provisioning) > 0) {
      const cores = availableParallelism();
      const all = total(cpuMs.provisioning);
      // The sandbox's node process runs the AWS endpoint and every function on one thread: it caps throughput
      // on its own, whatever the cores.
      const node = cpuMs.provisioning.node ?? 0;
      const capacity = Math.min((cores * 1000) / all, node > 0 ? 1000 / node : Number.POSITIVE_INFINITY);
      ceilingPerSecond = capacity;
      figures.push({
        label: 'CPU time per provisioning (sandbox processes)',
        value: ms(all),
        beside:
          `${Object.entries(cpuMs.provisioning)
            .map(([command, value]) => `${command} ${value}`)
            .join(', ')}; floor ${ms(total(cpuMs.floor))}; ` +
          `so at most ${round(capacity, 1)}/s on ${cores} idle cores (node is one thread)`,
      });
    }
    const steps = await sandbox.stepDurations(runs.map((run) => run.tenantId));
    return {
      result: {
        figures,
        details: {
          tenants: count,
          provisioningMs: api,
          floorMs: bare,
          templateCopyFloorMs: copy,
          cpuMsPerRun: cpuMs,
          stepMs: Object.fromEntries([...steps].map(([step, values]) => [step, summarize(values)])),
          samplesMs: { provisioning: runs.map((run) => Math.round(run.ms)), floor: floorMs.map(Math.round) },
        },
      },
      runs,
      calls,
      ceilingPerSecond,
    };
  } finally {
    await floor.close();
  }
}
