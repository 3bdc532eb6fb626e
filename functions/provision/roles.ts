import type { SecretsManagerClient, Tag } from '@aws-sdk/client-secrets-manager';
import type { DataApi } from '../shared/data-api.ts';
import {
  DATABASE_ROLES,
  type DatabaseRole,
  databaseName,
  ident,
  literal,
  roleName,
  roleSecretName,
  secretPrefix,
} from '../shared/names.ts';
import * as z from '../shared/zod.ts';
import { generatePassword, scramVerifier } from './credentials.ts';
import { databaseExists } from './database.ts';
import { deleteSecretsUnder, ensureSecret, readSecret, settleAll } from './secrets.ts';

export interface RoleDeps {
  /** The provisioner on any database of the cluster. */
  readonly cluster: DataApi;
  readonly secrets: SecretsManagerClient;
  readonly stage: string;
  readonly clusterArn: string;
  /** Where the cluster's host and port are read from, for the tenant secrets. */
  readonly provisionerSecretArn: string;
}

/** A tenant role's secret, in the format RDS and the Data API use for database credentials. */
export const RoleSecret = z.object({
  engine: z.literal('postgres'),
  host: z.string(),
  port: z.number(),
  username: z.string(),
  password: z.string().check(z.minLength(32)),
  dbname: z.string(),
  dbClusterIdentifier: z.optional(z.string()),
});
export type RoleSecret = z.infer<typeof RoleSecret>;

const Endpoint = z.object({ host: z.string(), port: z.coerce.number() });

/** Tables the auditor may read: the activity log and what says who may do what. */
export const AUDITOR_TABLES = ['activity_log', 'security_policy', 'app_roles'] as const;

/**
 * Each role's share of the database's connection limit: the application gets most; the sum is the database's
 * limit, so no role can starve the others of all of it.
 */
export function roleConnectionLimits(maxConnections: number): Record<DatabaseRole, number> {
  const admin = Math.max(2, Math.floor(maxConnections / 10));
  const readonly = Math.max(2, Math.floor(maxConnections / 5));
  const auditor = Math.max(1, Math.floor(maxConnections / 20));
  return { admin, readonly, auditor, app: Math.max(2, maxConnections - admin - readonly - auditor) };
}

/**
 * Seed 004's four login roles, each with a generated password kept only in its Secrets Manager secret
 * (`tenants/<stage>/<id>/db/<role>`, RDS secret JSON, tagged), and exactly its privileges in the tenant database.
 * CONNECT on the database comes at activation ({@link openTenantDatabase}), so nobody uses a half-made tenant.
 * Idempotent: an existing secret keeps its password and the role is set to match; a missing role is created.
 * Returns the secret ARNs by role; never a password.
 */
export async function createTenantRoles(
  deps: RoleDeps,
  tenantId: string,
  maxConnections: number,
): Promise<Record<DatabaseRole, string>> {
  const endpoint = await clusterEndpoint(deps);
  const dbname = databaseName(tenantId);
  const limits = roleConnectionLimits(maxConnections);
  const clusterIdentifier = deps.clusterArn.split(':').at(-1);
  const arns = await settleAll(
    DATABASE_ROLES.map(async (role) => {
      const username = roleName(tenantId, role);
      // The secret first: a crash between the two leaves a secret to delete, never a role with a lost password.
      const secret = await ensureSecret(deps.secrets, {
        name: roleSecretName(deps.stage, tenantId, role),
        description: `Tenant ${tenantId}: database role ${role} (${username})`,
        tags: tenantTags(deps.stage, tenantId, [{ Key: 'Role', Value: role }]),
        schema: RoleSecret,
        create: (): RoleSecret => ({
          engine: 'postgres',
          host: endpoint.host,
          port: endpoint.port,
          username,
          password: generatePassword(),
          dbname,
          ...(clusterIdentifier ? { dbClusterIdentifier: clusterIdentifier } : {}),
        }),
      });
      await ensureLoginRole(deps.cluster, username, secret.value.password, limits[role]);
      return [role, secret.arn] as const;
    }),
  );
  await deps.cluster.on(dbname).execute(grantsBlock(tenantId));
  return Object.fromEntries(arns) as Record<DatabaseRole, string>;
}

/** The cluster's host and port, read from the provisioner's secret once per container: they do not change. */
const endpoints = new Map<string, Promise<z.infer<typeof Endpoint>>>();

function clusterEndpoint(deps: RoleDeps): Promise<z.infer<typeof Endpoint>> {
  let endpoint = endpoints.get(deps.provisionerSecretArn);
  if (!endpoint) {
    endpoint = readSecret(deps.secrets, deps.provisionerSecretArn, Endpoint).then((secret) => {
      if (!secret) throw new Error('The provisioner secret does not exist');
      return secret.value;
    });
    endpoints.set(deps.provisionerSecretArn, endpoint);
    // A failed read is not kept: the next attempt reads again.
    endpoint.catch(() => endpoints.delete(deps.provisionerSecretArn));
  }
  return endpoint;
}

/**
 * The login role with the password and limit: created, or, when it exists (an earlier attempt made it; 42710
 * duplicate_object), set to match. Creating first costs one statement in the usual case, where a role does
 * not exist yet.
 */
