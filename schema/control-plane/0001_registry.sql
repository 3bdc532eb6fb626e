-- The tenant registry (seed 002's control_plane.tenants, with seed 004's audit fields).
CREATE TABLE tenants (
  id text PRIMARY KEY CHECK (id ~ '^t[a-z0-9]{15}$'),
  slug text NOT NULL UNIQUE,
  name text NOT NULL,
  plan text NOT NULL CHECK (plan IN ('basic', 'professional', 'enterprise')),
  status text NOT NULL CHECK (
    status IN ('provisioning', 'active', 'failed', 'rollback_failed', 'suspended', 'deprovisioning', 'deleted')
  ),
  -- Effective limits: the plan's, lowered where the request asked.
  limits jsonb NOT NULL,
  -- The validated request: features, security policy, compliance, settings, admin user.
  config jsonb NOT NULL DEFAULT '{}',
  -- Names and ARNs of what was made: database, secret ARNs by role, storage, alarms. Never a secret value.
  resources jsonb NOT NULL DEFAULT '{}',
  -- For failed and rollback_failed: the step, error and cause; what could not be undone.
  failure jsonb,
  leftovers jsonb,
  execution_arn text,
  schema_version integer,
  created_at timestamptz NOT NULL DEFAULT now(),
  created_by text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  updated_by text NOT NULL
);
CREATE INDEX tenants_status_idx ON tenants (status, id);
CREATE INDEX tenants_plan_idx ON tenants (plan, id);

-- Progress of each step of a tenant's runs, for GET /tenants/{id} and the durations dashboard.
CREATE TABLE tenant_steps (
  tenant_id text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  step text NOT NULL,
  status text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
  attempts integer NOT NULL DEFAULT 1,
  started_at timestamptz NOT NULL,
  ended_at timestamptz,
  duration_ms integer,
  error jsonb,
  PRIMARY KEY (tenant_id, step)
);

-- What happened to a tenant and who did it (seed 000's TENANT_CREATED and the like).
CREATE TABLE audit_log (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant_id text NOT NULL,
  action text NOT NULL,
  actor text NOT NULL,
  details jsonb NOT NULL DEFAULT '{}',
  at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_tenant_idx ON audit_log (tenant_id, at);

-- First answers to requests with an Idempotency-Key, per caller.
CREATE TABLE idempotency_keys (
  caller text NOT NULL,
  key text NOT NULL,
  request_hash text NOT NULL,
  status_code integer,
  response jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (caller, key)
);
