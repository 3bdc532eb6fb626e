import { DeleteSecretCommand, ResourceNotFoundException } from '@aws-sdk/client-secrets-manager';
import { DEFAULT_CREDENTIAL_TTL_HOURS } from '../../schema/api/credentials.ts';
import {
  DATABASE_ROLES,
  type DatabaseRole,
  ident,
  literal,
  roleName,
  roleSecretName,
} from '../../schema/names.ts';
import { PLANS, type PlanName } from '../../schema/plans.ts';
import { doBlock } from '../shared/tenant-db.ts';
import type { Tenant, TenantStore } from '../shared/tenants.ts';
import { scramVerifier } from './credentials.ts';
import {
  ensureLoginRole,
  ensureRoleSecret,
  existingTenantRoles,
  type RoleDeps,
  roleConnectionLimits,
} from './roles.ts';

/**
 * A role's credentials after provisioning: issued when first needed, taken back when they expire, and made to follow
 * the plan's standing roles when the plan changes. Role statements are cluster-wide (roles are not in a database), so
 * they go to the cluster, never into the tenant database; no password reaches SQL text (a SCRAM verifier does), a
 * log, state or an answer: only the secret's ARN.
 */
export interface RoleCredentialDeps extends RoleDeps {
  readonly tenants: TenantStore;
}

/** Whether the role's credentials stand on the plan (no expiry). */
export const standsOn = (plan: PlanName, role: DatabaseRole): boolean =>
  PLANS[plan].standingRoles.includes(role);

/** The role's issued credentials' expiry (ISO 8601), undefined for a role whose credentials stand or do not exist. */
export const credentialExpiry = (tenant: Tenant, role: DatabaseRole): string | undefined =>
  tenant.resources.credentialExpiries?.[role];

export interface IssueOptions {
  /** When the credentials are revoked; `null` for a standing role. */
  readonly expiresAt: string | null;
  /** Whether the role may log in now (a suspended tenant's gets its password, and LOGIN back at resume). */
  readonly login: boolean;
  readonly by: string;
}

/**
 * Issues the role's credentials: its secret (an existing one keeps its password), the role's password set from it
 * (LOGIN and its share of the connection limit when `login`), and the registry's record of both. The expiry is
 * written first: a crash part-way leaves credentials the reconciler revokes when they expire, never ones nobody
 * knows of. Idempotent. Returns the secret's ARN and whether the secret was made now.
 */
export async function issueRoleCredentials(
  deps: RoleCredentialDeps,
  tenant: Tenant,
  role: DatabaseRole,
  options: IssueOptions,
): Promise<{ secretArn: string; created: boolean }> {
  if (options.expiresAt !== null) {
    await deps.tenants.setRoleCredentials(tenant.id, role, { expiresAt: options.expiresAt }, options.by);
  }
  const secret = await ensureRoleSecret(deps, tenant.id, role);
  const name = roleName(tenant.id, role);
  const limit = roleConnectionLimits(tenant.limits.maxConnections)[role];
  if (options.login) {
    await ensureLoginRole(deps.cluster, name, secret.value.password, limit);
  } else {
    const verifier = literal(await scramVerifier(secret.value.password));
    await deps.cluster.execute(
      `ALTER ROLE ${ident(name)} WITH NOLOGIN CONNECTION LIMIT ${limit} PASSWORD ${verifier}`,
    );
  }
  await deps.tenants.setRoleCredentials(
    tenant.id,
    role,
    { secretArn: secret.arn, expiresAt: options.expiresAt },
    options.by,
  );
  return { secretArn: secret.arn, created: secret.created };
}

/**
 * Takes the role's credentials back: NOLOGIN with no password, every session of the role ended (which needs the
 * role's privileges: the provisioner, holding ADMIN OPTION on it, takes its membership for the block and gives it
 * back), then its secret deleted without a recovery window (a secret in its window still holds a working password
 * for whoever can read it, and is still billed), then the registry's record. Idempotent: what is gone is skipped,
 * so a pass that died part-way is finished by the next.
 */
export async function revokeRoleCredentials(
  deps: Pick<RoleCredentialDeps, 'cluster' | 'secrets' | 'stage' | 'tenants'>,
  tenantId: string,
  role: DatabaseRole,
  by: string,
): Promise<void> {
  const name = roleName(tenantId, role);
  if ((await existingTenantRoles(deps.cluster, tenantId)).includes(name)) {
    await deps.cluster.execute(
      doBlock('revoke', [
        `ALTER ROLE ${ident(name)} WITH NOLOGIN PASSWORD NULL`,
        `GRANT ${ident(name)} TO CURRENT_USER`,
        `PERFORM pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity WHERE usename = ${literal(name)}`,
        `REVOKE ${ident(name)} FROM CURRENT_USER`,
      ]),
    );
  }
  try {
    await deps.secrets.send(
      new DeleteSecretCommand({
        SecretId: roleSecretName(deps.stage, tenantId, role),
        ForceDeleteWithoutRecovery: true,
      }),
    );
  } catch (error) {
    if (!(error instanceof ResourceNotFoundException)) throw error;
  }
  await deps.tenants.removeRoleCredentials(tenantId, role, by);
}

/** What {@link applyStandingRoles} did. */
export interface StandingRolesOutcome {
  /** The plan's standing roles, each with its secret and no expiry now. */
  readonly standing: readonly DatabaseRole[];
  /** Roles whose credentials stood before and now expire, with when. */
  readonly expiring: Readonly<Partial<Record<DatabaseRole, string>>>;
}

/**
 * Makes the tenant's credentials follow the plan's standing roles (a plan change, and its undo with the previous
 * plan): each standing role gets its secret (an existing one is kept, so no client's password changes) and loses
 * any expiry; a role that stood and no longer does keeps working for {@link DEFAULT_CREDENTIAL_TTL_HOURS} more hours,
 * as credentials issued then would, and the reconciler revokes it after. Not revoked at once: a downgrade must not cut
 * off an application in the middle of its work, and the change-plan run's undo gives the old plan back by clearing the
 * expiries, with the same passwords. Idempotent.
 */
export async function applyStandingRoles(
  deps: RoleCredentialDeps,
  tenant: Tenant,
  plan: PlanName,
  options: { readonly login: boolean; readonly by: string; readonly now?: number },
): Promise<StandingRolesOutcome> {
  const standing = PLANS[plan].standingRoles;
  for (const role of standing) {
    await issueRoleCredentials(deps, tenant, role, { expiresAt: null, login: options.login, by: options.by });
  }
  const expiresAt = new Date(
    (options.now ?? Date.now()) + DEFAULT_CREDENTIAL_TTL_HOURS * 3_600_000,
  ).toISOString();
  const expiring: Partial<Record<DatabaseRole, string>> = {};
  for (const role of DATABASE_ROLES) {
    if (standing.includes(role) || tenant.resources.secrets?.[role] === undefined) continue;
    if (credentialExpiry(tenant, role) !== undefined) continue;
    await deps.tenants.setRoleCredentials(tenant.id, role, { expiresAt }, options.by);
    expiring[role] = expiresAt;
  }
  return { standing, expiring };
}
