import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { PROJECT_ROOT, type SandboxInfo } from '../local/constants.ts';
import { removeDir, spawnSandbox } from '../local/spawn.ts';

declare module 'vitest' {
  interface ProvidedContext {
    sandbox: SandboxInfo;
  }
}

const FIXTURE_FUNCTIONS = 'test/fixtures/functions.ts';

/**
 * Starts one sandbox for the whole run, as `npm start` does but in a fresh directory and on free ports,
 * so that tests neither see nor disturb a sandbox a person has running.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // spawnSandbox leaves alarms to be evaluated when a test asks (POST /_sandbox/cloudwatch/evaluate), not by the wall
  // clock, which would move an alarm a test has just set with SetAlarmState back to the state its data calls for.
  const sandbox = await spawnSandbox({
    env: existsSync(join(PROJECT_ROOT, FIXTURE_FUNCTIONS))
      ? { SANDBOX_EXTRA_FUNCTIONS: FIXTURE_FUNCTIONS }
      : {},
  });
  project.provide('sandbox', sandbox.info);
  return async () => {
    await sandbox.stop();
    if (process.env.KEEP_SANDBOX) console.log(`sandbox kept in ${sandbox.dir}\n${sandbox.output()}`);
    else await removeDir(sandbox.dir);
  };
}
