import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { App } from 'aws-cdk-lib';
import { z } from 'zod';
import { addStageStack } from '../infra/app.ts';
import { stageConfig } from '../infra/config.ts';
import type { Figure, SectionResult } from './lib/report.ts';
import { percentile, round } from './lib/stats.ts';

/** Goals of the issue: each function bundle at most 250 KB minified, importing in under 100 ms. */
/** The standing goal: each bundle's import under 100 ms in a fresh process (the size goal is retired). */
export const BUNDLE_GOALS = { importMs: 100 } as const;

const run = promisify(execFile);

const LambdaFunction = z.object({
  Type: z.literal('AWS::Lambda::Function'),
  Properties: z.object({
    FunctionName: z.string().optional(),
    Handler: z.string(),
    Code: z.object({ S3Key: z.string().optional() }),
    Environment: z.object({ Variables: z.record(z.string(), z.unknown()) }).optional(),
  }),
});
const Template = z.object({ Resources: z.record(z.string(), z.unknown()) });

interface Bundle {
  readonly functions: string[];
  readonly kb: number;
  readonly importMs: number;
  /** The import of the Node built-ins the bundle imports statically, alone: the part no bundling can take out. */
  readonly builtinsMs: number;
  readonly builtins: string[];
  readonly cpuMs: number;
  readonly processMs: number;
}

/**
 * Cold start of each function as CDK builds it: the dev stage is synthesized (NodejsFunction bundles each entry
 * with the local esbuild: minified ESM for Node 24 on arm64, infra/constructs/function.ts), so the bundles
 * measured are the ones a deploy uploads. For each bundle: the size of its code (source map aside), and the time
 * a fresh Node process with the function's environment (NODE_OPTIONS included) takes to import it and run its
 * module scope, median of `samples` processes; beside it, its floor: a fresh process importing only the Node built-ins
 * the bundle imports at its top level (https, crypto, zlib…: about half of a bundle's import on this machine).
 * Each function is bundled from an entry of its own (infra/constructs/function.ts); identical bundles are measured once.
 */
export async function runColdStart(samples: number): Promise<SectionResult> {
  const out = await mkdtemp(join(tmpdir(), 'bench-synth-'));
  try {
    const app = new App({ outdir: out });
    const stack = addStageStack(app, stageConfig('dev'));
    const assembly = app.synth();
    const template = Template.parse(assembly.getStackArtifact(stack.artifactId).template);
    const byAsset = new Map<string, { functions: string[]; environment: Record<string, string> }>();
    for (const [logicalId, resource] of Object.entries(template.Resources)) {
      const parsed = LambdaFunction.safeParse(resource);
      const key = parsed.success ? parsed.data.Properties.Code.S3Key : undefined;
      if (!parsed.success || !key) continue;
      const { Properties: props } = parsed.data;
      // CDK's own helpers (custom resource providers) are not the product's code.
      if (!props.FunctionName) continue;
      const asset = `asset.${key.replace(/\.zip$/, '')}`;
      const entry = byAsset.get(asset) ?? {
        functions: [],
        environment: deployedEnvironment(props.Environment?.Variables ?? {}, join(out, asset)),
      };
      entry.functions.push(props.FunctionName.replace(/^.*-/, '') || logicalId);
      byAsset.set(asset, entry);
    }
    const bundles: Bundle[] = [];
    const broken: string[] = [];
    for (const [asset, { functions, environment }] of byAsset) {
      const file = join(out, asset, 'index.mjs');
      const { size } = await stat(file);
      const builtins = staticBuiltins(await readFile(file, 'utf8'));
      const timings: Timing[] = [];
      const builtinTimings: number[] = [];
      try {
        for (let i = 0; i < samples; i += 1) {
          timings.push(await importTime([file], environment));
          builtinTimings.push((await importTime(builtins, environment)).importMs);
        }
      } catch (error) {
        // A bundle whose module scope throws would fail every cold start of its functions on AWS too.
        const stderr = error instanceof Error && 'stderr' in error ? String(error.stderr) : String(error);
        broken.push(`${functions.join(', ')}: importing the bundle fails: ${firstError(stderr)}`);
        continue;
      }
      const median = (pick: (timing: Timing) => number) => round(percentile(timings.map(pick), 50));
      bundles.push({
        functions,
        kb: round(size / 1024),
        importMs: median((timing) => timing.importMs),
        builtinsMs: round(percentile(builtinTimings, 50)),
        builtins,
        cpuMs: median((timing) => timing.cpuMs),
        processMs: median((timing) => timing.processMs),
      });
    }
    bundles.sort((a, b) => b.kb - a.kb);
    const largest = bundles[0];
    const smallest = bundles.at(-1);
    // Judged on the import's wall time, the time a cold start waits; its CPU time (every thread: V8 compiles in
    // the background) is given beside it, as it is less skewed by a busy machine.
    const slowest = [...bundles].sort((a, b) => b.importMs - a.importMs)[0];
    const figures: Figure[] =
      largest && slowest && smallest
        ? [
            {
              label: `largest function bundle (${bundles.length} bundles)`,
              value: `${largest.kb} KB`,
              beside: `${largest.functions.join(', ')}; smallest ${smallest.kb} KB`,
            },
            {
              label: 'slowest bundle import (fresh process)',
              value: `${slowest.importMs} ms`,
              beside:
                `${slowest.functions.join(', ')}; of it the Node built-ins it imports ${slowest.builtinsMs} ms; ` +
                `CPU ${slowest.cpuMs} ms, whole process ${slowest.processMs} ms`,
              goal: {
                text: `each < ${BUNDLE_GOALS.importMs} ms`,
                met: bundles.every((bundle) => bundle.importMs < BUNDLE_GOALS.importMs),
              },
            },
          ]
        : [];
    return { figures, details: { samples, bundles }, broken };
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}

/**
 * The function's environment as deployed, for its module scope: literal values as they are, values the
 * stack resolves at deploy time (references) as placeholders of the right shape, the schema copied into the
 * bundle where SCHEMA_DIR points, and what the Lambda runtime sets.
 */
export function deployedEnvironment(
  variables: Record<string, unknown>,
  assetDir: string,
): Record<string, string> {
  const environment: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'bench',
    AWS_SECRET_ACCESS_KEY: 'bench',
    AWS_LAMBDA_FUNCTION_NAME: 'bench',
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '512',
  };
  for (const [name, value] of Object.entries(variables)) environment[name] = resolve(value, name);
  if (environment.SCHEMA_DIR) environment.SCHEMA_DIR = join(assetDir, 'schema');
  return environment;
}

