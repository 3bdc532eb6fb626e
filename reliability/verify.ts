import { formatTable } from './report.ts';
import { hostileTenant } from './scenarios/hostile.ts';
import { faultSweep, productScenarios } from './suite.ts';

/**
 * `npm run verify`: the reliability and security suite in sandboxes of its own, then its figures as a table
 * (and every problem seen). Exits 1 when a figure misses its goal.
 */
const started = performance.now();
const [sweep, product, hostile] = await Promise.all([faultSweep(), productScenarios(), hostileTenant()]);
const figures = [...sweep.figures, ...product.figures, ...hostile.figures];
const problems = [...sweep.problems, ...product.problems, ...hostile.problems];
console.log(formatTable(figures));
for (const note of [sweep, product, hostile].flatMap((result) => result.notes ?? [])) console.log(note);
console.log(
  `\n${figures.filter((f) => f.met).length}/${figures.length} figures at their goal, in ${Math.round((performance.now() - started) / 1000)} s`,
);
if (problems.length > 0) {
  console.log(`\nProblems (${problems.length}):`);
  for (const problem of problems) console.log(`- ${problem}`);
}
process.exit(figures.every((f) => f.met) && problems.length === 0 ? 0 : 1);
