import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { PROJECT_ROOT } from '../local/constants.ts';
import type { SectionResult } from './lib/report.ts';

/**
 * What a benchmark script of another part of the product (bench/fleet.ts, bench/bulk.ts) hands back: it runs as
 * `node bench/<name>.ts [--quick | its sizes]`, in its own sandbox, and writes this JSON to the file named by the
 * BENCH_RESULT_FILE environment variable; a non-zero exit says it broke.
 */
const ExternalResult = z.object({
  figures: z.array(
    z.object({
      label: z.string(),
      value: z.string(),
      beside: z.string().optional(),
      goal: z.object({ text: z.string(), met: z.boolean() }).optional(),
    }),
  ),
  details: z.unknown().optional(),
});

/**
 * Runs `bench/<name>.ts <args>` and reads its figures; a missing script, or one that reports nothing, is a gap.
 */
export async function runExternal(name: string, args: readonly string[]): Promise<SectionResult> {
  const script = join(PROJECT_ROOT, 'bench', `${name}.ts`);
  if (!existsSync(script)) {
    return { figures: [], details: {}, gap: `bench/${name}.ts does not exist yet: not measured` };
  }
  const dir = await mkdtemp(join(tmpdir(), `bench-${name}-`));
  const resultFile = join(dir, 'result.json');
  try {
    const { code, output } = await runScript(script, args, resultFile);
    if (code !== 0) throw new Error(`bench/${name}.ts exited ${code}:\n${output.slice(-4000)}`);
    if (!existsSync(resultFile)) {
      return {
        figures: [],
        details: { output: output.slice(-4000) },
        gap: `bench/${name}.ts wrote no BENCH_RESULT_FILE: its figures are not in the table`,
      };
    }
    const parsed = ExternalResult.safeParse(JSON.parse(await readFile(resultFile, 'utf8')));
    if (!parsed.success) {
      return {
        figures: [],
        details: { output: output.slice(-4000) },
        gap: `bench/${name}.ts wrote results of another shape: ${z.prettifyError(parsed.error)}`,
      };
    }
    return { figures: parsed.data.figures, details: parsed.data.details ?? {} };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function runScript(
  script: string,
  args: readonly string[],
  resultFile: string,
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], {
      cwd: PROJECT_ROOT,
      env: { ...process.env, BENCH_RESULT_FILE: resultFile },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const keep = (chunk: Buffer) => {
      output += chunk.toString();
      process.stdout.write(chunk);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, output }));
  });
}
