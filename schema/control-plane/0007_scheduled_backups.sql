-- Backups taken by the tenant's backup policy (functions/lifecycle/scheduled-backups.ts) are of kind 'scheduled'; the
-- backup id of one is its slot's time, so that a slot is backed up once.
ALTER TABLE tenant_backups DROP CONSTRAINT tenant_backups_kind_check;
ALTER TABLE tenant_backups ADD CONSTRAINT tenant_backups_kind_check
  CHECK (kind IN ('scheduled', 'on_demand', 'final'));
CREATE INDEX tenant_backups_scheduled_idx ON tenant_backups (tenant_id, backup_id) WHERE kind = 'scheduled';
