import { setTimeout as sleep } from 'node:timers/promises';
import { DescribeExecutionCommand, ListExecutionsCommand } from '@aws-sdk/client-sfn';
import { removeTenantAlarms } from '../../functions/provision/alarms.ts';
import { dropTenantDatabase, TEMPLATE_PREFIX } from '../../functions/provision/database.ts';
import { removeTenantRoles } from '../../functions/provision/roles.ts';
import { removeTenantStorage } from '../../functions/provision/storage.ts';
import { DataApi } from '../../functions/shared/data-api.ts';
import { STAGE, STORAGE_BUCKET, stateMachineArn } from '../../local/constants.ts';
import { ident } from '../../schema/names.ts';
import { runReconciler } from '../reconciler.ts';
import { figure, type ScenarioResult, tally } from '../report.ts';
import type { FaultInput, RecordedCall, SandboxUnderTest } from '../sandbox.ts';
import {
  createTenant,
  tenantBySlug,
  tenantRequest,
  USUAL_ALARMS,
  uniqueName,
  waitSettled,
} from '../tenants.ts';
import { expectedActiveTraces, findOrphans, listedAsLeft, registryRows, tenantTraces } from '../traces.ts';

/**
 * Every fault point: the AWS calls one provisioning makes, each made to fail in turn. A point is a distinct call
 * (service, operation, and its subject with the tenant id and random parts taken out); a chaos rule reaches it
 * by a literal piece of its subject that no earlier call of the same operation has, so that the rule fails that
 * call and no other. Runs are one at a time per sandbox (a rule cannot name the tenant id, unknown before the
 * POST), spread over several sandboxes.
 */
export interface FaultPoint {
  readonly service: string;
  readonly operation: string;
  /** The subject with `{id}` for the tenant id and `{…}` for random parts. */
  readonly signature: string;
  /** The substring the chaos rule matches; undefined: every call of the operation. */
  readonly match: string | undefined;
  /** Where in the reference run the call came first: `api` (before the run started) or `run`. */
  readonly phase: 'api' | 'run' | 'undo';
}

export type FaultKind = 'forward' | 'undo' | 'transient';

/** How one run ended. */
export interface PointRun {
  readonly point: FaultPoint;
  readonly kind: FaultKind;
  /** `refused`: the API answered 5xx and made nothing; else the tenant's final status. */
  readonly outcome: string;
  /** Whether the fault was injected at all (the call happened). */
  readonly hit: boolean;
  /** Whether the drift reconciler had to settle a tenant left in provisioning. */
  readonly reconciled: boolean;
  readonly orphans: number;
  readonly problems: string[];
}

const placeholders: [RegExp, string][] = [
  [/'SCRAM-SHA-256\$[^']*'/g, '{scram}'],
  [/^[A-Za-z0-9+/=]{40,}$/g, '{transaction}'],
  // The random suffix of a template database being built (functions/provision/database.ts).
  [/_build_[0-9a-f]{8}/g, '{build}'],
];

/** The call's subject with the tenant id and random parts replaced. */
export function signatureOf(call: RecordedCall, tenantId: string): string {
  let subject = (call.subject ?? '').replaceAll(tenantId, '{id}');
  for (const [pattern, placeholder] of placeholders) subject = subject.replaceAll(pattern, placeholder);
  return subject;
}

const key = (service: string, operation: string, signature: string) => `${service} ${operation} ${signature}`;

/**
 * The distinct calls of a reference run, each with the literal piece of its subject that reaches it first:
 * the longest piece between placeholders that no earlier call of the same operation contains.
 */
export function faultPoints(
  calls: readonly RecordedCall[],
  tenantId: string,
  phaseOf: (call: RecordedCall, index: number) => FaultPoint['phase'],
  exclude: ReadonlySet<string> = new Set(),
): FaultPoint[] {
  const points: FaultPoint[] = [];
  const seen = new Set<string>(exclude);
  calls.forEach((call, index) => {
    const signature = signatureOf(call, tenantId);
    const id = key(call.service, call.operation, signature);
    if (seen.has(id)) return;
    seen.add(id);
    const pieces = signature
      .split(/\{[a-z]+\}/)
      .map((piece) => piece.slice(0, 300))
      .filter((piece) => piece.trim().length >= 3)
      .sort((a, b) => b.length - a.length);
    const earlier = calls
      .slice(0, index)
      .filter((other) => other.service === call.service && other.operation === call.operation);
    const match = pieces.find((piece) => !earlier.some((other) => (other.subject ?? '').includes(piece)));
    if (match === undefined && earlier.length > 0) return; // unreachable by a rule: an earlier call takes it
    points.push({
      service: call.service,
      operation: call.operation,
      signature,
      match,
      phase: phaseOf(call, index),
    });
  });
  return points;
}

