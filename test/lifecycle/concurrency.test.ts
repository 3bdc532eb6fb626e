import { describe, expect, it } from 'vitest';
import { addFaults, type FaultRuleInput, removeFaults } from '../support/sandbox.ts';
import { Accepted, activeTenant, operationsOf, registry, request, waitForExecution } from './helpers.ts';

const reason = 'Concurrent requests';

/** The statuses of the answers, counted: `{ 202: 1, 409: 9 }`. */
function tally(statuses: readonly number[]): Record<number, number> {
  const counts: Record<number, number> = {};
  for (const status of statuses) counts[status] = (counts[status] ?? 0) + 1;
  return counts;
}

describe('concurrent lifecycle requests on one tenant', () => {
  it('accept one of 10 concurrent suspensions and refuse the others with 409, never a 5xx', async () => {
    // Prepare
    const tenant = await activeTenant();

    // Act
    const answers = await Promise.all(
      Array.from({ length: 10 }, () =>
        request('POST', `/tenants/${tenant.id}/suspend`, { body: { reason } }),
      ),
    );

    // Assess
    expect(tally(answers.map((answer) => answer.status))).toEqual({ 202: 1, 409: 9 });
    const accepted = Accepted.parse(answers.find((answer) => answer.status === 202)?.body);
    expect((await waitForExecution(accepted.executionArn)).status).toBe('SUCCEEDED');
    expect((await registry.tenants.require(tenant.id)).status).toBe('suspended');
    expect(await operationsOf(tenant.id)).toMatchObject([{ operation: 'suspend', status: 'succeeded' }]);
  });

  it('accept one of a suspension and a deletion sent together, five times over', async () => {
    for (let round = 0; round < 5; round += 1) {
      // Prepare
      const tenant = await activeTenant();

      // Act
      const answers = await Promise.all([
        request('POST', `/tenants/${tenant.id}/suspend`, { body: { reason } }),
        request('DELETE', `/tenants/${tenant.id}?confirm=${encodeURIComponent(tenant.slug)}`),
        request('POST', `/tenants/${tenant.id}/suspend`, { body: { reason } }),
        request('DELETE', `/tenants/${tenant.id}?confirm=${encodeURIComponent(tenant.slug)}`),
      ]);

      // Assess
      expect(tally(answers.map((answer) => answer.status))).toEqual({ 202: 1, 409: 3 });
      const accepted = Accepted.parse(answers.find((answer) => answer.status === 202)?.body);
      expect((await waitForExecution(accepted.executionArn)).status).toBe('SUCCEEDED');
      expect(await operationsOf(tenant.id)).toMatchObject([{ status: 'succeeded' }]);
    }
  });

  it('answer 503 or 409, never a 500, while the executions cannot start, and leave nothing claimed', async () => {
    // Prepare: every execution of the tenant fails to start, so each claim is undone (abandoned).
    const tenant = await activeTenant();
    const fault: FaultRuleInput = {
      service: 'sfn',
      operation: 'StartExecution',
      match: tenant.id,
      error: { code: 'ServiceUnavailable', statusCode: 503, message: 'injected' },
    };
    await addFaults([fault]);

    // Act
    let answers: Awaited<ReturnType<typeof request>>[];
    try {
      answers = await Promise.all(
        Array.from({ length: 10 }, () =>
          request('POST', `/tenants/${tenant.id}/suspend`, { body: { reason } }),
        ),
      );
    } finally {
      await removeFaults([fault]);
    }

    // Assess
    const statuses = answers.map((answer) => answer.status);
    expect(statuses.filter((status) => status !== 503 && status !== 409)).toEqual([]);
    expect(statuses).toContain(503);
    expect((await registry.tenants.require(tenant.id)).status).toBe('active');
    expect(await operationsOf(tenant.id)).toEqual([]);
  });
});
