import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { z } from 'zod';
import { ApiClient, ApiError, UnreachableError } from './client.ts';
import {
  backup,
  bulk,
  type CommandContext,
  changePlan,
  create,
  credentials,
  deleteTenant,
  EXIT,
  get,
  listTenants,
  migrate,
  restore,
  resume,
  suspend,
  UsageError,
  usage,
  watch,
} from './commands.ts';
import { apiConfig, ConfigError, PACKAGE_ROOT } from './config.ts';
import { colors, type Display, plainDisplay, type Stream, terminalDisplay } from './display.ts';

type Options = NonNullable<ParseArgsConfig['options']>;

const GLOBAL_OPTIONS: Options = {
  json: { type: 'boolean' },
  wait: { type: 'boolean', default: true },
  timeout: { type: 'string' },
  'api-url': { type: 'string' },
  token: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

interface CommandSpec {
  readonly usage: string;
  readonly summary: string;
  readonly options: Options;
  readonly run: (context: CommandContext) => Promise<number>;
}

const COMMANDS: Readonly<Record<string, CommandSpec>> = {
  create: {
    usage:
      'create <name> --plan <plan> --admin-email <email> [--slug <slug>] [--admin-first-name <n>] [--admin-last-name <n>] [--auth password,2fa] [--feature <flag>]... [--file <body.json>]',
    summary: 'Create a tenant and follow its provisioning step by step',
    options: {
      plan: { type: 'string' },
      slug: { type: 'string' },
      'admin-email': { type: 'string' },
      'admin-first-name': { type: 'string' },
      'admin-last-name': { type: 'string' },
      auth: { type: 'string' },
      feature: { type: 'string', multiple: true },
      file: { type: 'string' },
    },
    run: create,
  },
  get: {
    usage: 'get <tenantId>',
    summary: 'Show a tenant: plan, status, resources, steps',
    options: {},
    run: get,
  },
  usage: {
    usage: 'usage <tenantId>',
    summary: "Show a tenant's latest usage: storage, connections, users, API keys against its limits",
    options: {},
    run: usage,
  },
  list: {
    usage: 'list [--status <status>] [--plan <plan>] [--limit <n>] [--cursor <c>] [--all]',
    summary: 'List tenants',
    options: {
      status: { type: 'string' },
      plan: { type: 'string' },
      limit: { type: 'string' },
      cursor: { type: 'string' },
      all: { type: 'boolean' },
    },
    run: listTenants,
  },
  suspend: {
    usage: 'suspend <tenantId> --reason <text>',
    summary: 'Suspend a tenant (database closed, roles locked, alarm actions off)',
    options: { reason: { type: 'string' } },
    run: suspend,
  },
  resume: {
    usage: 'resume <tenantId> --reason <text>',
    summary: 'Resume a suspended tenant',
    options: { reason: { type: 'string' } },
    run: resume,
  },
  plan: {
    usage: 'plan <tenantId> [<plan>] [--limit <name>=<value>]... [--reason <text>]',
    summary: "Change a tenant's plan and limits",
    options: { limit: { type: 'string', multiple: true }, reason: { type: 'string' } },
    run: changePlan,
  },
  delete: {
    usage: 'delete <tenantId> --confirm <slug> [--reason <text>]',
    summary: 'Delete a tenant after a final backup (the slug, repeated, confirms)',
    options: { confirm: { type: 'string' }, reason: { type: 'string' } },
    run: deleteTenant,
  },
  credentials: {
    usage: 'credentials <tenantId> <admin|app|readonly|auditor> [--ttl-hours <n>]',
    summary: "A database role's secret ARN, issued when its plan does not stand it (expiring)",
    options: { 'ttl-hours': { type: 'string' } },
    run: credentials,
  },
  backup: {
    usage: 'backup <tenantId> [--reason <text>] | backup <tenantId> --list',
    summary: "Back up a tenant's database to S3, or list its backups",
    options: { reason: { type: 'string' }, list: { type: 'boolean' } },
    run: backup,
  },
  restore: {
    usage: 'restore <tenantId> --backup <backupId> [--name <name>] [--slug <slug>]',
    summary: 'Restore a backup into a new tenant, verified against its manifest',
    options: { backup: { type: 'string' }, name: { type: 'string' }, slug: { type: 'string' } },
    run: restore,
  },
  bulk: {
    usage: 'bulk <file.csv|file.json> [--dry-run]',
    summary: 'Onboard tenants in bulk; --dry-run validates every row and creates nothing',
    options: { 'dry-run': { type: 'boolean' } },
    run: bulk,
  },
  migrate: {
    usage: 'migrate [--tenant <tenantId>]... [--tolerated-failures <n>] [--tolerated-failure-percentage <p>]',
    summary: "Apply the tenant template's new migrations to every active tenant (or those named)",
    options: {
      tenant: { type: 'string', multiple: true },
      'tolerated-failures': { type: 'string' },
      'tolerated-failure-percentage': { type: 'string' },
    },
    run: migrate,
  },
  watch: {
    usage: 'watch <tenantId|batchId|migrationId>',
    summary: 'Follow what runs for a tenant, a batch or a migration until it is over',
    options: {},
    run: watch,
  },
};

const HELP = `tenants: the Tenant Provisioner's command-line client

Usage: tenants <command> [arguments] [options]

Commands:
${Object.entries(COMMANDS)
  .map(([name, spec]) => `  ${name.padEnd(8)} ${spec.summary}`)
  .join('\n')}

Options (every command):
  --json              Print only the final result, as JSON (no progress)
  --no-wait           Return once the work is accepted, without following it
  --timeout <s>       Stop following long work after this many seconds (3600); it goes on
  --api-url <url>     The API (TENANTS_API_URL)
  --token <token>     A bearer token with the tenants/admin or tenants/read scope (TENANTS_TOKEN)
  -h, --help          This help; \`tenants <command> --help\` for a command's

Without --api-url or TENANTS_API_URL, the local sandbox's .local/sandbox.json gives the URL and token.
Long work is followed as it moves: redrawn in place on a terminal, one plain line per change otherwise.

Exit codes:
  ${EXIT.ok}    done (or accepted, with --no-wait)
  ${EXIT.failed}    the work failed: a tenant failed, a batch or migration had failures, a dry run found problems
  ${EXIT.usage}    wrong command line
  ${EXIT.refused}    the API refused the request (400, 404, 409, 422); nothing was done
  ${EXIT.unauthorized}    no token, or one the API does not accept (401, 403)
  ${EXIT.unavailable}    the API is unreachable or failing (5xx): retry later
  ${EXIT.timeout}    still running when --timeout ran out; the work goes on
  ${EXIT.interrupted}  interrupted (Ctrl-C) while following; the work goes on
`;

/** What the CLI runs against: its streams and environment (a test hands others). */
export interface Io {
  readonly stdout: Stream;
  readonly stderr: Stream;
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
  /** Aborted on Ctrl-C. */
  readonly signal?: AbortSignal;
}

const Version = z.object({ version: z.string() });

/** Runs one command line; returns the exit code. Never throws. */
export async function main(argv: readonly string[], io: Io): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(HELP);
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  if (name === '--version' || name === '-v') {
    const { version } = Version.parse(JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')));
    io.stdout.write(`${version}\n`);
    return EXIT.ok;
  }
  const spec = COMMANDS[name];
  if (!spec) {
    io.stderr.write(`tenants: unknown command "${name}"\n\n${HELP}`);
    return EXIT.usage;
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: [...rest],
      options: { ...GLOBAL_OPTIONS, ...spec.options },
      allowPositionals: true,
      allowNegative: true,
      strict: true,
    });
  } catch (error) {
    io.stderr.write(
      `tenants ${name}: ${error instanceof Error ? error.message : error}\nUsage: tenants ${spec.usage}\n`,
    );
    return EXIT.usage;
  }
  const { values, positionals } = parsed;
  if (values.help === true) {
    io.stdout.write(
      `Usage: tenants ${spec.usage}\n\n${spec.summary}.\n\nSee tenants --help for the options of every command and the exit codes.\n`,
    );
    return EXIT.ok;
  }
  const json = values.json === true;
  const interactive = io.stdout.isTTY === true && !json;
  const c = colors(interactive && io.env.NO_COLOR === undefined);
  const timeout = typeof values.timeout === 'string' ? Number(values.timeout) : 3600;
  if (!Number.isFinite(timeout) || timeout <= 0) {
    io.stderr.write(`tenants ${name}: --timeout takes a number of seconds\n`);
    return EXIT.usage;
  }
  const silent: Display = { interactive: false, event: () => {}, frame: () => {}, end: () => {} };
  let hint: string | undefined;
  try {
    const config = apiConfig(
      {
        apiUrl: typeof values['api-url'] === 'string' ? values['api-url'] : undefined,
        token: typeof values.token === 'string' ? values.token : undefined,
      },
      io.env,
      io.cwd,
    );
    const context: CommandContext = {
      client: new ApiClient(config),
      args: positionals,
      options: values,
      json,
      wait: values.wait !== false,
      display: json ? silent : interactive ? terminalDisplay(io.stdout) : plainDisplay(io.stdout),
      colors: c,
      watch: {
        intervalMs: Number(io.env.TENANTS_POLL_MS ?? 500),
        timeoutMs: timeout * 1000,
        ...(io.signal ? { signal: io.signal } : {}),
      },
      print: (text) => {
        if (!json) io.stdout.write(`${text}\n`);
      },
      result: (value) => {
        if (json) io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
      },
      following: (text) => {
        hint = text;
      },
    };
    return await spec.run(context);
  } catch (error) {
    return reportError(name, spec, error, io, hint);
  }
}

