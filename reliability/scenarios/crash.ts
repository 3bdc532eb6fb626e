import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { DeleteAlarmsCommand } from '@aws-sdk/client-cloudwatch';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import {
  CreateSecretCommand,
  DeleteSecretCommand,
  GetSecretValueCommand,
  RestoreSecretCommand,
} from '@aws-sdk/client-secrets-manager';
import { DescribeExecutionCommand } from '@aws-sdk/client-sfn';
import pg from 'pg';
import { z } from 'zod';
import { executionArnOf } from '../../functions/reconcile/stuck.ts';
import { DataApi } from '../../functions/shared/data-api.ts';
import { TenantConfig, TenantStore } from '../../functions/shared/tenants.ts';
import { STAGE, STORAGE_BUCKET, stateMachineArn } from '../../local/constants.ts';
import { effectiveLimits } from '../../schema/plans.ts';
import { figure, type ScenarioResult } from '../report.ts';
import type { SandboxUnderTest } from '../sandbox.ts';
import { createTenant, tenantRequest, USUAL_ALARMS, uniqueName, waitSettled } from '../tenants.ts';
import { expectedActiveTraces, registryRows, tenantTraces } from '../traces.ts';

/** Polls until `check` holds, or the time is up; returns whether it held. */
async function eventually(check: () => Promise<boolean>, timeoutMs = 30_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await sleep(200);
  }
  return check();
}

/** Waits until a call of that operation whose subject has `needle` is being held by a latency rule. */
async function held(sut: SandboxUnderTest, operation: string, needle: string): Promise<boolean> {
  return eventually(async () =>
    (await sut.calls()).some(
      (call) =>
        call.operation === operation && (call.subject ?? '').includes(needle) && call.latencyMs !== undefined,
    ),
  );
}

async function audited(sut: SandboxUnderTest, tenantId: string, action: string): Promise<boolean> {
  const { rowCount } = await sut
    .superuser('control_plane')
    .query('SELECT 1 FROM audit_log WHERE tenant_id = $1 AND action = $2', [tenantId, action]);
  return (rowCount ?? 0) > 0;
}

/**
 * Crash mid-run: one tenant is held in a forward step (its marker's PutObject answer held back by a chaos latency
 * rule), another in its undo chain (its DeleteObjects held); the sandbox is killed hard (SIGKILL) and started
 * again. No person acts: the reconciler, at startup, must find both in `provisioning` with their runs ABORTED
 * (Sandbox.Restarted), finish the first (a new run of provision-tenant) and roll the second back
 * (rollback-tenant, with the failure its run recorded), leaving nothing behind.
 */
