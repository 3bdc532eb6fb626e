import { TENANT_STATUSES, TenantConfig } from '../../schema/api/tenants.ts';
import { isoText, json, jsonText, type Sql } from './data-api.ts';
import { NotFoundError } from './errors.ts';
import type { DatabaseRole } from './names.ts';
import { PLAN_NAMES, type PlanLimits, type PlanName } from './plans.ts';
import * as z from './zod.ts';

export { TENANT_STATUSES, TenantConfig };
export type TenantStatus = (typeof TENANT_STATUSES)[number];

/** Where a deleted tenant's final backup is. */
export interface FinalBackup {
  backupId: string;
  bucket: string;
  prefix: string;
  manifest: string;
}

/** Names and ARNs of what provisioning made for a tenant; never a secret value. */
export interface TenantResources {
  database?: string;
  /** Secret ARNs by database role. */
  secrets?: Partial<Record<DatabaseRole, string>>;
  invitationSecretArn?: string;
  storage?: { bucket: string; prefix: string };
  /** Alarm names. */
  alarms?: string[];
  /** For a deleted tenant: its final backup (`GET /tenants/{id}/backups` lists every backup). */
  finalBackup?: FinalBackup;
}

/** Why provisioning failed: the step (state name), the error name and its cause. */
export interface StepFailure {
  step: string;
  error: string;
  cause: string;
}

/** A tenant as the registry holds it. */
export interface Tenant {
  id: string;
  slug: string;
  name: string;
  plan: PlanName;
  status: TenantStatus;
  /** Effective limits: the plan's, lowered where the request asked. */
  limits: PlanLimits;
  /** The validated request beside name, slug, plan and limits. */
  config: TenantConfig;
  resources: TenantResources;
  failure: StepFailure | null;
  /** For rollback_failed: what could not be undone. */
  leftovers: string[] | null;
  executionArn: string | null;
  schemaVersion: number | null;
  createdAt: string;
  createdBy: string;
  updatedAt: string;
  updatedBy: string;
}

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

/** A tenant not yet in the registry: what `reserve` writes. */
export interface NewTenant {
  id: string;
  slug: string;
  name: string;
  plan: PlanName;
  limits: PlanLimits;
  config: TenantConfig;
}

export interface ListTenantsOptions {
  status?: TenantStatus;
  plan?: PlanName;
  /** Tenants with an id after this one (keyset pagination). */
  after?: string;
  limit: number;
}

/** What a claim of an `Idempotency-Key` found. */
export type IdempotencyClaim =
  | { readonly kind: 'claimed' }
  | { readonly kind: 'answered'; readonly statusCode: number; readonly body: unknown }
  | { readonly kind: 'in_progress' }
  | { readonly kind: 'mismatch' };

/** How long a key's first answer is replayed. */
export const IDEMPOTENCY_TTL_HOURS = 24;
/**
 * A claim without an answer this old is taken over: its request died (a Lambda runs at most 30 s behind an
 * API Gateway that waits 30 s), and the key would otherwise be stuck until it expires.
 */
export const IDEMPOTENCY_STALE_SECONDS = 120;
/** How often a claim is tried when its key is released between its two statements each time. */
const CLAIM_ATTEMPTS = 3;

const LimitsRow = z.object({
  maxUsers: z.number(),
  storageQuotaGb: z.number(),
  maxConnections: z.number(),
  maxApiKeys: z.number(),
  apiRequestsPerMinute: z.number(),
});

// Not strict: a step may record more than this version knows of, and reading must not fail on it.
const ResourcesRow = z.object({
  database: z.optional(z.string()),
  secrets: z.optional(
    z.object({
      admin: z.optional(z.string()),
      app: z.optional(z.string()),
      readonly: z.optional(z.string()),
      auditor: z.optional(z.string()),
    }),
  ),
  invitationSecretArn: z.optional(z.string()),
  storage: z.optional(z.object({ bucket: z.string(), prefix: z.string() })),
  alarms: z.optional(z.array(z.string())),
  finalBackup: z.optional(
    z.object({ backupId: z.string(), bucket: z.string(), prefix: z.string(), manifest: z.string() }),
  ),
});

