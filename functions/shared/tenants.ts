import { TENANT_STATUSES, TenantConfig } from '../../schema/api/tenants.ts';
import type { DatabaseRole } from '../../schema/names.ts';
import { PLAN_NAMES, type PlanLimits, type PlanName } from '../../schema/plans.ts';
import * as z from '../../schema/zod.ts';
import { isoText, json, jsonText, type Sql } from './data-api.ts';
import { NotFoundError } from './errors.ts';

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
  /**
   * When the issued credentials of roles not standing on the plan are revoked (ISO 8601), by role; a role with a
   * secret and no expiry here stands. Written before the secret is made, so that a crash leaves nothing unrevoked.
   */
  credentialExpiries?: Partial<Record<DatabaseRole, string>>;
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

export const LimitsRow = z.object({
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
  credentialExpiries: z.optional(
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

/** The columns of a tenant row, as {@link TenantRow} reads them. */
export const TENANT_COLUMNS = `id, slug, name, plan, status, limits::text AS limits, config::text AS config,
  resources::text AS resources, failure::text AS failure, leftovers::text AS leftovers,
  execution_arn, schema_version, ${isoText('created_at')} AS created_at, created_by,
  ${isoText('updated_at')} AS updated_at, updated_by`;

/** A row of `tenants` read with {@link TENANT_COLUMNS}, as a {@link Tenant}. */
export const TenantRow = z.pipe(
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

const ChangedRow = z.object({ changed: z.number() });
const ReservedRow = z.object({ reserved: z.number() });

/** What {@link TenantStore.setStatus} may set beside the status; a `null` clears one. */
export interface StatusExtra {
  failure?: StepFailure | null;
  leftovers?: string[] | null;
  schemaVersion?: number;
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
 * The tenants of the registry (`control_plane.tenants`): reserved by the API, their status, resources and run.
 * Where a tenant change has an audit entry that must not part from it (its creation, a status set once), the
 * entry is written in the same statement; the audit log itself is {@link AuditStore}'s (./audit.ts).
 */
export class TenantStore {
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

  /**
   * Sets one role's credentials in the resources, in one statement (two roles issued at once must not lose each
   * other's): its secret ARN when given, and its expiry (`null`: standing, no expiry). Without an ARN only the expiry
   * is written, which is how an issue begins (see {@link TenantResources.credentialExpiries}).
   */
  async setRoleCredentials(
    id: string,
    role: DatabaseRole,
    credentials: { secretArn?: string; expiresAt: string | null },
    by: string,
  ): Promise<void> {
    const changed = await this.#db.execute(
      `UPDATE tenants SET resources = (
         SELECT CASE WHEN CAST(:expiresAt AS text) IS NULL THEN r #- ARRAY['credentialExpiries', :role]
           ELSE jsonb_set(r || jsonb_build_object('credentialExpiries', coalesce(r->'credentialExpiries', '{}'::jsonb)),
             ARRAY['credentialExpiries', :role], to_jsonb(CAST(:expiresAt AS text))) END
         FROM (SELECT CASE WHEN CAST(:secretArn AS text) IS NULL THEN resources
           ELSE jsonb_set(resources || jsonb_build_object('secrets', coalesce(resources->'secrets', '{}'::jsonb)),
             ARRAY['secrets', :role], to_jsonb(CAST(:secretArn AS text))) END AS r) AS with_arn),
         updated_at = now(), updated_by = :by
       WHERE id = :id`,
      { id, role, secretArn: credentials.secretArn ?? null, expiresAt: credentials.expiresAt, by },
    );
    if (changed === 0) throw new NotFoundError(`No tenant ${id}`);
  }

  /** Removes one role's secret ARN and expiry from the resources (its credentials were revoked). */
  async removeRoleCredentials(id: string, role: DatabaseRole, by: string): Promise<void> {
    const changed = await this.#db.execute(
      `UPDATE tenants SET resources = resources #- ARRAY['secrets', :role] #- ARRAY['credentialExpiries', :role],
         updated_at = now(), updated_by = :by
       WHERE id = :id`,
      { id, role, by },
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
}
