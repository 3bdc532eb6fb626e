import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import type { z } from 'zod';
import type { ApiClient } from './client.ts';
import { type Colors, type Display, duration } from './display.ts';
import {
  BackupList,
  type Batch,
  BatchCreated,
  BatchDryRun,
  Created,
  IssuedCredentials,
  Migration,
  OperationAccepted,
  Restored,
  type Step,
  Tenant,
  TenantList,
  Usage,
} from './schemas.ts';
import {
  provisioningEnded,
  reachesStatus,
  type TenantContext,
  type WatchOptions,
  type WatchOutcome,
  watchBackup,
  watchBatch,
  watchMigration,
  watchTenant,
} from './watch.ts';

/**
 * The exit codes, documented in `tenants --help`: a script tells success from failure, and a refusal from an
 * outage (worth a retry).
 */
export const EXIT = {
  /** Done: the work succeeded (or, with --no-wait, was accepted). */
  ok: 0,
  /** The work ended in failure: a tenant failed, a batch or migration had failures, a dry run found problems. */
  failed: 1,
  /** The command line is wrong. */
  usage: 2,
  /** The API refused the request (400, 404, 409, 422): nothing was done. */
  refused: 3,
  /** No token, or one the API does not accept (401, 403). */
  unauthorized: 4,
  /** The API is unreachable or failing (5xx, 503, network): retry later. */
  unavailable: 5,
  /** The work was still going when --timeout ran out; it goes on. */
  timeout: 6,
  /** Interrupted (Ctrl-C) while following; the work goes on. */
  interrupted: 130,
} as const;

/** A wrong command line: exit 2 with the message and the command's usage. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** What a command needs: the API, its parsed options, and where it writes. */
export interface CommandContext {
  readonly client: ApiClient;
  readonly args: readonly string[];
  readonly options: Readonly<Record<string, string | boolean | (string | boolean)[] | undefined>>;
  readonly json: boolean;
  readonly wait: boolean;
  readonly display: Display;
  readonly colors: Colors;
  readonly watch: Omit<WatchOptions, 'client' | 'display' | 'colors'>;
  /** Human-readable output (nothing with --json). */
  print(text: string): void;
  /** The machine-readable result (only with --json). */
  result(value: unknown): void;
  /** Names what is being followed, for the message shown if the user stops following. */
  following(hint: string): void;
}

const str = (context: CommandContext, name: string): string | undefined => {
  const value = context.options[name];
  return typeof value === 'string' ? value : undefined;
};
const list = (context: CommandContext, name: string): string[] => {
  const value = context.options[name];
  if (Array.isArray(value)) return value.filter((item) => typeof item === 'string');
  return typeof value === 'string' ? [value] : [];
};
const required = (context: CommandContext, name: string, what: string): string => {
  const value = str(context, name);
  if (value === undefined || value === '') throw new UsageError(`--${name} is required: ${what}`);
  return value;
};
function argument(context: CommandContext, index: number, what: string): string {
  const value = context.args[index];
  if (value === undefined) throw new UsageError(`Missing ${what}`);
  return value;
}
const watchOptions = (context: CommandContext): WatchOptions => ({
  client: context.client,
  display: context.display,
  colors: context.colors,
  ...context.watch,
});
const path = (id: string) => `/tenants/${encodeURIComponent(id)}`;

/** Ends a followed run: the result with --json, a last line otherwise, and the exit code. */
function finish<T>(
  context: CommandContext,
  outcome: WatchOutcome<T>,
  describe: (last: T, ok: boolean) => string,
  hint: string,
): number {
  if (outcome.kind === 'timeout') {
    if (context.json) context.result(outcome.last ?? null);
    context.print(`Still running after --timeout; it goes on. Follow it with: ${hint}`);
    return EXIT.timeout;
  }
  if (context.json) context.result(outcome.last);
  else context.print(describe(outcome.last, outcome.ok));
  return outcome.ok ? EXIT.ok : EXIT.failed;
}

const tenantOutcome = (c: Colors) => (tenant: z.infer<typeof Tenant>, ok: boolean) => {
  const status = ok ? c.green(tenant.status) : c.red(tenant.status);
  const failure =
    tenant.failure && !ok
      ? ` (${tenant.failure.step}: ${tenant.failure.error}: ${tenant.failure.cause})`
      : '';
  return `tenant ${tenant.id} (${tenant.slug}) is ${status}${failure}`;
};

