import { RDSDataClient } from '@aws-sdk/client-rds-data';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { DataApi } from '../../functions/shared/data-api.ts';
import { NotFoundError, TenantStateError } from '../../functions/shared/errors.ts';
import { Registry } from '../../functions/shared/registry.ts';
import { logger, StepInput, step } from '../../functions/shared/step.ts';
import { newTenantId } from '../../schema/names.ts';
import { reserveTenant } from '../provision/helpers.ts';
import { clientConfig, sandbox } from '../support/sandbox.ts';

/** The registry as the step functions reach it, counting the Data API calls made through it. */
function countingRegistry() {
  const client = new RDSDataClient(clientConfig);
  const calls = { count: 0 };
  client.middlewareStack.add(
    (next) => async (args) => {
      calls.count += 1;
      return next(args);
    },
    { step: 'initialize' },
  );
  const cluster = new DataApi(client, {
    resourceArn: sandbox.clusterArn,
    secretArn: sandbox.provisionerSecretArn,
    database: 'control_plane',
  });
  return { registry: new Registry(cluster), calls };
}

/** What the Lambda runtime hands a handler, as far as the step reads it. */
const context = {
  functionName: 'StepTest',
  functionVersion: '$LATEST',
  invokedFunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:StepTest',
  memoryLimitInMB: '512',
  awsRequestId: 'step-test',
  logGroupName: '/aws/lambda/StepTest',
  logStreamName: 'step-test',
  getRemainingTimeInMillis: () => 12_345,
  callbackWaitsForEmptyEventLoop: true,
};

/** An error as the AWS SDK throws one: its name is its code, which the ASL's Retry and Catch match. */
class DatabaseResumingException extends Error {
  override readonly name = 'DatabaseResumingException';
}

/** The step's log lines, kept off the test's output. */
function logLines() {
  const info = vi.spyOn(logger, 'info').mockImplementation(() => {});
  const warn = vi.spyOn(logger, 'warn').mockImplementation(() => {});
  return { info, warn };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('the step wrapper (functions/shared/step.ts)', () => {
  it('reads the tenant and records a step in two registry round trips, with what the work staged', async () => {
    // Prepare
    const { registry, calls } = countingRegistry();
    const tenant = await reserveTenant();
    const logs = logLines();
    const handler = step(
      'StepTestRecord',
      {
        input: StepInput,
        progress: { store: registry.progress, actor: 'step-test' },
        statuses: ['provisioning'],
      },
      async ({ tenant: read, record, remainingMs }) => {
        record({ resources: { database: `tenant_${read.id}` } });
        record({ schemaVersion: 3 });
        return { id: read.id, remainingMs: remainingMs() };
      },
    );

    // Act
    const result = await handler({ tenantId: tenant.id }, context);

    // Assess
    expect(result).toEqual({ id: tenant.id, remainingMs: 12_345 });
    expect(calls.count).toBe(2);
    const after = await registry.tenants.require(tenant.id);
    expect(after.resources.database).toBe(`tenant_${tenant.id}`);
    expect(after.schemaVersion).toBe(3);
    expect(
      (await registry.progress.steps(tenant.id)).find((row) => row.step === 'StepTestRecord'),
    ).toMatchObject({
      status: 'succeeded',
      attempts: 1,
    });
    expect(logs.info).toHaveBeenCalledWith('Step succeeded', expect.objectContaining({ result }));
  });

  it('refuses a tenant in another status with a TenantStateError, recording and running nothing', async () => {
    // Prepare
    const { registry } = countingRegistry();
    const tenant = await reserveTenant();
    logLines();
    const work = vi.fn(async () => ({}));
    const handler = step(
      'StepTestRefused',
      { input: StepInput, progress: { store: registry.progress, actor: 'step-test' }, statuses: ['active'] },
      work,
    );

    // Act
    const outcome = handler({ tenantId: tenant.id }, context);

    // Assess
    await expect(outcome).rejects.toThrow(TenantStateError);
    await expect(outcome).rejects.toMatchObject({ name: 'TenantStateError' });
    expect(work).not.toHaveBeenCalled();
    expect(await registry.progress.steps(tenant.id)).toEqual([]);
  });

  it('throws a NotFoundError for a tenant that does not exist', async () => {
    // Prepare
    const { registry } = countingRegistry();
    logLines();
    const handler = step(
      'StepTestMissing',
      { input: StepInput, progress: { store: registry.progress, actor: 'step-test' } },
      async () => ({}),
    );

    // Act
    const outcome = handler({ tenantId: newTenantId() }, context);

    // Assess
    await expect(outcome).rejects.toThrow(NotFoundError);
  });

  it("rethrows the work's error unchanged, records the step failed with its name, stages nothing", async () => {
    // Prepare
    const { registry } = countingRegistry();
    const tenant = await reserveTenant();
    const logs = logLines();
    const thrown = new DatabaseResumingException('resuming');
    const handler = step(
      'StepTestFailed',
      { input: StepInput, progress: { store: registry.progress, actor: 'step-test' } },
      async ({ record }) => {
        record({ schemaVersion: 9 });
        throw thrown;
      },
    );

    // Act
    const outcome = handler({ tenantId: tenant.id }, context);

    // Assess
    await expect(outcome).rejects.toBe(thrown);
    const row = (await registry.progress.steps(tenant.id)).find((record) => record.step === 'StepTestFailed');
    expect(row?.status).toBe('failed');
    expect(row?.error).toEqual({ error: 'DatabaseResumingException', cause: 'resuming' });
    expect((await registry.tenants.require(tenant.id)).schemaVersion).not.toBe(9);
    expect(logs.warn).toHaveBeenCalledWith(
      'Step failed',
      expect.objectContaining({ error: 'DatabaseResumingException', cause: 'resuming' }),
    );
  });

  it('runs a task without progress on its own input: no registry call, no tenant', async () => {
    // Prepare
    const { registry, calls } = countingRegistry();
    const tenant = await reserveTenant();
    const logs = logLines();
    const handler = step(
      'StepTestTask',
      { input: z.object({ batchId: z.string(), index: z.number() }) },
      async (task) => ({ keys: Object.keys(task).sort(), input: task.input }),
    );

    // Act
    const result = await handler({ batchId: 'b1', index: 2, extra: 'dropped' }, context);

    // Assess
    expect(result).toEqual({ keys: ['input', 'remainingMs'], input: { batchId: 'b1', index: 2 } });
    expect(calls.count).toBe(0);
    expect(await registry.progress.steps(tenant.id)).toEqual([]);
    expect(logs.info).toHaveBeenCalledWith('Step succeeded', expect.objectContaining({ result }));
  });

  it('refuses input its schema does not take before anything is read or recorded', async () => {
    // Prepare
    const { registry, calls } = countingRegistry();
    logLines();
    const handler = step(
      'StepTestBadInput',
      { input: StepInput, progress: { store: registry.progress, actor: 'step-test' } },
      async () => ({}),
    );

    // Act
    const outcome = handler({ tenantId: 'not an id' }, context);

    // Assess
    await expect(outcome).rejects.toThrow();
    expect(calls.count).toBe(0);
  });
});
