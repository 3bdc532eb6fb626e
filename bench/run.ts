import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PROJECT_ROOT } from '../local/constants.ts';
import { runColdStart } from './cold-start.ts';
import { runCost } from './cost.ts';
import { runExternal } from './external.ts';
import { runLatency } from './latency.ts';
import { type Figure, markdownTable, type SectionResult, textTable } from './lib/report.ts';
import { BenchSandbox } from './lib/sandbox.ts';
import { runThroughput } from './throughput.ts';

/**
 * `npm run bench` (`-- --quick` for the small version CI runs): provisioning latency beside its floor,
 * throughput, cost per tenant, cold start of every function bundle, and the fleet and bulk figures of
 * bench/fleet.ts and bench/bulk.ts. Writes bench/results/<name>.json and .md and prints the summary table.
 * Exits non-zero when something breaks (a failed provisioning, a section that throws), never for a goal
 * missed: a shared machine is noisy, so a miss is a line to read, not a failed build.
 */
const SECTIONS = ['latency', 'cost', 'throughput', 'cold-start', 'fleet', 'bulk', 'usage'] as const;
type Section = (typeof SECTIONS)[number];

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    name: { type: 'string' },
  },
});
const quick = values.quick ?? false;
const only = new Set((values.only?.split(',') ?? SECTIONS).map((section) => section.trim()));
for (const section of only) {
  if (!(SECTIONS as readonly string[]).includes(section)) throw new Error(`--only: no section ${section}`);
}
const wanted = (section: Section) => only.has(section);
const name = values.name ?? (quick ? 'quick' : 'full');

// The sizes; the quick version only checks that every part still runs.
const SIZES = quick
  ? {
      latency: 4,
      warmUps: 1,
      throughput: 8,
      levels: [4],
      importSamples: 1,
      fleet: ['--quick'],
      bulk: ['--quick'],
      usage: ['--quick'],
    }
  : {
      latency: 30,
      warmUps: 2,
      throughput: 100,
      levels: [1, 4, 16],
      importSamples: 5,
      fleet: ['--tenants', '1000'],
      bulk: ['--rows', '200'],
      usage: ['--tenants', '1000'],
    };

const startedAt = new Date();
const loadBefore = loadavg();
const sections: Partial<Record<Section, SectionResult>> = {};
const broken: string[] = [];

async function measure(section: Section, work: () => Promise<SectionResult>): Promise<void> {
  const started = performance.now();
  console.log(`bench: ${section}…`);
  try {
    const result = await work();
    sections[section] = result;
    for (const failure of result.broken ?? []) broken.push(`${section}: ${failure}`);
  } catch (error) {
    broken.push(`${section}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  }
  console.log(`bench: ${section} took ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

if (wanted('latency') || wanted('cost') || wanted('throughput')) {
  const sandbox = await BenchSandbox.start();
  try {
    let latency: Awaited<ReturnType<typeof runLatency>> | undefined;
    if (wanted('latency') || wanted('cost')) {
      await measure('latency', async () => {
        latency = await runLatency(sandbox, SIZES.latency, SIZES.warmUps);
        return latency.result;
      });
      if (wanted('cost') && latency) {
        const run = latency;
        await measure('cost', () => runCost(sandbox, run));
      }
    }
    if (wanted('throughput')) {
      const ceiling = latency?.ceilingPerSecond;
      await measure('throughput', () => runThroughput(sandbox, SIZES.throughput, SIZES.levels, ceiling));
    }
  } finally {
    await sandbox.stop();
  }
}
if (wanted('cold-start')) await measure('cold-start', () => runColdStart(SIZES.importSamples));
if (wanted('fleet')) await measure('fleet', () => runExternal('fleet', SIZES.fleet));
if (wanted('bulk')) await measure('bulk', () => runExternal('bulk', SIZES.bulk));
if (wanted('usage')) await measure('usage', () => runExternal('usage', SIZES.usage));

const figures: Figure[] = SECTIONS.flatMap((section) => sections[section]?.figures ?? []);
const gaps = SECTIONS.flatMap((section) => {
  const gap = sections[section]?.gap;
  return gap ? [`${section}: ${gap}`] : [];
});
const missed = figures.filter((figure) => figure.goal && !figure.goal.met);
const machine = {
  cores: availableParallelism(),
  cpu: cpus()[0]?.model ?? 'unknown',
  node: process.version,
  loadAverageBefore: loadBefore.map((load) => Math.round(load * 100) / 100),
  loadAverageAfter: loadavg().map((load) => Math.round(load * 100) / 100),
};
const result = {
  name,
  quick,
  startedAt: startedAt.toISOString(),
  seconds: Math.round((Date.now() - startedAt.getTime()) / 1000),
  commit: gitCommit(),
  machine,
  figures,
  gaps,
  goalsMissed: missed.map((figure) => figure.label),
  broken,
  sections,
};
const dir = join(PROJECT_ROOT, 'bench', 'results');
await mkdir(dir, { recursive: true });
await writeFile(join(dir, `${name}.json`), `${JSON.stringify(result, null, 2)}\n`);
const note =
  `${startedAt.toISOString().slice(0, 10)}, ${machine.cores} cores (${machine.cpu}), Node ${machine.node}, ` +
  `load ${machine.loadAverageBefore.join(' ')} before, ${machine.loadAverageAfter.join(' ')} after; commit ${result.commit}`;
await writeFile(join(dir, `${name}.md`), `${markdownTable(figures)}\n\n${note}\n`);

console.log(`\n${textTable(figures)}\n\n${note}`);
if (quick) console.log('quick run: its sizes check that everything runs, too small to judge the goals by.');
for (const gap of gaps) console.log(`GAP: ${gap}`);
for (const figure of missed)
  console.log(`GOAL MISSED: ${figure.label}: ${figure.value} (goal ${figure.goal?.text})`);
for (const failure of broken) console.error(`BROKEN: ${failure}`);
console.log(`results: bench/results/${name}.json`);
if (broken.length > 0) process.exitCode = 1;

function gitCommit(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      cwd: PROJECT_ROOT,
      encoding: 'utf8',
    }).trim();
  } catch {
    return 'unknown';
  }
}
