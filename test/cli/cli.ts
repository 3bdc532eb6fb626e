import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../local/constants.ts';

/** The installed command: package.json's `bin` entry. */
export const LAUNCHER = join(PROJECT_ROOT, 'cli', 'tenants.mjs');

export interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs `tenants <args>` as a user would: a child process with stdout and stderr piped (so not a terminal), the
 * API's URL and token in the environment, in a directory without a sandbox file. `node` is the binary the
 * launcher runs under (its shebang's `node`): this process's by default.
 */
export function runCli(
  args: readonly string[],
  options: { apiUrl: string; token: string; env?: NodeJS.ProcessEnv; node?: string; cwd?: string },
): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(options.node ?? process.execPath, [LAUNCHER, ...args], {
      cwd: options.cwd ?? PROJECT_ROOT,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '',
        TENANTS_API_URL: options.apiUrl,
        TENANTS_TOKEN: options.token,
        TENANTS_POLL_MS: '200',
        ...options.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}
