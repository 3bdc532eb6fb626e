import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { registry, reserveTenant, startProvisioning, waitForExecution } from '../provision/helpers.ts';
import {
  addFaults,
  clientConfig,
  eventually,
  type FaultRuleInput,
  held,
  removeFaults,
} from '../support/sandbox.ts';
import { runReconciler } from './helpers.ts';

const AlarmQuery = z.object({ AlarmNamePrefix: z.string().optional() });
const AlarmPage = z.object({
  MetricAlarms: z.array(z.object({ AlarmName: z.string().optional() })).default([]),
});

describe('the reconciler and tenants that change while it looks', () => {
  const cloudWatch = new CloudWatchClient(clientConfig);
  afterAll(() => cloudWatch.destroy());

  it('announces no drift for a tenant that turned active between its inventory and its registry read', async () => {
    // Prepare: the tenant is held in ConfigureStorage (no alarms yet) while the reconciler lists the alarms, and
    // turns active before the reconciler reads the registry.
    const tenant = await reserveTenant();
    const slow: FaultRuleInput = {
      service: 's3',
      operation: 'PutObject',
      match: `tenants/${tenant.id}/.tenant`,
      count: 1,
      latencyMs: 1_500,
    };
    await addFaults([slow]);
    let executionArn: string;
    try {
      executionArn = await startProvisioning(tenant.id);
      expect(await held('PutObject', tenant.id)).toBe(true);
    } finally {
      await removeFaults([slow]);
    }
    // The reconciler's own CloudWatch client: its fleet-wide alarm listing (prefix `tenant-`) answers, then waits.
    let listed: string[] | undefined;
    cloudWatch.middlewareStack.add(
      (next, context) => async (args) => {
        const result = await next(args);
        const prefix = AlarmQuery.safeParse(args.input).data?.AlarmNamePrefix;
        if (listed === undefined && context.commandName === 'DescribeAlarmsCommand' && prefix === 'tenant-') {
          listed = AlarmPage.parse(result.output).MetricAlarms.map((alarm) => alarm.AlarmName ?? '');
          await eventually(async () => (await registry.tenants.get(tenant.id))?.status === 'active');
        }
        return result;
      },
      { step: 'initialize', name: 'holdAfterInventoryAlarms' },
    );

    // Act
    const report = await runReconciler({}, { cloudWatch });

    // Assess: the inventory did miss the alarms, and the registry did say active.
    expect(listed).toBeDefined();
    expect(listed?.filter((name) => name.includes(tenant.id))).toEqual([]);
    expect((await waitForExecution(executionArn)).status).toBe('SUCCEEDED');
    expect(report.missing.filter((item) => item.tenantId === tenant.id)).toEqual([]);
    expect(report.newlyReported).not.toContain(tenant.id);
    expect((await registry.audit.entries(tenant.id)).map((entry) => entry.action)).not.toContain(
      'TENANT_DRIFT_DETECTED',
    );
    // The next pass judges it, and finds nothing.
    const next = await runReconciler();
    expect(next.missing.filter((item) => item.tenantId === tenant.id)).toEqual([]);
  });
});