function reportError(
  name: string,
  spec: CommandSpec,
  error: unknown,
  io: Io,
  hint: string | undefined,
): number {
  const write = (text: string) => io.stderr.write(`${text}\n`);
  if (error instanceof UsageError) {
    write(`tenants ${name}: ${error.message}\nUsage: tenants ${spec.usage}`);
    return EXIT.usage;
  }
  if (error instanceof ConfigError) {
    write(`tenants ${name}: ${error.message}`);
    return EXIT.unauthorized;
  }
  if (error instanceof Error && error.name === 'AbortError') {
    write(`\nStopped following; the work goes on.${hint ? ` Follow it again: ${hint}` : ''}`);
    return EXIT.interrupted;
  }
  if (error instanceof UnreachableError) {
    write(`tenants ${name}: ${error.message}`);
    return EXIT.unavailable;
  }
  if (error instanceof ApiError) {
    write(`tenants ${name}: ${error.message} (${error.code}, HTTP ${error.status})`);
    for (const detail of error.details)
      write(`  ${detail.path === '' ? '' : `${detail.path}: `}${detail.message}`);
    if (error.suggestions.length > 0) write(`  free slugs: ${error.suggestions.join(', ')}`);
    if (error.status === 401 || error.status === 403) return EXIT.unauthorized;
    if (error.status >= 500) return EXIT.unavailable;
    return EXIT.refused;
  }
  if (error instanceof z.ZodError) {
    write(
      `tenants ${name}: the API answered something this CLI does not understand: ${z.prettifyError(error)}`,
    );
    return EXIT.unavailable;
  }
  write(`tenants ${name}: ${error instanceof Error ? error.message : String(error)}`);
  return EXIT.failed;
}

if (import.meta.main) {
  const controller = new AbortController();
  let interrupted = false;
  process.on('SIGINT', () => {
    // A second Ctrl-C leaves at once.
    if (interrupted) process.exit(EXIT.interrupted);
    interrupted = true;
    controller.abort();
  });
  const code = await main(process.argv.slice(2), {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    cwd: process.cwd(),
    signal: controller.signal,
  });
  process.exitCode = code;
}