export async function crash(sut: SandboxUnderTest): Promise<ScenarioResult> {
  const problems: string[] = [];
  await sut.addFaults([
    { service: 's3', operation: 'PutObject', match: '/.tenant', latencyMs: 60_000, count: 1 },
  ]);
  const forward = (await createTenant(sut, tenantRequest(uniqueName('Crash forward')))).created;
  if (!forward || !(await held(sut, 'PutObject', forward.tenantId))) {
    return { figures: [], problems: ['the forward tenant was not held in ConfigureStorage'] };
  }
  await sut.addFaults([
    {
      service: 'secrets-manager',
      operation: 'CreateSecret',
      match: '/invitation/admin',
      count: 1,
      error: { code: 'AccessDeniedException', statusCode: 400, message: 'Injected: access denied' },
    },
    { service: 's3', operation: 'DeleteObjects', latencyMs: 60_000, count: 1 },
  ]);
  const undo = (await createTenant(sut, tenantRequest(uniqueName('Crash undo')))).created;
  if (!undo || !(await held(sut, 'DeleteObjects', undo.tenantId))) {
    return { figures: [], problems: ['the undo tenant was not held in RemoveStorage'] };
  }

  await sut.restart('SIGKILL');

  const ids = [forward.tenantId, undo.tenantId];
  await Promise.all(ids.map((id) => waitSettled(sut, id, 90_000)));
  const [a] = await registryRows(sut, 'id = $1', [forward.tenantId]);
  const [b] = await registryRows(sut, 'id = $1', [undo.tenantId]);
  let reconciled = 0;
  if (a?.status === 'active' && a.execution_arn?.endsWith(`${forward.tenantId}-r1`)) reconciled += 1;
  else problems.push(`the tenant killed mid-provisioning ended ${a?.status} (${a?.execution_arn})`);
  const aTraces = await tenantTraces(sut, forward.tenantId);
  if (JSON.stringify(aTraces) !== JSON.stringify(expectedActiveTraces(forward.tenantId, USUAL_ALARMS))) {
    problems.push(`the resumed tenant has ${aTraces.join(', ')}`);
  }
  if (
    b?.status === 'failed' &&
    b.failure?.step === 'SeedDefaults' &&
    b.execution_arn?.endsWith(`${undo.tenantId}-rb1`)
  ) {
    reconciled += 1;
  } else
    problems.push(
      `the tenant killed mid-rollback ended ${b?.status} ${JSON.stringify(b?.failure)} (${b?.execution_arn})`,
    );
  const bTraces = await tenantTraces(sut, undo.tenantId);
  if (bTraces.length > 0) problems.push(`the rolled back tenant left ${bTraces.join(', ')}`);
  for (const id of ids) {
    if (!(await audited(sut, id, 'TENANT_RECONCILED')))
      problems.push(`${id}: no TENANT_RECONCILED audit entry`);
  }
  let aborted = 0;
  for (const id of ids) {
    const first = await sut.clients.sfn.send(
      new DescribeExecutionCommand({ executionArn: executionArnOf(stateMachineArn('provision-tenant'), id) }),
    );
    if (first.status === 'ABORTED' && first.error === 'Sandbox.Restarted') aborted += 1;
    else problems.push(`${id}: the killed run is ${first.status} ${first.error ?? ''}`);
  }
  const scenario = 'crash mid-run';
  return {
    problems,
    figures: [
      figure(
        scenario,
        'runs killed mid-way (ABORTED, Sandbox.Restarted)',
        `${aborted}/${ids.length}`,
        'all',
        aborted === ids.length,
      ),
      figure(
        scenario,
        'reconciled without a person',
        `${reconciled}/${ids.length}`,
        'all',
        reconciled === ids.length,
      ),
      figure(
        scenario,
        'left in provisioning',
        [a, b].filter((row) => row?.status === 'provisioning').length,
        '0',
        [a, b].every((row) => row?.status !== 'provisioning'),
      ),
    ],
  };
}

/**
 * Drift, with the reconciler on its (sandbox) schedule: an active tenant loses an alarm, its storage marker and
 * (scheduled for deletion) a role secret: the first two are made again, the secret is reported. A database and
 * a secret of a tenant nobody has are planted: they are reported, and left alone. A tenant reserved by an API
 * that died before starting its run is provisioned.
 */
