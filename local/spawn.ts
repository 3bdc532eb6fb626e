import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, statfs } from 'node:fs/promises';
import { createServer } from 'node:net';
import { freemem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PROJECT_ROOT, type SandboxInfo, sandboxFile } from './constants.ts';
import { removeLinkedData } from './postgres-files.ts';

/** A sandbox run as `npm start` runs it, in a child process, as the test harness and the benchmarks start it. */
export interface SandboxProcess {
  readonly dir: string;
  readonly child: ChildProcess;
  readonly info: SandboxInfo;
  output(): string;
  /** Sends the signal and waits for the process to exit; returns its exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface SpawnSandboxOptions {
  /** A data directory to reuse (a restart); a fresh temporary one by default. */
  readonly dir?: string;
  readonly postgresPort?: number;
  readonly env?: NodeJS.ProcessEnv;
  /** The clone of the project to run `local/main.ts` of; this one by default. */
  readonly projectRoot?: string;
}

/** Memory a temporary sandbox's data may go to: a fleet benchmark of 1,000 tenant databases takes about 9 GB. */
const IN_MEMORY_MIN_BYTES = 12 * 2 ** 30;
const SHARED_MEMORY = '/dev/shm';

/**
 * A fresh, empty directory the sandbox's PostgreSQL (which runs as its own system user) can reach: in memory
 * (/dev/shm) when it and the machine have room, else in the temporary directory. A temporary sandbox keeps nothing
 * across a crash of the machine (its PostgreSQL runs with fsync off anyway), and each tenant database is about 350
 * files: on a disk where making a file is slow, that is where a provisioning's time went. On this project's
 * machines (ext4 without a journal), a new file skips every inode freed in the last 5 s to 5 min, so after a removed
 * sandbox PostgreSQL spent 351 ms of CPU per provisioning at concurrency 16 against 217 ms in memory.
 */
export async function sandboxDir(): Promise<string> {
  const dir = await mkdtemp(join(await sandboxParent(), 'tenant-provisioner-'));
  await chmod(dir, 0o755);
  return dir;
}

export async function spawnSandbox(options: SpawnSandboxOptions = {}): Promise<SandboxProcess> {
  const dir = options.dir ?? (await sandboxDir());
  const child = spawn(process.execPath, ['local/main.ts'], {
    cwd: options.projectRoot ?? PROJECT_ROOT,
    env: {
      ...process.env,
      SANDBOX_DIR: dir,
      SANDBOX_AWS_PORT: '0',
      SANDBOX_API_PORT: '0',
      SANDBOX_POSTGRES_PORT: String(options.postgresPort ?? (await freePort())),
      // A test or benchmark starts the usage collector and evaluates alarms itself, when it looks at them: a run or an
      // evaluation on the wall clock would put readings, events and alarm states beside the ones it looks at.
      SANDBOX_USAGE_SECONDS: '0',
      // Likewise the backup scheduler: a tenant whose slot passes during a test would get a backup run beside it.
      SANDBOX_UNSCHEDULED: 'ScheduleBackups',
      SANDBOX_ALARM_EVALUATION_SECONDS: '0',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    return exited;
  };
  try {
    const info = await waitForInfo(child, dir, () => output);
    return { dir, child, info, output: () => output, stop };
  } catch (error) {
    await stop('SIGKILL');
    throw error;
  }
}

async function waitForInfo(child: ChildProcess, dir: string, output: () => string): Promise<SandboxInfo> {
  for (let waited = 0; waited < 60_000; waited += 20) {
    if (child.exitCode !== null) throw new Error(`The sandbox exited (${child.exitCode}):\n${output()}`);
    // A restart in the same directory must not read the previous run's file, nor a refused start the running one's.
    if (existsSync(sandboxFile(dir))) {
      const info: SandboxInfo = JSON.parse(await readFile(sandboxFile(dir), 'utf8'));
      if (info.pid === child.pid) return info;
    }
    await sleep(20);
  }
  throw new Error(`The sandbox did not start in 60 s:\n${output()}`);
}

/** A port free right now, for PostgreSQL, which cannot be told to pick one itself. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === 'string') throw new Error('no free port');
  return address.port;
}

async function sandboxParent(): Promise<string> {
  const room = await statfs(SHARED_MEMORY).then(
    ({ bavail, bsize }) => bavail * bsize,
    () => 0,
  );
  return Math.min(room, freemem()) >= IN_MEMORY_MIN_BYTES ? SHARED_MEMORY : tmpdir();
}

/** Removes a sandbox directory, and PostgreSQL's data where it was linked to (postgres-files.ts). */
export async function removeDir(dir: string): Promise<void> {
  await removeLinkedData(join(dir, 'postgres'));
  await rm(dir, { recursive: true, force: true });
}
