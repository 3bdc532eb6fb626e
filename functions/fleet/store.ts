import { MIGRATION_STATUSES, type MigrationStatus } from '../../schema/api/fleet.ts';
import { TENANT_STATUSES } from '../../schema/api/tenants.ts';
import { newTenantId } from '../../schema/names.ts';
import * as z from '../../schema/zod.ts';
import { type DataApi, isoText, json, jsonText } from '../shared/data-api.ts';
import type { TenantStatus } from '../shared/tenants.ts';

/** A new migration run id: `m` and 15 of `[a-z0-9]`. */
export const newMigrationId = (): string => `m${newTenantId().slice(1)}`;

const ErrorJson = z.object({ error: z.string(), cause: z.string() });
export type RunError = z.infer<typeof ErrorJson>;

export interface MigrationRecord {
  readonly id: string;
  readonly status: MigrationStatus;
  readonly scope: 'fleet' | 'tenants';
  readonly targetVersion: number;
  readonly tenantCount: number;
  readonly toleratedFailures: number;
  readonly executionArn: string | null;
  readonly error: RunError | null;
  readonly createdAt: string;
  readonly createdBy: string;
  readonly endedAt: string | null;
  readonly durationMs: number | null;
}

const MigrationRow = z.pipe(
  z.object({
    id: z.string(),
    status: z.enum(MIGRATION_STATUSES),
    scope: z.enum(['fleet', 'tenants']),
    target_version: z.number(),
    tenant_count: z.number(),
    tolerated_failures: z.number(),
    execution_arn: z.nullable(z.string()),
    error: z.nullable(jsonText(ErrorJson)),
    created_at: z.string(),
    created_by: z.string(),
    ended_at: z.nullable(z.string()),
    duration_ms: z.nullable(z.number()),
  }),
  z.transform(
    (row): MigrationRecord => ({
      id: row.id,
      status: row.status,
      scope: row.scope,
      targetVersion: row.target_version,
      tenantCount: row.tenant_count,
      toleratedFailures: row.tolerated_failures,
      executionArn: row.execution_arn,
      error: row.error,
      createdAt: row.created_at,
      createdBy: row.created_by,
      endedAt: row.ended_at,
      durationMs: row.duration_ms,
    }),
  ),
);

const MIGRATION_COLUMNS = `id, status, scope, target_version, tenant_count, tolerated_failures, execution_arn,
  error::text AS error, ${isoText('created_at')} AS created_at, created_by, ${isoText('ended_at')} AS ended_at,
  (extract(epoch FROM ended_at - created_at) * 1000)::integer AS duration_ms`;

export interface MigrationCounts {
  readonly tenants: number;
  readonly pending: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly skipped: number;
}

/** A tenant of a run as a chunk sees it: its outcome so far and its registry status now. */
export interface ChunkTenant {
  readonly tenantId: string;
  readonly outcome: 'pending' | 'succeeded' | 'failed' | 'skipped';
  readonly tenantStatus: TenantStatus | null;
  /** The registry's template version of the tenant now. */
  readonly schemaVersion: number | null;
}

/**
 * The tolerated number of failed tenants: the lower of the count and the share asked for; without either, the
 * default share. Floor, so that 10% of 5 tenants tolerates none.
 */
export function toleratedFailures(
  tenants: number,
  thresholds: { count?: number | undefined; percentage?: number | undefined },
  defaultPercentage: number,
): number {
  const byShare = (percentage: number) => Math.floor((tenants * percentage) / 100);
  if (thresholds.count === undefined && thresholds.percentage === undefined)
    return byShare(defaultPercentage);
  return Math.min(
    thresholds.count ?? Number.POSITIVE_INFINITY,
    thresholds.percentage === undefined ? Number.POSITIVE_INFINITY : byShare(thresholds.percentage),
  );
}

/**
 * Fleet migration runs in the `control_plane` database (`fleet_migrations`, `fleet_migration_tenants`): what the
 * API records when it plans a run, what each chunk records per tenant (and in the registry's `schema_version`),
 * and what `GET /migrations/{id}` reads.
 */
export class FleetStore {
  readonly #db: DataApi;

  /** `db` targets the control_plane database. */
  constructor(db: DataApi) {
    this.#db = db;
  }

