import { DescribeAlarmsCommand } from '@aws-sdk/client-cloudwatch';
import { GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { StopExecutionCommand } from '@aws-sdk/client-sfn';
import pg from 'pg';
import { afterAll, expect } from 'vitest';
import { z } from 'zod';
import { type DatabaseRole, databaseName } from '../../schema/names.ts';
import { type Answer, type ApiUnderTest, apiUnderTest, call } from '../api/api.ts';
import { clients, provision, registry, type TenantOptions, waitForExecution } from '../provision/helpers.ts';
import { addFaults, type FaultRuleInput, held, removeFaults, superuserPool } from '../support/sandbox.ts';

export { clients, registry, waitForExecution };

let shared: Promise<ApiUnderTest> | undefined;
let adminToken: Promise<string> | undefined;

/** The sandbox's API and an admin token, made once per file. */
export async function api(): Promise<{ api: ApiUnderTest; token: string }> {
  shared ??= apiUnderTest();
  const under = await shared;
  adminToken ??= under.token({ scopes: ['tenants/admin'] });
  return { api: under, token: await adminToken };
}

/** An HTTP call to the API as an admin. */
export async function request(
  method: string,
  path: string,
  options: { body?: unknown; headers?: Record<string, string>; token?: string } = {},
): Promise<Answer> {
  const { api: under, token } = await api();
  return call(under, method, path, { token, ...options });
}

export const Accepted = z.strictObject({
  tenantId: z.string(),
  operationId: z.string(),
  operation: z.string(),
  status: z.string(),
  executionArn: z.string(),
  backupId: z.string().optional(),
  links: z.strictObject({ self: z.string() }),
});

/** Runs a lifecycle operation through the API and waits for its run to end; the answer must be a 202. */
export async function operate(method: string, path: string, body?: unknown) {
  const answer = await request(method, path, body === undefined ? {} : { body });
  expect(answer.status, JSON.stringify(answer.body)).toBe(202);
  const accepted = Accepted.parse(answer.body);
  const execution = await waitForExecution(accepted.executionArn);
  return { accepted, execution };
}

/** An active tenant, provisioned as the API would. */
export async function activeTenant(options: TenantOptions = {}) {
  const tenant = await provision(options);
  expect(tenant.execution.status).toBe('SUCCEEDED');
  return tenant;
}

const RoleSecret = z.object({
  host: z.string(),
  port: z.number(),
  username: z.string(),
  password: z.string(),
  dbname: z.string(),
});

/** A direct PostgreSQL session as one of the tenant's roles, with its own secret; closed after the file. */
export async function connectAs(tenantId: string, role: DatabaseRole): Promise<pg.Client> {
  const tenant = await registry.tenants.require(tenantId);
  const arn = tenant.resources.secrets?.[role];
  if (!arn) throw new Error(`Tenant ${tenantId} has no ${role} secret`);
  const { SecretString } = await clients.secrets.send(new GetSecretValueCommand({ SecretId: arn }));
  const secret = RoleSecret.parse(JSON.parse(SecretString ?? ''));
  const client = new pg.Client({
    host: secret.host,
    port: secret.port,
    user: secret.username,
    password: secret.password,
    database: secret.dbname,
  });
  client.on('error', () => {});
  await client.connect();
  opened.push(client);
  return client;
}
const opened: pg.Client[] = [];
afterAll(async () => {
  await Promise.all(opened.map((client) => client.end().catch(() => {})));
});

/** Whether a new session as the role can be opened (and query). */
export async function canConnect(tenantId: string, role: DatabaseRole): Promise<string> {
  try {
    const client = await connectAs(tenantId, role);
    await client.query('SELECT 1');
    await client.end();
    return 'ok';
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/**
 * Each of the tenant's roles as the catalog has it: `login` (LOGIN), `password` (it has one), read as the superuser
 * (`pg_authid`), so that a role without a secret is seen as it is, not only as a refused login.
 */
export async function roleLogins(
  tenantId: string,
): Promise<Record<DatabaseRole, { login: boolean; password: boolean }>> {
  const { rows } = await superuserPool().query<{ role: DatabaseRole; login: boolean; password: boolean }>(
    `SELECT substr(rolname, length($1) + 2) AS role, rolcanlogin AS login, rolpassword IS NOT NULL AS password
     FROM pg_authid WHERE rolname LIKE $1 || '\\_%' ORDER BY rolname`,
    [databaseName(tenantId)],
  );
  return Object.fromEntries(
    rows.map((row) => [row.role, { login: row.login, password: row.password }]),
  ) as Record<DatabaseRole, { login: boolean; password: boolean }>;
}

/** The tenant's alarms with whether their actions are on, by name. */
export async function alarmActions(tenantId: string): Promise<Record<string, boolean>> {
  const { MetricAlarms } = await clients.cloudWatch.send(
    new DescribeAlarmsCommand({ AlarmNamePrefix: `tenant-${tenantId}-` }),
  );
  return Object.fromEntries(
    (MetricAlarms ?? []).map((alarm) => [alarm.AlarmName ?? '', alarm.ActionsEnabled ?? false]),
  );
}

/** The tenant's lifecycle operations, as the registry records them. */
export async function operationsOf(tenantId: string) {
  const { superuserPool } = await import('../support/sandbox.ts');
  const { rows } = await superuserPool('control_plane').query(
    'SELECT operation, status, failure FROM tenant_operations WHERE tenant_id = $1 ORDER BY id',
    [tenantId],
  );
  return z.array(z.object({ operation: z.string(), status: z.string(), failure: z.unknown() })).parse(rows);
}

/**
 * Starts a suspension and stops its run from outside (as an operator would) once it has cut access, its alarms'
 * call held: half done, its operation still `running`. Returns the run's execution ARN.
 */
export async function suspensionStoppedHalfway(tenantId: string, reason: string): Promise<string> {
  const slow: FaultRuleInput = {
    service: 'cloudwatch',
    operation: 'DisableAlarmActions',
    match: tenantId,
    count: 1,
    latencyMs: 5_000,
  };
  await addFaults([slow]);
  try {
    const answer = await request('POST', `/tenants/${tenantId}/suspend`, { body: { reason } });
    expect(answer.status).toBe(202);
    const { executionArn } = Accepted.parse(answer.body);
    expect(await held('DisableAlarmActions', tenantId)).toBe(true);
    await clients.sfn.send(new StopExecutionCommand({ executionArn, error: 'Test.Stopped' }));
    return executionArn;
  } finally {
    await removeFaults([slow]);
  }
}

/**
 * Makes the tenant's next backup fail part-way: a table named `<prefix>_<tenant id>` (a later migration's, the
 * provisioner's) is written after the template's tables, and a fault fails its upload. Returns the fault, for
 * removeFaults.
 */
export async function failBackupUploadPartWay(tenantId: string, prefix: string): Promise<FaultRuleInput> {
  const extra = `${prefix}_${tenantId}`;
  await superuserPool(databaseName(tenantId)).query(
    `CREATE TABLE public.${extra} (id int PRIMARY KEY); ALTER TABLE public.${extra} OWNER TO provisioner`,
  );
  const fault: FaultRuleInput = {
    service: 's3',
    operation: 'PutObject',
    match: `data/${extra}.jsonl`,
    error: { code: 'AccessDenied', statusCode: 403, message: 'injected' },
  };
  await addFaults([fault]);
  return fault;
}

/**
 * Upgrades the tenant to enterprise with its first PutMetricAlarm failing (after ApplyLimits, in its alarms), so that
 * the change-plan run's undo runs; returns the run's end.
 */
export async function upgradeFailingInAlarms(tenantId: string) {
  const fault: FaultRuleInput = {
    service: 'cloudwatch',
    operation: 'PutMetricAlarm',
    match: tenantId,
    count: 1,
    error: { code: 'InvalidParameterValue', statusCode: 400, message: 'injected' },
  };
  await addFaults([fault]);
  try {
    return (await operate('PATCH', `/tenants/${tenantId}`, { plan: 'enterprise' })).execution;
  } finally {
    await removeFaults([fault]);
  }
}
