import { GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import pg from 'pg';
import { z } from 'zod';
import { STAGE } from '../../local/constants.ts';
import { DATABASE_ROLES } from '../../schema/names.ts';
import { figure, type ScenarioResult, tally } from '../report.ts';
import type { SandboxUnderTest } from '../sandbox.ts';
import { createTenant, tenantRequest, uniqueName, waitSettled } from '../tenants.ts';

/** SQLSTATEs by which PostgreSQL refuses: insufficient_privilege, and refusals at login. */
const DENIED = new Set(['42501', '28000', '28P01']);

const Credentials = z.object({ username: z.string(), password: z.string(), dbname: z.string() });

/** One attempt of a tenant role to reach beyond its own database. */
export interface Attempt {
  readonly role: string;
  readonly what: string;
  /** The SQLSTATE PostgreSQL answered with; `ok` when the attempt succeeded. */
  readonly sqlState: string;
  readonly denied: boolean;
}

const sqlStateOf = (error: unknown): string =>
  typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string'
    ? error.code
    : 'error';

/**
 * Isolation: for two active tenants, each of the four roles tries, with its own credentials from Secrets Manager,
 * to connect to the other tenant's database, to control_plane, postgres and template1, and, in its own database,
 * to create a database or a role, to read pg_authid and server files, to run a program, and to grant itself
 * more (superuser, other roles, the other tenant's roles, predefined roles, the provisioner's password). Each
 * must be refused by PostgreSQL, by SQLSTATE (42501 insufficient_privilege, or a refused login); a GRANT that
 * PostgreSQL only warns about must leave the role's privileges as they were.
 */
export async function isolation(sut: SandboxUnderTest): Promise<ScenarioResult> {
  const ids: string[] = [];
  for (const label of ['Isolation A', 'Isolation B']) {
    const { created } = await createTenant(sut, tenantRequest(uniqueName(label)));
    if (!created || (await waitSettled(sut, created.tenantId))?.status !== 'active') {
      return { figures: [], problems: [`${label} could not be provisioned`] };
    }
    ids.push(created.tenantId);
  }
  const attempts: Attempt[] = [];
  const problems: string[] = [];
  for (const [own, other] of [
    [ids[0] ?? '', ids[1] ?? ''],
    [ids[1] ?? '', ids[0] ?? ''],
  ]) {
    for (const role of DATABASE_ROLES) {
      const secret = await sut.clients.secrets.send(
        new GetSecretValueCommand({ SecretId: `tenants/${STAGE}/${own}/db/${role}` }),
      );
      const credentials = Credentials.parse(JSON.parse(secret.SecretString ?? '{}'));
      const connect = (database: string) =>
        new pg.Client({
          host: sut.info.postgres.host,
          port: sut.info.postgres.port,
          user: credentials.username,
          password: credentials.password,
          database,
        });
      const tryConnect = async (database: string) => {
        const client = connect(database);
        client.on('error', () => {});
        try {
          await client.connect();
          await client.end();
          return 'ok';
        } catch (error) {
          return sqlStateOf(error);
        }
      };
      for (const database of [`tenant_${other}`, 'control_plane', 'postgres', 'template1']) {
        const sqlState = await tryConnect(database);
        attempts.push({
          role: credentials.username,
          what: `connect to ${database}`,
          sqlState,
          denied: DENIED.has(sqlState),
        });
      }
      const mine = connect(credentials.dbname);
      mine.on('error', () => {});
      try {
        await mine.connect();
      } catch (error) {
        problems.push(`${credentials.username} cannot connect to its own database: ${sqlStateOf(error)}`);
        continue;
      }
      const otherRole = `tenant_${other}_admin`;
      const sibling = role === 'admin' ? `tenant_${own}_app` : `tenant_${own}_admin`;
      const statements: [string, string][] = [
        ['create a database', 'CREATE DATABASE isolation_probe'],
        ['create a role', 'CREATE ROLE isolation_probe LOGIN'],
        ['read pg_authid', 'SELECT rolname, rolpassword FROM pg_authid'],
        ['read a server file', "SELECT pg_read_file('PG_VERSION')"],
        ['run a program', "COPY (SELECT 1) TO PROGRAM 'true'"],
        ['make itself superuser', 'ALTER ROLE CURRENT_USER SUPERUSER'],
        ['give itself CREATEDB, CREATEROLE', 'ALTER ROLE CURRENT_USER CREATEDB CREATEROLE'],
        ['join the other tenant', `GRANT "${otherRole}" TO CURRENT_USER`],
        ['become the other tenant', `SET ROLE "${otherRole}"`],
        ['join a sibling role', `GRANT "${sibling}" TO CURRENT_USER`],
        ['take pg_read_all_data', 'GRANT pg_read_all_data TO CURRENT_USER'],
        ['take pg_execute_server_program', 'GRANT pg_execute_server_program TO CURRENT_USER'],
        ["change the provisioner's password", "ALTER ROLE provisioner PASSWORD 'taken-over-1234567890'"],
        ['drop the other database', `DROP DATABASE "tenant_${other}"`],
        ['create a schema', 'CREATE SCHEMA isolation_probe'],
      ];
      for (const [what, sql] of statements) {
        let sqlState = 'ok';
        try {
          await mine.query(sql);
        } catch (error) {
          sqlState = sqlStateOf(error);
        }
        attempts.push({ role: credentials.username, what, sqlState, denied: DENIED.has(sqlState) });
      }
      // PostgreSQL answers a GRANT of privileges one lacks with a warning (01007), not an error: the proof is
      // that nothing changed.
      const privilege = (sql: string) =>
        mine.query<{ granted: boolean }>(sql, [credentials.dbname]).then((result) => result.rows[0]?.granted);
      const check = "SELECT has_database_privilege(current_user, $1, 'CREATE') AS granted";
      const had = await privilege(check);
      let sqlState = 'ok';
      try {
        await mine.query(`GRANT ALL ON DATABASE "${credentials.dbname}" TO CURRENT_USER`);
      } catch (error) {
        sqlState = sqlStateOf(error);
      }
      const has = await privilege(check);
      attempts.push({
        role: credentials.username,
        what: 'grant itself ALL on its database',
        sqlState: sqlState === 'ok' ? (has === had ? '01007' : 'ok') : sqlState,
        denied: DENIED.has(sqlState) || (has === had && has === false),
      });
      await mine.end();
    }
  }
  const allowed = attempts.filter((attempt) => !attempt.denied);
  for (const attempt of allowed) problems.push(`${attempt.role} could ${attempt.what} (${attempt.sqlState})`);
  const scenario = 'isolation';
  return {
    problems,
    figures: [
      figure(scenario, 'attempts (2 tenants x 4 roles)', attempts.length, '> 0', attempts.length > 0),
      figure(
        scenario,
        'denied by PostgreSQL',
        `${attempts.length - allowed.length}/${attempts.length}`,
        'all',
        allowed.length === 0,
      ),
      figure(
        scenario,
        'SQLSTATEs',
        tally(attempts.map((attempt) => attempt.sqlState)),
        '42501 / 28000 / 01007',
        true,
      ),
    ],
  };
}
