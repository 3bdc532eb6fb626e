-- Lifecycle operations after creation (suspend, resume, plan change, delete, backup, restore) and backups.

-- One row per operation asked for through the API, with the execution doing it. At most one runs per tenant at
-- a time (the partial unique index): a second request is refused while one runs, so two runs never interleave.
CREATE TABLE tenant_operations (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant_id text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  operation text NOT NULL CHECK (operation IN ('suspend', 'resume', 'change_plan', 'delete', 'backup', 'restore')),
  status text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'succeeded', 'failed')),
  -- The request as validated: reason, target plan and limits, backup id. Never a secret.
  request jsonb NOT NULL DEFAULT '{}',
  -- The tenant's status when the operation was accepted (where a failed one returns to).
  from_status text NOT NULL,
  execution_arn text,
  failure jsonb,
  requested_by text NOT NULL,
  started_at timestamptz NOT NULL DEFAULT now(),
  ended_at timestamptz
);
CREATE UNIQUE INDEX tenant_operations_one_running_idx ON tenant_operations (tenant_id) WHERE status = 'running';
CREATE INDEX tenant_operations_tenant_idx ON tenant_operations (tenant_id, id);

-- Completed backups (the manifest is written, then the row): where each is and what it holds.
CREATE TABLE tenant_backups (
  tenant_id text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  -- The backup's UTC start time, ISO 8601: also its folder, backups/<tenant_id>/<backup_id>/.
  backup_id text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('on_demand', 'final')),
  bucket text NOT NULL,
  prefix text NOT NULL,
  manifest_key text NOT NULL,
  schema_version integer NOT NULL,
  tables integer NOT NULL,
  rows bigint NOT NULL,
  bytes bigint NOT NULL,
  -- sha256 of the manifest object, hex.
  manifest_sha256 text NOT NULL CHECK (manifest_sha256 ~ '^[0-9a-f]{64}$'),
  created_at timestamptz NOT NULL DEFAULT now(),
  created_by text NOT NULL,
  PRIMARY KEY (tenant_id, backup_id)
);
