-- When the drift reconciler last tried an active tenant's role secrets (each logs in, or gets its password back):
-- it tries the tenants due, longest unchecked first, a bounded number a pass. Not part of updated_at, which says
-- when the tenant itself last changed.
ALTER TABLE tenants ADD COLUMN credentials_checked_at timestamptz;