// ---- create, get, list ----

/** `create <name> --plan <plan> --admin-email <email> [...]`: creates a tenant and follows its provisioning. */
export async function create(context: CommandContext): Promise<number> {
  const file = str(context, 'file');
  const base: Record<string, unknown> = file ? await readJsonObject(file) : {};
  const name = context.args[0] ?? (typeof base.name === 'string' ? base.name : undefined);
  if (name === undefined) throw new UsageError('Missing the tenant name');
  const adminUser = { ...(isRecord(base.adminUser) ? base.adminUser : {}) };
  for (const [option, field] of [
    ['admin-email', 'email'],
    ['admin-first-name', 'firstName'],
    ['admin-last-name', 'lastName'],
  ] as const) {
    const value = str(context, option);
    if (value !== undefined) adminUser[field] = value;
  }
  const features: Record<string, unknown> = { ...(isRecord(base.features) ? base.features : {}) };
  const auth = str(context, 'auth');
  if (auth !== undefined) features.auth = auth.split(',').map((method) => method.trim());
  for (const flag of list(context, 'feature')) features[flag] = true;
  const plan = str(context, 'plan') ?? base.plan;
  if (plan === undefined) throw new UsageError('--plan is required: basic, professional or enterprise');
  if (adminUser.email === undefined)
    throw new UsageError("--admin-email is required: the first administrator's email");
  const body = {
    ...base,
    name,
    plan,
    adminUser,
    ...(Object.keys(features).length > 0 ? { features } : {}),
    ...(str(context, 'slug') !== undefined ? { slug: str(context, 'slug') } : {}),
  };
  // One key per invocation: a retry of this very request (a lost answer) cannot create a second tenant.
  const answer = await context.client.request('POST', '/tenants', {
    json: body,
    headers: { 'idempotency-key': `cli-${randomUUID()}` },
  });
  const created = Created.parse(answer.body);
  if (!context.wait) {
    if (context.json) context.result(answer.body);
    context.print(
      `tenant ${created.tenantId} (${created.slug}) is provisioning; follow it: tenants watch ${created.tenantId}`,
    );
    return EXIT.ok;
  }
  const hint = `tenants watch ${created.tenantId}`;
  context.following(hint);
  const outcome = await watchTenant(watchOptions(context), {
    tenantId: created.tenantId,
    title: 'create',
    ended: provisioningEnded(),
  });
  return finish(context, outcome, tenantOutcome(context.colors), hint);
}

/** `get <tenantId>`. */
export async function get(context: CommandContext): Promise<number> {
  const tenant = await context.client.get(path(argument(context, 0, 'the tenant id')), Tenant);
  if (context.json) {
    context.result(tenant);
    return EXIT.ok;
  }
  context.print(describeTenant(tenant, context.colors).join('\n'));
  return EXIT.ok;
}

/** `usage <tenantId>`: the latest reading, each measure with its limit and share. */
export async function usage(context: CommandContext): Promise<number> {
  const reading = await context.client.get(`${path(argument(context, 0, 'the tenant id'))}/usage`, Usage);
  if (context.json) {
    context.result(reading);
    return EXIT.ok;
  }
  if (reading.measuredAt === null) {
    context.print(
      `tenant ${reading.tenantId}: not measured yet (the usage collector runs every few minutes)`,
    );
    return EXIT.ok;
  }
  const exceeded = new Set(reading.exceeded);
  const rows = Object.entries(reading.readings).map(([name, r]) => [
    name,
    String(r.used),
    r.limit === undefined ? '-' : String(r.limit),
    r.share === undefined ? '-' : `${(r.share * 100).toFixed(1)}%${exceeded.has(name) ? ' exceeded' : ''}`,
    r.unit,
  ]);
  context.print(`tenant ${reading.tenantId}, measured ${reading.measuredAt}`);
  context.print(table([['MEASURE', 'USED', 'LIMIT', 'SHARE', 'UNIT'], ...rows]));
  for (const problem of reading.problems) {
    context.print(`not measured: ${problem.measures.join(', ')}: ${problem.reason}`);
  }
  return EXIT.ok;
}