const FailureRow = z.object({ step: z.string(), error: z.string(), cause: z.string() });

const TENANT_COLUMNS = `id, slug, name, plan, status, limits::text AS limits, config::text AS config,
  resources::text AS resources, failure::text AS failure, leftovers::text AS leftovers,
  execution_arn, schema_version, ${isoText('created_at')} AS created_at, created_by,
  ${isoText('updated_at')} AS updated_at, updated_by`;

const TenantRow = z.pipe(
  z.object({
    id: z.string(),
    slug: z.string(),
    name: z.string(),
    plan: z.enum(PLAN_NAMES),
    status: z.enum(TENANT_STATUSES),
    limits: jsonText(LimitsRow),
    config: jsonText(TenantConfig),
    resources: jsonText(ResourcesRow),
    failure: z.nullable(jsonText(FailureRow)),
    leftovers: z.nullable(jsonText(z.array(z.string()))),
    execution_arn: z.nullable(z.string()),
    schema_version: z.nullable(z.number()),
    created_at: z.string(),
    created_by: z.string(),
    updated_at: z.string(),
    updated_by: z.string(),
  }),
  z.transform(
    (row): Tenant => ({
      id: row.id,
      slug: row.slug,
      name: row.name,
      plan: row.plan,
      status: row.status,
      limits: row.limits,
      config: row.config,
      resources: row.resources,
      failure: row.failure,
      leftovers: row.leftovers,
      executionArn: row.execution_arn,
      schemaVersion: row.schema_version,
      createdAt: row.created_at,
      createdBy: row.created_by,
      updatedAt: row.updated_at,
      updatedBy: row.updated_by,
    }),
  ),
);

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
const ReservedRow = z.object({ reserved: z.number() });

/**
 * A step recorded again: its attempts go up; its start stays that of the first attempt so that the duration
 * covers the retries, unless the step had succeeded (a new run).
 */
const STEP_RESTARTED = `ON CONFLICT (tenant_id, step) DO UPDATE SET
  status = 'running',
  attempts = tenant_steps.attempts + 1,
  started_at = CASE WHEN tenant_steps.status = 'succeeded' THEN now() ELSE tenant_steps.started_at END,
  ended_at = NULL, duration_ms = NULL, error = NULL`;

/** What {@link TenantRegistry.setStatus} may set beside the status; a `null` clears one. */
export interface StatusExtra {
  failure?: StepFailure | null;
  leftovers?: string[] | null;
  schemaVersion?: number;
}

/** What a step changes of its tenant, written with its success (see {@link TenantRegistry.stepSucceeded}). */
export interface StepChange {
  /** Merged into the tenant's resources, key by top-level key. */
  readonly resources?: TenantResources;
  readonly schemaVersion?: number;
  readonly by: string;
}

/** The UPDATE of a status change, with its parameters. */
function statusUpdate(id: string, status: TenantStatus, by: string, extra: StatusExtra) {
  const sets = ['status = :status', 'updated_at = now()', 'updated_by = :by'];
  if (extra.failure !== undefined) sets.push('failure = CAST(:failure AS jsonb)');
  if (extra.leftovers !== undefined) sets.push('leftovers = CAST(:leftovers AS jsonb)');
  if (extra.schemaVersion !== undefined) sets.push('schema_version = :schemaVersion');
  return {
    sql: `UPDATE tenants SET ${sets.join(', ')} WHERE id = :id`,
    params: {
      id,
      status,
      by,
      failure: extra.failure === undefined ? undefined : extra.failure === null ? null : json(extra.failure),
      leftovers:
        extra.leftovers === undefined ? undefined : extra.leftovers === null ? null : json(extra.leftovers),
      schemaVersion: extra.schemaVersion,
    },
  };
}

