import { describe, expect, it } from 'vitest';
import { billedMetrics } from '../../bench/cost.ts';

const stat = (MetricName: string) => ({
  Metric: { Namespace: 'TenantProvisioner/Tenants', MetricName },
  Period: 300,
  Stat: 'Sum',
});

describe("the standing cost's alarm metrics", () => {
  it('counts a metric alarm as one metric and a metric-math alarm as each metric it reads, not its expressions', () => {
    // Prepare: an alarm on one metric, and an error rate (5xx over requests) as metric math.
    const single = {};
    const rate = {
      Metrics: [
        { Id: 'errors', MetricStat: stat('Http5xx'), ReturnData: false },
        { Id: 'requests', MetricStat: stat('Requests'), ReturnData: false },
        { Id: 'rate', Expression: 'errors / requests', ReturnData: true },
      ],
    };

    // Act / Assess
    expect(billedMetrics(single)).toBe(1);
    expect(billedMetrics(rate)).toBe(2);
  });
});
