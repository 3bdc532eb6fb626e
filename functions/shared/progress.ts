import * as z from '../../schema/zod.ts';
import { isoText, json, jsonText, type Sql } from './data-api.ts';
import { NotFoundError } from './errors.ts';
import {
  TENANT_COLUMNS,
  type Tenant,
  type TenantResources,
  TenantRow,
  type TenantStatus,
} from './tenants.ts';

/** Progress of one step of a tenant's provisioning. */
export interface StepRecord {
  step: string;
  status: 'running' | 'succeeded' | 'failed';
  startedAt: string;
  endedAt: string | null;
  durationMs: number | null;
  /** How many times the step started (Step Functions retries included). */
  attempts: number;
  error: { error: string; cause: string } | null;
}

/** What a step changes of its tenant, written with its success (see {@link ProgressStore.stepSucceeded}). */
export interface StepChange {
  /** Merged into the tenant's resources, key by top-level key. */
  readonly resources?: TenantResources;
  readonly schemaVersion?: number;
  readonly by: string;
}

const StepRow = z.pipe(
  z.object({
    step: z.string(),
    status: z.enum(['running', 'succeeded', 'failed']),
    started_at: z.string(),
    ended_at: z.nullable(z.string()),
    duration_ms: z.nullable(z.number()),
    attempts: z.number(),
    error: z.nullable(jsonText(z.object({ error: z.string(), cause: z.string() }))),
  }),
  z.transform(
    (row): StepRecord => ({
      step: row.step,
      status: row.status,
      startedAt: row.started_at,
      endedAt: row.ended_at,
      durationMs: row.duration_ms,
      attempts: row.attempts,
      error: row.error,
    }),
  ),
);

const DURATION_MS = '(extract(epoch FROM now() - tenant_steps.started_at) * 1000)::integer';

/** A tenant row (parsed by TenantRow after) and whether the step's start was recorded. */
const StepStartedRow = z.looseObject({ step_started: z.boolean() });
const ChangedRow = z.object({ changed: z.number() });

/**
 * A step recorded again: its attempts go up; its start stays that of the first attempt so that the duration
 * covers the retries, unless the step had succeeded (a new run).
 */
const STEP_RESTARTED = `ON CONFLICT (tenant_id, step) DO UPDATE SET
  status = 'running',
  attempts = tenant_steps.attempts + 1,
  started_at = CASE WHEN tenant_steps.status = 'succeeded' THEN now() ELSE tenant_steps.started_at END,
  ended_at = NULL, duration_ms = NULL, error = NULL`;

/**
 * The progress of each tenant's steps (`control_plane.tenant_steps`), which `GET /tenants/{id}` shows. A step's
 * start is recorded with the read of its tenant, and its success with what it changes of the tenant, each in one
 * statement (see functions/shared/step.ts).
 */
export class ProgressStore {
  readonly #db: Sql;

  /** `db` targets the control_plane database. */
  constructor(db: Sql) {
    this.#db = db;
  }

  /**
   * A step starts: recorded `running`. On a repeat (a retry) its attempts go up; its start stays that of the
   * first attempt so that the duration covers the retries, unless the step had succeeded (a new run).
   */
  async stepStarted(id: string, step: string): Promise<void> {
    await this.#db.execute(
      `INSERT INTO tenant_steps (tenant_id, step, status, attempts, started_at)
       VALUES (:id, :step, 'running', 1, now())
       ${STEP_RESTARTED}`,
      { id, step },
    );
  }

  /**
   * A step begins, in one statement: the tenant is read and the step recorded started (as {@link stepStarted}),
   * the start only when the tenant's status is one of `statuses` (any, without them). Returns the tenant as read
   * (undefined when there is none) and whether the start was recorded.
   */
  async beginStep(
    id: string,
    step: string,
    statuses?: readonly TenantStatus[],
  ): Promise<{ tenant: Tenant | undefined; started: boolean }> {
    const [row] = await this.#db.query(
      `WITH tenant AS (SELECT ${TENANT_COLUMNS} FROM tenants WHERE id = :id),
       started AS (
         INSERT INTO tenant_steps (tenant_id, step, status, attempts, started_at)
         SELECT tenant.id, :step, 'running', 1, now() FROM tenant
         WHERE CAST(:statuses AS jsonb) IS NULL
           OR tenant.status IN (SELECT jsonb_array_elements_text(CAST(:statuses AS jsonb)))
         ${STEP_RESTARTED}
         RETURNING 1)
       SELECT tenant.*, EXISTS (SELECT 1 FROM started) AS step_started FROM tenant`,
      { id, step, statuses: statuses ? json(statuses) : null },
      StepStartedRow,
    );
    return { tenant: row ? TenantRow.parse(row) : undefined, started: row?.step_started ?? false };
  }

  /**
   * A step succeeded; with `change`, what it changes of the tenant (resources merged key by key, the schema
   * version) is written in the same statement, so that a step's outcome and its record never part.
   * A {@link NotFoundError} when a change is given and there is no such tenant.
   */
  async stepSucceeded(id: string, step: string, change?: StepChange): Promise<void> {
    if (!change) {
      await this.#stepEnded(id, step, 'succeeded', null);
      return;
    }
    const [row] = await this.#db.query(
      `WITH changed AS (
         UPDATE tenants SET resources = resources || CAST(:resources AS jsonb),
           schema_version = coalesce(CAST(:schemaVersion AS integer), schema_version),
           updated_at = now(), updated_by = :by
         WHERE id = :id RETURNING id),
       ended AS (
         INSERT INTO tenant_steps (tenant_id, step, status, attempts, started_at, ended_at, duration_ms, error)
         SELECT changed.id, :step, 'succeeded', 1, now(), now(), 0, NULL FROM changed
         ON CONFLICT (tenant_id, step) DO UPDATE SET
           status = EXCLUDED.status, ended_at = now(), duration_ms = ${DURATION_MS}, error = EXCLUDED.error
         RETURNING 1)
       SELECT (SELECT count(*) FROM changed)::int AS changed`,
      {
        id,
        step,
        resources: json(change.resources ?? {}),
        schemaVersion: change.schemaVersion ?? null,
        by: change.by,
      },
      ChangedRow,
    );
    if (!row || row.changed === 0) throw new NotFoundError(`No tenant ${id}`);
  }

  async stepFailed(id: string, step: string, error: { error: string; cause: string }): Promise<void> {
    await this.#stepEnded(id, step, 'failed', error);
  }

  async #stepEnded(
    id: string,
    step: string,
    status: 'succeeded' | 'failed',
    error: { error: string; cause: string } | null,
  ): Promise<void> {
    // An end without a recorded start (a step that failed before it could record one) still shows.
    await this.#db.execute(
      `INSERT INTO tenant_steps (tenant_id, step, status, attempts, started_at, ended_at, duration_ms, error)
       VALUES (:id, :step, :status, 1, now(), now(), 0, CAST(:error AS jsonb))
       ON CONFLICT (tenant_id, step) DO UPDATE SET
         status = EXCLUDED.status, ended_at = now(), duration_ms = ${DURATION_MS}, error = EXCLUDED.error`,
      { id, step, status, error: error === null ? null : json(error) },
    );
  }

  /** The tenant's steps, in the order they started. */
  async steps(id: string): Promise<StepRecord[]> {
    return this.#db.query(
      `SELECT step, status, ${isoText('started_at')} AS started_at, ${isoText('ended_at')} AS ended_at, duration_ms,
         attempts, error::text AS error
       FROM tenant_steps WHERE tenant_id = :id ORDER BY started_at, step`,
      { id },
      StepRow,
    );
  }
}
