import { BACKUP_KINDS, type BackupSummary, type LifecycleOperation } from '../../schema/api/lifecycle.ts';
import type { BackupPolicy, PlanLimits, PlanName } from '../../schema/plans.ts';
import * as z from '../../schema/zod.ts';
import { type DataApi, isoText, json, jsonText } from '../shared/data-api.ts';
import { OperationInProgressError, TenantStateError } from '../shared/errors.ts';
import {
  type StepFailure,
  TENANT_STATUSES,
  type Tenant,
  type TenantStatus,
  TenantStore,
} from '../shared/tenants.ts';

/** A lifecycle operation as `tenant_operations` holds it. */
export interface OperationRecord {
  readonly id: string;
  readonly tenantId: string;
  readonly operation: LifecycleOperation;
  readonly status: 'running' | 'succeeded' | 'failed';
  readonly request: Record<string, unknown>;
  readonly fromStatus: TenantStatus;
  readonly executionArn: string | null;
  readonly requestedBy: string;
}

/** What a request to start an operation claims. */
export interface OperationClaim {
  readonly tenantId: string;
  readonly operation: LifecycleOperation;
  /** The validated request, kept with the operation (never a secret). */
  readonly request: Record<string, unknown>;
  /** The statuses the operation may start from; another is a {@link TenantStateError}. */
  readonly from: readonly TenantStatus[];
  /** A status the tenant takes at once, in the same transaction (delete: `deprovisioning`). */
  readonly setStatus?: TenantStatus;
  readonly by: string;
  /** More checks on the locked tenant, inside the transaction (e.g. the delete's confirmation). */
  readonly check?: (tenant: Tenant) => void;
}

/** SQLSTATE 23505 unique_violation, as the Data API words it: a second running operation for the tenant. */
const UNIQUE_VIOLATION = 'SQLState: 23505';

const jsonObject = jsonText(z.record(z.string(), z.unknown()));

const OperationRow = z.pipe(
  z.object({
    id: z.union([z.string(), z.number()]),
    tenant_id: z.string(),
    operation: z.enum(['suspend', 'resume', 'change_plan', 'delete', 'backup', 'restore']),
    status: z.enum(['running', 'succeeded', 'failed']),
    request: jsonObject,
    from_status: z.enum(TENANT_STATUSES),
    execution_arn: z.nullable(z.string()),
    requested_by: z.string(),
  }),
  z.transform(
    (row): OperationRecord => ({
      id: String(row.id),
      tenantId: row.tenant_id,
      operation: row.operation,
      status: row.status,
      request: row.request,
      fromStatus: row.from_status,
      executionArn: row.execution_arn,
      requestedBy: row.requested_by,
    }),
  ),
);

const OPERATION_COLUMNS =
  'id::text AS id, tenant_id, operation, status, request::text AS request, from_status, execution_arn, requested_by';

const BackupRow = z.pipe(
  z.object({
    tenant_id: z.string(),
    backup_id: z.string(),
    kind: z.enum(BACKUP_KINDS),
    bucket: z.string(),
    prefix: z.string(),
    manifest_key: z.string(),
    schema_version: z.number(),
    tables: z.number(),
    rows: z.union([z.number(), z.string()]),
    bytes: z.union([z.number(), z.string()]),
    created_at: z.string(),
  }),
  z.transform(
    (row): BackupSummary => ({
      backupId: row.backup_id,
      tenantId: row.tenant_id,
      kind: row.kind,
      createdAt: row.created_at,
      schemaVersion: row.schema_version,
      tables: row.tables,
      rows: Number(row.rows),
      bytes: Number(row.bytes),
      location: { bucket: row.bucket, prefix: row.prefix, manifest: row.manifest_key },
    }),
  ),
);

/** A completed backup, as {@link LifecycleStore.recordBackup} records it. */
export interface BackupRecord {
  readonly tenantId: string;
  readonly backupId: string;
  readonly kind: (typeof BACKUP_KINDS)[number];
  readonly bucket: string;
  readonly prefix: string;
  readonly manifestKey: string;
  readonly schemaVersion: number;
  readonly tables: number;
  readonly rows: number;
  readonly bytes: number;
  readonly manifestSha256: string;
  readonly by: string;
}

/**
 * The lifecycle's part of the registry (`control_plane`): operations (at most one running per tenant), completed
 * backups, and plan changes. The API claims an operation before it starts the execution; the execution's last
 * task finishes it.
 *
 * Lock order: a transaction that writes both the tenant row and its operations takes the tenant row first. The
 * claim locks the tenant and then inserts an operation, whose unique check waits for any transaction holding a
 * running operation of the tenant; a transaction writing them the other way round deadlocks with it (40P01).
 */