export function describeTenant(tenant: z.infer<typeof Tenant>, c: Colors): string[] {
  const resources = tenant.resources;
  const lines = [
    `${c.bold(tenant.id)}  ${tenant.slug}  (${tenant.name})`,
    `  status    ${tenant.status}`,
    `  plan      ${tenant.plan}  ${Object.entries(tenant.limits)
      .map(([name, value]) => `${name}=${value}`)
      .join(' ')}`,
    `  schema    ${tenant.schemaVersion === null ? '-' : `version ${tenant.schemaVersion}`}`,
  ];
  if (typeof resources.database === 'string') lines.push(`  database  ${resources.database}`);
  const storage = resources.storage;
  if (isRecord(storage)) lines.push(`  storage   s3://${String(storage.bucket)}/${String(storage.prefix)}`);
  if (Array.isArray(resources.alarms)) lines.push(`  alarms    ${resources.alarms.length}`);
  if (tenant.failure) {
    lines.push(c.red(`  failure   ${tenant.failure.step}: ${tenant.failure.error}: ${tenant.failure.cause}`));
  }
  if (tenant.leftovers && tenant.leftovers.length > 0)
    lines.push(c.red(`  leftovers ${tenant.leftovers.join(', ')}`));
  lines.push(`  created   ${tenant.createdAt}`, `  updated   ${tenant.updatedAt}`);
  if (tenant.progress.length > 0) {
    lines.push('  steps');
    for (const step of tenant.progress) lines.push(`    ${stepSummary(step, c)}`);
  }
  return lines;
}

function stepSummary(step: Step, c: Colors): string {
  const mark =
    step.status === 'succeeded' ? c.green('✓') : step.status === 'failed' ? c.red('✗') : c.yellow('…');
  const took = step.durationMs === null ? '' : ` ${duration(step.durationMs)}`;
  const why = step.error ? ` ${step.error.error}: ${step.error.cause}` : '';
  return `${mark} ${step.step}${took}${why}`;
}

