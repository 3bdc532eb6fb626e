import { setTimeout as sleep } from 'node:timers/promises';
import type { ApiClient } from './client.ts';
import { bar, type Colors, type Display, duration, spinner } from './display.ts';
import {
  BackupList,
  Batch,
  type BatchRow,
  type Batch as BatchType,
  Migration,
  type Migration as MigrationType,
  type Step,
  Tenant,
  type Tenant as TenantType,
} from './schemas.ts';

/** How a watch ended. */
export type WatchOutcome<T> =
  | { readonly kind: 'ended'; readonly ok: boolean; readonly last: T }
  | { readonly kind: 'timeout'; readonly last: T | undefined };

export interface WatchOptions {
  readonly client: ApiClient;
  readonly display: Display;
  readonly colors: Colors;
  /** Between two reads. */
  readonly intervalMs: number;
  /** Give up following after this long (the work goes on). */
  readonly timeoutMs: number;
  /** Aborted on Ctrl-C. */
  readonly signal?: AbortSignal;
}

/** One kind of long work: how to read it, what changed, how it looks, and when it is over. */
interface Watcher<T> {
  read(): Promise<T>;
  /** The changes since the last snapshot, as plain lines. */
  events(previous: T | undefined, next: T): string[];
  frame(next: T, tick: number): string[];
  /** Undefined while the work goes on; whether it succeeded once it is over. */
  ended(next: T, previous: T | undefined): boolean | undefined;
}

async function follow<T>(options: WatchOptions, watcher: Watcher<T>): Promise<WatchOutcome<T>> {
  const deadline = Date.now() + options.timeoutMs;
  let previous: T | undefined;
  let tick = 0;
  try {
    for (;;) {
      const next = await watcher.read();
      for (const line of watcher.events(previous, next)) options.display.event(line);
      options.display.frame(watcher.frame(next, tick));
      const ended = watcher.ended(next, previous);
      if (ended !== undefined) return { kind: 'ended', ok: ended, last: next };
      previous = next;
      if (Date.now() >= deadline) return { kind: 'timeout', last: next };
      tick += 1;
      await sleep(options.intervalMs, undefined, options.signal ? { signal: options.signal } : {});
    }
  } finally {
    options.display.end();
  }
}

// ---- Tenants: provisioning, and the lifecycle operations ----

const stepKey = (step: Step) => `${step.step}|${step.startedAt}|${step.attempts}|${step.status}`;

function stepLine(step: Step, c: Colors, tick: number): string {
  const took = step.durationMs === null ? '' : c.dim(` ${duration(step.durationMs)}`);
  const retried = step.attempts > 1 ? c.dim(` (attempt ${step.attempts})`) : '';
  if (step.status === 'running') return `  ${c.yellow(spinner(tick))} ${step.step}${retried}`;
  if (step.status === 'succeeded') return `  ${c.green('✓')} ${step.step}${took}${retried}`;
  const why = step.error ? ` ${c.red(`${step.error.error}: ${step.error.cause}`)}` : '';
  return `  ${c.red('✗')} ${step.step}${took}${retried}${why}`;
}

function stepEvent(step: Step, before: Step | undefined): string | undefined {
  if (before && stepKey(before) === stepKey(step)) return undefined;
  if (step.status === 'running') {
    return before && before.attempts < step.attempts
      ? `${step.step}: retrying (attempt ${step.attempts})`
      : `${step.step}: started`;
  }
  const took = step.durationMs === null ? '' : ` in ${duration(step.durationMs)}`;
  if (step.status === 'succeeded') return `${step.step}: succeeded${took}`;
  return `${step.step}: failed${took}: ${step.error ? `${step.error.error}: ${step.error.cause}` : 'no cause recorded'}`;
}

/** What a tenant watch shows and waits for. */
export interface TenantWatch {
  readonly tenantId: string;
  /** Steps as they were before the work was asked for: only steps new or changed since are shown. */
  readonly baseline?: readonly Step[];
  /**
   * Whether the work is over, and how: true (succeeded), false (failed), undefined (goes on).
   */
  readonly ended: (tenant: TenantType, context: TenantContext) => boolean | undefined;
  readonly title: string;
  /** A second look at each read (e.g. whether a new backup is listed), passed to `ended` as `probe`. */
  readonly probe?: () => Promise<boolean>;
}

/** What `ended` decides on beside the tenant. */
export interface TenantContext {
  /** The steps of the work (new or changed since the baseline). */
  readonly steps: readonly Step[];
  /** No step of the work runs, and one at least has run, on two reads in a row. */
  readonly settled: boolean;
  readonly probe: boolean;
}