const NON_RETRYABLE: Record<string, FaultInput['error']> = {
  s3: { code: 'AccessDenied', statusCode: 403, message: 'Injected: access denied' },
  default: { code: 'AccessDeniedException', statusCode: 400, message: 'Injected: access denied' },
};
const denied = (service: string) => NON_RETRYABLE[service] ?? NON_RETRYABLE.default;

/** Three retryable faults in a row: the first is what a paused Aurora answers, for the Data API. */
function transientFaults(point: FaultPoint): FaultInput[] {
  const base = { service: point.service as FaultInput['service'], operation: point.operation, count: 1 };
  const at = point.match === undefined ? base : { ...base, match: point.match };
  const first =
    point.service === 'rds-data'
      ? { code: 'DatabaseResumingException', statusCode: 400, message: 'Injected: the database is resuming' }
      : { code: 'ThrottlingException', statusCode: 400, message: 'Injected: rate exceeded' };
  return [
    { ...at, error: first },
    { ...at, error: { code: 'ThrottlingException', statusCode: 400, message: 'Injected: rate exceeded' } },
    {
      ...at,
      error: { code: 'ServiceUnavailable', statusCode: 503, message: 'Injected: service unavailable' },
    },
  ];
}

const rule = (point: FaultPoint, extra: Partial<FaultInput>): FaultInput => ({
  service: point.service as FaultInput['service'],
  operation: point.operation,
  ...(point.match === undefined ? {} : { match: point.match }),
  error: denied(point.service),
  ...extra,
});

/** The forward fault the undo runs start from: SeedDefaults' invitation secret, when everything else exists. */
const UNDO_TRIGGER: FaultInput = {
  service: 'secrets-manager',
  operation: 'CreateSecret',
  match: '/invitation/admin',
  count: 1,
  error: NON_RETRYABLE.default,
};

/** Waits until the sandbox has made no AWS call for `quietMs` (the startup reconciler, a run's last steps). */
export async function quiesce(sut: SandboxUnderTest, quietMs = 600, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = await sut.lastCall();
  let since = Date.now();
  while (Date.now() < deadline) {
    await sleep(100);
    const now = await sut.lastCall();
    if (now !== last) {
      last = now;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) return;
  }
}

const slugOf = (name: string) => name.toLowerCase().replaceAll(/[^a-z0-9]+/g, '-');

/**
 * Drops the tenant template databases. The first provisioning after a deploy builds the template and the next ones
 * copy it, so without this only the first run of a sandbox would make the build's calls: the reference run and
 * each forward and transient run start from here, and every one of them builds it.
 */
async function dropTemplates(sut: SandboxUnderTest): Promise<void> {
  const pool = sut.superuser();
  const { rows } = await pool.query<{ datname: string }>(
    'SELECT datname FROM pg_database WHERE starts_with(datname, $1)',
    [TEMPLATE_PREFIX],
  );
  for (const { datname } of rows) {
    await pool.query(`ALTER DATABASE ${ident(datname)} IS_TEMPLATE false`);
    await pool.query(`DROP DATABASE ${ident(datname)} WITH (FORCE)`);
  }
}

/** The reference runs: one provisioning that succeeds, one that fails late and is undone. */
export async function referencePoints(
  sut: SandboxUnderTest,
): Promise<{ forward: FaultPoint[]; undo: FaultPoint[] }> {
  await quiesce(sut);
  await dropTemplates(sut);
  const since = await sut.lastCall();
  const { created } = await createTenant(sut, tenantRequest(uniqueName('Reference')));
  if (!created) throw new Error('the reference provisioning was not accepted');
  if ((await waitSettled(sut, created.tenantId))?.status !== 'active')
    throw new Error('the reference run failed');
  await quiesce(sut, 300);
  const calls = (await sut.calls(since)).filter(
    (call) => call.service !== 'sfn' || call.operation === 'StartExecution',
  );
  const started = calls.findIndex((call) => call.operation === 'StartExecution');
  const forward = faultPoints(calls, created.tenantId, (_, index) => (index <= started ? 'api' : 'run'));

  const undoSince = await sut.lastCall();
  await sut.addFaults([UNDO_TRIGGER]);
  const failing = await createTenant(sut, tenantRequest(uniqueName('Reference undo')));
  if (!failing.created) throw new Error('the undo reference provisioning was not accepted');
  const failed = await waitSettled(sut, failing.created.tenantId);
  await sut.clearFaults();
  if (failed?.status !== 'failed') throw new Error(`the undo reference ended ${failed?.status}`);
  await quiesce(sut, 300);
  const undoCalls = (await sut.calls(undoSince)).filter((call) => call.service !== 'sfn');
  const from = undoCalls.findIndex((call) => call.fault !== undefined);
  const known = new Set(forward.map((point) => key(point.service, point.operation, point.signature)));
  const undo = faultPoints(undoCalls.slice(from + 1), failing.created.tenantId, () => 'undo', known);
  return { forward, undo };
}