/**
 * The tenant registry in the `control_plane` database: tenants, the progress of their steps, the audit log
 * and the first answers to idempotent requests. The API and every provisioning step go through it.
 */
export class TenantRegistry {
  readonly #db: Sql;

  /** `db` targets the control_plane database. */
  constructor(db: Sql) {
    this.#db = db;
  }

  async get(id: string): Promise<Tenant | undefined> {
    const [tenant] = await this.#db.query(
      `SELECT ${TENANT_COLUMNS} FROM tenants WHERE id = :id`,
      { id },
      TenantRow,
    );
    return tenant;
  }

  /** The tenant; a {@link NotFoundError} when there is none. */
  async require(id: string): Promise<Tenant> {
    const tenant = await this.get(id);
    if (!tenant) throw new NotFoundError(`No tenant ${id}`);
    return tenant;
  }

  /**
   * Sets the status and, where `extra` names them, the failure, leftovers and schema version
   * (a `null` clears one). A {@link NotFoundError} when there is no such tenant.
   */
  async setStatus(id: string, status: TenantStatus, by: string, extra: StatusExtra = {}): Promise<void> {
    const update = statusUpdate(id, status, by, extra);
    const changed = await this.#db.execute(update.sql, update.params);
    if (changed === 0) throw new NotFoundError(`No tenant ${id}`);
  }

  /**
   * {@link setStatus}, and an audit entry `action` unless the tenant has one already, in one statement: a rerun
   * neither fails nor audits twice. A {@link NotFoundError} when there is no such tenant.
   */
  async setStatusAuditedOnce(
    id: string,
    status: TenantStatus,
    by: string,
    extra: StatusExtra,
    audit: { readonly action: string; readonly details: Record<string, unknown> },
  ): Promise<void> {
    const update = statusUpdate(id, status, by, extra);
    const [row] = await this.#db.query(
      `WITH changed AS (${update.sql} RETURNING id),
       audited AS (
         INSERT INTO audit_log (tenant_id, action, actor, details)
         SELECT changed.id, :action, :by, CAST(:details AS jsonb) FROM changed
         WHERE NOT EXISTS (SELECT 1 FROM audit_log WHERE tenant_id = :id AND action = :action)
         RETURNING 1)
       SELECT (SELECT count(*) FROM changed)::int AS changed`,
      { ...update.params, action: audit.action, details: json(audit.details) },
      ChangedRow,
    );
    if (!row || row.changed === 0) throw new NotFoundError(`No tenant ${id}`);
  }

  /** Merges into the tenant's resources, key by top-level key (a key given replaces the one stored). */
  async mergeResources(id: string, resources: TenantResources, by?: string): Promise<void> {
    const changed = await this.#db.execute(
      `UPDATE tenants SET resources = resources || CAST(:resources AS jsonb), updated_at = now(),
         updated_by = coalesce(CAST(:by AS text), updated_by)
       WHERE id = :id`,
      { id, resources: json(resources), by: by ?? null },
    );
    if (changed === 0) throw new NotFoundError(`No tenant ${id}`);
  }

  /** Removes top-level keys from the tenant's resources (what an undo step has removed). */
  async removeResources(id: string, keys: readonly (keyof TenantResources)[], by?: string): Promise<void> {
    const changed = await this.#db.execute(
      `UPDATE tenants SET resources = resources - ARRAY(SELECT jsonb_array_elements_text(CAST(:keys AS jsonb))),
         updated_at = now(), updated_by = coalesce(CAST(:by AS text), updated_by)
       WHERE id = :id`,
      { id, keys: json(keys), by: by ?? null },
    );
    if (changed === 0) throw new NotFoundError(`No tenant ${id}`);
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

  /** An entry of the audit log, e.g. `TENANT_CREATED` (seed 000). */
  async audit(
    id: string,
    action: string,
    actor: string,
    details: Record<string, unknown> = {},
  ): Promise<void> {
    await this.#db.execute(
      'INSERT INTO audit_log (tenant_id, action, actor, details) VALUES (:id, :action, :actor, CAST(:details AS jsonb))',
      { id, action, actor, details: json(details) },
    );
  }

  /** The tenant's audit entries, oldest first. */
  async auditLog(
    id: string,
  ): Promise<{ action: string; actor: string; details: Record<string, unknown>; at: string }[]> {
    return this.#db.query(
      `SELECT action, actor, details::text AS details, ${isoText('at')} AS at FROM audit_log
       WHERE tenant_id = :id ORDER BY at, id`,
      { id },
      z.object({
        action: z.string(),
        actor: z.string(),
        details: jsonText(z.record(z.string(), z.unknown())),
        at: z.string(),
      }),
    );
  }

  /**
   * Reserves the slug: inserts the tenant as `provisioning` with its `TENANT_CREATED` audit entry, in one
   * transaction. Returns false, writing nothing, when another tenant has the slug.
   */
  async reserve(tenant: NewTenant, by: string): Promise<boolean> {
    // One statement, atomic as a transaction and one round trip instead of four: the audit entry is written
    // only for the tenant the first insert made.
    const [row] = await this.#db.query(
      `WITH reserved AS (
         INSERT INTO tenants (id, slug, name, plan, status, limits, config, created_by, updated_by)
         VALUES (:id, :slug, :name, :plan, 'provisioning', CAST(:limits AS jsonb), CAST(:config AS jsonb), :by, :by)
         ON CONFLICT (slug) DO NOTHING
         RETURNING id),
       audited AS (
         INSERT INTO audit_log (tenant_id, action, actor, details)
         SELECT id, 'TENANT_CREATED', :by, CAST(:details AS jsonb) FROM reserved
         RETURNING 1)
       SELECT count(*)::int AS reserved FROM reserved`,
      {
        id: tenant.id,
        slug: tenant.slug,
        name: tenant.name,
        plan: tenant.plan,
        limits: json(tenant.limits),
        config: json(tenant.config),
        by,
        details: json({
          slug: tenant.slug,
          plan: tenant.plan,
          limits: tenant.limits,
          features: tenant.config.features,
          securityPolicy: tenant.config.securityPolicy,
          compliance: tenant.config.compliance,
        }),
      },
      ReservedRow,
    );
    return (row?.reserved ?? 0) > 0;
  }

  /**
   * Undoes a {@link reserve} whose provisioning could not start: the tenant and its audit entries go, so that
   * nothing is left of a refused request. Only a tenant still `provisioning` without an execution is removed.
   */
  async discardReservation(id: string): Promise<void> {
    await this.#db.transaction(async (tx) => {
      const removed = await tx.execute(
        `DELETE FROM tenants WHERE id = :id AND status = 'provisioning' AND execution_arn IS NULL`,
        { id },
      );
      if (removed > 0) await tx.execute('DELETE FROM audit_log WHERE tenant_id = :id', { id });
    });
  }

  async setExecutionArn(id: string, executionArn: string, by: string): Promise<void> {
    const changed = await this.#db.execute(
      'UPDATE tenants SET execution_arn = :executionArn, updated_at = now(), updated_by = :by WHERE id = :id',
      { id, executionArn, by },
    );
    if (changed === 0) throw new NotFoundError(`No tenant ${id}`);
  }

  /** Which of the candidate slugs no tenant has, in the order given; one query. */
  async freeSlugs(candidates: readonly string[]): Promise<string[]> {
    const rows = await this.#db.query(
      `SELECT c.slug FROM jsonb_array_elements_text(CAST(:candidates AS jsonb)) WITH ORDINALITY AS c (slug, n)
       WHERE NOT EXISTS (SELECT 1 FROM tenants t WHERE t.slug = c.slug)
       ORDER BY c.n`,
      { candidates: json(candidates) },
      z.object({ slug: z.string() }),
    );
    return rows.map((row) => row.slug);
  }

  /** A page of tenants in id order, filtered; `limit + 1` rows are read to know whether a next page exists. */
  async list(options: ListTenantsOptions): Promise<{ tenants: Tenant[]; more: boolean }> {
    const where: string[] = [];
    if (options.status !== undefined) where.push('status = :status');
    if (options.plan !== undefined) where.push('plan = :plan');
    if (options.after !== undefined) where.push('id > :after');
    const rows = await this.#db.query(
      `SELECT ${TENANT_COLUMNS} FROM tenants ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY id LIMIT :limit`,
      { status: options.status, plan: options.plan, after: options.after, limit: options.limit + 1 },
      TenantRow,
    );
    return { tenants: rows.slice(0, options.limit), more: rows.length > options.limit };
  }

  /**
   * Claims an `Idempotency-Key` for a caller and a request hash. `claimed`: the caller answers and then
   * {@link saveIdempotentAnswer}s or {@link releaseIdempotencyKey}s. Otherwise what the key already holds:
   * the first answer, a request still being answered, or another request (`mismatch`).
   */
  async claimIdempotencyKey(caller: string, key: string, requestHash: string): Promise<IdempotencyClaim> {
    // A key released between the two statements is as good as free, so it is claimed again; a few times at most: a
    // key released as often as it is read is busy, and the client is told so.
    for (let attempt = 1; attempt <= CLAIM_ATTEMPTS; attempt += 1) {
      const claimed = await this.#db.query(
        `INSERT INTO idempotency_keys (caller, key, request_hash) VALUES (:caller, :key, :requestHash)
         ON CONFLICT (caller, key) DO UPDATE SET
           request_hash = EXCLUDED.request_hash, status_code = NULL, response = NULL, created_at = now()
         WHERE idempotency_keys.created_at < now() - interval '1 hour' * :ttlHours
            OR (idempotency_keys.status_code IS NULL
                AND idempotency_keys.created_at < now() - interval '1 second' * :staleSeconds)
         RETURNING 1 AS claimed`,
        {
          caller,
          key,
          requestHash,
          ttlHours: IDEMPOTENCY_TTL_HOURS,
          staleSeconds: IDEMPOTENCY_STALE_SECONDS,
        },
        z.object({ claimed: z.number() }),
      );
      if (claimed.length > 0) return { kind: 'claimed' };
      const [row] = await this.#db.query(
        `SELECT request_hash, status_code, response::text AS response FROM idempotency_keys
         WHERE caller = :caller AND key = :key`,
        { caller, key },
        z.object({
          request_hash: z.string(),
          status_code: z.nullable(z.number()),
          response: z.nullable(jsonText(z.unknown())),
        }),
      );
      if (!row) continue;
      if (row.request_hash !== requestHash) return { kind: 'mismatch' };
      if (row.status_code === null) return { kind: 'in_progress' };
      return { kind: 'answered', statusCode: row.status_code, body: row.response };
    }
    return { kind: 'in_progress' };
  }

  async saveIdempotentAnswer(caller: string, key: string, statusCode: number, body: unknown): Promise<void> {
    await this.#db.execute(
      `UPDATE idempotency_keys SET status_code = :statusCode, response = CAST(:body AS jsonb)
       WHERE caller = :caller AND key = :key`,
      { caller, key, statusCode, body: json(body) },
    );
  }

  /** Frees a claimed key whose request could not be answered, so that a retry runs it again. */
  async releaseIdempotencyKey(caller: string, key: string): Promise<void> {
    await this.#db.execute(
      'DELETE FROM idempotency_keys WHERE caller = :caller AND key = :key AND status_code IS NULL',
      { caller, key },
    );
  }
}
