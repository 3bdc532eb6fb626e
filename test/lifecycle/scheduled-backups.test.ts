import { GetObjectTaggingCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { LifecycleStore } from '../../functions/lifecycle/operations.ts';
import { latestSlot, scheduleBackups } from '../../functions/lifecycle/scheduled-backups.ts';
import { STORAGE_BUCKET, stateMachineArn } from '../../local/constants.ts';
import { provisioner } from '../provision/helpers.ts';
import { daysAfter, eventually, runS3Lifecycle } from '../support/sandbox.ts';
import { activeTenant, clients, operate, registry, request, waitForExecution } from './helpers.ts';

const deps = {
  registry: provisioner,
  store: new LifecycleStore(provisioner),
  sfn: clients.sfn,
  stateMachines: { backup: stateMachineArn('backup-tenant') },
};

const Backups = z.object({
  items: z.array(
    z.object({ backupId: z.string(), kind: z.string(), location: z.object({ prefix: z.string() }) }),
  ),
});

async function backupsOf(tenantId: string) {
  const answer = await request('GET', `/tenants/${tenantId}/backups`);
  expect(answer.status).toBe(200);
  return Backups.parse(answer.body).items;
}

async function keysUnder(prefix: string): Promise<string[]> {
  const listing = await clients.s3.send(new ListObjectsV2Command({ Bucket: STORAGE_BUCKET, Prefix: prefix }));
  return (listing.Contents ?? []).map((object) => object.Key ?? '');
}

describe('scheduled backups', () => {
  it("takes a professional tenant's daily backup at its slot, once, kept 35 days", async () => {
    const tenant = await activeTenant({ plan: 'professional' });
    const record = await registry.tenants.require(tenant.id);
    // A day and a bit after its creation, its latest slot has passed (wherever in the day the slot is).
    const now = new Date(Date.parse(record.createdAt) + 25 * 3_600_000);
    const slot = latestSlot(tenant.id, 'daily', now);

    const first = await scheduleBackups(deps, { now, tenantIds: [tenant.id] });
    expect(first.started).toEqual([{ tenantId: tenant.id, backupId: slot.toISOString() }]);
    const operation = await deps.store.running(tenant.id);
    expect(operation?.requestedBy).toBe('backup-scheduler');
    const execution = await waitForExecution(operation?.executionArn ?? '');
    expect(execution.status).toBe('SUCCEEDED');

    const [backup] = await backupsOf(tenant.id);
    expect(backup).toMatchObject({ backupId: slot.toISOString(), kind: 'scheduled' });
    const keys = await keysUnder(backup?.location.prefix ?? '');
    expect(keys.length).toBeGreaterThan(1);
    const { TagSet } = await clients.s3.send(
      new GetObjectTaggingCommand({ Bucket: STORAGE_BUCKET, Key: keys[0] }),
    );
    expect(Object.fromEntries((TagSet ?? []).map((tag) => [tag.Key, tag.Value]))).toMatchObject({
      BackupKind: 'scheduled',
      RetentionDays: '35',
    });

    // The same slot again: nothing to do. The next day's: a second backup.
    expect((await scheduleBackups(deps, { now, tenantIds: [tenant.id] })).started).toEqual([]);
    const next = await scheduleBackups(deps, { now: daysAfter(now, 1), tenantIds: [tenant.id] });
    expect(next.started.map((started) => started.backupId)).toEqual([daysAfter(slot, 1).toISOString()]);
    expect(
      await eventually(
        async () => (await backupsOf(tenant.id)).filter((b) => b.kind === 'scheduled').length === 2,
      ),
    ).toBe(true);

    // S3's lifecycle expires the first after its 35 days (S3 counts from the objects' creation, today).
    const expired = await runS3Lifecycle(STORAGE_BUCKET, daysAfter(new Date(), 37), backup?.location.prefix);
    expect(expired.expired.map((entry) => entry.key).sort()).toEqual([...keys].sort());
  });

  it('leaves a tenant created after its slot for the next one, and a suspended one alone', async () => {
    const tenant = await activeTenant({ plan: 'basic' });
    const record = await registry.tenants.require(tenant.id);
    const created = new Date(record.createdAt);
    // Just before the first weekly slot after its creation: not due.
    const firstSlot = latestSlot(tenant.id, 'weekly', daysAfter(created, 7));
    const before = new Date(firstSlot.getTime() - 60_000);
    expect((await scheduleBackups(deps, { now: before, tenantIds: [tenant.id] })).started).toEqual([]);
    // Once the slot has passed it is due; suspended, it is not.
    const at = new Date(firstSlot.getTime() + 60_000);
    await operate('POST', `/tenants/${tenant.id}/suspend`, { reason: 'Unpaid' });
    expect(await scheduleBackups(deps, { now: at, tenantIds: [tenant.id] })).toEqual({
      started: [],
      deferred: 0,
    });
  });

  it('PATCH changes the policy within the plan, answered in GET /tenants/{id}; outside it, 400', async () => {
    const tenant = await activeTenant({ plan: 'professional' });
    const refused = await request('PATCH', `/tenants/${tenant.id}`, {
      body: { backupPolicy: { retentionDays: 90 } },
    });
    expect(refused.status).toBe(400);
    expect(JSON.stringify(refused.body)).toContain('backupPolicy.retentionDays');

    const { execution } = await operate('PATCH', `/tenants/${tenant.id}`, {
      backupPolicy: { schedule: 'weekly', retentionDays: 30 },
    });
    expect(execution.status).toBe('SUCCEEDED');
    const answer = await request('GET', `/tenants/${tenant.id}`);
    expect(answer.body).toMatchObject({
      plan: 'professional',
      backupPolicy: { schedule: 'weekly', retentionDays: 30 },
    });
  });
});
