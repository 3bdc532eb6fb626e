import { isAbsolute, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { FunctionDefinition } from '../functions/registry.ts';
import { PROJECT_ROOT } from './constants.ts';
import type { SandboxOptions } from './sandbox.ts';

/**
 * The sandbox's settings, from the environment with LocalStack-like defaults:
 * SANDBOX_DIR (`.local`), SANDBOX_HOST (127.0.0.1), SANDBOX_AWS_PORT (4566), SANDBOX_API_PORT (3000),
 * SANDBOX_POSTGRES_PORT (5433), SANDBOX_SCHEDULE_SECONDS (30: how often scheduled functions run; 0: at startup only),
 * SANDBOX_USAGE_SECONDS (300, the stages' default: how often the usage collector runs; 0: only when started by hand),
 * SANDBOX_UNSCHEDULED (registry ids of scheduled functions the sandbox does not run on its clock, comma-separated),
 * SANDBOX_ALARM_EVALUATION_SECONDS (60: how often CloudWatch evaluates the alarms by the wall clock; 0: only on request),
 * SANDBOX_EXTRA_FUNCTIONS (a module exporting `testFunctions`, for test fixtures),
 * SANDBOX_SCHEMA_DIR (the SQL migrations the functions read, `schema/` by default: a test or benchmark adds a tenant
 * migration to a copy without touching the product's).
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
    scheduleSeconds: seconds(env, 'SANDBOX_SCHEDULE_SECONDS', 30),
    usageSeconds: seconds(env, 'SANDBOX_USAGE_SECONDS', 300),
    unscheduled: (env.SANDBOX_UNSCHEDULED ?? '').split(',').filter((id) => id !== ''),
    alarmEvaluationSeconds: seconds(env, 'SANDBOX_ALARM_EVALUATION_SECONDS', 60),
    extraFunctions: extra ? await loadFunctions(pathToFileURL(path(extra)).href) : [],
    ...(env.SANDBOX_SCHEMA_DIR ? { schemaDir: path(env.SANDBOX_SCHEMA_DIR) } : {}),
    log,
  };
}

function seconds(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const value = env[name];
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed < 0) throw new Error(`${name} is not a number of seconds: ${value}`);
  return parsed;
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