/** `list [--status s] [--plan p] [--limit n] [--all]`. */
export async function listTenants(context: CommandContext): Promise<number> {
  const all = context.options.all === true;
  const items: z.infer<typeof TenantList>['items'] = [];
  let cursor = str(context, 'cursor');
  let nextCursor: string | null = null;
  do {
    const page = await context.client.get('/tenants', TenantList, {
      status: str(context, 'status'),
      plan: str(context, 'plan'),
      limit: str(context, 'limit') ?? (all ? '100' : undefined),
      cursor,
    });
    items.push(...page.items);
    nextCursor = page.nextCursor;
    cursor = nextCursor ?? undefined;
  } while (all && nextCursor !== null);
  if (context.json) {
    context.result({ items, nextCursor: all ? null : nextCursor });
    return EXIT.ok;
  }
  const rows = items.map((t) => [t.id, t.slug, t.plan, t.status, t.createdAt]);
  context.print(table([['ID', 'SLUG', 'PLAN', 'STATUS', 'CREATED'], ...rows]));
  if (nextCursor !== null && !all) context.print(`more: tenants list --cursor ${nextCursor} (or --all)`);
  return EXIT.ok;
}

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length))) ?? [];
  return rows
    .map((row) =>
      row
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

// ---- lifecycle: suspend, resume, plan, delete, backup, restore ----

/** Starts a lifecycle operation (202) after reading the tenant, then follows it on the tenant's steps. */
async function operation(
  context: CommandContext,
  request: { method: string; suffix: string; json?: unknown; query?: Record<string, string | undefined> },
  title: string,
  ended: (tenant: z.infer<typeof Tenant>, steps: TenantContext) => boolean | undefined,
  describe: (tenant: z.infer<typeof Tenant>, ok: boolean) => string = tenantOutcome(context.colors),
): Promise<number> {
  const tenantId = argument(context, 0, 'the tenant id');
  const before = await context.client.get(path(tenantId), Tenant);
  const answer = await context.client.request(request.method, `${path(tenantId)}${request.suffix}`, {
    ...(request.json !== undefined ? { json: request.json } : {}),
    ...(request.query ? { query: request.query } : {}),
    headers: { 'idempotency-key': `cli-${randomUUID()}` },
  });
  const accepted = OperationAccepted.parse(answer.body);
  if (!context.wait) {
    if (context.json) context.result(answer.body);
    context.print(
      `${title} of tenant ${tenantId} started (${accepted.executionArn}); follow it: tenants watch ${tenantId}`,
    );
    return EXIT.ok;
  }
  const hint = `tenants watch ${tenantId}`;
  context.following(hint);
  const outcome = await watchTenant(watchOptions(context), {
    tenantId,
    baseline: before.progress,
    title,
    ended,
  });
  return finish(context, outcome, describe, hint);
}

/** `suspend <tenantId> --reason <text>`. */
export function suspend(context: CommandContext): Promise<number> {
  const reason = required(context, 'reason', 'why, for the audit log');
  return operation(
    context,
    { method: 'POST', suffix: '/suspend', json: { reason } },
    'suspend',
    reachesStatus('suspended'),
  );
}

/** `resume <tenantId> --reason <text>`. */
export function resume(context: CommandContext): Promise<number> {
  const reason = required(context, 'reason', 'why, for the audit log');
  return operation(
    context,
    { method: 'POST', suffix: '/resume', json: { reason } },
    'resume',
    reachesStatus('active'),
  );
}

/** `plan <tenantId> [<plan>] [--limit name=value ...] [--reason <text>]`: `PATCH /tenants/{id}`. */
export function changePlan(context: CommandContext): Promise<number> {
  const plan = context.args[1];
  const limits: Record<string, number> = {};
  for (const pair of list(context, 'limit')) {
    const match = /^([A-Za-z]+)=(\d+)$/.exec(pair);
    if (!match?.[1] || !match[2]) throw new UsageError(`--limit takes name=value, e.g. maxUsers=20: ${pair}`);
    limits[match[1]] = Number(match[2]);
  }
  if (plan === undefined && Object.keys(limits).length === 0) {
    throw new UsageError('Give a plan, --limit name=value, or both');
  }
  const reason = str(context, 'reason');
  const body = {
    ...(plan !== undefined ? { plan } : {}),
    ...(Object.keys(limits).length > 0 ? { limits } : {}),
    ...(reason !== undefined ? { reason } : {}),
  };
  const c = context.colors;
  return operation(
    context,
    { method: 'PATCH', suffix: '', json: body },
    'plan',
    (tenant, run) => {
      const applied =
        (plan === undefined || tenant.plan === plan) &&
        Object.entries(limits).every(([name, value]) => tenant.limits[name] === value);
      if (applied && run.settled) return !run.steps.some((step) => step.status === 'failed');
      if (run.settled && run.steps.some((step) => step.status === 'failed')) return false;
      return undefined;
    },
    (tenant, ok) => {
      const limitsText = Object.entries(tenant.limits)
        .map(([name, value]) => `${name}=${value}`)
        .join(' ');
      const failed = tenant.progress.find((step) => step.status === 'failed');
      return ok
        ? `tenant ${tenant.id} (${tenant.slug}) is on the ${c.green(tenant.plan)} plan: ${limitsText}`
        : c.red(
            `the plan change of tenant ${tenant.id} failed${failed?.error ? ` at ${failed.step}: ${failed.error.error}: ${failed.error.cause}` : ''}; it stays on the ${tenant.plan} plan`,
          );
    },
  );
}

/** `delete <tenantId> --confirm <slug> [--reason <text>]`. */
export function deleteTenant(context: CommandContext): Promise<number> {
  const confirm = required(
    context,
    'confirm',
    "the tenant's slug, repeated, so that no typo deletes a tenant",
  );
  return operation(
    context,
    { method: 'DELETE', suffix: '', query: { confirm, reason: str(context, 'reason') } },
    'delete',
    reachesStatus('deleted'),
  );
}

/**
 * `credentials <tenantId> <role> [--ttl-hours <n>]`: `POST /tenants/{id}/credentials`; prints the secret's ARN (never
 * the password: read it with `aws secretsmanager get-secret-value`) and, for a role not standing on the plan, when
 * the credentials expire.
 */
export async function credentials(context: CommandContext): Promise<number> {
  const tenantId = argument(context, 0, 'the tenant id');
  const role = argument(context, 1, 'the role (admin, app, readonly or auditor)');
  const ttl = str(context, 'ttl-hours');
  if (ttl !== undefined && !/^\d+$/.test(ttl)) throw new UsageError(`--ttl-hours takes whole hours: ${ttl}`);
  const answer = await context.client.request('POST', `${path(tenantId)}/credentials`, {
    json: { role, ...(ttl !== undefined ? { ttlHours: Number(ttl) } : {}) },
  });
  const issued = IssuedCredentials.parse(answer.body);
  if (context.json) context.result(answer.body);
  const how =
    issued.expiresAt === undefined
      ? 'standing on its plan'
      : `${answer.status === 201 ? 'issued now' : 'issued before'}, expires ${issued.expiresAt}`;
  context.print(`${role} of tenant ${tenantId}: ${issued.secretArn} (${how})`);
  return EXIT.ok;
}

/** `backup <tenantId> [--reason <text>]` takes a backup and follows it; `backup <tenantId> --list` lists them. */
export async function backup(context: CommandContext): Promise<number> {
  const tenantId = argument(context, 0, 'the tenant id');
  const backups = await context.client.get(`${path(tenantId)}/backups`, BackupList);
  if (context.options.list === true) {
    if (context.json) context.result(backups);
    else {
      const rows = backups.items.map((b) => [
        b.backupId,
        b.kind,
        `v${b.schemaVersion}`,
        String(b.tables),
        String(b.rows),
        String(b.bytes),
      ]);
      context.print(table([['BACKUP', 'KIND', 'SCHEMA', 'TABLES', 'ROWS', 'BYTES'], ...rows]));
    }
    return EXIT.ok;
  }
  const before = await context.client.get(path(tenantId), Tenant);
  const reason = str(context, 'reason');
  const answer = await context.client.request('POST', `${path(tenantId)}/backups`, {
    json: reason === undefined ? {} : { reason },
    headers: { 'idempotency-key': `cli-${randomUUID()}` },
  });
  OperationAccepted.parse(answer.body);
  if (!context.wait) {
    if (context.json) context.result(answer.body);
    context.print(`backup of tenant ${tenantId} started; list backups: tenants backup ${tenantId} --list`);
    return EXIT.ok;
  }
  const hint = `tenants backup ${tenantId} --list`;
  context.following(hint);
  const known = new Set(backups.items.map((item) => item.backupId));
  const outcome = await watchBackup(watchOptions(context), tenantId, before.progress, known);
  if (outcome.kind === 'ended' && outcome.ok) {
    const after = await context.client.get(`${path(tenantId)}/backups`, BackupList);
    const made = after.items.find((item) => !known.has(item.backupId));
    if (context.json) {
      context.result(made ?? null);
      return EXIT.ok;
    }
    context.print(
      made
        ? `backup ${made.backupId} of tenant ${tenantId}: ${made.tables} tables, ${made.rows} rows, ${made.bytes} bytes`
        : `backup of tenant ${tenantId} done`,
    );
    return EXIT.ok;
  }
  return finish(context, outcome, tenantOutcome(context.colors), hint);
}

/** `restore <tenantId> --backup <backupId> [--name <name>] [--slug <slug>]`: into a new tenant, followed. */
export async function restore(context: CommandContext): Promise<number> {
  const tenantId = argument(context, 0, 'the tenant id');
  const body = {
    backup: required(context, 'backup', 'the backup id (tenants backup <tenantId> --list)'),
    ...(str(context, 'name') !== undefined ? { name: str(context, 'name') } : {}),
    ...(str(context, 'slug') !== undefined ? { slug: str(context, 'slug') } : {}),
  };
  const answer = await context.client.request('POST', `${path(tenantId)}/restore`, {
    json: body,
    headers: { 'idempotency-key': `cli-${randomUUID()}` },
  });
  const restored = Restored.parse(answer.body);
  if (!context.wait) {
    if (context.json) context.result(answer.body);
    context.print(
      `restoring into tenant ${restored.tenantId} (${restored.slug}); follow it: tenants watch ${restored.tenantId}`,
    );
    return EXIT.ok;
  }
  const hint = `tenants watch ${restored.tenantId}`;
  context.following(hint);
  const outcome = await watchTenant(watchOptions(context), {
    tenantId: restored.tenantId,
    title: 'restore',
    ended: provisioningEnded(),
  });
  return finish(context, outcome, tenantOutcome(context.colors), hint);
}

// ---- bulk, migrate, watch ----

/** `bulk <file.csv|file.json> [--dry-run]`. */
export async function bulk(context: CommandContext): Promise<number> {
  const file = argument(context, 0, 'the file (.csv, or .json: a list of create-tenant bodies)');
  const dryRun = context.options['dry-run'] === true;
  const text = await readFile(file, 'utf8').catch((error: unknown) => {
    throw new UsageError(`Cannot read ${file}: ${error instanceof Error ? error.message : error}`);
  });
  const isJson = extname(file).toLowerCase() === '.json';
  let request: Parameters<ApiClient['request']>[2];
  if (isJson) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new UsageError(`${file} is not JSON`);
    }
    request = { json: Array.isArray(parsed) ? { tenants: parsed } : parsed };
  } else {
    request = { text: { body: text, contentType: 'text/csv' } };
  }
  const answer = await context.client.request('POST', '/tenant-batches', {
    ...request,
    query: { dryRun: dryRun ? 'true' : undefined },
    ...(dryRun ? {} : { headers: { 'idempotency-key': `cli-${randomUUID()}` } }),
  });
  if (dryRun) {
    const report = BatchDryRun.parse(answer.body);
    if (context.json) context.result(answer.body);
    else printDryRun(context, report);
    return report.valid ? EXIT.ok : EXIT.failed;
  }
  const created = BatchCreated.parse(answer.body);
  if (!context.wait) {
    if (context.json) context.result(answer.body);
    context.print(
      `batch ${created.batchId} started: ${created.rows.length} rows; follow it: tenants watch ${created.batchId}`,
    );
    return EXIT.ok;
  }
  const hint = `tenants watch ${created.batchId}`;
  context.following(hint);
  const outcome = await watchBatch(watchOptions(context), created.batchId);
  return finish(context, outcome, (batch, ok) => batchOutcome(batch, ok, context.colors), hint);
}

