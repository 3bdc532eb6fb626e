import type { SecretsManagerClient, Tag } from '@aws-sdk/client-secrets-manager';
import {
  DATABASE_ROLES,
  type DatabaseRole,
  databaseName,
  ident,
  literal,
  roleName,
  roleSecretName,
  secretPrefix,
  TENANT_ID_PATTERN,
} from '../../schema/names.ts';
import * as z from '../../schema/zod.ts';
import { type DataApi, json } from '../shared/data-api.ts';
import { doBlock, publicTable, TENANT_SCHEMA, TenantDatabase } from '../shared/tenant-db.ts';
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
 * Seed 004's four roles, each with exactly its privileges in the tenant database. The plan's standing roles
 * (`standingRoles`, schema/plans.ts) log in, each with a generated password kept only in its Secrets Manager secret
 * (`tenants/<stage>/<id>/db/<role>`, RDS secret JSON, tagged); the others are NOLOGIN without a password until their
 * credentials are issued ({@link issueRoleCredentials}), so that a plan pays only for the secrets it uses while every
 * role's privileges, and so the isolation, stay the same. CONNECT on the database comes at activation
 * ({@link openTenantDatabase}), so nobody uses a half-made tenant. Idempotent: an existing secret keeps its password
 * and the role is set to match; a missing role is created. Returns the secret ARNs by role; never a password.
 */
export async function createTenantRoles(
  deps: RoleDeps,
  tenantId: string,
  maxConnections: number,
  standing: readonly DatabaseRole[],
): Promise<Partial<Record<DatabaseRole, string>>> {
  const limits = roleConnectionLimits(maxConnections);
  const arns = await settleAll(
    DATABASE_ROLES.map(async (role) => {
      if (!standing.includes(role)) {
        await ensureNoLoginRole(deps.cluster, roleName(tenantId, role), limits[role]);
        return [];
      }
      // The secret first: a crash between the two leaves a secret to delete, never a role with a lost password.
      const secret = await ensureRoleSecret(deps, tenantId, role);
      await ensureLoginRole(deps.cluster, roleName(tenantId, role), secret.value.password, limits[role]);
      return [[role, secret.arn] as const];
    }),
  );
  await TenantDatabase.of(deps.cluster, tenantId).block('grants', grantsBlock(tenantId));
  return Object.fromEntries(arns.flat());
}

/**
 * The role's secret, made with a fresh password when it does not exist (an existing one keeps its password: the
 * source of truth on a rerun). Never returns the password beyond the caller.
 */
export async function ensureRoleSecret(
  deps: RoleDeps,
  tenantId: string,
  role: DatabaseRole,
): Promise<{ arn: string; value: RoleSecret; created: boolean }> {
  const endpoint = await clusterEndpoint(deps);
  const username = roleName(tenantId, role);
  const clusterIdentifier = deps.clusterArn.split(':').at(-1);
  return ensureSecret(deps.secrets, {
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
      dbname: databaseName(tenantId),
      ...(clusterIdentifier ? { dbClusterIdentifier: clusterIdentifier } : {}),
    }),
  });
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

/** SQLSTATE 42710 duplicate_object: CREATE ROLE of a role that exists. */
const isDuplicate = (error: unknown): boolean =>
  error instanceof Error && error.message.includes('SQLState: 42710');

const ROLE_ATTRIBUTES = 'NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT';

/**
 * The login role with the password and limit: created, or, when it exists (an earlier attempt made it; 42710
 * duplicate_object), set to match. Creating first costs one statement in the usual case, where a role does
 * not exist yet.
 */
export async function ensureLoginRole(
  cluster: DataApi,
  name: string,
  password: string,
  limit: number,
): Promise<void> {
  // Only the SCRAM verifier goes into the SQL text; a fresh salt each time is fine.
  const verifier = literal(await scramVerifier(password));
  await cluster
    .execute(
      `CREATE ROLE ${ident(name)} WITH LOGIN ${ROLE_ATTRIBUTES} CONNECTION LIMIT ${limit} PASSWORD ${verifier}`,
    )
    .catch(async (error: unknown) => {
      if (!isDuplicate(error)) throw error;
      await cluster.execute(
        `ALTER ROLE ${ident(name)} WITH LOGIN CONNECTION LIMIT ${limit} PASSWORD ${verifier}`,
      );
    });
}

/**
 * A role without credentials: NOLOGIN and no password (PASSWORD NULL: nothing to guess, even once LOGIN came back by
 * mistake), its connection limit set for when it gets them. Created, or set so when it exists.
 */
async function ensureNoLoginRole(cluster: DataApi, name: string, limit: number): Promise<void> {
  await cluster
    .execute(
      `CREATE ROLE ${ident(name)} WITH NOLOGIN ${ROLE_ATTRIBUTES} CONNECTION LIMIT ${limit} PASSWORD NULL`,
    )
    .catch(async (error: unknown) => {
      if (!isDuplicate(error)) throw error;
      await cluster.execute(`ALTER ROLE ${ident(name)} WITH NOLOGIN CONNECTION LIMIT ${limit} PASSWORD NULL`);
    });
}

/**
 * The privileges of the four roles in their database, as one statement (see `functions/shared/tenant-db.ts` for
 * why each is what it is). The provisioner owns every object of `public` (the migrations'); the roles get
 * privileges on them, never ownership, grant options, CREATE on the schema, TRIGGER or REFERENCES, so no code of
 * theirs can hang on what the control plane reads and writes. The admin creates its own objects in the tenant's own
 * schema ({@link TENANT_SCHEMA}), first on its search path; the other roles may use what it shares there.
 * `schema_migrations` is the runner's: readable, not writable. Default privileges cover what later migrations make.
 */
