import { createHash } from 'node:crypto';
import { TenantConfig } from '../../schema/api/tenants.ts';
import { type BackupPolicy, backupPolicyOf, PLAN_NAMES } from '../../schema/plans.ts';
import * as z from '../../schema/zod.ts';
import { isoText, json, jsonText, type Sql } from '../shared/data-api.ts';
import { OperationInProgressError, TenantStateError } from '../shared/errors.ts';
import { type StartDeps, startOperation } from './start.ts';

/** The actor scheduled backups are started and recorded as. */
export const BACKUP_SCHEDULER = 'backup-scheduler';

const HOUR_MS = 3_600_000;
const PERIOD_MS: Readonly<Record<BackupPolicy['schedule'], number>> = {
  daily: 24 * HOUR_MS,
  weekly: 7 * 24 * HOUR_MS,
};

/** At most this many backups are started by one pass (an hour): the rest are due at the next. */
export const BACKUPS_PER_PASS = 100;

/**
 * The tenant's place in its policy's period: a fixed offset from the epoch-aligned period's start, from a hash of its
 * id, so that a fleet's scheduled backups spread evenly over the day (or the week) instead of all starting at once,
 * and each tenant's come at the same time every period.
 */
export function slotOffsetMs(tenantId: string, schedule: BackupPolicy['schedule']): number {
  const hash = createHash('sha256').update(tenantId).digest().readUInt32BE(0);
  // Whole minutes: the slot's time is a backup id (ISO, milliseconds), and reads as one.
  const minutes = PERIOD_MS[schedule] / 60_000;
  return (hash % minutes) * 60_000;
}

/** The latest slot of the tenant at or before `now`. */
export function latestSlot(tenantId: string, schedule: BackupPolicy['schedule'], now: Date): Date {
  const period = PERIOD_MS[schedule];
  const offset = slotOffsetMs(tenantId, schedule);
  return new Date(Math.floor((now.getTime() - offset) / period) * period + offset);
}

const Candidate = z.object({
  id: z.string(),
  plan: z.enum(PLAN_NAMES),
  config: jsonText(z.object({ backupPolicy: TenantConfig.shape.backupPolicy })),
  created_at: z.string(),
  last: z.nullable(z.string()),
});

export interface ScheduleResult {
  /** Backups started, by tenant: the slot's time is the backup's id. */
  readonly started: readonly { readonly tenantId: string; readonly backupId: string }[];
  /** Tenants due but not started now: another operation runs, or the pass's limit was reached. */
  readonly deferred: number;
}

/**
 * One pass of the backup scheduler (hourly): every active tenant whose latest slot has passed without a scheduled
 * backup (one that finished, or a newer one) gets one, through the backup-tenant run as an on-demand backup does,
 * kept its policy's `retentionDays` by the bucket's lifecycle rules. A tenant created after its latest slot waits for
 * the next. A tenant with another operation running is tried at the next pass; a failed backup too (its run's
 * failure alarms, like any backup-tenant run's).
 */
export async function scheduleBackups(
  deps: StartDeps & { readonly registry: Sql },
  pass: {
    readonly now: Date;
    readonly limit?: number;
    /** Only these tenants (an operator's pass for some tenants; a test's for its own). */
    readonly tenantIds?: readonly string[];
  },
): Promise<ScheduleResult> {
  const { now, limit = BACKUPS_PER_PASS } = pass;
  const rows = await deps.registry.query(
    `SELECT t.id, t.plan, t.config::text AS config, ${isoText('t.created_at')} AS created_at,
       max(b.backup_id) AS last
     FROM tenants t LEFT JOIN tenant_backups b ON b.tenant_id = t.id AND b.kind = 'scheduled'
     WHERE t.status = 'active'
       AND (CAST(:ids AS jsonb) IS NULL OR t.id IN (SELECT jsonb_array_elements_text(CAST(:ids AS jsonb))))
     GROUP BY t.id ORDER BY t.id`,
    { ids: pass.tenantIds ? json(pass.tenantIds) : null },
    Candidate,
  );
  const due = rows.flatMap((row) => {
    const policy = backupPolicyOf(row.plan, row.config.backupPolicy);
    const slot = latestSlot(row.id, policy.schedule, now);
    const since = row.last ?? row.created_at;
    return Date.parse(since) < slot.getTime() && Date.parse(row.created_at) < slot.getTime()
      ? [{ tenantId: row.id, slot, policy }]
      : [];
  });
  const started: { tenantId: string; backupId: string }[] = [];
  for (const { tenantId, slot, policy } of due.slice(0, limit)) {
    const backupId = slot.toISOString();
    try {
      await startOperation(deps, {
        tenantId,
        operation: 'backup',
        input: { backupId, kind: 'scheduled', retentionDays: policy.retentionDays },
        actor: BACKUP_SCHEDULER,
      });
      started.push({ tenantId, backupId });
    } catch (error) {
      // Busy, or no longer active since the query: the next pass tries again.
      if (!(error instanceof OperationInProgressError || error instanceof TenantStateError)) throw error;
    }
  }
  return { started, deferred: due.length - started.length };
}
