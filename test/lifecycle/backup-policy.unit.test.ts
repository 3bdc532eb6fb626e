import { describe, expect, it } from 'vitest';
import { latestSlot, slotOffsetMs } from '../../functions/lifecycle/scheduled-backups.ts';
import { resolvePlanTarget } from '../../functions/lifecycle/usage.ts';
import { BACKUP_RETENTION_DAYS } from '../../functions/shared/storage.ts';
import { ChangePlanRequest } from '../../schema/api/lifecycle.ts';
import { newTenantId } from '../../schema/names.ts';
import { PLAN_NAMES, PLANS, POLICY_RETENTION_DAYS } from '../../schema/plans.ts';

const HOUR = 3_600_000;

describe('backup policies', () => {
  it('every policy retention has a lifecycle rule, and each plan keeps its own within its bounds', () => {
    for (const days of POLICY_RETENTION_DAYS) expect(BACKUP_RETENTION_DAYS).toContain(days);
    for (const plan of PLAN_NAMES) {
      const { policy, schedules, maxRetentionDays } = PLANS[plan].backups;
      expect(schedules).toContain(policy.schedule);
      expect(policy.retentionDays).toBeLessThanOrEqual(maxRetentionDays);
    }
    expect(PLANS.basic.backups.policy).toEqual({ schedule: 'weekly', retentionDays: 14 });
    expect(PLANS.professional.backups.policy).toEqual({ schedule: 'daily', retentionDays: 35 });
    expect(PLANS.enterprise.backups.policy).toEqual({ schedule: 'daily', retentionDays: 90 });
  });

  it('spreads a fleet’s daily slots over the day, each tenant at the same time every day', () => {
    const ids = Array.from({ length: 2400 }, () => newTenantId());
    const perHour = new Array<number>(24).fill(0);
    for (const id of ids) {
      const offset = slotOffsetMs(id, 'daily');
      expect(offset).toBeGreaterThanOrEqual(0);
      expect(offset).toBeLessThan(24 * HOUR);
      perHour[Math.floor(offset / HOUR)] = (perHour[Math.floor(offset / HOUR)] ?? 0) + 1;
    }
    // 100 an hour on average; none more than half again, none under half.
    expect(Math.max(...perHour)).toBeLessThan(150);
    expect(Math.min(...perHour)).toBeGreaterThan(50);
    const [id = ''] = ids;
    const now = new Date('2026-12-03T10:17:00.000Z');
    const slot = latestSlot(id, 'daily', now);
    expect(slot.getTime()).toBeLessThanOrEqual(now.getTime());
    expect(slot.getTime()).toBeGreaterThan(now.getTime() - 24 * HOUR);
    expect(latestSlot(id, 'daily', new Date(now.getTime() + 24 * HOUR)).getTime()).toBe(
      slot.getTime() + 24 * HOUR,
    );
    const weekly = latestSlot(id, 'weekly', now);
    expect(weekly.getTime()).toBeGreaterThan(now.getTime() - 7 * 24 * HOUR);
  });

  it('PATCH changes the policy within the target plan’s bounds, and a new plan starts from its own', () => {
    const basic = { plan: 'basic' as const, limits: PLANS.basic.limits, config: {} };
    expect(resolvePlanTarget(basic, { backupPolicy: { schedule: 'daily' } }).problems).toEqual([
      { path: 'backupPolicy.schedule', message: 'The basic plan backs up weekly, not daily' },
    ]);
    expect(resolvePlanTarget(basic, { plan: 'professional' }).backupPolicy).toEqual(
      PLANS.professional.backups.policy,
    );
    expect(
      resolvePlanTarget(basic, { plan: 'enterprise', backupPolicy: { retentionDays: 30 } }).backupPolicy,
    ).toEqual({ schedule: 'daily', retentionDays: 30 });
    const chosen = {
      plan: 'professional' as const,
      limits: PLANS.professional.limits,
      config: { backupPolicy: { schedule: 'weekly' as const, retentionDays: 30 as const } },
    };
    expect(resolvePlanTarget(chosen, { limits: { maxUsers: 20 } }).backupPolicy).toEqual({
      schedule: 'weekly',
      retentionDays: 30,
    });
    expect(resolvePlanTarget(chosen, { backupPolicy: { retentionDays: 90 } }).problems).toEqual([
      { path: 'backupPolicy.retentionDays', message: 'The professional plan keeps backups at most 35 days' },
    ]);
    expect(ChangePlanRequest.safeParse({ backupPolicy: { retentionDays: 20 } }).success).toBe(false);
    expect(ChangePlanRequest.safeParse({ backupPolicy: {} }).success).toBe(false);
    expect(ChangePlanRequest.safeParse({ backupPolicy: { schedule: 'weekly' } }).success).toBe(true);
  });
});