function printDryRun(context: CommandContext, report: BatchDryRun): void {
  const c = context.colors;
  for (const row of report.rows) {
    const where = row.line === null ? `row ${row.index}` : `line ${row.line}`;
    const what = `${row.slug ?? '?'}${row.plan ? ` (${row.plan})` : ''}`;
    if (row.problems.length === 0) {
      context.print(`${c.green('ok')}      ${where}: ${what}`);
      continue;
    }
    context.print(`${c.red('invalid')} ${where}: ${what}`);
    for (const problem of row.problems)
      context.print(`          ${problem.path === '' ? '' : `${problem.path}: `}${problem.message}`);
    if (row.suggestions.length > 0) context.print(`          free slugs: ${row.suggestions.join(', ')}`);
  }
  const { rows, valid, invalid } = report.summary;
  context.print(
    report.valid
      ? c.green(`dry run: all ${rows} rows are valid; nothing was created`)
      : c.red(`dry run: ${invalid} of ${rows} rows are invalid (${valid} valid); nothing was created`),
  );
}

function batchOutcome(batch: Batch, ok: boolean, c: Colors): string {
  const { rows, succeeded, failed } = batch.summary;
  const lines = [
    `batch ${batch.id} ${ok ? c.green(batch.status) : c.red(batch.status)}: ${succeeded} of ${rows} rows provisioned, ${failed} failed`,
  ];
  for (const row of batch.rows.filter((r) => r.outcome === 'failed')) {
    const where = row.line === null ? `row ${row.index}` : `line ${row.line}`;
    lines.push(
      `  ${where} ${row.slug}: ${row.error ? `${row.error.step ? `${row.error.step}: ` : ''}${row.error.error}: ${row.error.cause}` : 'failed'}`,
    );
  }
  return lines.join('\n');
}