export async function drift(sut: SandboxUnderTest): Promise<ScenarioResult> {
  const problems: string[] = [];
  const { created } = await createTenant(sut, tenantRequest(uniqueName('Drift')));
  if (!created || (await waitSettled(sut, created.tenantId))?.status !== 'active') {
    return { figures: [], problems: ['the drift tenant was not provisioned'] };
  }
  const id = created.tenantId;
  await sut.clients.cloudWatch.send(new DeleteAlarmsCommand({ AlarmNames: [`tenant-${id}-latency`] }));
  await sut.clients.s3.send(
    new DeleteObjectCommand({ Bucket: STORAGE_BUCKET, Key: `tenants/${id}/.tenant` }),
  );
  const appSecret = `tenants/${STAGE}/${id}/db/app`;
  await sut.clients.secrets.send(new DeleteSecretCommand({ SecretId: appSecret, RecoveryWindowInDays: 7 }));

  const ghost = `t${randomBytes(20)
    .toString('hex')
    .replaceAll(/[^a-z0-9]/g, '')
    .slice(0, 15)}`;
  await sut.superuser().query(`CREATE DATABASE "tenant_${ghost}"`);
  const ghostSecret = `tenants/${STAGE}/${ghost}/db/app`;
  await sut.clients.secrets.send(
    new CreateSecretCommand({ Name: ghostSecret, SecretString: '{"note":"planted"}' }),
  );

  const orphanReservation = await reserveWithoutRun(sut);

  // The tenant's admin changes its own password; the reconciler is told the tenant is due for a check.
  const adminSecret = await roleSecret(sut, `tenants/${STAGE}/${id}/db/admin`);
  await withSession(adminSecret, (session) =>
    session.query("ALTER ROLE CURRENT_USER PASSWORD 'chosen-by-the-tenant-itself'"),
  );
  await sut
    .superuser('control_plane')
    .query("UPDATE tenants SET credentials_checked_at = now() - interval '1 day' WHERE id = $1", [id]);

  const repaired = await eventually(async () => {
    const traces = await tenantTraces(sut, id);
    return traces.includes(`alarm tenant-${id}-latency`) && traces.includes(`object tenants/${id}/.tenant`);
  });
  if (!repaired) problems.push('the missing alarm and storage marker were not made again');
  const missingReported = await eventually(() => driftAudited(sut, id, 'db/app'));
  if (!missingReported) problems.push('the secret scheduled for deletion was not reported missing');
  const orphansReported = await eventually(() => driftAudited(sut, ghost, `tenant_${ghost}`));
  if (!orphansReported) problems.push('the planted database and secret were not reported');
  const events = (await sut.events()).events.filter((event) => event.detailType === 'Tenant Drift Detected');
  if (events.length === 0) problems.push('no Tenant Drift Detected event');
  const ghostLeft = await tenantTraces(sut, ghost);
  const leftAlone =
    ghostLeft.includes(`database tenant_${ghost}`) && ghostLeft.includes(`secret ${ghostSecret}`);
  if (!leftAlone) problems.push(`the reconciler deleted data of an unknown tenant: ${ghostLeft.join(', ')}`);
  const started = await eventually(
    async () => (await waitSettled(sut, orphanReservation, 1_000))?.status === 'active',
    60_000,
  );
  if (!started) problems.push('a reservation without a run was not provisioned');
  const passwordBack = await eventually(async () => {
    try {
      await withSession(adminSecret, (session) => session.query('SELECT 1'));
      return true;
    } catch {
      return false;
    }
  });
  if (!passwordBack) problems.push("the admin's secret does not log in after the role changed its password");

  // Put things back as a person would.
  await sut.clients.secrets.send(new RestoreSecretCommand({ SecretId: appSecret }));
  await sut.superuser().query(`DROP DATABASE "tenant_${ghost}"`);
  await sut.clients.secrets.send(
    new DeleteSecretCommand({ SecretId: ghostSecret, ForceDeleteWithoutRecovery: true }),
  );

  const scenario = 'drift reconciler';
  return {
    problems,
    figures: [
      figure(scenario, 'lost alarm and storage marker made again', repaired ? '2/2' : '0/2', '2/2', repaired),
      figure(scenario, 'lost role secret reported', missingReported ? 'yes' : 'no', 'yes', missingReported),
      figure(
        scenario,
        'planted orphans reported, left alone',
        orphansReported && leftAlone ? '2/2' : 'no',
        '2/2',
        orphansReported && leftAlone,
      ),
      figure(scenario, 'reservation without a run provisioned', started ? '1/1' : '0/1', '1/1', started),
      figure(
        scenario,
        'role password changed by the tenant put back from its secret',
        passwordBack ? 'yes' : 'no',
        'yes',
        passwordBack,
      ),
    ],
  };
}

const RoleSecret = z.object({
  host: z.string(),
  port: z.number(),
  username: z.string(),
  password: z.string(),
  dbname: z.string(),
});

async function roleSecret(sut: SandboxUnderTest, secretId: string): Promise<z.infer<typeof RoleSecret>> {
  const { SecretString } = await sut.clients.secrets.send(new GetSecretValueCommand({ SecretId: secretId }));
  return RoleSecret.parse(JSON.parse(SecretString ?? ''));
}

/** A session as the role of the secret, straight to PostgreSQL, as the tenant's own code opens one. */
async function withSession<T>(
  secret: z.infer<typeof RoleSecret>,
  work: (session: pg.Client) => Promise<T>,
): Promise<T> {
  const session = new pg.Client({
    host: secret.host,
    port: secret.port,
    user: secret.username,
    password: secret.password,
    database: secret.dbname,
  });
  session.on('error', () => {});
  await session.connect();
  try {
    return await work(session);
  } finally {
    await session.end().catch(() => {});
  }
}

