import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { functions } from '../../functions/registry.ts';
import { PROJECT_ROOT } from '../../local/constants.ts';
import { NO_AWS, setApiEnvironment } from './contract.ts';

const API_DIR = join(PROJECT_ROOT, 'functions', 'api');
const ROOT = 'handler.ts';

async function apiSources(): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (const name of (await readdir(API_DIR)).filter((file) => file.endsWith('.ts'))) {
    files.set(name, await readFile(join(API_DIR, name), 'utf8'));
  }
  return files;
}

/**
 * The api function has one composition root (functions/api/handler.ts): it reads the environment once and makes
 * each client and store once; the route modules get them as parameters.
 */
describe("the api function's composition root", () => {
  const saved = { ...process.env };
  afterEach(() => {
    for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
    Object.assign(process.env, saved);
  });

  it('reads exactly the variables its registry entry declares, which CDK and the sandbox set', async () => {
    // Prepare
    setApiEnvironment(NO_AWS);
    const declared = functions.find((fn) => fn.id === 'Api')?.environment ?? [];

    // Act
    const { API_ENVIRONMENT } = await import('../../functions/api/handler.ts');

    // Assess
    expect([...API_ENVIRONMENT].sort()).toEqual([...declared].sort());
  });

  it('fails its cold start naming every missing or malformed variable at once', async () => {
    // Prepare
    setApiEnvironment(NO_AWS, { STORAGE_BUCKET: 'x' });
    delete process.env.MIGRATE_FLEET_STATE_MACHINE_ARN;
    delete process.env.SUSPEND_STATE_MACHINE_ARN;
    vi.resetModules();

    // Act
    const loading = import('../../functions/api/handler.ts');

    // Assess: one error for all three, the first route module's variables not reported alone.
    const error = await loading.then(
      () => undefined,
      (failure: unknown) => failure,
    );
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).name).toBe('ConfigurationError');
    for (const name of ['MIGRATE_FLEET_STATE_MACHINE_ARN', 'SUSPEND_STATE_MACHINE_ARN', 'STORAGE_BUCKET']) {
      expect((error as Error).message).toContain(name);
    }
  });

  it('is the only api module that reads the environment or makes a client', async () => {
    // Prepare
    const files = await apiSources();
    const rules: [string, RegExp][] = [
      ['reads process.env', /\bprocess\.env\b/],
      ['reads the environment', /from '\.\.\/shared\/env\.ts'/],
      ['makes an AWS client', /from '\.\.\/shared\/clients\.ts'|\bnew \w+Client\(/],
      ['makes a Data API client', /\bnew DataApi\(/],
    ];

    // Act
    const found = [...files].flatMap(([file, text]) =>
      rules.filter(([, pattern]) => pattern.test(text)).map(([what]) => `${file} ${what}`),
    );

    // Assess
    expect(files.size).toBeGreaterThan(5);
    expect(found.sort()).toEqual(
      [
        `${ROOT} makes a Data API client`,
        `${ROOT} makes an AWS client`,
        `${ROOT} reads the environment`,
      ].sort(),
    );
  });

  it('makes one Data API client and one of each store', async () => {
    // Prepare
    const root = (await apiSources()).get(ROOT) ?? '';
    const made = (what: string) => root.split(`new ${what}(`).length - 1;

    // Act
    const counts = Object.fromEntries(
      ['DataApi', 'Registry', 'LifecycleStore', 'BatchStore', 'FleetStore'].map((what) => [what, made(what)]),
    );

    // Assess
    expect(counts).toEqual({
      DataApi: 1,
      Registry: 1,
      LifecycleStore: 1,
      BatchStore: 1,
      FleetStore: 1,
    });
  });
});
