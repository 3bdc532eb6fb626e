-- When the drift reconciler last asked a tenant's database whether the admin's invitation is still open (not
-- accepted, not expired): while it is, its token's secret is kept; once it is not, the secret is deleted. A bounded
-- number of tenants a pass, the longest unasked first.
ALTER TABLE tenants ADD COLUMN invitation_checked_at timestamptz;