async function driftAudited(sut: SandboxUnderTest, tenantId: string, needle: string): Promise<boolean> {
  const { rows } = await sut
    .superuser('control_plane')
    .query<{ details: string }>(
      "SELECT details::text AS details FROM audit_log WHERE tenant_id = $1 AND action = 'TENANT_DRIFT_DETECTED'",
      [tenantId],
    );
  return rows.some((row) => row.details.includes(needle));
}

/** A tenant reserved as the API reserves one, whose run never started (the API died), ten minutes ago. */
async function reserveWithoutRun(sut: SandboxUnderTest): Promise<string> {
  const tenants = new TenantStore(
    new DataApi(sut.clients.rdsData, {
      resourceArn: sut.info.clusterArn,
      secretArn: sut.info.provisionerSecretArn,
      database: 'control_plane',
    }),
  );
  const id = `t${randomBytes(20)
    .toString('hex')
    .replaceAll(/[^a-z0-9]/g, '')
    .slice(0, 15)}`;
  const name = uniqueName('No Run');
  await tenants.reserve(
    {
      id,
      slug: name.toLowerCase().replaceAll(' ', '-'),
      name,
      plan: 'basic',
      limits: effectiveLimits('basic', {}),
      config: TenantConfig.parse({ adminUser: { email: 'norun@example.com' } }),
    },
    'api:reliability',
  );
  await sut
    .superuser('control_plane')
    .query("UPDATE tenants SET updated_at = now() - interval '10 minutes' WHERE id = $1", [id]);
  return id;
}

/** Whether each of the tenant's roles can log in, from the catalog (true only when all four can). */
async function rolesCanLogIn(sut: SandboxUnderTest, tenantId: string): Promise<boolean[]> {
  const { rows } = await sut
    .superuser()
    .query<{ login: boolean }>(
      'SELECT rolcanlogin AS login FROM pg_roles WHERE rolname LIKE $1 ORDER BY rolname',
      [`tenant_${tenantId}_%`],
    );
  return rows.map((row) => row.login);
}

async function runningOperations(sut: SandboxUnderTest, tenantId: string): Promise<number> {
  const { rowCount } = await sut
    .superuser('control_plane')
    .query("SELECT 1 FROM tenant_operations WHERE tenant_id = $1 AND status = 'running'", [tenantId]);
  return rowCount ?? 0;
}

async function batchStatus(sut: SandboxUnderTest, batchId: string): Promise<string | undefined> {
  const { rows } = await sut
    .superuser('control_plane')
    .query<{ status: string }>('SELECT status FROM tenant_batches WHERE id = $1', [batchId]);
  return rows[0]?.status;
}

const BatchCreated = z.object({ batchId: z.string(), rows: z.array(z.object({ tenantId: z.string() })) });

/**
 * Crash mid-operation: a suspension held after its roles lost LOGIN (its DisableAlarmActions answer held back), a
 * deletion held in its removal (a DeleteSecret answer held back) and a bulk batch whose two rows are held in their
 * storage step; the sandbox is killed hard (SIGKILL) and started again. No person acts: the reconciler must finish
 * the suspension (registry suspended, every role NOLOGIN, resume possible) and the deletion (deleted, nothing left
 * but what is retained), and the batch, all of whose rows end active, must end `succeeded`.
 */
