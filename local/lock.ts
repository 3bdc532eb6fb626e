import { randomUUID } from 'node:crypto';
import { link, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';

/**
 * One sandbox per directory: `<dir>/sandbox.lock` names the process that runs it. A second start on the
 * directory would stop the first one's PostgreSQL and replace its `sandbox.json`, so it refuses instead; a lock
 * whose process is gone (killed hard) is taken over.
 */
export const lockFile = (dir: string): string => join(dir, 'sandbox.lock');

const LockHolder = z.object({
  pid: z.number().int().positive(),
  /**
   * Where /proc has them (Linux): the boot and the process's start time in clock ticks after it, so that a pid
   * reused by another process, or after a reboot, is not taken for the sandbox that wrote the lock.
   */
  bootId: z.string().optional(),
  startTime: z.string().optional(),
  /** The ports, once the sandbox listens on them. */
  ports: z.object({ api: z.number(), aws: z.number(), postgres: z.number() }).optional(),
});
export type LockHolder = z.infer<typeof LockHolder>;
export type SandboxPorts = NonNullable<LockHolder['ports']>;

/** A sandbox runs (or is starting) on the directory. */
export class SandboxRunningError extends Error {
  override readonly name = 'SandboxRunningError';
  readonly holder: LockHolder;

  constructor(dir: string, holder: LockHolder) {
    super(describeHolder(dir, holder));
    this.holder = holder;
  }
}

/** One line for a person: what runs on the directory and how to stop it. */
export function describeHolder(dir: string, holder: LockHolder): string {
  const { pid, ports } = holder;
  const what = ports
    ? `a sandbox already runs on ${dir}: pid ${pid}, API port ${ports.api}, AWS port ${ports.aws}, PostgreSQL port ${ports.postgres}`
    : `a sandbox is starting on ${dir}: pid ${pid}`;
  return `${what}; stop it with Ctrl-C where it runs, or kill ${pid}`;
}

export interface SandboxLock {
  /** Records the ports the sandbox listens on, for what a second start says. */
  ready(ports: SandboxPorts): Promise<void>;
  /** Removes the lock, if it is still this process's. */
  release(): Promise<void>;
}

const TAKEOVER_ATTEMPTS = 10;

/** Takes the directory's lock for this process; throws a {@link SandboxRunningError} while a sandbox runs there. */
export async function lockSandbox(dir: string): Promise<SandboxLock> {
  const file = lockFile(dir);
  const { bootId, startTime } = await processIdentity(process.pid);
  const self: LockHolder = { pid: process.pid, bootId, startTime };
  let text = serialise(self);
  // Written whole, then linked into place: link fails if the lock exists, and no reader sees half a file.
  const candidate = `${file}.${randomUUID()}`;
  await writeFile(candidate, text, { flag: 'wx', mode: 0o600 });
  try {
    for (let attempt = 0; attempt < TAKEOVER_ATTEMPTS; attempt += 1) {
      try {
        await link(candidate, file);
      } catch (error) {
        if (code(error) !== 'EEXIST') throw error;
        const found = await readIfExists(file);
        if (found === undefined) continue;
        const holder = parse(found);
        if (holder !== undefined && (await isRunning(holder))) throw new SandboxRunningError(dir, holder);
        await removeIfUnchanged(file, found);
        continue;
      }
      return {
        ready: async (ports) => {
          const next = serialise({ ...self, ports });
          await replace(file, next);
          text = next;
        },
        release: async () => {
          if ((await readIfExists(file)) === text) await rm(file, { force: true });
        },
      };
    }
    throw new Error(`${file}: another start kept taking it over`);
  } finally {
    await rm(candidate, { force: true });
  }
}

/** The process whose sandbox runs on the directory, if one does. */
export async function sandboxHolder(dir: string): Promise<LockHolder | undefined> {
  const found = await readIfExists(lockFile(dir));
  const holder = found === undefined ? undefined : parse(found);
  return holder !== undefined && (await isRunning(holder)) ? holder : undefined;
}

/**
 * Removes a stale lock, unless another start replaced it since it was read: it is moved aside first (atomic, so
 * exactly one start gets the stale file) and put back if it turns out to be a fresh one.
 */
async function removeIfUnchanged(file: string, stale: string): Promise<void> {
  const aside = `${file}.${randomUUID()}`;
  try {
    await rename(file, aside);
  } catch (error) {
    if (code(error) === 'ENOENT') return;
    throw error;
  }
  if ((await readFile(aside, 'utf8')) !== stale) {
    await link(aside, file).catch((error: unknown) => {
      if (code(error) !== 'EEXIST') throw error;
    });
  }
  await rm(aside, { force: true });
}

async function replace(file: string, text: string): Promise<void> {
  const next = `${file}.${randomUUID()}`;
  await writeFile(next, text, { flag: 'wx', mode: 0o600 });
  await rename(next, file);
}

async function isRunning(holder: LockHolder): Promise<boolean> {
  try {
    process.kill(holder.pid, 0);
  } catch (error) {
    // EPERM: the process exists, under another user.
    if (code(error) === 'ESRCH') return false;
  }
  if (holder.startTime === undefined) return true;
  const now = await processIdentity(holder.pid);
  // Without /proc nothing tells a reused pid apart: the process is taken for the sandbox.
  if (now.startTime === undefined) return true;
  return !now.dead && now.bootId === holder.bootId && now.startTime === holder.startTime;
}

export interface ProcessIdentity {
  readonly bootId?: string;
  readonly startTime?: string;
  /** A zombie: exited, not yet reaped by its parent. */
  readonly dead?: boolean;
}

/** The boot and the process's start time, from /proc; nothing where there is no /proc. */
export async function processIdentity(pid: number): Promise<ProcessIdentity> {
  const [bootId, stat] = await Promise.all([
    readIfExists('/proc/sys/kernel/random/boot_id'),
    readIfExists(`/proc/${pid}/stat`),
  ]);
  // `pid (comm) state ppid …`: comm may hold spaces and parentheses; starttime is field 22, the 20th after comm.
  const fields = stat?.slice(stat.lastIndexOf(')') + 2).split(' ') ?? [];
  const [state, startTime] = [fields[0], fields[19]];
  if (bootId === undefined || startTime === undefined) return {};
  return { bootId: bootId.trim(), startTime, dead: state === 'Z' || state === 'X' };
}

function parse(text: string): LockHolder | undefined {
  try {
    const parsed = LockHolder.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

const serialise = (holder: LockHolder): string => `${JSON.stringify(holder)}\n`;

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    if (code(error) === 'ENOENT' || code(error) === 'ESRCH') return undefined;
    throw error;
  }
}

const code = (error: unknown): unknown =>
  error instanceof Error && 'code' in error ? error.code : undefined;
