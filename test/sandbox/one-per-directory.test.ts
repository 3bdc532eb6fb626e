import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jwtDir } from '../../local/api/jwt.ts';
import { PROJECT_ROOT, type SandboxInfo, sandboxFile } from '../../local/constants.ts';
import { type LockHolder, lockFile, processIdentity } from '../../local/lock.ts';
import { runningPostgresPid } from '../../local/postgres.ts';
import { removeDir, type SandboxProcess, sandboxDir, spawnSandbox } from '../../local/spawn.ts';

const mode = (file: string) =>
  stat(file).then(
    ({ mode }) => mode & 0o777,
    () => 'missing',
  );
const port = (url: string) => Number(new URL(url).port);

/** What a start on the directory printed and exited with; throws if it started instead of refusing. */
async function refusedStart(dir: string): Promise<string> {
  let started: SandboxProcess;
  try {
    started = await spawnSandbox({ dir });
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
  await started.stop();
  throw new Error(`a second sandbox started on ${dir}`);
}

/** `npm run sandbox:wipe` on the directory. */
function wipe(dir: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['local/wipe.ts'], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, SANDBOX_DIR: dir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
}

async function postgresAnswers(info: SandboxInfo): Promise<unknown> {
  const db = new pg.Client(info.postgres);
  await db.connect();
  try {
    return (await db.query('SELECT 1 AS up')).rows;
  } finally {
    await db.end();
  }
}

describe('a running sandbox', () => {
  let dir: string;
  let first: SandboxProcess;
  beforeAll(async () => {
    dir = await sandboxDir();
    first = await spawnSandbox({ dir });
  });
  afterAll(async () => {
    await first?.stop();
    await removeDir(dir);
  });

  it('keeps its sandbox.json, which holds the superuser password and an admin token, to its owner', async () => {
    // Act
    const files = {
      sandbox: await mode(sandboxFile(dir)),
      lock: await mode(lockFile(dir)),
      signingKey: await mode(join(jwtDir(dir), 'jwt-signing-key.pem')),
    };

    // Assess
    expect(files).toEqual({ sandbox: 0o600, lock: 0o600, signingKey: 0o600 });
    expect(existsSync(`${sandboxFile(dir)}.tmp`)).toBe(false);
  });

  it('refuses a second start on its directory in one line, and goes on running', async () => {
    // Prepare
    const pid = first.child.pid;
    const before = await readFile(sandboxFile(dir), 'utf8');

    // Act
    const refusal = await refusedStart(dir);

    // Assess
    expect(refusal).toBe(
      `The sandbox exited (1):\n[sandbox] not starting: a sandbox already runs on ${dir}: pid ${pid}, API port ${port(first.info.apiUrl)}, AWS port ${port(first.info.awsEndpoint)}, PostgreSQL port ${first.info.postgres.port}; stop it with Ctrl-C where it runs, or kill ${pid}\n`,
    );
    expect(await readFile(sandboxFile(dir), 'utf8')).toBe(before);
    expect(await runningPostgresPid(join(dir, 'postgres'))).toBeDefined();
    expect(await postgresAnswers(first.info)).toEqual([{ up: 1 }]);
    const health = await fetch(`${first.info.apiUrl}/.well-known/jwks.json`);
    expect(health.status).toBe(200);
  });

  it('is not wiped', async () => {
    // Act
    const { code, stderr } = await wipe(dir);

    // Assess
    expect(code).toBe(1);
    expect(stderr).toMatch(
      new RegExp(`^\\[sandbox\\] not wiping: a sandbox already runs on ${dir}: pid ${first.child.pid}, `),
    );
    expect(existsSync(sandboxFile(dir))).toBe(true);
    expect(await postgresAnswers(first.info)).toEqual([{ up: 1 }]);
  });
});

describe('a stale lock', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    await Promise.all(dirs.map(removeDir));
  });

  it('left by a sandbox killed hard does not keep the next one from starting', async () => {
    // Prepare
    const dir = await sandboxDir();
    dirs.push(dir);
    const killed = await spawnSandbox({ dir });
    await killed.stop('SIGKILL');
    const left: LockHolder = JSON.parse(await readFile(lockFile(dir), 'utf8'));

    // Act
    const restarted = await spawnSandbox({ dir });

    // Assess
    try {
      expect(left.pid).toBe(killed.child.pid);
      const holder: LockHolder = JSON.parse(await readFile(lockFile(dir), 'utf8'));
      expect(holder.pid).toBe(restarted.child.pid);
      expect(restarted.info.pid).toBe(restarted.child.pid);
      expect(await postgresAnswers(restarted.info)).toEqual([{ up: 1 }]);
    } finally {
      expect(await restarted.stop(), restarted.output()).toBe(0);
    }
    expect(existsSync(lockFile(dir))).toBe(false);
  });

  it('whose pid another process now has is taken over', async () => {
    // Prepare: this test's process is alive, but did not start when the lock says its holder did.
    const dir = await sandboxDir();
    dirs.push(dir);
    const { bootId, startTime } = await processIdentity(process.pid);
    expect(startTime).toBeDefined();
    const reused: LockHolder = { pid: process.pid, bootId, startTime: `${Number(startTime) + 1}` };
    await writeFile(lockFile(dir), JSON.stringify(reused));

    // Act
    const started = await spawnSandbox({ dir });

    // Assess
    const holder: LockHolder = JSON.parse(await readFile(lockFile(dir), 'utf8'));
    expect(await started.stop()).toBe(0);
    expect(holder.pid).toBe(started.child.pid);
  });

  it('is not assumed when its process is alive and the one that wrote it', async () => {
    // Prepare: this test's process stands for a sandbox still starting.
    const dir = await sandboxDir();
    dirs.push(dir);
    const identity = await processIdentity(process.pid);
    const starting: LockHolder = { pid: process.pid, bootId: identity.bootId, startTime: identity.startTime };
    await writeFile(lockFile(dir), JSON.stringify(starting));

    // Act
    const refusal = await refusedStart(dir);

    // Assess
    expect(refusal).toBe(
      `The sandbox exited (1):\n[sandbox] not starting: a sandbox is starting on ${dir}: pid ${process.pid}; stop it with Ctrl-C where it runs, or kill ${process.pid}\n`,
    );
    expect(await readFile(lockFile(dir), 'utf8')).toBe(JSON.stringify(starting));
  });
});
