import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { dropTenantDatabase } from '../../functions/provision/database.ts';
import { STAGE } from '../../local/constants.ts';
import { databaseName, ident, newTenantId } from '../../schema/names.ts';
import * as z from '../../schema/zod.ts';
import { addFaults, type FaultRuleInput, removeFaults, sandbox } from '../support/sandbox.ts';
import {
  asRole,
  cleanUpTenant,
  eventsFor,
  NOTHING_LEFT,
  provision,
  provisioner,
  registry,
  reserveTenant,
  startProvisioning,
  tenantTraces,
  waitForExecution,
} from './helpers.ts';

const denied = { code: 'AccessDeniedException', statusCode: 400, message: 'Injected: not allowed' };

/** A fault that makes one forward step fail once, with an error no Retry takes; scoped to the tenant's names. */
const FORWARD_FAULTS: Record<string, (id: string) => FaultRuleInput> = {
  CreateDatabase: (id) => ({
    service: 'rds-data',
    match: `CREATE DATABASE "tenant_${id}"`,
    error: denied,
    count: 1,
  }),
  ApplyMigrations: (id) => ({
    service: 'rds-data',
    match: `COMMENT ON DATABASE "tenant_${id}"`,
    error: denied,
    count: 1,
  }),
  CreateRoles: (id) => ({
    service: 'rds-data',
    match: `CREATE ROLE "tenant_${id}_auditor"`,
    error: denied,
    count: 1,
  }),
  ConfigureStorage: (id) => ({
    service: 's3',
    operation: 'PutObject',
    match: `tenants/${id}/.tenant`,
    error: denied,
    count: 1,
  }),
  // The second alarm: the first exists by then and must be undone too.
  ConfigureAlarms: (id) => ({
    service: 'cloudwatch',
    operation: 'PutMetricAlarm',
    match: `tenant-${id}-connections`,
    error: denied,
    count: 1,
  }),
  SeedDefaults: (id) => ({
    service: 'secrets-manager',
    operation: 'CreateSecret',
    match: `tenants/${STAGE}/${id}/invitation/admin`,
    error: denied,
    count: 1,
  }),
  Activate: (id) => ({
    service: 'rds-data',
    match: `GRANT CONNECT ON DATABASE "tenant_${id}"`,
    error: denied,
    count: 1,
  }),
};

describe('a failing provisioning step', () => {
  it.concurrent.for(Object.keys(FORWARD_FAULTS))(
    'fails in %s: undone completely, the tenant failed with that step named',
    { timeout: 120_000 },
    async (step) => {
      // Prepare
      const tenant = await reserveTenant({ plan: 'professional', config: { features: { apiAccess: true } } });
      const fault = FORWARD_FAULTS[step]?.(tenant.id);
      if (!fault) throw new Error(step);
      await addFaults([fault]);

      try {
        // Act
        const execution = await waitForExecution(await startProvisioning(tenant.id));

        // Assess
        expect(execution.status).toBe('FAILED');
        expect(execution.error).toBe('TenantProvisioningFailed');
        const failed = await registry.tenants.require(tenant.id);
        expect(failed.status).toBe('failed');
        expect(failed.failure).toEqual({
          step,
          error: 'AccessDeniedException',
          cause: expect.stringContaining('Injected: not allowed'),
        });
        expect(failed.resources).toEqual({});
        expect(await tenantTraces(tenant.id)).toEqual(NOTHING_LEFT);
        const steps = await registry.progress.steps(tenant.id);
        expect(steps.find((record) => record.step === step)).toMatchObject({
          status: 'failed',
          error: { error: 'AccessDeniedException' },
        });
        expect(
          steps.filter((record) => record.step.startsWith('Remove') || record.step === 'DropDatabase'),
        ).toEqual(
          expect.arrayContaining([expect.objectContaining({ step: 'DropDatabase', status: 'succeeded' })]),
        );
        const audit = await registry.audit.entries(tenant.id);
        expect(audit.map((entry) => entry.action)).toEqual(['TENANT_CREATED', 'TENANT_PROVISIONING_FAILED']);
        const events = await eventsFor(tenant.id, 'Tenant Provisioning Failed');
        expect(events).toHaveLength(1);
        expect(events[0]?.detail).toMatchObject({ tenantId: tenant.id, failure: { step } });
        expect(await eventsFor(tenant.id, 'Tenant Provisioned')).toEqual([]);
      } finally {
        await removeFaults([fault]);
      }
    },
  );
});

describe('a transient error', () => {
  it('is retried: two DatabaseResumingException in a row still end active', async () => {
    // Prepare
    const tenant = await reserveTenant();
    const fault: FaultRuleInput = {
      service: 'rds-data',
      match: `CREATE DATABASE "tenant_${tenant.id}"`,
      error: { code: 'DatabaseResumingException', statusCode: 400, message: 'The database is resuming' },
      count: 2,
    };
    await addFaults([fault]);

    try {
      // Act
      const execution = await waitForExecution(await startProvisioning(tenant.id));

      // Assess
      expect(execution.status).toBe('SUCCEEDED');
      expect((await registry.tenants.require(tenant.id)).status).toBe('active');
      const steps = await registry.progress.steps(tenant.id);
      expect(steps.find((record) => record.step === 'CreateDatabase')).toMatchObject({
        status: 'succeeded',
        attempts: 3,
      });
    } finally {
      await removeFaults([fault]);
    }
  }, 60_000);
});

