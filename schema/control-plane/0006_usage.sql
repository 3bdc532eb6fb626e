-- The latest usage reading of each tenant, as the usage collector (statemachines/collect-usage.asl.json) measured
-- it: what GET /tenants/{id}/usage answers. `readings` holds each measure that could be taken (a tenant database
-- its own sessions had locked leaves users and apiKeys out, with the reason in `problems`). `crossed` is the quotas
-- and thresholds the reading was past, so that each crossing is announced once, when it is first seen.
CREATE TABLE tenant_usage (
  tenant_id text PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
  measured_at timestamptz NOT NULL,
  readings jsonb NOT NULL,
  crossed text[] NOT NULL DEFAULT '{}',
  problems jsonb NOT NULL DEFAULT '[]',
  recorded_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT tenant_usage_readings_check CHECK (jsonb_typeof(readings) = 'object'),
  CONSTRAINT tenant_usage_problems_check CHECK (jsonb_typeof(problems) = 'array')
);