/** `migrate [--tenant <id> ...] [--tolerated-failures n] [--tolerated-failure-percentage p]`. */
export async function migrate(context: CommandContext): Promise<number> {
  const tenantIds = list(context, 'tenant');
  const count = str(context, 'tolerated-failures');
  const percentage = str(context, 'tolerated-failure-percentage');
  const number = (value: string, option: string) => {
    if (!/^\d+(\.\d+)?$/.test(value)) throw new UsageError(`--${option} takes a number: ${value}`);
    return Number(value);
  };
  const body = {
    ...(tenantIds.length > 0 ? { tenantIds } : {}),
    ...(count !== undefined ? { toleratedFailureCount: number(count, 'tolerated-failures') } : {}),
    ...(percentage !== undefined
      ? { toleratedFailurePercentage: number(percentage, 'tolerated-failure-percentage') }
      : {}),
  };
  const answer = await context.client.request('POST', '/migrations', {
    json: body,
    headers: { 'idempotency-key': `cli-${randomUUID()}` },
  });
  const run = Migration.parse(answer.body);
  if (answer.status === 200 || run.summary.tenants === 0) {
    if (context.json) context.result(answer.body);
    context.print(
      `nothing to migrate: every ${tenantIds.length > 0 ? 'tenant named' : 'active tenant'} is at version ${run.targetVersion}`,
    );
    return EXIT.ok;
  }
  if (!context.wait) {
    if (context.json) context.result(answer.body);
    context.print(
      `migration ${run.id} started: ${run.summary.tenants} tenants; follow it: tenants watch ${run.id}`,
    );
    return EXIT.ok;
  }
  const hint = `tenants watch ${run.id}`;
  context.following(hint);
  const outcome = await watchMigration(watchOptions(context), run.id);
  return finish(context, outcome, (last, ok) => migrationOutcome(last, ok, context.colors), hint);
}

