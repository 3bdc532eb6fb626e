import { GetMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { tenantAlarms } from '../../functions/provision/alarms.ts';
import { TENANT_METRICS_NAMESPACE } from '../../functions/usage/quotas.ts';
import { PLANS } from '../../schema/plans.ts';
import { resourcesOf, synthStage } from '../infra/synth.ts';
import { activeTenant } from '../lifecycle/helpers.ts';
import { clients } from '../provision/helpers.ts';
import { collectUsage } from './helpers.ts';

/** The tenants dashboard's graphed metrics, as the dev stage deploys them: [namespace, name, dimensions]. */
function dashboardMetrics(): { namespace: string; name: string; dimensions: Record<string, string> }[] {
  const { template } = synthStage('dev', { bundle: false });
  const [, dashboard] =
    Object.entries(resourcesOf(template, 'AWS::CloudWatch::Dashboard')).find(
      ([, resource]) => resource.Properties?.DashboardName === 'tenant-provisioner-dev-tenants',
    ) ?? [];
  const parts = z
    .object({ 'Fn::Join': z.tuple([z.string(), z.array(z.unknown())]) })
    .parse(dashboard?.Properties?.DashboardBody)['Fn::Join'][1];
  const body = z
    .object({
      widgets: z.array(
        z.object({ properties: z.object({ metrics: z.array(z.array(z.unknown())).optional() }) }),
      ),
    })
    .parse(JSON.parse(parts.map((part) => (typeof part === 'string' ? part : 'ref')).join('')));
  return body.widgets.flatMap((widget) =>
    (widget.properties.metrics ?? []).map((metric) => {
      const [namespace, name, ...rest] = metric.filter((item) => typeof item === 'string') as string[];
      const dimensions: Record<string, string> = {};
      for (let i = 0; i + 1 < rest.length; i += 2) dimensions[rest[i] ?? ''] = rest[i + 1] ?? '';
      return { namespace: namespace ?? '', name: name ?? '', dimensions };
    }),
  );
}

/** The SaaS application's metrics (docs/usage.md): the collector does not publish them. */
const SAAS_METRICS = new Set(['Requests', '5xxErrors', 'Latency']);

describe('the tenants dashboard', () => {
  it("graphs only metrics something publishes: the collector's, per tenant and per plan, and the SaaS's that the alarms read", async () => {
    // Prepare
    const metrics = dashboardMetrics();
    const tenant = await activeTenant({ plan: 'professional' });
    const at = new Date(Math.floor(Date.now() / 60_000) * 60_000 + 40 * 60_000);

    // Act
    await collectUsage(at);
    const queries = metrics
      .filter((metric) => !SAAS_METRICS.has(metric.name))
      .map((metric, i) => ({
        Id: `m${i}`,
        MetricStat: {
          Metric: {
            Namespace: metric.namespace,
            MetricName: metric.name,
            // The dashboard's TenantId variable picks the tenant; here, the one just measured.
            Dimensions: Object.entries(metric.dimensions).map(([Name, Value]) => ({
              Name,
              Value: Name === 'TenantId' ? tenant.id : Value,
            })),
          },
          Period: 60,
          Stat: 'Sum',
        },
      }));
    const { MetricDataResults } = await clients.cloudWatch.send(
      new GetMetricDataCommand({
        StartTime: new Date(at.getTime() - 60_000),
        EndTime: new Date(at.getTime() + 60_000),
        MetricDataQueries: queries,
      }),
    );

    // Assess: every collector metric the dashboard shows has the run's datapoint.
    expect(queries.length).toBeGreaterThanOrEqual(8);
    for (const [i, result] of (MetricDataResults ?? []).entries()) {
      expect(result.Values?.length, JSON.stringify(queries[i]?.MetricStat.Metric)).toBe(1);
    }
    expect(new Set(metrics.map((metric) => metric.namespace))).toEqual(new Set([TENANT_METRICS_NAMESPACE]));
    // The SaaS's metrics it shows are the ones the tenant alarms read, by the same names.
    const alarmMetrics = new Set(
      tenantAlarms(tenant.id, 'enterprise', PLANS.enterprise.limits).flatMap((alarm) => [
        ...(alarm.MetricName ? [alarm.MetricName] : []),
        ...(alarm.Metrics ?? []).flatMap((query) => query.MetricStat?.Metric?.MetricName ?? []),
      ]),
    );
    for (const name of SAAS_METRICS) {
      expect(metrics.some((metric) => metric.name === name && 'TenantId' in metric.dimensions)).toBe(true);
      expect(alarmMetrics.has(name)).toBe(true);
    }
  });
});
