import { setTimeout as sleep } from 'node:timers/promises';
import {
  type CloudWatchClient,
  DisableAlarmActionsCommand,
  EnableAlarmActionsCommand,
} from '@aws-sdk/client-cloudwatch';
import { type DatabaseRole, databaseName, ident, literal, roleName } from '../../schema/names.ts';
import * as z from '../../schema/zod.ts';
import { existingTenantAlarms } from '../provision/alarms.ts';
import { databaseExists } from '../provision/database.ts';
import { existingTenantRoles } from '../provision/roles.ts';
import { type DataApi, json } from '../shared/data-api.ts';
import { doBlock } from '../shared/tenant-db.ts';

/** How long a suspension waits for the ended sessions to be gone before it reports them. */
const SESSION_END_WAIT_MS = 5_000;

const count = z.object({ n: z.coerce.number() });

/** Open sessions of these roles, in any database. */
async function sessionsOf(cluster: DataApi, roles: readonly string[]): Promise<number> {
  if (roles.length === 0) return 0;
  const [row] = await cluster.query(
    `SELECT count(*)::int AS n FROM pg_stat_activity
     WHERE usename = ANY(ARRAY(SELECT jsonb_array_elements_text(CAST(:roles AS jsonb))))`,
    { roles: json(roles) },
    count,
  );
  return row?.n ?? 0;
}

/**
 * Closes the tenant's database to its roles, without a superuser and without closing it to the provisioner (the
 * final backup of a deletion reads it while the tenant is suspended): the four roles lose LOGIN and CONNECT on the
 * database, then every session they hold ends (`pg_terminate_backend`, which needs the roles' privileges: the
 * provisioner, holding ADMIN OPTION on the roles it created, takes their membership for the statement and gives it
 * back). Waits until the sessions are gone. Idempotent; roles or a database that do not exist are skipped.
 */
export async function disableTenantAccess(
  cluster: DataApi,
  tenantId: string,
): Promise<{ roles: number; sessionsEnded: number }> {
  const roles = await existingTenantRoles(cluster, tenantId);
  if (roles.length === 0) return { roles: 0, sessionsEnded: 0 };
  const name = databaseName(tenantId);
  const list = roles.map(ident).join(', ');
  const before = await sessionsOf(cluster, roles);
  const statements = [
    ...roles.map((role) => `ALTER ROLE ${ident(role)} NOLOGIN`),
    ...((await databaseExists(cluster, name))
      ? [`REVOKE CONNECT ON DATABASE ${ident(name)} FROM ${list}`]
      : []),
    `GRANT ${list} TO CURRENT_USER`,
    `PERFORM pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity WHERE usename IN (${roles.map(literal).join(', ')})`,
    `REVOKE ${list} FROM CURRENT_USER`,
  ];
  await cluster.execute(doBlock('suspend', statements));
  const deadline = Date.now() + SESSION_END_WAIT_MS;
  let left = await sessionsOf(cluster, roles);
  while (left > 0 && Date.now() < deadline) {
    await sleep(100);
    left = await sessionsOf(cluster, roles);
  }
  if (left > 0) throw new Error(`${left} session(s) of tenant ${tenantId} did not end`);
  return { roles: roles.length, sessionsEnded: before };
}

/**
 * Opens the tenant's database to its roles again: CONNECT on the database, as at activation, and LOGIN for the roles
 * given, those with credentials (each keeps its connection limit). A role without credentials stays NOLOGIN: the
 * suspension took LOGIN from every role, and giving it back to all would let a role whose credentials were never
 * issued, or were revoked, log in. Idempotent; what does not exist is skipped.
 */
export async function enableTenantAccess(
  cluster: DataApi,
  tenantId: string,
  credentialed: readonly DatabaseRole[],
): Promise<{ roles: number; login: number }> {
  const roles = await existingTenantRoles(cluster, tenantId);
  if (roles.length === 0) return { roles: 0, login: 0 };
  const name = databaseName(tenantId);
  const login = credentialed.map((role) => roleName(tenantId, role)).filter((role) => roles.includes(role));
  const statements = [
    ...login.map((role) => `ALTER ROLE ${ident(role)} LOGIN`),
    ...((await databaseExists(cluster, name))
      ? [`GRANT CONNECT ON DATABASE ${ident(name)} TO ${roles.map(ident).join(', ')}`]
      : []),
  ];
  await cluster.execute(doBlock('resume', statements));
  return { roles: roles.length, login: login.length };
}

/** Enable/DisableAlarmActions take at most 100 names a call. */
const ALARM_BATCH = 100;

/**
 * Turns the actions of every alarm under the tenant's prefix off or on (found by name, whatever made them): a
 * suspended tenant's alarms still evaluate, but page nobody. Idempotent. Returns the alarm names.
 */
export async function setTenantAlarmActions(
  cloudWatch: CloudWatchClient,
  tenantId: string,
  enabled: boolean,
): Promise<string[]> {
  const names = await existingTenantAlarms(cloudWatch, tenantId);
  for (let i = 0; i < names.length; i += ALARM_BATCH) {
    const AlarmNames = names.slice(i, i + ALARM_BATCH);
    await cloudWatch.send(
      enabled
        ? new EnableAlarmActionsCommand({ AlarmNames })
        : new DisableAlarmActionsCommand({ AlarmNames }),
    );
  }
  return names;
}
