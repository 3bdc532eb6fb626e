-- Bulk onboarding (POST /tenant-batches) and fleet migrations (POST /migrations).

-- A batch of create-tenant requests, validated whole, then provisioned row by row by the bulk-onboard state
-- machine (an execution named by the batch id).
CREATE TABLE tenant_batches (
  id text PRIMARY KEY CHECK (id ~ '^b[a-z0-9]{15}$'),
  status text NOT NULL CHECK (status IN ('running', 'succeeded', 'completed_with_failures', 'failed')),
  source text NOT NULL CHECK (source IN ('json', 'csv')),
  row_count integer NOT NULL CHECK (row_count > 0),
  execution_arn text,
  -- For failed: why the batch itself (not one of its rows) failed.
  error jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  created_by text NOT NULL,
  ended_at timestamptz
);
CREATE INDEX tenant_batches_created_idx ON tenant_batches (created_at);

-- One row of a batch: its validated request and the tenant id it provisions. The id is chosen when the batch is
-- accepted, so that a retried row reserves the same tenant instead of a second one, and so that the client knows
-- every row's tenant from the first answer. No foreign key: a row refused at run time never has a tenant.
CREATE TABLE tenant_batch_rows (
  batch_id text NOT NULL REFERENCES tenant_batches (id) ON DELETE CASCADE,
  row_index integer NOT NULL CHECK (row_index >= 0),
  -- The CSV line the row came from (the header is line 1); null for JSON.
  line integer,
  tenant_id text NOT NULL UNIQUE CHECK (tenant_id ~ '^t[a-z0-9]{15}$'),
  slug text NOT NULL,
  name text NOT NULL,
  -- The create-tenant request as validated (defaults applied, slug derived). Never a secret.
  request jsonb NOT NULL,
  status text NOT NULL CHECK (status IN ('pending', 'provisioning', 'succeeded', 'failed')),
  -- For failed: the step (when provisioning failed), the error name and its cause.
  error jsonb,
  started_at timestamptz,
  ended_at timestamptz,
  PRIMARY KEY (batch_id, row_index)
);

-- A run of the migrate-fleet state machine: the tenant template's latest migrations applied to a set of active
-- tenants (the whole fleet, or the tenants asked for: a retry of those that failed). One runs at a time.
CREATE TABLE fleet_migrations (
  id text PRIMARY KEY CHECK (id ~ '^m[a-z0-9]{15}$'),
  status text NOT NULL CHECK (status IN ('running', 'succeeded', 'completed_with_failures', 'failed')),
  scope text NOT NULL CHECK (scope IN ('fleet', 'tenants')),
  target_version integer NOT NULL,
  tenant_count integer NOT NULL,
  -- More failures than this stop the run: the tenants not yet started are skipped.
  tolerated_failures integer NOT NULL CHECK (tolerated_failures >= 0),
  execution_arn text,
  error jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  created_by text NOT NULL,
  ended_at timestamptz
);
CREATE UNIQUE INDEX fleet_migrations_one_running_idx ON fleet_migrations (status) WHERE status = 'running';
CREATE INDEX fleet_migrations_created_idx ON fleet_migrations (created_at);

-- Each tenant of a run and its outcome.
CREATE TABLE fleet_migration_tenants (
  migration_id text NOT NULL REFERENCES fleet_migrations (id) ON DELETE CASCADE,
  tenant_id text NOT NULL,
  status text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'skipped')),
  -- The registry's schema version when the run was planned, and the database's after it.
  from_version integer,
  to_version integer,
  -- The versions this run applied (none when the database already had them).
  applied jsonb,
  -- For failed: the error name and cause; for skipped: why.
  error jsonb,
  duration_ms integer,
  ended_at timestamptz,
  PRIMARY KEY (migration_id, tenant_id)
);
CREATE INDEX fleet_migration_tenants_status_idx ON fleet_migration_tenants (migration_id, status);