export function grantsBlock(tenantId: string): string[] {
  const [admin, app, readonly, auditor] = DATABASE_ROLES.map((role) => ident(roleName(tenantId, role)));
  const all = `${admin}, ${app}, ${readonly}, ${auditor}`;
  const own = ident(TENANT_SCHEMA);
  const adminTable = 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE';
  const appTable = 'SELECT, INSERT, UPDATE, DELETE';
  return [
    `CREATE SCHEMA IF NOT EXISTS ${own}`,
    `REVOKE ALL ON SCHEMA public, ${own} FROM PUBLIC`,
    `REVOKE CREATE ON SCHEMA public FROM ${all}`,
    `REVOKE TRIGGER, REFERENCES ON ALL TABLES IN SCHEMA public FROM ${all}`,
    `GRANT USAGE ON SCHEMA public, ${own} TO ${all}`,
    `GRANT CREATE ON SCHEMA ${own} TO ${admin}`,
    `GRANT ${adminTable} ON ALL TABLES IN SCHEMA public TO ${admin}`,
    `GRANT ${appTable} ON ALL TABLES IN SCHEMA public TO ${app}`,
    `GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${readonly}`,
    `GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO ${admin}`,
    `GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO ${app}`,
    `REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON public.schema_migrations FROM ${admin}, ${app}`,
    `GRANT SELECT ON ${AUDITOR_TABLES.map(publicTable).join(', ')} TO ${auditor}`,
    `ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE TRIGGER, REFERENCES ON TABLES FROM ${all}`,
    `ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ${adminTable} ON TABLES TO ${admin}`,
    `ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ${appTable} ON TABLES TO ${app}`,
    `ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO ${readonly}`,
    `ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO ${admin}`,
    `ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO ${app}`,
    // Where unqualified names go in the tenant's own sessions: the admin's new objects into its schema.
    `ALTER ROLE ${admin} IN DATABASE ${ident(databaseName(tenantId))} SET search_path = ${own}, public`,
    ...[app, readonly, auditor].map(
      (role) =>
        `ALTER ROLE ${role} IN DATABASE ${ident(databaseName(tenantId))} SET search_path = public, ${own}`,
    ),
  ];
}

/** Opens the tenant database to its four roles (activation; those without credentials still cannot log in). Idempotent. */
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
  const list = roles.map(ident).join(', ');
  const statements = [
    // The membership lasts only as long as this block: the roles are gone at its end, or nothing happened.
    `GRANT ${list} TO CURRENT_USER`,
    ...roles.map((role) => `ALTER ROLE ${ident(role)} NOLOGIN`),
    `PERFORM pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity WHERE usename IN (${roles.map(literal).join(', ')})`,
    // Objects the roles made and their privileges, in the tenant database, and on shared objects. CASCADE: what
    // has no owner but hangs on theirs (a cast on a function of theirs) would otherwise keep the roles forever.
    `DROP OWNED BY ${list} CASCADE`,
    `DROP ROLE ${list}`,
  ];
  // Another tenant may have granted these roles privileges on its own objects (PostgreSQL lets an owner grant to
  // any role), and DROP ROLE refuses while any database holds one: they are revoked there first, in one block that
  // runs no code of that tenant's (DROP OWNED only takes the roles out of ACLs, policies and default privileges). Only
  // a grantor may revoke, so the block also takes the membership of that tenant's roles, the owners there.
  for (const other of await otherTenantsDependingOn(cluster, tenantId, roles)) {
    const members = [...roles, ...(await existingTenantRoles(cluster, other))].map(ident).join(', ');
    await TenantDatabase.of(cluster, other).block('revoke', [
      `GRANT ${members} TO CURRENT_USER`,
      `DROP OWNED BY ${list}`,
      `REVOKE ${members} FROM CURRENT_USER`,
    ]);
  }
  if (await databaseExists(cluster, databaseName(tenantId))) {
    await TenantDatabase.of(cluster, tenantId).block('remove', statements);
  } else {
    await cluster.execute(doBlock('remove', statements));
  }
  return roles;
}

/** The other tenants whose databases hold something (a privilege, a policy) for these roles. */
async function otherTenantsDependingOn(
  cluster: DataApi,
  tenantId: string,
  roles: readonly string[],
): Promise<string[]> {
  const rows = await cluster.query(
    `SELECT DISTINCT substr(d.datname, 8) AS id FROM pg_catalog.pg_shdepend s
     JOIN pg_catalog.pg_database d ON d.oid = s.dbid
     JOIN pg_catalog.pg_roles r ON r.oid = s.refobjid
     WHERE s.refclassid = 'pg_catalog.pg_authid'::pg_catalog.regclass AND d.datname <> :own
       AND d.datname ~ '^tenant_t[a-z0-9]{15}$'
       AND r.rolname = ANY (ARRAY(SELECT jsonb_array_elements_text(CAST(:roles AS jsonb))))`,
    { own: databaseName(tenantId), roles: json(roles) },
    z.object({ id: z.string().check(z.regex(TENANT_ID_PATTERN)) }),
  );
  return rows.map((row) => row.id);
}

/** The tags of everything made for a tenant, plus any given. */
export function tenantTags(stage: string, tenantId: string, more: readonly Tag[] = []): Tag[] {
  return [{ Key: 'TenantId', Value: tenantId }, { Key: 'Stage', Value: stage }, ...more];
}