export class LifecycleStore {
  readonly #db: DataApi;

  /** `db` targets the control_plane database. */
  constructor(db: DataApi) {
    this.#db = db;
  }

  /**
   * Claims an operation, in one transaction: the tenant row is locked, its status checked, the operation inserted
   * (the partial unique index refuses a second running one) and, with `setStatus`, the status changed.
   * {@link TenantStateError} for a status the operation may not start from; {@link OperationInProgressError} when
   * another operation runs.
   */
  async begin(claim: OperationClaim): Promise<{ operationId: string; tenant: Tenant }> {
    try {
      return await this.#db.transaction(async (tx) => {
        await tx.execute('SELECT 1 FROM tenants WHERE id = :id FOR UPDATE', { id: claim.tenantId });
        const tenant = await new TenantStore(tx).require(claim.tenantId);
        if (!claim.from.includes(tenant.status)) {
          throw new TenantStateError(
            `Tenant ${tenant.id} is ${tenant.status}: ${claim.operation.replace('_', ' ')} needs ${claim.from.join(' or ')}`,
          );
        }
        claim.check?.(tenant);
        const [row] = await tx.query(
          `INSERT INTO tenant_operations (tenant_id, operation, request, from_status, requested_by)
           VALUES (:tenantId, :operation, CAST(:request AS jsonb), :fromStatus, :by)
           RETURNING id::text AS id`,
          {
            tenantId: tenant.id,
            operation: claim.operation,
            request: json(claim.request),
            fromStatus: tenant.status,
            by: claim.by,
          },
          z.object({ id: z.string() }),
        );
        if (!row) throw new Error('INSERT … RETURNING returned no row');
        if (claim.setStatus !== undefined) {
          await new TenantStore(tx).setStatus(tenant.id, claim.setStatus, claim.by);
        }
        return { operationId: row.id, tenant };
      });
    } catch (error) {
      if (error instanceof Error && error.message.includes(UNIQUE_VIOLATION)) {
        throw new OperationInProgressError(`Another operation is running for tenant ${claim.tenantId}`);
      }
      throw error;
    }
  }

  /**
   * The execution doing the operation; also the tenant's `executionArn`, so that GET shows the latest run. The
   * tenant row first, then the operation: the lock order of {@link begin}.
   */
  async setExecution(operationId: string, tenantId: string, executionArn: string, by: string): Promise<void> {
    await this.#db.transaction(async (tx) => {
      await new TenantStore(tx).setExecutionArn(tenantId, executionArn, by);
      await tx.execute(
        'UPDATE tenant_operations SET execution_arn = :executionArn WHERE id = CAST(:id AS bigint)',
        {
          id: operationId,
          executionArn,
        },
      );
    });
  }

  /**
   * Undoes a {@link begin} whose execution could not start: the tenant gets back the status it had and the
   * operation row goes (in that order, the lock order of {@link begin}), so that nothing is left of the refused
   * request.
   */
  async abandon(operationId: string, tenantId: string, status: TenantStatus, by: string): Promise<void> {
    await this.#db.transaction(async (tx) => {
      await new TenantStore(tx).setStatus(tenantId, status, by);
      await tx.execute(
        "DELETE FROM tenant_operations WHERE id = CAST(:id AS bigint) AND status = 'running'",
        {
          id: operationId,
        },
      );
    });
  }

  async get(operationId: string): Promise<OperationRecord | undefined> {
    const [row] = await this.#db.query(
      `SELECT ${OPERATION_COLUMNS} FROM tenant_operations WHERE id = CAST(:id AS bigint)`,
      { id: operationId },
      OperationRow,
    );
    return row;
  }

  /** The tenant's running operation, if any. */
  async running(tenantId: string): Promise<OperationRecord | undefined> {
    const [row] = await this.#db.query(
      `SELECT ${OPERATION_COLUMNS} FROM tenant_operations WHERE tenant_id = :tenantId AND status = 'running'`,
      { tenantId },
      OperationRow,
    );
    return row;
  }

  /** Every running operation, oldest first: what the reconciler looks at for runs that died. */
  async allRunning(): Promise<OperationRecord[]> {
    return this.#db.query(
      `SELECT ${OPERATION_COLUMNS} FROM tenant_operations WHERE status = 'running' ORDER BY id`,
      {},
      OperationRow,
    );
  }

  /**
   * Replaces a running operation whose execution ended or vanished without closing it by a new operation of the
   * same kind, from the same status, for the same requester, with `request`: in one transaction (the tenant row
   * first), the old one is closed failed with `failure` and the new one claimed, not yet started. Undefined, and
   * nothing changed, when the old one is no longer running (its run, the API or another reconciler closed it).
   */
  async replace(
    old: OperationRecord,
    failure: StepFailure,
    request: Record<string, unknown>,
  ): Promise<{ operationId: string } | undefined> {
    return this.#db.transaction(async (tx) => {
      await tx.execute('SELECT 1 FROM tenants WHERE id = :id FOR UPDATE', { id: old.tenantId });
      const closed = await tx.execute(
        `UPDATE tenant_operations SET status = 'failed', failure = CAST(:failure AS jsonb), ended_at = now()
         WHERE id = CAST(:id AS bigint) AND status = 'running'`,
        { id: old.id, failure: json(failure) },
      );
      if (closed === 0) return undefined;
      const [row] = await tx.query(
        `INSERT INTO tenant_operations (tenant_id, operation, request, from_status, requested_by)
         VALUES (:tenantId, :operation, CAST(:request AS jsonb), :fromStatus, :by)
         RETURNING id::text AS id`,
        {
          tenantId: old.tenantId,
          operation: old.operation,
          request: json(request),
          fromStatus: old.fromStatus,
          by: old.requestedBy,
        },
        z.object({ id: z.string() }),
      );
      if (!row) throw new Error('INSERT … RETURNING returned no row');
      return { operationId: row.id };
    });
  }

  /** Ends an operation; a second end (a retried task) changes nothing. Returns whether this call ended it. */
  async finish(
    operationId: string,
    status: 'succeeded' | 'failed',
    failure: StepFailure | null = null,
  ): Promise<boolean> {
    const changed = await this.#db.execute(
      `UPDATE tenant_operations SET status = :status, failure = CAST(:failure AS jsonb), ended_at = now()
       WHERE id = CAST(:id AS bigint) AND status = 'running'`,
      { id: operationId, status, failure: failure === null ? null : json(failure) },
    );
    return changed > 0;
  }

  /** The tenant's plan and limits (the registry's quotas), after the plan change has been applied. */
  /** The tenant's plan and limits, and its backup policy when given (the configuration's `backupPolicy`). */
  async setPlan(
    tenantId: string,
    plan: PlanName,
    limits: PlanLimits,
    by: string,
    backupPolicy?: BackupPolicy,
  ): Promise<void> {
    await this.#db.execute(
      `UPDATE tenants SET plan = :plan, limits = CAST(:limits AS jsonb),
         config = CASE WHEN CAST(:policy AS jsonb) IS NULL THEN config
           ELSE jsonb_set(config, '{backupPolicy}', CAST(:policy AS jsonb)) END,
         updated_at = now(), updated_by = :by
       WHERE id = :id`,
      { id: tenantId, plan, limits: json(limits), policy: backupPolicy ? json(backupPolicy) : null, by },
    );
  }

  /** Records a completed backup (its manifest written); recording it again changes nothing. */
  async recordBackup(backup: BackupRecord): Promise<void> {
    await this.#db.execute(
      `INSERT INTO tenant_backups (tenant_id, backup_id, kind, bucket, prefix, manifest_key, schema_version, tables,
         rows, bytes, manifest_sha256, created_at, created_by)
       VALUES (:tenantId, :backupId, :kind, :bucket, :prefix, :manifestKey, :schemaVersion, :tables, :rows, :bytes,
         :manifestSha256, CAST(:backupId AS timestamptz), :by)
       ON CONFLICT (tenant_id, backup_id) DO NOTHING`,
      {
        tenantId: backup.tenantId,
        backupId: backup.backupId,
        kind: backup.kind,
        bucket: backup.bucket,
        prefix: backup.prefix,
        manifestKey: backup.manifestKey,
        schemaVersion: backup.schemaVersion,
        tables: backup.tables,
        rows: backup.rows,
        bytes: backup.bytes,
        manifestSha256: backup.manifestSha256,
        by: backup.by,
      },
    );
  }

  async backup(tenantId: string, backupId: string): Promise<BackupSummary | undefined> {
    const [row] = await this.#db.query(
      `SELECT tenant_id, backup_id, kind, bucket, prefix, manifest_key, schema_version, tables, rows, bytes,
         ${isoText('created_at')} AS created_at
       FROM tenant_backups WHERE tenant_id = :tenantId AND backup_id = :backupId`,
      { tenantId, backupId },
      BackupRow,
    );
    return row;
  }

  /** The tenant's completed backups, newest first. */
  async backups(tenantId: string): Promise<BackupSummary[]> {
    return this.#db.query(
      `SELECT tenant_id, backup_id, kind, bucket, prefix, manifest_key, schema_version, tables, rows, bytes,
         ${isoText('created_at')} AS created_at
       FROM tenant_backups WHERE tenant_id = :tenantId ORDER BY backup_id DESC`,
      { tenantId },
      BackupRow,
    );
  }
}