function migrationOutcome(run: z.infer<typeof Migration>, ok: boolean, c: Colors): string {
  const { tenants, succeeded, failed, skipped } = run.summary;
  const took = run.durationMs === null ? '' : ` in ${duration(run.durationMs)}`;
  const lines = [
    `migration ${run.id} ${ok ? c.green(run.status) : c.red(run.status)}${took}: ${succeeded} of ${tenants} tenants at version ${run.targetVersion}, ${failed} failed, ${skipped} skipped`,
  ];
  if (run.error) lines.push(c.red(`  ${run.error.error}: ${run.error.cause}`));
  for (const failure of run.failures) {
    lines.push(
      `  ${failure.tenantId}${failure.slug ? ` (${failure.slug})` : ''}: ${failure.error.error}: ${failure.error.cause}`,
    );
  }
  if (run.failures.length > 0) {
    lines.push(
      `retry them alone: tenants migrate ${run.failures.map((failure) => `--tenant ${failure.tenantId}`).join(' ')}`,
    );
  }
  return lines.join('\n');
}

/** `watch <tenantId|batchId|migrationId>`: follows whatever runs for it, until it is over. */
export async function watch(context: CommandContext): Promise<number> {
  const id = argument(context, 0, 'a tenant id (t…), batch id (b…) or migration id (m…)');
  context.following(`tenants watch ${id}`);
  if (/^b[a-z0-9]{15}$/.test(id)) {
    const outcome = await watchBatch(watchOptions(context), id);
    return finish(
      context,
      outcome,
      (batch, ok) => batchOutcome(batch, ok, context.colors),
      `tenants watch ${id}`,
    );
  }
  if (/^m[a-z0-9]{15}$/.test(id)) {
    const outcome = await watchMigration(watchOptions(context), id);
    return finish(
      context,
      outcome,
      (run, ok) => migrationOutcome(run, ok, context.colors),
      `tenants watch ${id}`,
    );
  }
  const outcome = await watchTenant(watchOptions(context), {
    tenantId: id,
    title: 'watch',
    ended: (tenant) => {
      if (tenant.status === 'provisioning' || tenant.status === 'deprovisioning') return undefined;
      if (tenant.progress.some((step) => step.status === 'running')) return undefined;
      return tenant.status !== 'failed' && tenant.status !== 'rollback_failed';
    },
  });
  return finish(context, outcome, tenantOutcome(context.colors), `tenants watch ${id}`);
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

async function readJsonObject(file: string): Promise<Record<string, unknown>> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    throw new UsageError(`Cannot read ${file} as JSON: ${error instanceof Error ? error.message : error}`);
  }
  if (!isRecord(parsed)) throw new UsageError(`${file} holds no JSON object`);
  return parsed;
}
