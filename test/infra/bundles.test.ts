import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { deployedEnvironment } from '../../bench/cold-start.ts';
import { functionName, functions } from '../../functions/registry.ts';
import { stageConfig } from '../../infra/config.ts';
import { PROJECT_ROOT } from '../../infra/constructs/function.ts';
import { resourcesOf, synthStage } from './synth.ts';

// The Lambda bundles as `cdk synth` makes them with esbuild: no sandbox, but bundling every function takes about
// 30 s, too long for the unit tier (stages.unit.test.ts checks the templates without bundling).
describe('bundles', () => {
  // Bundling every function takes longer than one test's timeout (46 s seen on a busy machine); the tests then
  // read the cached stage.
  beforeAll(() => {
    synthStage('dev');
  }, 180_000);

  it('loads every bundle with only the environment its function is deployed with', async () => {
    // The sandbox runs every handler in one process whose environment holds every variable, so a module scope that
    // reads one its function does not declare passes there and fails each cold start on AWS.
    const { template, outdir } = synthStage('dev');
    const prefix = stageConfig('dev').prefix;
    const refused: string[] = [];
    for (const fn of functions) {
      const [, lambda] = Object.entries(resourcesOf(template, 'AWS::Lambda::Function')).find(
        ([, resource]) => resource.Properties?.FunctionName === functionName(prefix, fn),
      ) ?? ['', undefined];
      const key = z.object({ S3Key: z.string() }).parse(lambda?.Properties?.Code).S3Key;
      const asset = join(outdir, `asset.${key.replace(/\.zip$/, '')}`);
      const variables = z
        .object({ Variables: z.record(z.string(), z.unknown()) })
        .optional()
        .parse(lambda?.Properties?.Environment)?.Variables;
      const loaded = spawnSync(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          `await import(${JSON.stringify(join(asset, 'index.mjs'))}); process.exit(0);`,
        ],
        { env: deployedEnvironment(variables ?? {}, asset), encoding: 'utf8', timeout: 30_000 },
      );
      if (loaded.status !== 0)
        refused.push(
          `${fn.id}: ${loaded.stderr.split('\n').find((line) => /^[A-Za-z]*Error\b/.test(line)) ?? loaded.stderr.slice(-300)}`,
        );
    }
    expect(refused).toEqual([]);
  }, 120_000);

  it("replaces the SDK's credential chain with the environment in every bundle", () => {
    const { template, outdir } = synthStage('dev');
    const prefix = stageConfig('dev').prefix;
    for (const fn of functions) {
      const [, lambda] = Object.entries(resourcesOf(template, 'AWS::Lambda::Function')).find(
        ([, resource]) => resource.Properties?.FunctionName === functionName(prefix, fn),
      ) ?? ['', undefined];
      const key = z.object({ S3Key: z.string() }).parse(lambda?.Properties?.Code).S3Key;
      const code = readFileSync(join(outdir, `asset.${key.replace(/\.zip$/, '')}`, 'index.mjs'), 'utf8');
      // The real chain's debug strings, and the message of infra/bundling/lambda-credentials.ts.
      expect(code, fn.id).not.toContain('defaultProvider::fromSSO');
      expect(code, fn.id).not.toContain('credential-provider-web-identity');
      expect(code, fn.id).toContain('which Lambda sets');
    }
  });

  it('bundles each function from its own entry: its handler alone, and only the SDK clients it reaches', () => {
    const { template, outdir } = synthStage('dev');
    const prefix = stageConfig('dev').prefix;
    const codeOf = (id: string) => {
      const [, lambda] = Object.entries(resourcesOf(template, 'AWS::Lambda::Function')).find(
        ([, resource]) => resource.Properties?.FunctionName === `${prefix}-${id}`,
      ) ?? ['', undefined];
      const key = z.object({ S3Key: z.string() }).parse(lambda?.Properties?.Code).S3Key;
      return readFileSync(join(outdir, `asset.${key.replace(/\.zip$/, '')}`, 'index.mjs'), 'utf8');
    };
    for (const fn of functions) expect(codeOf(fn.id), fn.id).toMatch(/export\s*\{\s*[\w$]+ as handler\s*\}/);
    // Activate and MarkFailed share a module with MarkRollbackFailed, which alone scans S3, Secrets Manager and
    // CloudWatch for leftovers.
    const clients = (id: string) =>
      ['client-s3', 'client-secrets-manager', 'client-cloudwatch', 'client-eventbridge'].filter((client) =>
        codeOf(id).includes(`"@aws-sdk/${client}"`),
      );
    expect(clients('Activate')).toEqual(['client-eventbridge']);
    expect(clients('MarkFailed')).toEqual(['client-eventbridge']);
    expect(clients('MarkRollbackFailed')).toEqual([
      'client-s3',
      'client-secrets-manager',
      'client-cloudwatch',
      'client-eventbridge',
    ]);
  });

  it('ships schema/ in the bundle of every function that reads SCHEMA_DIR', () => {
    const { template, outdir } = synthStage('dev');
    const prefix = stageConfig('dev').prefix;
    const readers = functions.filter((fn) => fn.environment?.includes('SCHEMA_DIR'));
    expect(readers.map((fn) => fn.id)).toContain('SetupControlPlane');
    for (const fn of readers) {
      const [, lambda] = Object.entries(resourcesOf(template, 'AWS::Lambda::Function')).find(
        ([, resource]) => resource.Properties?.FunctionName === functionName(prefix, fn),
      ) ?? ['', undefined];
      const key = z.object({ S3Key: z.string() }).parse(lambda?.Properties?.Code).S3Key;
      const bundle = join(outdir, `asset.${key.replace(/\.zip$/, '')}`);
      expect(existsSync(join(bundle, 'index.mjs')), `${fn.id} bundle`).toBe(true);
      for (const folder of readdirSync(join(PROJECT_ROOT, 'schema'), { withFileTypes: true })) {
        if (!folder.isDirectory()) continue;
        const sql = readdirSync(join(PROJECT_ROOT, 'schema', folder.name)).filter((file) =>
          file.endsWith('.sql'),
        );
        for (const file of sql)
          expect(existsSync(join(bundle, 'schema', folder.name, file)), `${fn.id}: ${file}`).toBe(true);
      }
    }
  });
});
