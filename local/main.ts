import { sandboxOptionsFromEnv } from './config.ts';
import { sandboxFile } from './constants.ts';
import { SandboxRunningError } from './lock.ts';
import { PostgresSetupError } from './postgres-files.ts';
import { startSandbox } from './sandbox.ts';

/** `npm start`: runs the sandbox until SIGINT, SIGTERM or SIGHUP, then stops PostgreSQL and every server. */

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

const log = (line: string) => console.log(`[sandbox] ${line}`);
const started = performance.now();
const options = await sandboxOptionsFromEnv(process.env, log);
const starting = startSandbox(options);

// Listening before the sandbox is up: a signal that arrives while it starts (or just after `sandbox.json`
// appears) still stops it cleanly, once started.
let stopping = false;
for (const signal of SIGNALS) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: stopping`);
    starting
      .then((sandbox) => sandbox.stop())
      .then(
        () => process.exit(0),
        (error: unknown) => {
          console.error(error);
          process.exit(1);
        },
      );
  });
}

const sandbox = await starting.catch((error: unknown) => {
  // What a person can act on is one line; anything else is a bug, with its stack.
  if (!(error instanceof SandboxRunningError || error instanceof PostgresSetupError)) throw error;
  console.error(`[sandbox] not starting: ${error.message}`);
  process.exit(1);
});
log(`API           ${sandbox.info.apiUrl}  (token in sandbox.json; npm run token mints others)`);
log(`AWS endpoint  ${sandbox.info.awsEndpoint}  (AWS_ENDPOINT_URL)`);
log(`PostgreSQL    postgresql://${sandbox.info.postgres.user}@127.0.0.1:${sandbox.info.postgres.port}`);
log(`details       ${sandboxFile(options.dir)}`);
log(`ready in ${Math.round(performance.now() - started)} ms; Ctrl-C stops it`);