describe('an undo step that keeps failing', () => {
  it('ends rollback_failed, lists what is left and announces it', async () => {
    // Prepare: ConfigureAlarms fails after its first alarm, and that alarm cannot be deleted.
    const tenant = await reserveTenant({ plan: 'professional' });
    const faults: FaultRuleInput[] = [
      {
        service: 'cloudwatch',
        operation: 'PutMetricAlarm',
        match: `tenant-${tenant.id}-connections`,
        error: denied,
        count: 1,
      },
      {
        service: 'cloudwatch',
        operation: 'DeleteAlarms',
        match: `tenant-${tenant.id}-storage`,
        error: { code: 'InternalServiceFault', statusCode: 500, message: 'Injected: CloudWatch is down' },
      },
    ];
    await addFaults(faults);

    try {
      // Act
      const execution = await waitForExecution(await startProvisioning(tenant.id));

      // Assess
      expect(execution.status).toBe('FAILED');
      expect(execution.error).toBe('TenantRollbackFailed');
      const failed = await registry.tenants.require(tenant.id);
      expect(failed.status).toBe('rollback_failed');
      expect(failed.failure).toMatchObject({ step: 'ConfigureAlarms', error: 'AccessDeniedException' });
      expect(failed.leftovers).toEqual(
        expect.arrayContaining([
          `database tenant_${tenant.id}`,
          `role tenant_${tenant.id}_admin`,
          expect.stringMatching(new RegExp(`^secret arn:.*:secret:tenants/${STAGE}/${tenant.id}/db/app`)),
          expect.stringMatching(new RegExp(`^objects s3://.*/tenants/${tenant.id}/ \\(1\\)$`)),
          `alarm tenant-${tenant.id}-storage`,
        ]),
      );
      expect(
        (await registry.progress.steps(tenant.id)).find((record) => record.step === 'RemoveAlarms'),
      ).toMatchObject({
        status: 'failed',
        attempts: 4,
        error: { error: 'InternalServiceFault' },
      });
      const events = await eventsFor(tenant.id, 'Tenant Rollback Failed');
      expect(events).toHaveLength(1);
      expect(events[0]?.detail).toMatchObject({
        tenantId: tenant.id,
        failure: { step: 'ConfigureAlarms' },
        rollbackFailure: { step: 'RemoveAlarms', error: 'InternalServiceFault' },
        leftovers: failed.leftovers,
      });
      const audit = await registry.audit.entries(tenant.id);
      expect(audit.map((entry) => entry.action)).toEqual(['TENANT_CREATED', 'TENANT_ROLLBACK_FAILED']);
    } finally {
      await removeFaults(faults);
      await cleanUpTenant(tenant.id);
    }
    expect(await tenantTraces(tenant.id)).toEqual(NOTHING_LEFT);
  }, 60_000);
});

describe('the undo steps', () => {
  it('drops a database once a session it may not end has left (an autovacuum worker, a superuser), and fails when it stays', async () => {
    // Prepare: a superuser session in the database, which the provisioner may not end (as an autovacuum worker)
    const tenantId = newTenantId();
    const name = databaseName(tenantId);
    const hold = async () => {
      const client = new pg.Client({ ...sandbox.postgres, database: name });
      await client.connect();
      return client;
    };
    await provisioner.execute(`CREATE DATABASE ${ident(name)}`);
    const staying = await hold();

    // Act, Assess: the session stays, so the drop fails, after its retries, with PostgreSQL's reason
    await expect(dropTenantDatabase(provisioner, tenantId)).rejects.toThrow(
      /permission denied to terminate process/,
    );
    await staying.end();

    // Act: the session leaves while the drop waits
    const leaving = await hold();
    const dropped = dropTenantDatabase(provisioner, tenantId);
    setTimeout(() => void leaving.end(), 150);

    // Assess
    await expect(dropped).resolves.toEqual({ dropped: name });
    const left = await provisioner.query(
      'SELECT count(*)::int AS count FROM pg_database WHERE datname = :name',
      { name },
      z.object({ count: z.number() }),
    );
    expect(left).toEqual([{ count: 0 }]);
  });

  it('remove a provisioned tenant completely, with objects its roles made and sessions they hold', async () => {
    // Prepare: an active tenant whose admin made a table and whose roles hold pooled sessions (professional: its
    // admin stands), one role without credentials among them (its auditor).
    const tenant = await provision({ plan: 'professional' });
    const secrets = (await registry.tenants.require(tenant.id)).resources.secrets ?? {};
    const db = `tenant_${tenant.id}`;
    await asRole(secrets.admin ?? '', db).execute('CREATE TABLE admin_owned (id int)');
    await asRole(secrets.app ?? '', db).execute('SELECT count(*) FROM users');

    // Act: the undo modules, as the compensation chain runs them, twice (undoing what is gone succeeds).
    await cleanUpTenant(tenant.id);
    await cleanUpTenant(tenant.id);

    // Assess
    expect(tenant.execution.status).toBe('SUCCEEDED');
    expect(await tenantTraces(tenant.id)).toEqual(NOTHING_LEFT);
  }, 60_000);
});