/** Removes what a rollback_failed tenant left, as the person told of it would: with the product's undo modules. */
async function cleanUp(sut: SandboxUnderTest, tenantId: string): Promise<void> {
  const provisioner = new DataApi(sut.clients.rdsData, {
    resourceArn: sut.info.clusterArn,
    secretArn: sut.info.provisionerSecretArn,
    database: 'control_plane',
  });
  await removeTenantAlarms(sut.clients.cloudWatch, tenantId);
  await removeTenantStorage({ s3: sut.clients.s3, bucket: STORAGE_BUCKET }, tenantId);
  await removeTenantRoles({ cluster: provisioner, secrets: sut.clients.secrets, stage: STAGE }, tenantId);
  await dropTenantDatabase(provisioner, tenantId);
}

/** The tenant's run is over (the execution is no longer RUNNING) while the tenant is still `provisioning`. */
async function runIsOver(sut: SandboxUnderTest, executionArn: string): Promise<boolean> {
  try {
    const { status } = await sut.clients.sfn.send(new DescribeExecutionCommand({ executionArn }));
    return status !== 'RUNNING';
  } catch {
    return true;
  }
}

/**
 * Waits for the tenant to settle and its run to end; a tenant left in provisioning by a run that ended is left
 * to the drift reconciler (run here, as its schedule would, once the faults are gone).
 */
async function settle(
  sut: SandboxUnderTest,
  tenantId: string,
): Promise<{ status: string; reconciled: boolean }> {
  const derived = `${stateMachineArn('provision-tenant').replace(':stateMachine:', ':execution:')}:${tenantId}`;
  let reconciled = false;
  const deadline = Date.now() + 90_000;
  for (;;) {
    const row = await waitSettled(sut, tenantId, 1_000);
    if (!row) return { status: 'missing', reconciled };
    const over = await runIsOver(sut, row.execution_arn ?? derived);
    if ((row.status !== 'provisioning' && over) || Date.now() > deadline)
      return { status: row.status, reconciled };
    if (row.status === 'provisioning' && over) {
      await sut.clearFaults();
      await runReconciler(sut, { graceSeconds: 0, settleSeconds: 0 });
      reconciled = true;
    }
    await sleep(50);
  }
}

/** Provisions one tenant with the point's fault(s) in force and checks how it ended. */
export async function runPoint(sut: SandboxUnderTest, point: FaultPoint, kind: FaultKind): Promise<PointRun> {
  const problems: string[] = [];
  const name = uniqueName(`Fault ${kind}`);
  const slug = slugOf(name);
  const rules =
    kind === 'transient'
      ? transientFaults(point)
      : kind === 'forward'
        ? [rule(point, { count: 1 })]
        : [UNDO_TRIGGER, rule(point, {})];
  await sut.clearFaults();
  if (kind !== 'undo') await dropTemplates(sut);
  const since = await sut.lastCall();
  await sut.addFaults(rules);
  const { answers } = await createTenant(sut, tenantRequest(name), {
    attempts: kind === 'transient' ? 4 : 1,
  });
  const before = await tenantBySlug(sut, slug);
  const settled = before ? await settle(sut, before.id) : { status: 'refused', reconciled: false };
  await sut.clearFaults();
  const hit = (await sut.calls(since)).some((call) => call.fault !== undefined);
  const last = answers.at(-1);
  const outcome = settled.status;
  const label = `${kind} ${point.service} ${point.operation} ${point.signature.slice(0, 80)}`;

  const allowed: Record<FaultKind, string[]> = {
    forward: ['failed', 'rollback_failed', 'refused', 'active'],
    undo: ['rollback_failed', 'failed'],
    transient: ['active'],
  };
  if (!allowed[kind].includes(outcome)) problems.push(`${label}: ended ${outcome}`);
  if (outcome === 'refused' && last && last.status < 500)
    problems.push(`${label}: refused with ${last.status}`);
  let orphans = 0;
  if (before) {
    const [row] = await registryRows(sut, 'id = $1', [before.id]);
    const traces = await tenantTraces(sut, before.id);
    if (row?.status === 'failed' || row?.status === 'rollback_failed') {
      if (!row.failure?.step || !row.failure.error || !row.failure.cause) {
        problems.push(`${label}: no step and cause recorded`);
      }
    }
    if (row?.status === 'rollback_failed') {
      const unlisted = traces.filter((trace) => !listedAsLeft(trace, before.id, row.leftovers ?? []));
      orphans += unlisted.length;
      if (unlisted.length > 0) problems.push(`${label}: left ${unlisted.join(', ')} without listing it`);
      const told = (await sut.events()).events.some(
        (event) => event.detailType === 'Tenant Rollback Failed' && event.detail.tenantId === before.id,
      );
      if (!told) problems.push(`${label}: rollback_failed without a Tenant Rollback Failed event`);
      await cleanUp(sut, before.id);
    } else if (row?.status === 'failed') {
      orphans += traces.length;
      if (traces.length > 0) problems.push(`${label}: failed but left ${traces.join(', ')}`);
    } else if (row?.status === 'active') {
      const expected = expectedActiveTraces(before.id, USUAL_ALARMS);
      if (JSON.stringify(traces) !== JSON.stringify(expected)) {
        problems.push(`${label}: active with ${traces.join(', ')}`);
      }
      const executions = await sut.clients.sfn.send(
        new ListExecutionsCommand({ stateMachineArn: stateMachineArn('provision-tenant') }),
      );
      const runs = (executions.executions ?? []).filter((execution) => execution.name?.startsWith(before.id));
      if (runs.length !== 1 && !settled.reconciled) {
        problems.push(`${label}: ${runs.length} executions for one tenant`);
      }
    }
    const tenants = await registryRows(sut, 'slug LIKE $1', [`${slug}%`]);
    if (tenants.length !== 1) problems.push(`${label}: ${tenants.length} tenants for one request`);
  }
  return { point, kind, outcome, hit, reconciled: settled.reconciled, orphans, problems };
}

