import { DATABASE_ROLES, type DatabaseRole } from '../../schema/names.ts';
import {
  credentialExpiry,
  type RoleCredentialDeps,
  revokeRoleCredentials,
} from '../provision/role-credentials.ts';
import type { Tenant } from '../shared/tenants.ts';

/** Issued credentials the reconciler took back because they had expired. */
export interface RevokedCredentials {
  readonly tenantId: string;
  readonly roles: readonly DatabaseRole[];
}

/**
 * Takes back every issued credential whose expiry has passed ({@link revokeRoleCredentials}): of active and suspended
 * tenants (a suspended tenant's roles log in to nothing, but their secrets still hold passwords and cost), not of
 * those being changed (`unsettled`), which wait for the next pass. One tenant's trouble does not stop the others.
 */
export async function revokeExpiredCredentials(
  deps: Pick<RoleCredentialDeps, 'cluster' | 'secrets' | 'stage' | 'tenants'>,
  tenants: readonly Tenant[],
  unsettled: ReadonlySet<string>,
  actor: string,
  now: number,
  log: (message: string, details: Record<string, unknown>) => void,
): Promise<RevokedCredentials[]> {
  const revoked: RevokedCredentials[] = [];
  for (const tenant of tenants) {
    if (!(tenant.status === 'active' || tenant.status === 'suspended') || unsettled.has(tenant.id)) continue;
    const expired = DATABASE_ROLES.filter((role) => {
      const at = credentialExpiry(tenant, role);
      return at !== undefined && Date.parse(at) <= now;
    });
    if (expired.length === 0) continue;
    // Read again just before: a plan change (which makes a role stand again) or a new issue since the list was read
    // must not lose its credentials.
    const current = await deps.tenants.get(tenant.id);
    const roles: DatabaseRole[] = [];
    for (const role of expired) {
      const at = current && credentialExpiry(current, role);
      if (at === undefined || Date.parse(at) > now) continue;
      try {
        await revokeRoleCredentials(deps, tenant.id, role, actor);
        roles.push(role);
      } catch (error) {
        log('Could not revoke expired credentials', {
          tenantId: tenant.id,
          role,
          error: error instanceof Error ? error.name : String(error),
        });
      }
    }
    if (roles.length > 0) revoked.push({ tenantId: tenant.id, roles });
  }
  return revoked;
}
