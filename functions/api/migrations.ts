import { join } from 'node:path';
import { DescribeExecutionCommand, type SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import {
  DEFAULT_TOLERATED_FAILURE_PERCENTAGE,
  MIGRATION_ID_PATTERN,
  type MigrationResponse,
  StartMigrationRequest,
} from '../../schema/api/fleet.ts';
import { type FleetStore, type MigrationRecord, newMigrationId } from '../fleet/store.ts';
import {
  MigrationInProgressError,
  NotFoundError,
  ServiceUnavailableError,
  ValidationError,
} from '../shared/errors.ts';
import type { IdempotencyStore } from '../shared/idempotency-keys.ts';
import { loadMigrations } from '../shared/migrations.ts';
import { actorOf } from './create-tenant.ts';
import { callerOf, type HttpEvent, type HttpResult, jsonBody, jsonResult, parseWith } from './http.ts';
import { idempotencyKeyOf, idempotent, requestHash } from './idempotency.ts';

export interface MigrationApiDeps {
  readonly fleet: FleetStore;
  readonly sfn: SFNClient;
  /** The migrate-fleet state machine. */
  readonly stateMachineArn: string;
  /** The tenant template's latest version, as the deployed code has it. */
  readonly latestVersion: () => Promise<number>;
  readonly log?: (message: string, details: Record<string, unknown>) => void;
}

/**
 * Closes a run still `running` whose execution has ended without closing it (stopped, timed out, a sandbox
 * restarted), so that it neither blocks the next run nor shows as running forever. Returns the run as it now is.
 */
export async function settleRun(
  deps: Pick<MigrationApiDeps, 'fleet' | 'sfn'>,
  run: MigrationRecord,
): Promise<MigrationRecord> {
  if (run.status !== 'running' || run.executionArn === null) return run;
  const execution = await deps.sfn.send(new DescribeExecutionCommand({ executionArn: run.executionArn }));
  if (execution.status === 'RUNNING' || execution.status === 'PENDING_REDRIVE') return run;
  await deps.fleet.fail(run.id, {
    error: execution.error ?? `Execution${execution.status ?? 'Ended'}`,
    cause: (execution.cause ?? `The execution ended ${execution.status ?? ''} without closing the run`).slice(
      0,
      2000,
    ),
  });
  return (await deps.fleet.get(run.id)) ?? run;
}

/** A run whose request died between planning and starting its execution; older than this, it is given up. */
const UNSTARTED_STALE_MS = 120_000;

/**
 * `POST /migrations`. Plans a run from the registry alone (no tenant database is touched): every active tenant
 * whose schema version is behind the template's latest, or the tenants named (each must exist and be active).
 * With nothing to do, the run is recorded `succeeded` and answered at once (200): running it again is a no-op.
 * Otherwise the migrate-fleet execution (named by the run id) is started (202). One run at a time: a second is
 * refused (409 `migration_in_progress`, naming the running one) unless that one's execution has ended.
 */
export async function startMigration(
  deps: MigrationApiDeps,
  request: StartMigrationRequest,
  caller: string,
): Promise<{ started: boolean; run: MigrationResponse }> {
  if (request.tenantIds !== undefined) await checkTenants(deps, request.tenantIds);
  const targetVersion = await deps.latestVersion();
  const plan = () =>
    deps.fleet.plan({
      id: newMigrationId(),
      targetVersion,
      tenantIds: request.tenantIds,
      thresholds: { count: request.toleratedFailureCount, percentage: request.toleratedFailurePercentage },
      defaultPercentage: DEFAULT_TOLERATED_FAILURE_PERCENTAGE,
      createdBy: actorOf(caller),
    });
  let planned = await plan();
  if (planned.kind === 'running') {
    const running = await deps.fleet.get(planned.id);
    const settled = running && (await settleAbandoned(deps, running));
    if (settled && settled.status === 'running') {
      throw new MigrationInProgressError(`The migration ${settled.id} is running; retry when it has ended`);
    }
    planned = await plan();
    if (planned.kind === 'running') {
      throw new MigrationInProgressError(`The migration ${planned.id} is running; retry when it has ended`);
    }
  }
  const runId = planned.id;
  if (planned.tenants === 0) return { started: false, run: await migrationResponse(deps, runId) };
  let executionArn: string | undefined;
  try {
    const started = await deps.sfn.send(
      new StartExecutionCommand({
        stateMachineArn: deps.stateMachineArn,
        name: runId,
        input: JSON.stringify({ migrationId: runId }),
      }),
    );
    executionArn = started.executionArn;
    if (!executionArn) throw new Error('StartExecution returned no executionArn');
  } catch (error) {
    deps.log?.('The migration did not start; it is discarded', {
      migrationId: runId,
      error: error instanceof Error ? error.name : String(error),
    });
    await deps.fleet.discard(runId);
    throw new ServiceUnavailableError(
      'The migration could not be started; nothing was changed, retry later',
      {
        cause: error,
      },
    );
  }
  await deps.fleet.setExecutionArn(runId, executionArn);
  return { started: true, run: await migrationResponse(deps, runId) };
}

/** The running run, settled: closed when its execution has ended, or when it never got one and is stale. */
async function settleAbandoned(deps: MigrationApiDeps, run: MigrationRecord): Promise<MigrationRecord> {
  if (run.executionArn !== null) return settleRun(deps, run);
  if (Date.now() - Date.parse(run.createdAt) < UNSTARTED_STALE_MS) return run;
  await deps.fleet.fail(run.id, {
    error: 'ExecutionNotStarted',
    cause: 'The request that planned this run ended before starting its execution',
  });
  return (await deps.fleet.get(run.id)) ?? run;
}

/** Every tenant named must exist and be active: a retry of a tenant that has since gone is a caller's mistake. */
async function checkTenants(deps: MigrationApiDeps, tenantIds: readonly string[]): Promise<void> {
  const statuses = await deps.fleet.tenantStatuses(tenantIds);
  const problems = tenantIds.flatMap((id, i) => {
    const status = statuses.get(id);
    if (status === 'active') return [];
    return [
      {
        path: `tenantIds[${i}]`,
        message:
          status === undefined ? `No tenant ${id}` : `${id} is ${status}: only active tenants are migrated`,
      },
    ];
  });
  if (problems.length > 0) throw new ValidationError('Some tenants cannot be migrated', problems);
}

/** A run as the API answers it: its record, its counts and every failed tenant. */
export async function migrationResponse(
  deps: Pick<MigrationApiDeps, 'fleet'>,
  id: string,
  known?: MigrationRecord,
): Promise<MigrationResponse> {
  const run = known ?? (await deps.fleet.get(id));
  if (!run) throw new NotFoundError(`No migration ${id}`);
  const [counts, failures] = await Promise.all([deps.fleet.counts(run.id), deps.fleet.failures(run.id)]);
  return {
    id: run.id,
    status: run.status,
    scope: run.scope,
    targetVersion: run.targetVersion,
    toleratedFailures: run.toleratedFailures,
    summary: counts,
    failures,
    error: run.error,
    executionArn: run.executionArn,
    createdAt: run.createdAt,
    createdBy: run.createdBy,
    endedAt: run.endedAt,
    durationMs: run.durationMs,
    links: { self: `/migrations/${run.id}` },
  };
}

/** `GET /migrations/{migrationId}`; a run whose execution ended without closing it is closed first. */
export async function getMigration(deps: MigrationApiDeps, id: string): Promise<MigrationResponse> {
  const run = MIGRATION_ID_PATTERN.test(id) ? await deps.fleet.get(id) : undefined;
  if (!run) throw new NotFoundError(`No migration ${id}`);
  // A read must not fail for want of this look (DescribeExecution is throttled per account): it is skipped then.
  const settled = await settleRun(deps, run).catch((error: unknown) => {
    deps.log?.('Could not look at the migration execution', {
      migrationId: id,
      error: error instanceof Error ? error.name : String(error),
    });
    return run;
  });
  return migrationResponse(deps, id, settled);
}

/**
 * The tenant template's latest version in `schemaDir` (0 without a migration). Read per call (a few small files):
 * the template is the deployed code's, and a sandbox sees a new migration without a restart.
 */
export async function latestTemplateVersion(schemaDir: string): Promise<number> {
  return (await loadMigrations(join(schemaDir, 'tenant'))).at(-1)?.version ?? 0;
}

/** What the fleet migration routes run on: the runs' deps, and the store that keeps idempotent answers. */
export interface MigrationRouteDeps extends MigrationApiDeps {
  readonly idempotency: IdempotencyStore;
}

/**
 * The fleet migration routes as api-handler operations, on the clients and stores the api function's composition
 * root hands in (functions/api/handler.ts). A `POST` with an `Idempotency-Key` is answered once per key.
 */
export function migrationRoutes(
  deps: MigrationRouteDeps,
): Record<'startMigration' | 'getMigration', (event: HttpEvent) => Promise<HttpResult>> {
  return {
    async startMigration(event) {
      const caller = callerOf(event);
      const raw = event.body === undefined || event.body === '' ? {} : jsonBody(event);
      const request = parseWith(StartMigrationRequest, raw);
      const answer = async () => {
        const { started, run } = await startMigration(deps, request, caller);
        return jsonResult(started ? 202 : 200, run, { location: run.links.self });
      };
      const key = idempotencyKeyOf(event);
      if (key === undefined) return answer();
      return idempotent(deps.idempotency, { caller, key, hash: requestHash(event.routeKey, raw) }, answer, {
        log: deps.log,
      });
    },
    async getMigration(event) {
      return jsonResult(200, await getMigration(deps, event.pathParameters?.migrationId ?? ''));
    },
  };
}
