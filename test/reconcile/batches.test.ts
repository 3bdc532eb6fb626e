import { StopExecutionCommand } from '@aws-sdk/client-sfn';
import { beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type ApiUnderTest, apiUnderTest, call } from '../api/api.ts';
import { clients, registry } from '../provision/helpers.ts';
import {
  addFaults,
  eventually,
  type FaultRuleInput,
  held,
  removeFaults,
  superuserPool,
  uniqueName,
} from '../support/sandbox.ts';
import { runReconciler } from './helpers.ts';

const Created = z.object({
  batchId: z.string(),
  executionArn: z.string(),
  rows: z.array(z.object({ index: z.number(), tenantId: z.string() })),
});
const Batch = z.object({
  status: z.string(),
  summary: z.object({ succeeded: z.number(), failed: z.number() }),
  rows: z.array(z.object({ outcome: z.string(), error: z.object({ error: z.string() }).nullable() })),
});

/** The bulk-onboard run provisions this many rows at a time. */
const AT_A_TIME = 8;

let api: ApiUnderTest;
let token: string;
beforeAll(async () => {
  api = await apiUnderTest();
  token = await api.token({ sub: uniqueName('reconcile-batches') });
});

/**
 * A batch of `rows` whose bulk-onboard run is stopped while its first rows are provisioning (each held in its
 * storage step for `holdMs`; rows beyond the first 8 wait for a slot and never start), as a crash leaves it. The
 * rows' tenants go on without the batch's run.
 */
async function batchStoppedMidway(rows: number, holdMs = 2_000) {
  const prefix = uniqueName('cut');
  const tenants = Array.from({ length: rows }, (_, index) => ({
    name: `${prefix} ${index}`,
    plan: 'basic',
    adminUser: { email: `row${index}@example.com` },
  }));
  // Every storage marker is held while the rule stands (the rows' ids are not known before the answer).
  const slow: FaultRuleInput = {
    service: 's3',
    operation: 'PutObject',
    match: '/.tenant',
    latencyMs: holdMs,
  };
  await addFaults([slow]);
  try {
    const answer = await call(api, 'POST', '/tenant-batches', { token, body: { tenants } });
    expect(answer.status, JSON.stringify(answer.body)).toBe(202);
    const created = Created.parse(answer.body);
    for (const row of created.rows.slice(0, AT_A_TIME)) {
      expect(await held('PutObject', row.tenantId)).toBe(true);
    }
    await clients.sfn.send(
      new StopExecutionCommand({ executionArn: created.executionArn, error: 'Test.Stopped' }),
    );
    return created;
  } finally {
    await removeFaults([slow]);
  }
}

/** Waits until the batch's first rows' tenants are active. */
async function rowsActive(created: z.infer<typeof Created>): Promise<void> {
  for (const row of created.rows.slice(0, AT_A_TIME)) {
    const active = await eventually(
      async () => (await registry.tenants.get(row.tenantId))?.status === 'active',
      60_000,
    );
    expect(active).toBe(true);
  }
}

/** The batch's status as the registry has it, without the settling a read through the API does. */
async function storedStatus(batchId: string): Promise<string | undefined> {
  const { rows } = await superuserPool('control_plane').query(
    'SELECT status FROM tenant_batches WHERE id = $1',
    [batchId],
  );
  return z.array(z.object({ status: z.string() })).parse(rows)[0]?.status;
}

async function batch(batchId: string) {
  const answer = await call(api, 'GET', `/tenant-batches/${batchId}`, { token });
  expect(answer.status).toBe(200);
  return Batch.parse(answer.body);
}

describe('a bulk batch whose run died', () => {
  it('reads succeeded when every row succeeded after its run was stopped', async () => {
    // Prepare
    const created = await batchStoppedMidway(2);
    await rowsActive(created);

    // Act
    const read = await batch(created.batchId);

    // Assess
    expect(read.status).toBe('succeeded');
    expect(read.summary).toMatchObject({ succeeded: 2, failed: 0 });
  });

  it('is settled by the reconciler from its rows: a row never started failed, the rest succeeded', async () => {
    // Prepare
    const created = await batchStoppedMidway(AT_A_TIME + 1);
    await rowsActive(created);

    // Act
    await runReconciler({ settleSeconds: 0 });

    // Assess
    expect(await storedStatus(created.batchId)).toBe('completed_with_failures');
    const read = await batch(created.batchId);
    expect(read.status).toBe('completed_with_failures');
    expect(read.summary).toMatchObject({ succeeded: AT_A_TIME, failed: 1 });
    expect(read.rows[AT_A_TIME]).toMatchObject({ outcome: 'failed', error: { error: 'Test.Stopped' } });
  });

  it('stays running while a row is still provisioning, and then takes its status', async () => {
    // Prepare
    const created = await batchStoppedMidway(1, 5_000);

    // Act
    await runReconciler({ settleSeconds: 0 });
    const during = await storedStatus(created.batchId);
    await rowsActive(created);
    await runReconciler({ settleSeconds: 0 });

    // Assess
    expect(during).toBe('running');
    expect(await storedStatus(created.batchId)).toBe('succeeded');
  });
});
