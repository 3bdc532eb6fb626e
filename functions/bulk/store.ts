import {
  BATCH_STATUSES,
  type BatchStatus,
  ROW_OUTCOMES,
  type RowError,
  type RowOutcome,
} from '../../schema/api/batches.ts';
import { TENANT_STATUSES } from '../../schema/api/tenants.ts';
import { newTenantId } from '../../schema/names.ts';
import * as z from '../../schema/zod.ts';
import { type DataApi, isoText, json, jsonText } from '../shared/data-api.ts';
import { NotFoundError } from '../shared/errors.ts';

/** A new batch id: `b` and 15 of `[a-z0-9]`, as random as a tenant id. */
export const newBatchId = (): string => `b${newTenantId().slice(1)}`;

const StoredRowError = z.object({ step: z.nullable(z.string()), error: z.string(), cause: z.string() });
const StoredError = z.object({ error: z.string(), cause: z.string() });

/** A row to record with a new batch. */
export interface NewBatchRow {
  readonly index: number;
  readonly line: number | null;
  readonly tenantId: string;
  readonly slug: string;
  readonly name: string;
  /** The validated create-tenant request. */
  readonly request: unknown;
}

export interface BatchRecord {
  readonly id: string;
  readonly status: BatchStatus;
  readonly source: 'json' | 'csv';
  readonly rowCount: number;
  readonly executionArn: string | null;
  readonly error: { error: string; cause: string } | null;
  readonly createdAt: string;
  readonly createdBy: string;
  readonly endedAt: string | null;
}

/** A row with what the registry says of its tenant now. */
export interface BatchRowRecord {
  readonly index: number;
  readonly line: number | null;
  readonly tenantId: string;
  readonly slug: string;
  readonly name: string;
  readonly status: RowOutcome;
  readonly error: RowError | null;
  readonly tenantStatus: (typeof TENANT_STATUSES)[number] | null;
  readonly tenantFailure: { step: string; error: string; cause: string } | null;
  readonly leftovers: string[] | null;
  /** The provisioning step last started. */
  readonly step: string | null;
}

/** A row as its run reads it: the request to provision and who asked. */
export interface RowToProvision {
  readonly tenantId: string;
  readonly slug: string;
  readonly status: RowOutcome;
  readonly request: unknown;
  readonly createdBy: string;
}

export interface BatchCounts {
  readonly rows: number;
  readonly pending: number;
  readonly provisioning: number;
  readonly succeeded: number;
  readonly failed: number;
}

const BatchRow = z.pipe(
  z.object({
    id: z.string(),
    status: z.enum(BATCH_STATUSES),
    source: z.enum(['json', 'csv']),
    row_count: z.number(),
    execution_arn: z.nullable(z.string()),
    error: z.nullable(jsonText(StoredError)),
    created_at: z.string(),
    created_by: z.string(),
    ended_at: z.nullable(z.string()),
  }),
  z.transform(
    (row): BatchRecord => ({
      id: row.id,
      status: row.status,
      source: row.source,
      rowCount: row.row_count,
      executionArn: row.execution_arn,
      error: row.error,
      createdAt: row.created_at,
      createdBy: row.created_by,
      endedAt: row.ended_at,
    }),
  ),
);

const RowWithTenant = z.pipe(
  z.object({
    row_index: z.number(),
    line: z.nullable(z.number()),
    tenant_id: z.string(),
    slug: z.string(),
    name: z.string(),
    status: z.enum(ROW_OUTCOMES),
    error: z.nullable(jsonText(StoredRowError)),
    tenant_status: z.nullable(z.enum(TENANT_STATUSES)),
    failure: z.nullable(jsonText(z.object({ step: z.string(), error: z.string(), cause: z.string() }))),
    leftovers: z.nullable(jsonText(z.array(z.string()))),
    step: z.nullable(z.string()),
  }),
  z.transform(
    (row): BatchRowRecord => ({
      index: row.row_index,
      line: row.line,
      tenantId: row.tenant_id,
      slug: row.slug,
      name: row.name,
      status: row.status,
      error: row.error,
      tenantStatus: row.tenant_status,
      tenantFailure: row.failure,
      leftovers: row.leftovers,
      step: row.step,
    }),
  ),
);

const BATCH_COLUMNS = `id, status, source, row_count, execution_arn, error::text AS error, ${isoText('created_at')} AS created_at,
  created_by, ${isoText('ended_at')} AS ended_at`;

/**
 * Batches and their rows in the `control_plane` database (`tenant_batches`, `tenant_batch_rows`): what the API
 * records when it accepts a batch, what each row's run records as it goes, and what `GET /tenant-batches/{id}`
 * reads, joined with the registry's view of each row's tenant.
 */
export class BatchStore {
  readonly #db: DataApi;

  /** `db` targets the control_plane database. */
  constructor(db: DataApi) {
    this.#db = db;
  }

