import { isAbsolute, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { FunctionDefinition } from '../functions/registry.ts';
import { PROJECT_ROOT } from './constants.ts';
import type { SandboxOptions } from './sandbox.ts';

/**
 * The sandbox's settings, from the environment with LocalStack-like defaults:
 * SANDBOX_DIR (`.local`), SANDBOX_HOST (127.0.0.1), SANDBOX_AWS_PORT (4566), SANDBOX_API_PORT (3000),
 * SANDBOX_POSTGRES_PORT (5433),
 * SANDBOX_EXTRA_FUNCTIONS (a module exporting `testFunctions`, for test fixtures).
 */
export async function sandboxOptionsFromEnv(
  env: NodeJS.ProcessEnv,
  log: (line: string) => void,
): Promise<SandboxOptions> {
  const path = (value: string) => (isAbsolute(value) ? value : join(PROJECT_ROOT, value));
  const extra = env.SANDBOX_EXTRA_FUNCTIONS;
  return {
    dir: path(env.SANDBOX_DIR ?? '.local'),
    host: env.SANDBOX_HOST ?? '127.0.0.1',
    awsPort: port(env, 'SANDBOX_AWS_PORT', 4566),
    apiPort: port(env, 'SANDBOX_API_PORT', 3000),
    postgresPort: port(env, 'SANDBOX_POSTGRES_PORT', 5433),
    extraFunctions: extra ? await loadFunctions(pathToFileURL(path(extra)).href) : [],
    log,
  };
}

function port(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const value = env[name];
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 0 || parsed > 65535)
    throw new Error(`${name} is not a port: ${value}`);
  return parsed;
}

async function loadFunctions(url: string): Promise<readonly FunctionDefinition[]> {
  const module: { testFunctions?: readonly FunctionDefinition[] } = await import(url);
  if (!Array.isArray(module.testFunctions)) throw new Error(`${url} exports no testFunctions array`);
  return module.testFunctions;
}
