import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { configureTenantAlarms, USAGE_ALARM_PERIOD_SECONDS } from '../../functions/provision/alarms.ts';
import { ALARM_TOPIC_ARN, STAGE } from '../../local/constants.ts';
import { activeTenant, connectAs, registry } from '../lifecycle/helpers.ts';
import { clients } from '../provision/helpers.ts';
import { evaluateAlarms, eventually, snsMessages, superuserPool } from '../support/sandbox.ts';
import { collectUsage, lowerStorageQuota, putTenantObject } from './helpers.ts';

const PERIOD_MS = USAGE_ALARM_PERIOD_SECONDS * 1000;

/**
 * The start of an alarm period `minutesAhead` from now: far enough from the times the other test files collect at
 * (the next few minutes) that no reading of theirs lands in it, within the two hours ahead CloudWatch accepts.
 */
const periodAhead = (minutesAhead: number) =>
  new Date(Math.ceil((Date.now() + minutesAhead * 60_000) / PERIOD_MS) * PERIOD_MS);

const Notification = z.object({
  AlarmName: z.string(),
  NewStateValue: z.string(),
  OldStateValue: z.string(),
  Trigger: z.looseObject({ MetricName: z.string().optional() }),
});

async function notificationsOf(alarmName: string) {
  return (await snsMessages(ALARM_TOPIC_ARN))
    .map((message) => Notification.parse(JSON.parse(message.message)))
    .filter((notification) => notification.AlarmName === alarmName);
}

async function tenantSessions(tenantId: string): Promise<number> {
  const { rows } = await superuserPool().query<{ n: number }>(
    'SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND usename LIKE $2',
    [`tenant_${tenantId}`, `tenant_${tenantId}_%`],
  );
  return rows[0]?.n ?? 0;
}

describe("a tenant's alarms on the usage collector's readings", () => {
  it('connections past 80% of the limit: ALARM and a notification, then OK once they close', async () => {
    // Prepare: a limit of 10, so 8 sessions of the tenant's roles reach the threshold (the app role's own share of
    // the limit is 5: the others make up the rest).
    const tenant = await activeTenant({ plan: 'professional', limits: { maxConnections: 10 } });
    const alarm = `tenant-${tenant.id}-connections`;
    const sessions = [
      ...(await Promise.all(Array.from({ length: 5 }, () => connectAs(tenant.id, 'app')))),
      ...(await Promise.all(Array.from({ length: 2 }, () => connectAs(tenant.id, 'admin')))),
      await connectAs(tenant.id, 'readonly'),
    ];
    const start = periodAhead(60);

    // Act: a reading in one period, the alarm evaluated once that period is over.
    await collectUsage(new Date(start.getTime() + 60_000));
    const raised = await evaluateAlarms(new Date(start.getTime() + PERIOD_MS + 30_000), [alarm]);

    // Assess
    expect(raised).toEqual([expect.objectContaining({ alarmName: alarm, newState: 'ALARM' })]);
    expect(await notificationsOf(alarm)).toEqual([
      expect.objectContaining({
        NewStateValue: 'ALARM',
        Trigger: expect.objectContaining({ MetricName: 'DatabaseConnections' }),
      }),
    ]);

    // Act: the sessions close; the next period's reading.
    await Promise.all(sessions.map((session) => session.end()));
    expect(await eventually(async () => (await tenantSessions(tenant.id)) === 0)).toBe(true);
    await collectUsage(new Date(start.getTime() + PERIOD_MS + 60_000));
    const cleared = await evaluateAlarms(new Date(start.getTime() + 2 * PERIOD_MS + 30_000), [alarm]);

    // Assess
    expect(cleared).toEqual([expect.objectContaining({ alarmName: alarm, newState: 'OK' })]);
    expect((await notificationsOf(alarm)).map((n) => n.NewStateValue)).toEqual(['ALARM', 'OK']);
  });

  it('storage past 80% of a lowered quota: ALARM and a notification', async () => {
    const tenant = await activeTenant({ plan: 'professional' });
    const alarm = `tenant-${tenant.id}-storage`;
    // 64 KiB of quota (the API takes whole gigabytes): the alarm is put again with the threshold it gives, 52,429 B.
    await lowerStorageQuota(tenant.id, 64 / 1024 ** 2);
    const lowered = await registry.tenants.require(tenant.id);
    await configureTenantAlarms(
      { cloudWatch: clients.cloudWatch, topicArn: ALARM_TOPIC_ARN, stage: STAGE },
      tenant.id,
      lowered.plan,
      lowered.limits,
    );
    await putTenantObject(tenant.id, 'big.bin', 60_000);
    const start = periodAhead(75);

    await collectUsage(new Date(start.getTime() + 60_000));
    const raised = await evaluateAlarms(new Date(start.getTime() + PERIOD_MS + 30_000), [alarm]);

    expect(raised).toEqual([expect.objectContaining({ alarmName: alarm, newState: 'ALARM' })]);
    const [notification] = await notificationsOf(alarm);
    expect(notification).toMatchObject({ NewStateValue: 'ALARM', Trigger: { MetricName: 'StorageBytes' } });
  });
});