const PSEUDO: Record<string, string> = {
  'AWS::Partition': 'aws',
  'AWS::Region': 'us-east-1',
  'AWS::AccountId': '000000000000',
  'AWS::URLSuffix': 'amazonaws.com',
};

/**
 * A CloudFormation value as a string of the right shape: joins are joined, pseudo parameters take the
 * sandbox's region and account, and a reference to a resource becomes an ARN (for a variable named `*_ARN`)
 * or a name made from its logical id.
 */
function resolve(value: unknown, variable: string): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return String(value);
  const join = z.object({ 'Fn::Join': z.tuple([z.string(), z.array(z.unknown())]) }).safeParse(value);
  if (join.success) {
    const [separator, parts] = join.data['Fn::Join'];
    return parts.map((part) => resolve(part, variable)).join(separator);
  }
  const ref = z.object({ Ref: z.string() }).safeParse(value);
  const getAtt = z.object({ 'Fn::GetAtt': z.array(z.string()) }).safeParse(value);
  const id = ref.success ? ref.data.Ref : getAtt.success ? (getAtt.data['Fn::GetAtt'][0] ?? 'x') : 'x';
  if (PSEUDO[id]) return PSEUDO[id];
  const name = id.toLowerCase();
  return variable.endsWith('_ARN') ? `arn:aws:bench:us-east-1:000000000000:${name}` : name;
}

/** The first line of a Node error report that names the error. */
const firstError = (stderr: string): string =>
  stderr
    .split('\n')
    .find((line) => /Error|error:/.test(line))
    ?.trim()
    .slice(0, 300) ?? stderr.slice(0, 300);

const ImportTiming = z.object({ importMs: z.number(), cpuMs: z.number() });
type Timing = z.infer<typeof ImportTiming> & { readonly processMs: number };

/** The Node built-ins a bundle imports at its top level (`import … from "node:…"`), in order; dynamic imports wait. */
function staticBuiltins(code: string): string[] {
  const found = code.matchAll(/(?:^|[;}\s])import(?:[^"'();]*?from)?\s*["'](node:[a-z_/0-9]+)["']/g);
  return [...new Set([...found].map((match) => match[1] ?? ''))];
}

/**
 * A fresh Node process imports the modules one after another (a bundle, or the built-ins it imports); returns the
 * imports' wall time and CPU time (all threads, V8's background compilation included), measured inside, and the
 * whole process's wall time.
 */
async function importTime(modules: readonly string[], environment: Record<string, string>): Promise<Timing> {
  const script =
    'const c = process.cpuUsage(); const t = performance.now(); ' +
    'for (const module of process.argv.slice(1)) await import(module); ' +
    'const importMs = performance.now() - t; const { user, system } = process.cpuUsage(c); ' +
    // Exits at once: a module scope that left a handle open must not hold the measurement.
    'process.stdout.write(JSON.stringify({ importMs, cpuMs: (user + system) / 1000 }), () => process.exit(0));';
  const started = performance.now();
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script, ...modules], {
    env: environment,
  });
  const processMs = performance.now() - started;
  return { ...ImportTiming.parse(JSON.parse(stdout)), processMs };
}
