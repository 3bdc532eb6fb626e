import { AuditStore } from './audit.ts';
import type { Sql } from './data-api.ts';
import { IdempotencyStore } from './idempotency-keys.ts';
import { ProgressStore } from './progress.ts';
import { TenantStore } from './tenants.ts';

/**
 * The tenant registry in the `control_plane` database, as four stores over one connection: the tenants
 * (./tenants.ts), the progress of their steps (./progress.ts), the audit log (./audit.ts) and the first answers to
 * idempotent requests (./idempotency-keys.ts). Only wiring: a module that needs one store may take that one.
 * (Not functions/registry.ts, which lists the Lambda functions.)
 */
export class Registry {
  readonly tenants: TenantStore;
  readonly progress: ProgressStore;
  readonly audit: AuditStore;
  readonly idempotency: IdempotencyStore;

  /** `db` targets the control_plane database. */
  constructor(db: Sql) {
    this.tenants = new TenantStore(db);
    this.progress = new ProgressStore(db);
    this.audit = new AuditStore(db);
    this.idempotency = new IdempotencyStore(db);
  }
}