/** Follows a tenant: its steps (those of the work asked for) and status, until `ended` says it is over. */
export function watchTenant(options: WatchOptions, watch: TenantWatch): Promise<WatchOutcome<TenantType>> {
  const c = options.colors;
  const baseline = new Set((watch.baseline ?? []).map(stepKey));
  const ours = (tenant: TenantType) => tenant.progress.filter((step) => !baseline.has(stepKey(step)));
  let quietReads = 0;
  let probed = false;
  const started = Date.now();
  return follow(options, {
    async read() {
      const tenant = await options.client.get(`/tenants/${encodeURIComponent(watch.tenantId)}`, Tenant);
      if (watch.probe) probed = await watch.probe();
      return tenant;
    },
    events(previous, next) {
      const lines: string[] = [];
      if (!previous) lines.push(`${watch.title}: tenant ${next.id} (${next.slug}) is ${next.status}`);
      const before = new Map((previous ? ours(previous) : []).map((step) => [step.step, step]));
      for (const step of ours(next)) {
        const line = stepEvent(step, before.get(step.step));
        if (line) lines.push(line);
      }
      if (previous && previous.status !== next.status)
        lines.push(`status: ${previous.status} → ${next.status}`);
      return lines;
    },
    frame(next, tick) {
      const status =
        next.status === 'active'
          ? c.green(next.status)
          : next.status === 'failed' || next.status === 'rollback_failed'
            ? c.red(next.status)
            : c.yellow(next.status);
      const lines = [
        `${c.bold(watch.title)}: tenant ${next.id} (${next.slug}) ${status} ${c.dim(duration(Date.now() - started))}`,
      ];
      lines.push(...ours(next).map((step) => stepLine(step, c, tick)));
      if (next.failure && next.status !== 'active') {
        lines.push(c.red(`  failed at ${next.failure.step}: ${next.failure.error}: ${next.failure.cause}`));
      }
      if (next.leftovers && next.leftovers.length > 0)
        lines.push(c.red(`  left behind: ${next.leftovers.join(', ')}`));
      return lines;
    },
    ended(next) {
      const steps = ours(next);
      const quiet = steps.length > 0 && steps.every((step) => step.status !== 'running');
      quietReads = quiet ? quietReads + 1 : 0;
      return watch.ended(next, { steps, settled: quietReads >= 2, probe: probed });
    },
  });
}

/**
 * Provisioning (create, restore into a new tenant): over when the tenant has left `provisioning` and its last step
 * is recorded (the status changes inside the last step, a moment before the step's end is written), or when it has
 * shown its final status on three reads whatever its steps say.
 */
export function provisioningEnded(): (tenant: TenantType) => boolean | undefined {
  let finalReads = 0;
  return (tenant) => {
    if (tenant.status === 'provisioning') return undefined;
    finalReads += 1;
    if (tenant.progress.some((step) => step.status === 'running') && finalReads < 3) return undefined;
    return tenant.status === 'active';
  };
}

/** A lifecycle run that moves the tenant to `target`: over when it is there, or when its steps settled failed. */
export const reachesStatus =
  (target: string) =>
  (tenant: TenantType, context: TenantContext): boolean | undefined => {
    if (tenant.status === target && !context.steps.some((step) => step.status === 'running')) return true;
    if (context.settled && context.steps.some((step) => step.status === 'failed')) return false;
    if (tenant.status === 'failed' || tenant.status === 'rollback_failed') return false;
    return undefined;
  };

/**
 * A backup, followed on the tenant's steps and its backup list: over when a backup not in `known` is listed, or
 * when its steps settled with a failure.
 */
export function watchBackup(
  options: WatchOptions,
  tenantId: string,
  baseline: readonly Step[],
  known: ReadonlySet<string>,
): Promise<WatchOutcome<TenantType>> {
  return watchTenant(options, {
    tenantId,
    baseline,
    title: 'backup',
    probe: async () => {
      const list = await options.client.get(`/tenants/${encodeURIComponent(tenantId)}/backups`, BackupList);
      return list.items.some((backup) => !known.has(backup.backupId));
    },
    ended: (_tenant, context) => {
      if (context.probe && !context.steps.some((step) => step.status === 'running')) return true;
      if (context.settled && context.steps.some((step) => step.status === 'failed')) return false;
      return undefined;
    },
  });
}

// ---- Batches ----

const rowName = (row: BatchRow) =>
  `row ${row.index}${row.line === null ? '' : ` (line ${row.line})`} ${row.slug}`;

function rowEvent(row: BatchRow): string {
  switch (row.outcome) {
    case 'pending':
      return `${rowName(row)}: pending`;
    case 'provisioning':
      return `${rowName(row)}: provisioning ${row.tenantId}${row.step ? ` (${row.step})` : ''}`;
    case 'succeeded':
      return `${rowName(row)}: succeeded ${row.tenantId}`;
    case 'failed': {
      const at = row.error?.step ? ` at ${row.error.step}` : '';
      const why = row.error ? `: ${row.error.error}: ${row.error.cause}` : '';
      return `${rowName(row)}: failed${at}${why}`;
    }
  }
}

