import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { type DatabaseRole, ident, literal, roleName } from '../../schema/names.ts';
import * as z from '../../schema/zod.ts';
import { scramVerifier } from '../provision/credentials.ts';
import { RoleSecret } from '../provision/roles.ts';
import { readSecret } from '../provision/secrets.ts';
import { type DataApi, json } from '../shared/data-api.ts';
import { TenantDatabase } from '../shared/tenant-db.ts';
import type { Tenant } from '../shared/tenants.ts';

export interface CredentialDeps {
  /** The provisioner on the registry database (ALTER ROLE is cluster-wide). */
  readonly cluster: DataApi;
  readonly secrets: SecretsManagerClient;
}

/** How often, and how many at a time, the reconciler tries the role secrets of active tenants. */
export interface CredentialPolicy {
  /** A tenant is due this long after its last check (or its creation, for one never checked). */
  readonly credentialCheckSeconds: number;
  /** At most this many tenants (4 logins each) a pass, the longest unchecked first. */
  readonly credentialChecksPerPass: number;
}

/** An active tenant role whose secret no longer logged in. */
export interface CredentialDrift {
  readonly tenantId: string;
  /** Role names whose secret's password the role no longer had. */
  readonly roles: readonly string[];
  /** Of them, those whose password the reconciler put back (their secret logs in again). */
  readonly restored: readonly string[];
}

/**
 * The active tenants due for a check of their role secrets, longest unchecked first, at most the policy's number:
 * one query. A role may change its own password (PostgreSQL lets any role `ALTER ROLE … PASSWORD` itself), after
 * which its Secrets Manager secret no longer logs in, and nothing in the catalogs the provisioner can read shows it;
 * only a login tells.
 */
export async function tenantsDueForCredentialCheck(
  cluster: DataApi,
  policy: CredentialPolicy,
): Promise<string[]> {
  if (policy.credentialChecksPerPass <= 0) return [];
  const rows = await cluster.query(
    `SELECT id FROM tenants
     WHERE status = 'active'
       AND coalesce(credentials_checked_at, created_at) <= now() - interval '1 second' * :seconds
     ORDER BY coalesce(credentials_checked_at, created_at), id LIMIT :limit`,
    { seconds: policy.credentialCheckSeconds, limit: policy.credentialChecksPerPass },
    z.object({ id: z.string() }),
  );
  return rows.map((row) => row.id);
}

/** Records that the tenants' role secrets were checked now (their `updated_at` is not touched). */
export async function markCredentialsChecked(cluster: DataApi, tenantIds: readonly string[]): Promise<void> {
  if (tenantIds.length === 0) return;
  await cluster.execute(
    `UPDATE tenants SET credentials_checked_at = now()
     WHERE id IN (SELECT jsonb_array_elements_text(CAST(:ids AS jsonb)))`,
    { ids: json(tenantIds) },
  );
}

/** SQLSTATE 28P01 invalid_password: the login itself was refused (not NOLOGIN, CONNECT or a connection limit). */
const PASSWORD_REFUSED = /SQLState: 28P01|password authentication failed/i;

/** Whether the secret logs in to the tenant's database: `SELECT 1` through the Data API as the role. */
async function logsIn(deps: CredentialDeps, tenantId: string, secretArn: string): Promise<boolean> {
  try {
    await TenantDatabase.asTenantRole(deps.cluster, tenantId, secretArn).query(
      'SELECT 1 AS ok',
      {},
      z.object({ ok: z.number() }),
    );
    return true;
  } catch (error) {
    if (error instanceof Error && PASSWORD_REFUSED.test(error.message)) return false;
    // Another refusal (a connection limit reached, the cluster resuming) says nothing about the password.
    throw error;
  }
}

/** What trying a tenant's role secrets found. */
export interface CredentialCheck {
  /** Undefined when every secret tried logged in. */
  readonly drift?: CredentialDrift;
  /** Roles whose secret could not be tried (another refusal, an error): the tenant is tried again next pass. */
  readonly untried: readonly string[];
}

/**
 * Tries each of the roles' secrets: `SELECT 1` on the tenant's database as the role (through the Data API, with the
 * secret, as the tenant's own code logs in). A secret whose password the role refuses gets it back: `ALTER ROLE …
 * PASSWORD` with a SCRAM verifier computed from the secret's password, so that no password is ever in SQL text, a
 * log, an event or state; then the secret is tried again. The roles given must be able to log in (a suspended
 * tenant's cannot) and have a secret.
 */
export async function checkTenantCredentials(
  deps: CredentialDeps,
  tenant: Tenant,
  roles: readonly DatabaseRole[],
  log: (message: string, details: Record<string, unknown>) => void = () => {},
): Promise<CredentialCheck> {
  const refused: string[] = [];
  const restored: string[] = [];
  const untried: string[] = [];
  for (const role of roles) {
    const name = roleName(tenant.id, role);
    const secretArn = tenant.resources.secrets?.[role];
    if (!secretArn) continue;
    try {
      if (await logsIn(deps, tenant.id, secretArn)) continue;
      refused.push(name);
      const secret = await readSecret(deps.secrets, secretArn, RoleSecret);
      // The name comes from the tenant id, never from the secret: a secret naming another user changes nothing.
      if (!secret || secret.value.username !== name) continue;
      const verifier = await scramVerifier(secret.value.password);
      await deps.cluster.execute(`ALTER ROLE ${ident(name)} PASSWORD ${literal(verifier)}`);
      if (await logsIn(deps, tenant.id, secretArn)) restored.push(name);
    } catch (error) {
      untried.push(name);
      log('Could not try a role secret', {
        tenantId: tenant.id,
        role: name,
        error: error instanceof Error ? error.name : String(error),
      });
    }
  }
  return refused.length > 0
    ? { drift: { tenantId: tenant.id, roles: refused, restored }, untried }
    : { untried };
}
