import { GetObjectCommand, GetObjectTaggingCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { ListSecretsCommand } from '@aws-sdk/client-secrets-manager';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { STAGE, STORAGE_BUCKET } from '../../local/constants.ts';
import { databaseName, secretPrefix, storagePrefix } from '../../schema/names.ts';
import {
  eventsFor,
  NOTHING_LEFT,
  reserveTenant,
  startProvisioning,
  tenantTraces,
  waitForExecution,
} from '../provision/helpers.ts';
import { addFaults, type FaultRuleInput, removeFaults } from '../support/sandbox.ts';
import { activeTenant, canConnect, clients, operate, operationsOf, registry, request } from './helpers.ts';

const Listed = z.object({ items: z.array(z.object({ backupId: z.string(), kind: z.string() })) });

async function tagsOf(key: string): Promise<Record<string, string>> {
  const { TagSet } = await clients.s3.send(new GetObjectTaggingCommand({ Bucket: STORAGE_BUCKET, Key: key }));
  return Object.fromEntries((TagSet ?? []).map((tag) => [tag.Key ?? '', tag.Value ?? '']));
}

async function secretsOf(tenantId: string) {
  const { SecretList } = await clients.secrets.send(
    new ListSecretsCommand({
      Filters: [{ Key: 'name', Values: [secretPrefix(STAGE, tenantId)] }],
      IncludePlannedDeletion: true,
    }),
  );
  return (SecretList ?? [])
    .map((secret) => ({ name: secret.Name ?? '', scheduled: secret.DeletedDate !== undefined }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

const deletePath = (tenant: { id: string; slug: string }) =>
  `/tenants/${tenant.id}?confirm=${encodeURIComponent(tenant.slug)}`;

describe('deleting a tenant', () => {
  it('refuses without the slug, or with another, and changes nothing', async () => {
    // Prepare
    const tenant = await activeTenant();

    // Act
    const without = await request('DELETE', `/tenants/${tenant.id}`);
    const wrong = await request('DELETE', `/tenants/${tenant.id}?confirm=${tenant.slug}x`);
    const byId = await request('DELETE', `/tenants/${tenant.id}?confirm=${tenant.id}`);

    // Assess
    for (const answer of [without, wrong, byId]) {
      expect(answer.status).toBe(400);
      expect(answer.body).toMatchObject({
        error: { code: 'invalid_request', details: [{ path: 'confirm' }] },
      });
    }
    expect((await registry.tenants.require(tenant.id)).status).toBe('active');
    expect(await operationsOf(tenant.id)).toEqual([]);
  });

  it('suspends, takes a final backup, removes the resources and keeps storage for its retention', async () => {
    // Prepare
    const tenant = await activeTenant({ config: { compliance: { retentionDays: 90 } } });
    const file = `${storagePrefix(tenant.id)}files/report.txt`;
    await clients.s3.send(
      new PutObjectCommand({ Bucket: STORAGE_BUCKET, Key: file, Body: 'quarterly report' }),
    );

    // Act
    const { accepted, execution } = await operate('DELETE', deletePath(tenant));

    // Assess
    expect(accepted.status).toBe('deprovisioning');
    expect(execution.status).toBe('SUCCEEDED');
    const record = await registry.tenants.require(tenant.id);
    expect(record.status).toBe('deleted');
    expect(record.resources.database).toBeUndefined();
    expect(record.resources.secrets).toBeUndefined();
    expect(record.resources.credentialExpiries).toBeUndefined();
    expect(record.resources.alarms).toBeUndefined();
    expect(record.resources.finalBackup).toMatchObject({
      backupId: accepted.backupId,
      bucket: STORAGE_BUCKET,
      manifest: `backups/${tenant.id}/${accepted.backupId}/manifest.json`,
    });
    const traces = await tenantTraces(tenant.id);
    expect(traces).toMatchObject({ databases: [], roles: [], alarms: [] });
    expect(await secretsOf(tenant.id)).toEqual(
      // A basic tenant: the app role's secret (its one standing role) and the admin's invitation.
      ['db/app', 'invitation/admin'].map((suffix) => ({
        name: `${secretPrefix(STAGE, tenant.id)}${suffix}`,
        scheduled: true,
      })),
    );
    expect(traces.objects.sort()).toEqual([`${storagePrefix(tenant.id)}.tenant`, file]);
    expect(await tagsOf(file)).toMatchObject({ RetentionDays: '90', TenantId: tenant.id });
    const marker = await clients.s3.send(
      new GetObjectCommand({ Bucket: STORAGE_BUCKET, Key: `${storagePrefix(tenant.id)}.tenant` }),
    );
    expect(JSON.parse((await marker.Body?.transformToString()) ?? '{}')).toMatchObject({
      tenantId: tenant.id,
      deletedAt: expect.any(String),
      retentionDays: 90,
    });
    const listed = Listed.parse((await request('GET', `/tenants/${tenant.id}/backups`)).body);
    expect(listed.items).toEqual([expect.objectContaining({ backupId: accepted.backupId, kind: 'final' })]);
    expect((await registry.audit.entries(tenant.id)).map((entry) => entry.action)).toContain(
      'TENANT_DELETED',
    );
    expect(await eventsFor(tenant.id, 'Tenant Deleted')).toHaveLength(1);
    const again = await request('DELETE', deletePath(tenant));
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ error: { code: 'invalid_state' } });
  });

  it('leaves the tenant suspended, nothing removed, when the final backup fails; deleting again succeeds', async () => {
    // Prepare
    const tenant = await activeTenant();
    const fault: FaultRuleInput = {
      service: 's3',
      operation: 'PutObject',
      match: `backups/${tenant.id}/`,
      error: { code: 'AccessDenied', statusCode: 403, message: 'injected' },
    };
    await addFaults([fault]);

    // Act
    let execution: Awaited<ReturnType<typeof operate>>['execution'];
    try {
      ({ execution } = await operate('DELETE', deletePath(tenant)));
    } finally {
      await removeFaults([fault]);
    }

    // Assess
    expect(execution.status).toBe('FAILED');
    expect(await registry.tenants.require(tenant.id)).toMatchObject({
      status: 'suspended',
      failure: { step: 'FinalBackup', error: 'AccessDenied' },
    });
    expect((await tenantTraces(tenant.id)).databases).toEqual([databaseName(tenant.id)]);
    expect(await canConnect(tenant.id, 'app')).toMatch(/not permitted to log in|permission denied/);
    expect((await operate('DELETE', deletePath(tenant))).execution.status).toBe('SUCCEEDED');
    expect((await registry.tenants.require(tenant.id)).status).toBe('deleted');
  });

  it('deletes a tenant whose provisioning failed: nothing to back up, no storage made', async () => {
    // Prepare
    const tenant = await reserveTenant({ plan: 'professional' });
    const fault: FaultRuleInput = {
      service: 'cloudwatch',
      operation: 'PutMetricAlarm',
      match: tenant.id,
      error: { code: 'InvalidParameterValue', statusCode: 400, message: 'injected' },
    };
    await addFaults([fault]);
    try {
      await waitForExecution(await startProvisioning(tenant.id));
    } finally {
      await removeFaults([fault]);
    }
    expect((await registry.tenants.require(tenant.id)).status).toBe('failed');

    // Act
    const { execution } = await operate('DELETE', deletePath(tenant));

    // Assess
    expect(execution.status).toBe('SUCCEEDED');
    const record = await registry.tenants.require(tenant.id);
    expect(record.status).toBe('deleted');
    expect(record.resources.finalBackup).toBeUndefined();
    expect(await tenantTraces(tenant.id)).toEqual(NOTHING_LEFT);
  });

  it('halts as deprovisioning with what is left when a removal step keeps failing; deleting again finishes', async () => {
    // Prepare
    const tenant = await activeTenant();
    const fault: FaultRuleInput = {
      service: 'secrets-manager',
      operation: 'DeleteSecret',
      match: secretPrefix(STAGE, tenant.id),
      error: { code: 'InvalidRequestException', statusCode: 400, message: 'injected' },
    };
    await addFaults([fault]);

    // Act
    let first: Awaited<ReturnType<typeof operate>>;
    try {
      first = await operate('DELETE', deletePath(tenant));
    } finally {
      await removeFaults([fault]);
    }
    const halted = await registry.tenants.require(tenant.id);
    const retried = await operate('DELETE', deletePath(tenant));

    // Assess
    expect(first.execution.status).toBe('FAILED');
    expect(halted.status).toBe('deprovisioning');
    expect(halted.failure).toMatchObject({ step: 'RetireRolesAndSecrets', error: 'InvalidRequestException' });
    expect(halted.leftovers).toEqual(
      expect.arrayContaining([`database ${databaseName(tenant.id)}`, expect.stringMatching(/^secret arn:/)]),
    );
    expect(retried.execution.status).toBe('SUCCEEDED');
    const record = await registry.tenants.require(tenant.id);
    expect(record).toMatchObject({ status: 'deleted', failure: null, leftovers: null });
    expect(record.resources.finalBackup?.backupId).toBe(first.accepted.backupId);
    const listed = Listed.parse((await request('GET', `/tenants/${tenant.id}/backups`)).body);
    expect(listed.items.map((item) => item.kind)).toEqual(['final']);
    expect((await tenantTraces(tenant.id)).databases).toEqual([]);
    expect((await secretsOf(tenant.id)).every((secret) => secret.scheduled)).toBe(true);
  });
});