const batchCounts = (batch: BatchType) => {
  const { rows, succeeded, failed, provisioning } = batch.summary;
  return `${succeeded + failed}/${rows} done (${succeeded} succeeded, ${failed} failed), ${provisioning} provisioning`;
};

/** Follows a batch: each row's outcome as it changes, until the batch is no longer running. */
export function watchBatch(options: WatchOptions, batchId: string): Promise<WatchOutcome<BatchType>> {
  const c = options.colors;
  const started = Date.now();
  return follow(options, {
    read: () => options.client.get(`/tenant-batches/${encodeURIComponent(batchId)}`, Batch),
    events(previous, next) {
      const lines: string[] = [];
      if (!previous) lines.push(`batch ${next.id}: ${next.summary.rows} rows, ${next.status}`);
      const before = new Map((previous?.rows ?? []).map((row) => [row.index, row]));
      for (const row of next.rows) {
        const was = before.get(row.index);
        if (was?.outcome === row.outcome && (row.outcome !== 'provisioning' || was.tenantId === row.tenantId))
          continue;
        if (!was && row.outcome === 'pending') continue;
        lines.push(rowEvent(row));
      }
      if (!previous || batchCounts(previous) !== batchCounts(next))
        lines.push(`progress: ${batchCounts(next)}`);
      if (previous && previous.status !== next.status) lines.push(`batch ${next.id}: ${next.status}`);
      return lines;
    },
    frame(next, tick) {
      const { rows, succeeded, failed } = next.summary;
      const lines = [
        `${c.bold('bulk')}: batch ${next.id} ${next.status === 'running' ? c.yellow(next.status) : next.status === 'succeeded' ? c.green(next.status) : c.red(next.status)} ${c.dim(duration(Date.now() - started))}`,
        `  ${bar(succeeded + failed, rows)} ${batchCounts(next)}`,
      ];
      for (const row of next.rows.filter((r) => r.outcome === 'provisioning')) {
        lines.push(`  ${c.yellow(spinner(tick))} ${rowName(row)} ${c.dim(row.step ?? 'starting')}`);
      }
      for (const row of next.rows.filter((r) => r.outcome === 'failed'))
        lines.push(`  ${c.red('✗')} ${rowEvent(row)}`);
      return lines;
    },
    ended: (next) => (next.status === 'running' ? undefined : next.status === 'succeeded'),
  });
}

// ---- Fleet migrations ----

const migrationCounts = (run: MigrationType) => {
  const { tenants, succeeded, failed, skipped } = run.summary;
  return `${succeeded + failed + skipped}/${tenants} done (${succeeded} migrated, ${failed} failed, ${skipped} skipped)`;
};

/** Follows a fleet migration: counts as they move and each failed tenant, until the run is no longer running. */
export function watchMigration(
  options: WatchOptions,
  migrationId: string,
): Promise<WatchOutcome<MigrationType>> {
  const c = options.colors;
  const started = Date.now();
  return follow(options, {
    read: () => options.client.get(`/migrations/${encodeURIComponent(migrationId)}`, Migration),
    events(previous, next) {
      const lines: string[] = [];
      if (!previous) {
        lines.push(
          `migration ${next.id}: ${next.summary.tenants} tenants to version ${next.targetVersion}, ${next.status}`,
        );
      }
      const known = new Set((previous?.failures ?? []).map((failure) => failure.tenantId));
      for (const failure of next.failures) {
        if (known.has(failure.tenantId)) continue;
        lines.push(
          `failed: ${failure.tenantId}${failure.slug ? ` (${failure.slug})` : ''}: ${failure.error.error}: ${failure.error.cause}`,
        );
      }
      if (!previous || migrationCounts(previous) !== migrationCounts(next))
        lines.push(`progress: ${migrationCounts(next)}`);
      if (previous && previous.status !== next.status) lines.push(`migration ${next.id}: ${next.status}`);
      return lines;
    },
    frame(next, tick) {
      const { tenants, succeeded, failed, skipped } = next.summary;
      const lines = [
        `${c.bold('migrate')}: run ${next.id} to version ${next.targetVersion} ${next.status === 'running' ? `${c.yellow(spinner(tick))} ${c.yellow(next.status)}` : next.status === 'succeeded' ? c.green(next.status) : c.red(next.status)} ${c.dim(duration(Date.now() - started))}`,
        `  ${bar(succeeded + failed + skipped, tenants)} ${migrationCounts(next)}`,
      ];
      for (const failure of next.failures.slice(-10)) {
        lines.push(
          `  ${c.red('✗')} ${failure.tenantId}${failure.slug ? ` (${failure.slug})` : ''}: ${failure.error.error}: ${failure.error.cause}`,
        );
      }
      if (next.failures.length > 10) lines.push(c.dim(`  … and ${next.failures.length - 10} more failed`));
      return lines;
    },
    ended: (next) => (next.status === 'running' ? undefined : next.status === 'succeeded'),
  });
}