export async function crashMidOperation(sut: SandboxUnderTest): Promise<ScenarioResult> {
  const problems: string[] = [];
  const made = await Promise.all(
    ['Crash suspend', 'Crash delete'].map(async (name) => {
      const { created } = await createTenant(sut, tenantRequest(uniqueName(name)));
      return created && (await waitSettled(sut, created.tenantId))?.status === 'active' ? created : undefined;
    }),
  );
  const [suspended, deleted] = made;
  if (!suspended || !deleted)
    return { figures: [], problems: ['the tenants to cut short were not provisioned'] };
  await sut.addFaults([
    {
      service: 'cloudwatch',
      operation: 'DisableAlarmActions',
      match: suspended.tenantId,
      latencyMs: 60_000,
      count: 1,
    },
    {
      service: 'secrets-manager',
      operation: 'DeleteSecret',
      match: deleted.tenantId,
      latencyMs: 60_000,
      count: 1,
    },
  ]);
  const json = { 'content-type': 'application/json' };
  await sut.request('POST', `/tenants/${suspended.tenantId}/suspend`, {
    body: JSON.stringify({ reason: 'Crash test' }),
    headers: json,
  });
  await sut.request('DELETE', `/tenants/${deleted.tenantId}?confirm=${encodeURIComponent(deleted.slug)}`);
  const operationsHeld = await Promise.all([
    held(sut, 'DisableAlarmActions', suspended.tenantId),
    held(sut, 'DeleteSecret', deleted.tenantId),
  ]);
  if (operationsHeld.some((ok) => !ok)) {
    return { figures: [], problems: ['the operations were not held mid-way'] };
  }
  // Every storage marker from now on (the deletion, which retags its own, is past that step).
  await sut.addFaults([{ service: 's3', operation: 'PutObject', match: '/.tenant', latencyMs: 60_000 }]);
  const name = uniqueName('Crash batch');
  const answer = await sut.request('POST', '/tenant-batches', {
    body: JSON.stringify({ tenants: [0, 1].map((index) => tenantRequest(`${name} ${index}`)) }),
    headers: json,
  });
  const batch = BatchCreated.safeParse(answer.body).data;
  if (!batch) return { figures: [], problems: [`the batch was refused: ${answer.text}`] };
  const rowsHeld = await Promise.all(batch.rows.map((row) => held(sut, 'PutObject', row.tenantId)));
  if (rowsHeld.some((ok) => !ok))
    return { figures: [], problems: ["the batch's rows were not held mid-way"] };

  await sut.restart('SIGKILL');
  await sut.clearFaults();

  const agreed = await eventually(
    async () =>
      (await runningOperations(sut, suspended.tenantId)) === 0 &&
      (await registryRows(sut, 'id = $1', [suspended.tenantId]))[0]?.status === 'suspended',
    90_000,
  );
  const logins = await rolesCanLogIn(sut, suspended.tenantId);
  const suspendedRight = agreed && logins.length === 4 && logins.every((login) => !login);
  if (!suspendedRight) {
    const [row] = await registryRows(sut, 'id = $1', [suspended.tenantId]);
    problems.push(`the suspension cut short ended ${row?.status}, roles LOGIN ${logins.join(', ')}`);
  }
  const resume = await sut.request('POST', `/tenants/${suspended.tenantId}/resume`, {
    body: JSON.stringify({ reason: 'After the crash' }),
    headers: json,
  });
  if (resume.status !== 202)
    problems.push(`resume after the crash answered ${resume.status}: ${resume.text}`);
  const gone = await eventually(
    async () => (await registryRows(sut, 'id = $1', [deleted.tenantId]))[0]?.status === 'deleted',
    90_000,
  );
  const left = (await tenantTraces(sut, deleted.tenantId)).filter(
    (trace) => !trace.startsWith('object ') && !trace.startsWith('secret '),
  );
  if (!gone || left.length > 0) {
    const [row] = await registryRows(sut, 'id = $1', [deleted.tenantId]);
    problems.push(`the deletion cut short ended ${row?.status}, leaving ${left.join(', ')}`);
  }
  await eventually(async () => (await batchStatus(sut, batch.batchId)) !== 'running', 90_000);
  const status = await batchStatus(sut, batch.batchId);
  const rowsActive = (
    await Promise.all(batch.rows.map(async (row) => (await waitSettled(sut, row.tenantId, 1_000))?.status))
  ).filter((rowStatus) => rowStatus === 'active').length;
  if (status !== 'succeeded')
    problems.push(`the batch cut short ended ${status} with ${rowsActive}/2 rows active`);
  const finished = [suspendedRight, gone && left.length === 0].filter(Boolean).length;
  const scenario = 'crash mid-operation';
  return {
    problems,
    figures: [
      figure(
        scenario,
        'operations cut short finished without a person',
        `${finished}/2`,
        'all',
        finished === 2,
      ),
      figure(scenario, 'resume after the suspension cut short', resume.status, '202', resume.status === 202),
      figure(
        scenario,
        'batch cut short, every row active',
        `${status} (${rowsActive}/2 active)`,
        'succeeded',
        status === 'succeeded' && rowsActive === 2,
      ),
    ],
  };
}
