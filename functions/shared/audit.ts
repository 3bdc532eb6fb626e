import * as z from '../../schema/zod.ts';
import { isoText, json, jsonText, type Sql } from './data-api.ts';

/** An entry of a tenant's audit log. */
export interface AuditEntry {
  action: string;
  actor: string;
  details: Record<string, unknown>;
  at: string;
}

const AuditRow = z.object({
  action: z.string(),
  actor: z.string(),
  details: jsonText(z.record(z.string(), z.unknown())),
  at: z.string(),
});

/** The audit log of the registry (`control_plane.audit_log`): who did what to a tenant, and when. */
export class AuditStore {
  readonly #db: Sql;

  /** `db` targets the control_plane database. */
  constructor(db: Sql) {
    this.#db = db;
  }

  /** An entry of the audit log, e.g. `TENANT_CREATED` (seed 000). */
  async add(id: string, action: string, actor: string, details: Record<string, unknown> = {}): Promise<void> {
    await this.#db.execute(
      'INSERT INTO audit_log (tenant_id, action, actor, details) VALUES (:id, :action, :actor, CAST(:details AS jsonb))',
      { id, action, actor, details: json(details) },
    );
  }

  /** The tenant's audit entries, oldest first. */
  async entries(id: string): Promise<AuditEntry[]> {
    return this.#db.query(
      `SELECT action, actor, details::text AS details, ${isoText('at')} AS at FROM audit_log
       WHERE tenant_id = :id ORDER BY at, id`,
      { id },
      AuditRow,
    );
  }
}
