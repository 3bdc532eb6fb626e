import { GetSecretValueCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { ident, literal } from '../../schema/names.ts';
import * as z from '../../schema/zod.ts';
import { scramVerifier } from '../provision/credentials.ts';
import type { DataApi } from '../shared/data-api.ts';
import { ConfigurationError } from '../shared/errors.ts';
import { PINNED_SEARCH_PATH, TENANT_LOCK_TIMEOUT } from '../shared/tenant-db.ts';

const rdsSecretSchema = z.object({
  username: z.string().check(z.minLength(1)),
  password: z.string().check(z.minLength(1)),
});

/**
 * The statements that create (or bring up to date) the provisioner role: LOGIN CREATEDB CREATEROLE, not superuser,
 * with the password given as its SCRAM verifier (so no statement log keeps the password); then the settings its
 * sessions start with (`functions/shared/tenant-db.ts`): the search path pinned to pg_catalog, and a lock timeout,
 * so that a lock a tenant holds on its own tables makes the control plane give up, not wait without end.
 */
export function provisionerRoleStatements(name: string, verifier: string, exists: boolean): string[] {
  return [
    `${exists ? 'ALTER' : 'CREATE'} ROLE ${ident(name)} WITH LOGIN CREATEDB CREATEROLE PASSWORD ${literal(verifier)}`,
    `ALTER ROLE ${ident(name)} SET search_path = ${PINNED_SEARCH_PATH}`,
    `ALTER ROLE ${ident(name)} SET lock_timeout = ${literal(TENANT_LOCK_TIMEOUT)}`,
  ];
}

/**
 * Creates (or brings up to date) the provisioner database role from its secret ({@link provisionerRoleStatements}),
 * allowed to connect to `postgres`. `master` is the cluster's master user on the `postgres` database; the
 * provisioner's secret is the source of truth for the name and the password.
 */
export async function ensureProvisionerRole(
  master: DataApi,
  secrets: SecretsManagerClient,
  provisionerSecretArn: string,
): Promise<{ role: string; created: boolean }> {
  const value = await secrets.send(new GetSecretValueCommand({ SecretId: provisionerSecretArn }));
  const parsed = rdsSecretSchema.safeParse(JSON.parse(value.SecretString ?? '{}'));
  if (!parsed.success)
    throw new ConfigurationError('The provisioner secret is not an RDS secret with a username and password');
  const { username, password } = parsed.data;
  if (!/^[\x20-\x7e]+$/.test(password))
    throw new ConfigurationError("The provisioner secret's password must be printable ASCII");

  const existing = await master.query(
    'SELECT 1 AS found FROM pg_catalog.pg_roles WHERE rolname = :name',
    { name: username },
    z.object({ found: z.number() }),
  );
  // DDL takes no bind parameters, and a password in SQL text would stay in the statement logs: the verifier goes.
  for (const statement of provisionerRoleStatements(
    username,
    await scramVerifier(password),
    existing.length > 0,
  )) {
    await master.execute(statement);
  }
  await master.execute(`GRANT CONNECT ON DATABASE postgres TO ${ident(username)}`);
  return { role: username, created: existing.length === 0 };
}

/**
 * Tenant roles reach their own database only: `PUBLIC` loses CONNECT on every database the master user owns
 * but the registry and the tenants' (whose own setup grants what they need). Aurora's `rdsadmin` is not ours to touch.
 */
export async function lockDownSystemDatabases(master: DataApi, registry: string): Promise<string[]> {
  const rows = await master.query(
    `SELECT datname FROM pg_database
      WHERE datallowconn AND datname NOT IN ('template0', 'rdsadmin', :registry)
        AND datname NOT LIKE 'tenant\\_%' AND pg_has_role(datdba, 'MEMBER')`,
    { registry },
    z.object({ datname: z.string() }),
  );
  for (const { datname } of rows) {
    await master.execute(`REVOKE CONNECT, TEMPORARY ON DATABASE ${ident(datname)} FROM PUBLIC`);
  }
  return rows.map((row) => row.datname);
}
