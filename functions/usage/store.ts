import { PLAN_NAMES, type PlanLimits, type PlanName } from '../../schema/plans.ts';
import * as z from '../../schema/zod.ts';
import { isoText, json, jsonText, type Sql } from '../shared/data-api.ts';
import { LimitsRow } from '../shared/tenants.ts';
import type { MeasureProblem, TenantUsage } from './measure.ts';

/** An active tenant as a collection sees it: its plan and limits, and what its last reading had crossed. */
export interface CollectedTenant {
  readonly id: string;
  readonly plan: PlanName;
  readonly limits: PlanLimits;
  readonly crossed: ReadonlySet<string>;
}

/** A tenant's reading as the registry keeps it (`tenant_usage`). */
export interface UsageRecord {
  readonly tenantId: string;
  readonly measuredAt: string;
  readonly usage: Partial<TenantUsage>;
  readonly crossed: readonly string[];
  readonly problems: readonly MeasureProblem[];
}

const Usage = z.object({
  users: z.optional(z.number()),
  apiKeys: z.optional(z.number()),
  storageBytes: z.optional(z.number()),
  connections: z.optional(z.number()),
  databaseBytes: z.optional(z.number()),
});
const Problems = z.array(z.object({ measures: z.array(z.keyof(Usage)), reason: z.string() }));

/** The usage readings of the registry (schema/control-plane/0005_usage.sql): the collector writes, the API reads. */
export class UsageStore {
  readonly #db: Sql;

  /** `db` targets the control_plane database. */
  constructor(db: Sql) {
    this.#db = db;
  }

  /** The active tenants cut into ranges of `size` ids (a collection's chunks), in one query. */
  async chunks(size: number): Promise<{ tenants: number; chunks: { from: string; to: string }[] }> {
    const rows = await this.#db.query(
      `SELECT min(id) AS "from", max(id) AS "to", count(*)::int AS n FROM (
         SELECT id, (row_number() OVER (ORDER BY id) - 1) / :size AS chunk FROM tenants WHERE status = 'active'
       ) numbered GROUP BY chunk ORDER BY chunk`,
      { size },
      z.object({ from: z.string(), to: z.string(), n: z.number() }),
    );
    return {
      tenants: rows.reduce((sum, row) => sum + row.n, 0),
      chunks: rows.map((row) => ({ from: row.from, to: row.to })),
    };
  }

  /** The active tenants of a range of ids, with the crossings of their last reading; one query. */
  async tenantsBetween(from: string, to: string): Promise<CollectedTenant[]> {
    const rows = await this.#db.query(
      `SELECT t.id, t.plan, t.limits::text AS limits, array_to_json(coalesce(u.crossed, '{}'))::text AS crossed
       FROM tenants t LEFT JOIN tenant_usage u ON u.tenant_id = t.id
       WHERE t.status = 'active' AND t.id BETWEEN :from AND :to ORDER BY t.id`,
      { from, to },
      z.object({
        id: z.string(),
        plan: z.enum(PLAN_NAMES),
        limits: jsonText(LimitsRow),
        crossed: jsonText(z.array(z.string())),
      }),
    );
    return rows.map((row) => ({ ...row, crossed: new Set(row.crossed) }));
  }

  /**
   * Records the readings, one statement for all: each replaces the tenant's previous one unless that one is newer
   * (a late run of an earlier schedule does not overwrite a later reading).
   */
  async record(records: readonly UsageRecord[]): Promise<void> {
    if (records.length === 0) return;
    await this.#db.execute(
      `INSERT INTO tenant_usage AS u (tenant_id, measured_at, readings, crossed, problems)
       SELECT r.tenant_id, r.measured_at, r.readings, ARRAY(SELECT jsonb_array_elements_text(r.crossed)), r.problems
       FROM jsonb_to_recordset(CAST(:records AS jsonb))
         AS r(tenant_id text, measured_at timestamptz, readings jsonb, crossed jsonb, problems jsonb)
       ON CONFLICT (tenant_id) DO UPDATE SET measured_at = EXCLUDED.measured_at, readings = EXCLUDED.readings,
         crossed = EXCLUDED.crossed, problems = EXCLUDED.problems, recorded_at = now()
       WHERE u.measured_at <= EXCLUDED.measured_at`,
      {
        records: json(
          records.map((record) => ({
            tenant_id: record.tenantId,
            measured_at: record.measuredAt,
            readings: record.usage,
            crossed: record.crossed,
            problems: record.problems,
          })),
        ),
      },
    );
  }

  /** The tenant's latest reading, if it was ever measured. */
  async latest(tenantId: string): Promise<UsageRecord | undefined> {
    const [row] = await this.#db.query(
      `SELECT ${isoText('measured_at')} AS measured_at, readings::text AS readings,
         array_to_json(crossed)::text AS crossed, problems::text AS problems
       FROM tenant_usage WHERE tenant_id = :tenantId`,
      { tenantId },
      z.object({
        measured_at: z.string(),
        readings: jsonText(Usage),
        crossed: jsonText(z.array(z.string())),
        problems: jsonText(Problems),
      }),
    );
    if (!row) return undefined;
    return {
      tenantId,
      measuredAt: row.measured_at,
      usage: row.readings,
      crossed: row.crossed,
      problems: row.problems,
    };
  }
}