  /**
   * Plans a run in one transaction: the run, and every active tenant behind `targetVersion` (among `tenantIds`
   * when given) as `pending`, read from the registry without touching any tenant database. A run with no tenant is
   * recorded `succeeded` at once. When another run is `running`, nothing is written and its id returned.
   */
  async plan(run: {
    id: string;
    targetVersion: number;
    tenantIds: readonly string[] | undefined;
    thresholds: { count?: number | undefined; percentage?: number | undefined };
    defaultPercentage: number;
    createdBy: string;
  }): Promise<{ kind: 'planned'; id: string; tenants: number } | { kind: 'running'; id: string }> {
    return this.#db.transaction(async (tx) => {
      const inserted = await tx.query(
        `INSERT INTO fleet_migrations (id, status, scope, target_version, tenant_count, tolerated_failures, created_by)
         VALUES (:id, 'running', :scope, :targetVersion, 0, 0, :createdBy)
         ON CONFLICT (status) WHERE status = 'running' DO NOTHING
         RETURNING id`,
        {
          id: run.id,
          scope: run.tenantIds === undefined ? 'fleet' : 'tenants',
          targetVersion: run.targetVersion,
          createdBy: run.createdBy,
        },
        z.object({ id: z.string() }),
      );
      if (inserted.length === 0) {
        const [running] = await tx.query(
          `SELECT id FROM fleet_migrations WHERE status = 'running'`,
          {},
          z.object({ id: z.string() }),
        );
        return { kind: 'running' as const, id: running?.id ?? '' };
      }
      const tenants = await tx.execute(
        `INSERT INTO fleet_migration_tenants (migration_id, tenant_id, status, from_version)
         SELECT :id, t.id, 'pending', t.schema_version FROM tenants t
         WHERE t.status = 'active' AND coalesce(t.schema_version, 0) < :targetVersion
           ${run.tenantIds === undefined ? '' : 'AND t.id IN (SELECT jsonb_array_elements_text(CAST(:tenantIds AS jsonb)))'}`,
        {
          id: run.id,
          targetVersion: run.targetVersion,
          tenantIds: run.tenantIds === undefined ? undefined : json(run.tenantIds),
        },
      );
      await tx.execute(
        `UPDATE fleet_migrations SET tenant_count = :tenants, tolerated_failures = :tolerated,
           status = CASE WHEN :tenants = 0 THEN 'succeeded' ELSE 'running' END,
           ended_at = CASE WHEN :tenants = 0 THEN now() END
         WHERE id = :id`,
        {
          id: run.id,
          tenants,
          tolerated: toleratedFailures(tenants, run.thresholds, run.defaultPercentage),
        },
      );
      return { kind: 'planned' as const, id: run.id, tenants };
    });
  }

  /** Removes a run whose execution could not be started: nothing of it is left. */
  async discard(id: string): Promise<void> {
    await this.#db.execute('DELETE FROM fleet_migrations WHERE id = :id AND execution_arn IS NULL', { id });
  }

  async setExecutionArn(id: string, executionArn: string): Promise<void> {
    await this.#db.execute('UPDATE fleet_migrations SET execution_arn = :executionArn WHERE id = :id', {
      id,
      executionArn,
    });
  }

  async get(id: string): Promise<MigrationRecord | undefined> {
    const [run] = await this.#db.query(
      `SELECT ${MIGRATION_COLUMNS} FROM fleet_migrations WHERE id = :id`,
      { id },
      MigrationRow,
    );
    return run;
  }

  /** The run in progress, if any. */
  async running(): Promise<MigrationRecord | undefined> {
    const [run] = await this.#db.query(
      `SELECT ${MIGRATION_COLUMNS} FROM fleet_migrations WHERE status = 'running'`,
      {},
      MigrationRow,
    );
    return run;
  }

  /** The registry's status of each tenant asked for (absent: no such tenant). */
  async tenantStatuses(tenantIds: readonly string[]): Promise<Map<string, TenantStatus>> {
    const rows = await this.#db.query(
      `SELECT id, status FROM tenants WHERE id IN (SELECT jsonb_array_elements_text(CAST(:ids AS jsonb)))`,
      { ids: json(tenantIds) },
      z.object({ id: z.string(), status: z.enum(TENANT_STATUSES) }),
    );
    return new Map(rows.map((row) => [row.id, row.status]));
  }

  async counts(id: string): Promise<MigrationCounts> {
    const [row] = await this.#db.query(
      `SELECT count(*)::int AS tenants,
         count(*) FILTER (WHERE status = 'pending')::int AS pending,
         count(*) FILTER (WHERE status = 'succeeded')::int AS succeeded,
         count(*) FILTER (WHERE status = 'failed')::int AS failed,
         count(*) FILTER (WHERE status = 'skipped')::int AS skipped
       FROM fleet_migration_tenants WHERE migration_id = :id`,
      { id },
      z.object({
        tenants: z.number(),
        pending: z.number(),
        succeeded: z.number(),
        failed: z.number(),
        skipped: z.number(),
      }),
    );
    return row ?? { tenants: 0, pending: 0, succeeded: 0, failed: 0, skipped: 0 };
  }

  /** The run's failed tenants, with their slugs, in id order. */
  async failures(id: string) {
    return this.#db.query(
      `SELECT m.tenant_id, t.slug, m.from_version, m.error::text AS error
       FROM fleet_migration_tenants m LEFT JOIN tenants t ON t.id = m.tenant_id
       WHERE m.migration_id = :id AND m.status = 'failed' ORDER BY m.tenant_id`,
      { id },
      z.pipe(
        z.object({
          tenant_id: z.string(),
          slug: z.nullable(z.string()),
          from_version: z.nullable(z.number()),
          error: z.nullable(jsonText(ErrorJson)),
        }),
        z.transform((row) => ({
          tenantId: row.tenant_id,
          slug: row.slug,
          fromVersion: row.from_version,
          error: row.error ?? { error: 'Unknown', cause: '' },
        })),
      ),
    );
  }

  /** The run's threshold, its failures so far and its status: whether a chunk may go on. */
  async threshold(id: string): Promise<{ tolerated: number; failed: number; targetVersion: number }> {
    const [row] = await this.#db.query(
      `SELECT r.tolerated_failures, r.target_version,
         (SELECT count(*)::int FROM fleet_migration_tenants m WHERE m.migration_id = r.id AND m.status = 'failed')
           AS failed
       FROM fleet_migrations r WHERE r.id = :id`,
      { id },
      z.object({ tolerated_failures: z.number(), target_version: z.number(), failed: z.number() }),
    );
    if (!row) throw new Error(`No migration run ${id}`);
    return { tolerated: row.tolerated_failures, failed: row.failed, targetVersion: row.target_version };
  }

  /**
   * A chunk's tenants: their outcome in this run and their registry status now; one query. A chunk is a range of
   * the run's tenant ids (`from` to `to`), or the ids left over by an invocation that ran short of time.
   */
  async chunkTenants(id: string, chunk: ChunkSelection): Promise<ChunkTenant[]> {
    return this.#db.query(
      `SELECT m.tenant_id, m.status AS outcome, t.status AS tenant_status, t.schema_version
       FROM fleet_migration_tenants m LEFT JOIN tenants t ON t.id = m.tenant_id
       WHERE m.migration_id = :id AND ${selects(chunk)}
       ORDER BY m.tenant_id`,
      { id, ...selectionParams(chunk) },
      z.pipe(
        z.object({
          tenant_id: z.string(),
          outcome: z.enum(['pending', 'succeeded', 'failed', 'skipped']),
          tenant_status: z.nullable(z.enum(TENANT_STATUSES)),
          schema_version: z.nullable(z.number()),
        }),
        z.transform(
          (row): ChunkTenant => ({
            tenantId: row.tenant_id,
            outcome: row.outcome,
            tenantStatus: row.tenant_status,
            schemaVersion: row.schema_version,
          }),
        ),
      ),
    );
  }

  /** The run's pending tenant ids cut into ranges of `size` (chunks), in one query: the Map's items stay small. */
  async chunks(
    id: string,
    size: number,
  ): Promise<{ tenants: number; chunks: { from: string; to: string }[] }> {
    const rows = await this.#db.query(
      `SELECT min(tenant_id) AS "from", max(tenant_id) AS "to", count(*)::int AS n FROM (
         SELECT tenant_id, (row_number() OVER (ORDER BY tenant_id) - 1) / :size AS chunk
         FROM fleet_migration_tenants WHERE migration_id = :id AND status = 'pending'
       ) numbered GROUP BY chunk ORDER BY chunk`,
      { id, size },
      z.object({ from: z.string(), to: z.string(), n: z.number() }),
    );
    return {
      tenants: rows.reduce((sum, row) => sum + row.n, 0),
      chunks: rows.map((row) => ({ from: row.from, to: row.to })),
    };
  }

  /**
   * A tenant migrated: its outcome, and its schema version in the registry (never lowered), in one statement.
   */
  async tenantSucceeded(
    id: string,
    tenantId: string,
    result: { version: number; applied: readonly number[]; durationMs: number },
  ): Promise<void> {
    await this.#db.execute(
      `WITH registry AS (
         UPDATE tenants SET schema_version = :version, updated_at = now(), updated_by = 'migrate-fleet'
         WHERE id = :tenantId AND coalesce(schema_version, 0) < :version
       )
       UPDATE fleet_migration_tenants SET status = 'succeeded', to_version = :version,
         applied = CAST(:applied AS jsonb), duration_ms = :durationMs, ended_at = now(), error = NULL
       WHERE migration_id = :id AND tenant_id = :tenantId`,
      { id, tenantId, version: result.version, applied: json(result.applied), durationMs: result.durationMs },
    );
  }

  /** A tenant failed; returns the run's failures so far (for its threshold). */
  async tenantFailed(id: string, tenantId: string, error: RunError, durationMs: number): Promise<number> {
    const [row] = await this.#db.query(
      `WITH failed AS (
         UPDATE fleet_migration_tenants SET status = 'failed', error = CAST(:error AS jsonb),
           duration_ms = :durationMs, ended_at = now()
         WHERE migration_id = :id AND tenant_id = :tenantId AND status = 'pending'
         RETURNING 1
       )
       SELECT ((SELECT count(*) FROM failed) + (SELECT count(*) FROM fleet_migration_tenants
         WHERE migration_id = :id AND status = 'failed'))::int AS failed`,
      { id, tenantId, error: json(error), durationMs },
      z.object({ failed: z.number() }),
    );
    return row?.failed ?? 0;
  }

  /** Tenants not migrated by this run, with why; only those still pending. */
  async skip(id: string, tenantIds: readonly string[], reason: RunError): Promise<void> {
    if (tenantIds.length === 0) return;
    await this.#db.execute(
      `UPDATE fleet_migration_tenants SET status = 'skipped', error = CAST(:reason AS jsonb), ended_at = now()
       WHERE migration_id = :id AND status = 'pending'
         AND tenant_id IN (SELECT jsonb_array_elements_text(CAST(:ids AS jsonb)))`,
      { id, ids: json(tenantIds), reason: json(reason) },
    );
  }

  /** Tenants of a chunk whose invocation failed beyond its retries: failed with its error, if still pending. */
  async failPending(id: string, chunk: ChunkSelection, error: RunError): Promise<void> {
    await this.#db.execute(
      `UPDATE fleet_migration_tenants m SET status = 'failed', error = CAST(:error AS jsonb), ended_at = now()
       WHERE m.migration_id = :id AND m.status = 'pending' AND ${selects(chunk)}`,
      { id, ...selectionParams(chunk), error: json(error) },
    );
  }

  /**
   * Ends the run: tenants still pending are skipped (not started after the threshold was exceeded), then the status
   * follows: failed beyond the threshold, completed_with_failures within it, succeeded without failures.
   */
  async finish(id: string): Promise<{ status: MigrationStatus; counts: MigrationCounts }> {
    return this.#db.transaction(async (tx) => {
      const store = new FleetStore(tx);
      const { tolerated, failed } = await store.threshold(id);
      await tx.execute(
        `UPDATE fleet_migration_tenants SET status = 'skipped', error = CAST(:reason AS jsonb), ended_at = now()
         WHERE migration_id = :id AND status = 'pending'`,
        { id, reason: json(THRESHOLD_EXCEEDED(tolerated)) },
      );
      const counts = await store.counts(id);
      const status: MigrationStatus =
        failed > tolerated ? 'failed' : failed > 0 ? 'completed_with_failures' : 'succeeded';
      const error =
        status === 'failed'
          ? {
              error: 'ToleratedFailuresExceeded',
              cause: `${failed} tenants failed, more than the ${tolerated} tolerated; ${counts.skipped} were not started`,
            }
          : null;
      await tx.execute(
        `UPDATE fleet_migrations SET status = :status, error = CAST(:error AS jsonb), ended_at = coalesce(ended_at, now())
         WHERE id = :id AND status = 'running'`,
        { id, status, error: error === null ? null : json(error) },
      );
      return { status, counts };
    });
  }

  /** The run itself failed (not one tenant): recorded with why; its pending tenants are skipped. */
  async fail(id: string, error: RunError): Promise<void> {
    await this.#db.transaction(async (tx) => {
      await tx.execute(
        `UPDATE fleet_migration_tenants SET status = 'skipped', error = CAST(:reason AS jsonb), ended_at = now()
         WHERE migration_id = :id AND status = 'pending'`,
        { id, reason: json({ error: 'RunFailed', cause: 'The run failed before this tenant was migrated' }) },
      );
      await tx.execute(
        `UPDATE fleet_migrations SET status = 'failed', error = CAST(:error AS jsonb), ended_at = now()
         WHERE id = :id AND status = 'running'`,
        { id, error: json(error) },
      );
    });
  }
}

/** A chunk of a run: a range of its tenant ids, or the ids an invocation left over. */
export type ChunkSelection =
  | { readonly from: string; readonly to: string }
  | { readonly tenantIds: readonly string[] };

const selects = (chunk: ChunkSelection): string =>
  'tenantIds' in chunk
    ? 'm.tenant_id IN (SELECT jsonb_array_elements_text(CAST(:ids AS jsonb)))'
    : 'm.tenant_id BETWEEN :from AND :to';

const selectionParams = (chunk: ChunkSelection) =>
  'tenantIds' in chunk ? { ids: json(chunk.tenantIds) } : { from: chunk.from, to: chunk.to };

/** Why a tenant was not started: the run's failures passed its threshold. */
export const THRESHOLD_EXCEEDED = (tolerated: number): RunError => ({
  error: 'ToleratedFailuresExceeded',
  cause: `Not started: more than ${tolerated} tenants of the run had failed`,
});