async function ensureLoginRole(
  cluster: DataApi,
  name: string,
  password: string,
  limit: number,
): Promise<void> {
  // Only the SCRAM verifier goes into the SQL text; a fresh salt each time is fine.
  const verifier = literal(await scramVerifier(password));
  await cluster
    .execute(
      `CREATE ROLE ${ident(name)} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT ` +
        `CONNECTION LIMIT ${limit} PASSWORD ${verifier}`,
    )
    .catch(async (error: unknown) => {
      if (!(error instanceof Error && error.message.includes('SQLState: 42710'))) throw error;
      await cluster.execute(
        `ALTER ROLE ${ident(name)} WITH LOGIN CONNECTION LIMIT ${limit} PASSWORD ${verifier}`,
      );
    });
}

/**
 * The privileges of the four roles on the template's objects, and on the provisioner's future ones (default
 * privileges), as one statement. The provisioner owns every object; the roles get privileges, never ownership
 * nor grant options. No role gets TRIGGER or MAINTAIN on the provisioner's tables: a trigger a tenant role
 * wrote would run with the provisioner's rights when a later migration writes to that table.
 * `schema_migrations` is the runner's: readable, not writable.
 */
export function grantsBlock(tenantId: string): string {
  const [admin, app, readonly, auditor] = DATABASE_ROLES.map((role) => ident(roleName(tenantId, role)));
  const adminTable = 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES';
  const appTable = 'SELECT, INSERT, UPDATE, DELETE';
  const statements = [
    `GRANT USAGE ON SCHEMA public TO ${admin}, ${app}, ${readonly}, ${auditor}`,
    `GRANT CREATE ON SCHEMA public TO ${admin}`,
    `GRANT ${adminTable} ON ALL TABLES IN SCHEMA public TO ${admin}`,
    `GRANT ${appTable} ON ALL TABLES IN SCHEMA public TO ${app}`,
    `GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${readonly}`,
    `GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO ${admin}`,
    `GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO ${app}`,
    `REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES ON schema_migrations FROM ${admin}, ${app}`,
    `GRANT SELECT ON ${AUDITOR_TABLES.join(', ')} TO ${auditor}`,
    `ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ${adminTable} ON TABLES TO ${admin}`,
    `ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ${appTable} ON TABLES TO ${app}`,
    `ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO ${readonly}`,
    `ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO ${admin}`,
    `ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO ${app}`,
  ];
  // One DO block: one Data API call, applied atomically.
  return `DO $grants$ BEGIN\n${statements.map((statement) => `  ${statement};`).join('\n')}\nEND $grants$`;
}

/** Opens the tenant database to its four roles (activation). Idempotent. */
export async function openTenantDatabase(cluster: DataApi, tenantId: string): Promise<void> {
  const roles = DATABASE_ROLES.map((role) => ident(roleName(tenantId, role))).join(', ');
  await cluster.execute(`GRANT CONNECT ON DATABASE ${ident(databaseName(tenantId))} TO ${roles}`);
}

const roleRow = z.object({ rolname: z.string() });

/** The tenant's database roles that exist. */
export async function existingTenantRoles(cluster: DataApi, tenantId: string): Promise<string[]> {
  const names = DATABASE_ROLES.map((role) => roleName(tenantId, role));
  const rows = await cluster.query(
    'SELECT rolname FROM pg_roles WHERE rolname IN (:r0, :r1, :r2, :r3) ORDER BY rolname',
    Object.fromEntries(names.map((name, i) => [`r${i}`, name])),
    roleRow,
  );
  return rows.map((row) => row.rolname);
}

/**
 * Removes the tenant's roles and every secret under the tenant's prefix (the role secrets, the invitation, anything
 * else), without a recovery window. Works from the names the id gives, so it also removes what an interrupted
 * attempt made but never recorded; undoing what does not exist succeeds.
 *
 * The provisioner first takes membership of the roles (it holds ADMIN OPTION on them, having created them):
 * DROP OWNED BY and ending their sessions need the roles' privileges.
 */
export async function removeTenantRoles(
  deps: Pick<RoleDeps, 'cluster' | 'secrets' | 'stage'>,
  tenantId: string,
): Promise<{ roles: string[]; secrets: string[] }> {
  const roles = await dropTenantRoles(deps.cluster, tenantId);
  const secrets = await deleteSecretsUnder(deps.secrets, secretPrefix(deps.stage, tenantId));
  return { roles, secrets };
}

/**
 * Drops the tenant's roles that exist, in one block: login refused, sessions ended, what they own and were
 * granted dropped (in the tenant database when it still exists), then the roles. Returns the roles dropped.
 */
export async function dropTenantRoles(cluster: DataApi, tenantId: string): Promise<string[]> {
  const roles = await existingTenantRoles(cluster, tenantId);
  if (roles.length === 0) return roles;
  const dbname = databaseName(tenantId);
  const inDatabase = await databaseExists(cluster, dbname);
  const list = roles.map(ident).join(', ');
  const statements = [
    `GRANT ${list} TO CURRENT_USER`,
    ...roles.map((role) => `ALTER ROLE ${ident(role)} NOLOGIN`),
    `PERFORM pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename IN (${roles.map(literal).join(', ')})`,
    // Objects the roles made and their privileges, in the tenant database, and on shared objects.
    `DROP OWNED BY ${list}`,
    `DROP ROLE ${list}`,
  ];
  const block = `DO $remove$ BEGIN\n${statements.map((statement) => `  ${statement};`).join('\n')}\nEND $remove$`;
  await (inDatabase ? cluster.on(dbname) : cluster).execute(block);
  return roles;
}

/** The tags of everything made for a tenant, plus any given. */
export function tenantTags(stage: string, tenantId: string, more: readonly Tag[] = []): Tag[] {
  return [{ Key: 'TenantId', Value: tenantId }, { Key: 'Stage', Value: stage }, ...more];
}