  /** Records a batch and all its rows (`pending`), in one transaction of two statements. */
  async create(batch: {
    id: string;
    source: 'json' | 'csv';
    createdBy: string;
    rows: readonly NewBatchRow[];
  }): Promise<void> {
    await this.#db.transaction(async (tx) => {
      await tx.execute(
        `INSERT INTO tenant_batches (id, status, source, row_count, created_by)
         VALUES (:id, 'running', :source, :rowCount, :createdBy)`,
        { id: batch.id, source: batch.source, rowCount: batch.rows.length, createdBy: batch.createdBy },
      );
      await tx.execute(
        `INSERT INTO tenant_batch_rows (batch_id, row_index, line, tenant_id, slug, name, request, status)
         SELECT :id, r.row_index, r.line, r.tenant_id, r.slug, r.name, r.request, 'pending'
         FROM jsonb_to_recordset(CAST(:rows AS jsonb))
           AS r (row_index integer, line integer, tenant_id text, slug text, name text, request jsonb)`,
        {
          id: batch.id,
          rows: json(
            batch.rows.map((row) => ({
              row_index: row.index,
              line: row.line,
              tenant_id: row.tenantId,
              slug: row.slug,
              name: row.name,
              request: row.request,
            })),
          ),
        },
      );
    });
  }

  /** Removes a batch whose run could not be started: nothing of it is left. */
  async discard(id: string): Promise<void> {
    await this.#db.execute('DELETE FROM tenant_batches WHERE id = :id AND execution_arn IS NULL', { id });
  }

  async setExecutionArn(id: string, executionArn: string): Promise<void> {
    await this.#db.execute('UPDATE tenant_batches SET execution_arn = :executionArn WHERE id = :id', {
      id,
      executionArn,
    });
  }

  async get(id: string): Promise<BatchRecord | undefined> {
    const [batch] = await this.#db.query(
      `SELECT ${BATCH_COLUMNS} FROM tenant_batches WHERE id = :id`,
      { id },
      BatchRow,
    );
    return batch;
  }

  /** Every row of the batch in order, each with its tenant's status, failure and last step: one query. */
  async rows(id: string): Promise<BatchRowRecord[]> {
    return this.#db.query(
      `SELECT r.row_index, r.line, r.tenant_id, r.slug, r.name, r.status, r.error::text AS error,
         t.status AS tenant_status, t.failure::text AS failure, t.leftovers::text AS leftovers,
         (SELECT s.step FROM tenant_steps s WHERE s.tenant_id = r.tenant_id
          ORDER BY s.started_at DESC, s.step DESC LIMIT 1) AS step
       FROM tenant_batch_rows r LEFT JOIN tenants t ON t.id = r.tenant_id
       WHERE r.batch_id = :id ORDER BY r.row_index`,
      { id },
      RowWithTenant,
    );
  }

  /** The row a run provisions; a {@link NotFoundError} when the batch has no such row. */
  async rowToProvision(batchId: string, index: number): Promise<RowToProvision> {
    const [row] = await this.#db.query(
      `SELECT r.tenant_id, r.slug, r.status, r.request::text AS request, b.created_by
       FROM tenant_batch_rows r JOIN tenant_batches b ON b.id = r.batch_id
       WHERE r.batch_id = :batchId AND r.row_index = :index`,
      { batchId, index },
      z.pipe(
        z.object({
          tenant_id: z.string(),
          slug: z.string(),
          status: z.enum(ROW_OUTCOMES),
          request: jsonText(z.unknown()),
          created_by: z.string(),
        }),
        z.transform(
          (row): RowToProvision => ({
            tenantId: row.tenant_id,
            slug: row.slug,
            status: row.status,
            request: row.request,
            createdBy: row.created_by,
          }),
        ),
      ),
    );
    if (!row) throw new NotFoundError(`Batch ${batchId} has no row ${index}`);
    return row;
  }

  /** The row's tenant is reserved and its provisioning started. */
  async rowProvisioning(batchId: string, index: number): Promise<void> {
    await this.#db.execute(
      `UPDATE tenant_batch_rows SET status = 'provisioning', started_at = coalesce(started_at, now())
       WHERE batch_id = :batchId AND row_index = :index AND status = 'pending'`,
      { batchId, index },
    );
  }

  /** The row's outcome; a row already ended keeps its first outcome (a retried task must not change it). */
  async rowEnded(
    batchId: string,
    index: number,
    status: 'succeeded' | 'failed',
    error: RowError | null,
  ): Promise<void> {
    await this.#db.execute(
      `UPDATE tenant_batch_rows SET status = :status, error = CAST(:error AS jsonb), ended_at = now(),
         started_at = coalesce(started_at, now())
       WHERE batch_id = :batchId AND row_index = :index AND status IN ('pending', 'provisioning')`,
      { batchId, index, status, error: error === null ? null : json(error) },
    );
  }

  /**
   * Ends the batch: a row its run left without an outcome is failed (its tenant, if any, says more), then the
   * batch's status follows from its rows': succeeded when all succeeded, failed when none did.
   */
  async finish(id: string, noOutcome: RowError): Promise<{ status: BatchStatus; counts: BatchCounts }> {
    return this.#db.transaction(async (tx) => {
      await tx.execute(
        `UPDATE tenant_batch_rows SET status = 'failed', error = CAST(:error AS jsonb), ended_at = now()
         WHERE batch_id = :id AND status IN ('pending', 'provisioning')`,
        { id, error: json(noOutcome) },
      );
      const counts = await new BatchStore(tx).counts(id);
      const status: BatchStatus =
        counts.failed === 0 ? 'succeeded' : counts.succeeded === 0 ? 'failed' : 'completed_with_failures';
      await tx.execute(
        `UPDATE tenant_batches SET status = :status, ended_at = coalesce(ended_at, now())
         WHERE id = :id AND status = 'running'`,
        { id, status },
      );
      return { status, counts };
    });
  }

  /**
   * The batch's run ended without finishing the batch (it failed as a whole, was stopped, timed out, or died with
   * the process running it): `error` is recorded as why, and the batch is settled from its rows' tenants, which go
   * on without the run (each row's provisioning is an execution of its own, which the reconciler finishes or rolls
   * back when it dies too). A row without an outcome takes its tenant's: succeeded when the tenant got past
   * provisioning, failed with the tenant's failure when it failed, failed with `error` when the row never reserved
   * its tenant. Once no row is left without an outcome the batch ends as {@link finish} ends it (`failed` only when
   * no row succeeded; the run's error is kept then); until then it stays `running`, and the next settle (a read of
   * the batch, a pass of the reconciler) tries again. Returns the batch's status.
   */
  async fail(id: string, error: { error: string; cause: string }): Promise<BatchStatus> {
    const rowError = json({ step: null, ...error });
    return this.#db.transaction(async (tx) => {
      await tx.execute(
        `UPDATE tenant_batch_rows r SET
           status = CASE WHEN t.id IS NULL OR t.status IN ('failed', 'rollback_failed') THEN 'failed'
                    ELSE 'succeeded' END,
           error = CASE
             WHEN t.id IS NULL THEN CAST(:rowError AS jsonb)
             WHEN t.status IN ('failed', 'rollback_failed') THEN jsonb_build_object(
               'step', t.failure->>'step',
               'error', coalesce(t.failure->>'error', 'ProvisioningFailed'),
               'cause', coalesce(t.failure->>'cause', 'The tenant ended ' || t.status))
             ELSE NULL END,
           ended_at = now(), started_at = coalesce(r.started_at, now())
         FROM tenant_batch_rows o LEFT JOIN tenants t ON t.id = o.tenant_id
         WHERE o.batch_id = :id AND o.status IN ('pending', 'provisioning')
           AND (t.id IS NULL OR t.status <> 'provisioning')
           AND r.batch_id = o.batch_id AND r.row_index = o.row_index`,
        { id, rowError },
      );
      const counts = await new BatchStore(tx).counts(id);
      if (counts.pending + counts.provisioning > 0) {
        await tx.execute(
          `UPDATE tenant_batches SET error = coalesce(error, CAST(:error AS jsonb))
           WHERE id = :id AND status = 'running'`,
          { id, error: json(error) },
        );
        return 'running';
      }
      const status: BatchStatus =
        counts.failed === 0 ? 'succeeded' : counts.succeeded === 0 ? 'failed' : 'completed_with_failures';
      await tx.execute(
        `UPDATE tenant_batches SET status = :status, ended_at = now(),
           error = CASE WHEN CAST(:status AS text) = 'failed' THEN coalesce(error, CAST(:error AS jsonb)) END
         WHERE id = :id AND status = 'running'`,
        { id, status, error: json(error) },
      );
      return status;
    });
  }

  /** Batches whose run has not finished them, oldest first: what the reconciler settles when their run is gone. */
  async running(): Promise<{ id: string; executionArn: string | null; createdAt: string }[]> {
    return this.#db.query(
      `SELECT id, execution_arn, ${isoText('created_at')} AS created_at FROM tenant_batches
       WHERE status = 'running' ORDER BY created_at`,
      {},
      z.pipe(
        z.object({ id: z.string(), execution_arn: z.nullable(z.string()), created_at: z.string() }),
        z.transform((row) => ({ id: row.id, executionArn: row.execution_arn, createdAt: row.created_at })),
      ),
    );
  }

  async counts(id: string): Promise<BatchCounts> {
    const [row] = await this.#db.query(
      `SELECT count(*)::int AS rows,
         count(*) FILTER (WHERE status = 'pending')::int AS pending,
         count(*) FILTER (WHERE status = 'provisioning')::int AS provisioning,
         count(*) FILTER (WHERE status = 'succeeded')::int AS succeeded,
         count(*) FILTER (WHERE status = 'failed')::int AS failed
       FROM tenant_batch_rows WHERE batch_id = :id`,
      { id },
      z.object({
        rows: z.number(),
        pending: z.number(),
        provisioning: z.number(),
        succeeded: z.number(),
        failed: z.number(),
      }),
    );
    return row ?? { rows: 0, pending: 0, provisioning: 0, succeeded: 0, failed: 0 };
  }
}
