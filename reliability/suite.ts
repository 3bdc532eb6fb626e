import type { ScenarioResult } from './report.ts';
import { SandboxUnderTest } from './sandbox.ts';
import { badInput } from './scenarios/bad-input.ts';
import { crash, crashMidOperation, drift } from './scenarios/crash.ts';
import { duplicates } from './scenarios/duplicates.ts';
import { type FaultKind, type FaultPoint, faultFigures, referencePoints, sweep } from './scenarios/faults.ts';
import { hygiene } from './scenarios/hygiene.ts';
import { isolation } from './scenarios/isolation.ts';

/**
 * The reliability suite's scenarios, shared by `npm run verify` (which prints their figures) and the vitest
 * files of test/reliability (which hold every figure to its goal). Each part runs in sandboxes of its own.
 */

/** How many sandboxes the fault sweep spreads its runs over (SWEEP_SANDBOXES, 4 by default). */
export const sweepSandboxes = (): number => Math.max(1, Number(process.env.SWEEP_SANDBOXES ?? 4));

const merge = (results: readonly ScenarioResult[]): ScenarioResult => ({
  figures: results.flatMap((result) => result.figures),
  problems: results.flatMap((result) => result.problems),
  notes: results.flatMap((result) => result.notes ?? []),
});

/**
 * Every fault point, forward and undo, and three transient faults on every call, over `count` sandboxes (the
 * reconciler runs only when the sweep asks, so that its calls do not meet the sweep's chaos rules); then the
 * secret hygiene of each sandbox.
 */
export async function faultSweep(count = sweepSandboxes()): Promise<ScenarioResult> {
  const sandboxes = await Promise.all(
    Array.from({ length: count }, () => SandboxUnderTest.start({ scheduleSeconds: 0 })),
  );
  try {
    const [first, ...others] = sandboxes;
    if (!first) throw new Error('no sandbox');
    const { forward, undo } = await referencePoints(first);
    // The other sandboxes' first provisioning loads every handler: done before the sweep, off its clock.
    await Promise.all(others.map((sut) => referencePoints(sut)));
    const jobs: { point: FaultPoint; kind: FaultKind }[] = [
      ...undo.map((point) => ({ point, kind: 'undo' as const })),
      ...forward.map((point) => ({ point, kind: 'transient' as const })),
      ...forward.map((point) => ({ point, kind: 'forward' as const })),
    ];
    const runs = await sweep(sandboxes, jobs);
    const figures = await faultFigures(sandboxes, runs);
    const hygienes = await Promise.all(sandboxes.map((sut) => hygiene(sut)));
    const leaked = hygienes.flatMap((result) => result.problems);
    return merge([figures, { figures: [], problems: leaked.map((leak) => `fault sweep: ${leak}`) }]);
  } finally {
    await Promise.all(sandboxes.map((sut) => sut.stop()));
  }
}

/**
 * Duplicates, bad input, isolation, drift and two crashes in one sandbox (the reconciler on a 2 s schedule), then
 * the secret hygiene of everything that happened there.
 */
export async function productScenarios(): Promise<ScenarioResult> {
  const sut = await SandboxUnderTest.start({ scheduleSeconds: 2 });
  try {
    const results: ScenarioResult[] = [];
    results.push(await duplicates(sut));
    results.push(await badInput(sut));
    results.push(await isolation(sut));
    results.push(await drift(sut));
    results.push(await crash(sut));
    results.push(await crashMidOperation(sut));
    results.push(await hygiene(sut));
    return merge(results);
  } finally {
    await sut.stop();
  }
}