/** Runs the points one at a time in each sandbox, the sandboxes side by side. */
export async function sweep(
  sandboxes: readonly SandboxUnderTest[],
  jobs: readonly { point: FaultPoint; kind: FaultKind }[],
): Promise<PointRun[]> {
  const queue = [...jobs];
  const runs: PointRun[] = [];
  await Promise.all(
    sandboxes.map(async (sut) => {
      for (let job = queue.shift(); job; job = queue.shift())
        runs.push(await runPoint(sut, job.point, job.kind));
    }),
  );
  return runs;
}

/** The figures of a sweep, and a final orphan scan of every sandbox. */
export async function faultFigures(
  sandboxes: readonly SandboxUnderTest[],
  runs: readonly PointRun[],
): Promise<ScenarioResult> {
  const problems = runs.flatMap((run) => run.problems);
  const orphans = (await Promise.all(sandboxes.map((sut) => findOrphans(sut)))).flat();
  for (const orphan of orphans)
    problems.push(`orphan: ${orphan.resource} (tenant ${orphan.tenantId}, ${orphan.status})`);
  const of = (kind: FaultKind) => runs.filter((run) => run.kind === kind);
  const clean = (kind: FaultKind) => of(kind).filter((run) => run.problems.length === 0).length;
  const forward = of('forward');
  const undo = of('undo');
  const transient = of('transient');
  const scenario = 'fault points';
  return {
    problems,
    // Such as calls a function makes once per container (a value read and kept): only its first run makes them.
    notes: runs
      .filter((run) => !run.hit)
      .map(
        (run) =>
          `not reached (${run.kind}): ${run.point.service} ${run.point.operation} ${run.point.signature.slice(0, 100)}`,
      ),
    figures: [
      figure(scenario, 'forward fault points tried', forward.length, '> 0', forward.length > 0),
      figure(
        scenario,
        'forward: how they ended',
        tally(forward.map((run) => run.outcome)),
        'failed/rollback_failed/refused',
        true,
      ),
      figure(
        scenario,
        'forward: ended clean',
        `${clean('forward')}/${forward.length}`,
        'all',
        clean('forward') === forward.length,
      ),
      figure(scenario, 'undo fault points tried', undo.length, '> 0', undo.length > 0),
      figure(
        scenario,
        'undo: how they ended',
        tally(undo.map((run) => run.outcome)),
        'rollback_failed',
        true,
      ),
      figure(
        scenario,
        'undo: ended clean, person told',
        `${clean('undo')}/${undo.length}`,
        'all',
        clean('undo') === undo.length,
      ),
      figure(
        scenario,
        'stuck runs settled by the reconciler',
        runs.filter((run) => run.reconciled).length,
        '-',
        true,
      ),
      figure(scenario, 'faults not reached', runs.filter((run) => !run.hit).length, '-', true),
      figure(
        scenario,
        'orphans found',
        orphans.length + runs.reduce((sum, run) => sum + run.orphans, 0),
        '0',
        orphans.length === 0 && runs.every((run) => run.orphans === 0),
      ),
      figure(
        'transient faults',
        'calls given 3 retryable faults',
        transient.length,
        '> 0',
        transient.length > 0,
      ),
      figure(
        'transient faults',
        'survived (active, one of each)',
        `${clean('transient')}/${transient.length}`,
        'all',
        clean('transient') === transient.length,
      ),
    ],
  };
}
