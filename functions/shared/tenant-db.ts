import { databaseName, ident } from '../../schema/names.ts';
import type * as z from '../../schema/zod.ts';
import type { CallOptions, DataApi, Sql, SqlParams } from './data-api.ts';
import { TenantDatabaseBusyError } from './errors.ts';

/**
 * The one door through which the control plane talks to a tenant database. Every statement the functions send to a
 * `tenant_<id>` database (or to a template database, which becomes one) goes through a {@link TenantDatabase};
 * `test/security/door.test.ts` holds that no other module opens one.
 *
 * In a tenant database the control plane (the provisioner role: CREATEDB, CREATEROLE, ADMIN OPTION on every
 * tenant's roles) is the more privileged party, and the tenant's roles are hostile. The rule, after PostgreSQL's
 * advice on CVE-2018-1058 ("Protect Your Search Path"): **nothing a tenant role could have defined ever runs in a
 * session of the provisioner.** SET ROLE would be no boundary (code running under it can RESET ROLE), so the rule
 * is kept by never reaching tenant code at all:
 *
 * 1. **Pinned search path.** The provisioner's sessions run with `search_path = pg_catalog, pg_temp` (its role
 *    default, set at deploy by `functions/setup/provisioner-role.ts`; its own registry database is the one
 *    exception), and every DO block and transaction sent through this door pins it again for itself. Functions,
 *    operators, types and collations resolve in `pg_catalog` alone, whatever the tenant made elsewhere.
 * 2. **Qualified, exactly typed.** Every object of the tenant database is named with its schema (`public.users`),
 *    migrations included (an unqualified CREATE fails under the pinned path); calls whose arguments pg_catalog
 *    would have to convert are written with exact casts (`pg_advisory_xact_lock(7100001::bigint)`).
 * 3. **Only the control plane's objects.** The control plane reads and writes only what it owns: the `public`
 *    schema's tables, made by the migrations as the provisioner. Tenant roles cannot attach code to them: no
 *    CREATE on `public` (so no function, operator or table of theirs there, and no squatting a migration's name),
 *    no TRIGGER, no REFERENCES (a cascaded delete from a tenant table's foreign key fires that table's AFTER
 *    triggers as the user who deleted: tried and seen), no ownership. Their own objects live in the
 *    {@link TENANT_SCHEMA} schema, where the admin may create; the control plane never resolves a name there,
 *    reads or backs it up. A table in `public` that a tenant role owns (a tenant made before these rules) is left
 *    alone by backups and schema checks, which list what they skipped.
 * 4. **No standing privilege in reach.** Because of 1–3 no code of one tenant ever runs with the provisioner's
 *    rights, so its ADMIN OPTION on other tenants' roles cannot be reached from inside a tenant database; the
 *    provisioner takes a tenant role's membership only inside the one atomic block that drops that role.
 *
 * A tenant database is open to tenant roles only from activation on (CONNECT is granted then), so provisioning,
 * seeding, restoring into a new tenant and building templates meet no tenant object; they keep the rules all the same.
 */

/** The search path of every provisioner session in a tenant database. */
export const PINNED_SEARCH_PATH = 'pg_catalog, pg_temp';

/**
 * How long a provisioner session waits for a lock (its role default; not in the registry database). A tenant may
 * lock its own tables: a statement of the control plane then fails with {@link TenantDatabaseBusyError}, and
 * nothing waits behind it without end. Long enough for a migration's DDL to wait out the tenant's usual transactions.
 */
export const TENANT_LOCK_TIMEOUT = '5s';

/** SQLSTATE 55P03, lock_not_available: the lock timeout ran out. */
const LOCK_NOT_AVAILABLE = 'SQLState: 55P03';

/** A lock timeout becomes {@link TenantDatabaseBusyError}; any other error stays as it is. */
function busy(database: string) {
  return (error: unknown): never => {
    if (error instanceof Error && error.message.includes(LOCK_NOT_AVAILABLE)) {
      throw new TenantDatabaseBusyError(
        `The tenant's own sessions hold a lock in ${database}; nothing was changed, retry later`,
        { cause: error },
      );
    }
    throw error;
  };
}

/** The tenant's own schema: its admin creates there; the control plane never looks in it. */
export const TENANT_SCHEMA = 'tenant';

/** Pins the search path for the rest of the transaction (a DO block is one), whatever the session's default. */
const PIN = `PERFORM pg_catalog.set_config('search_path', '${PINNED_SEARCH_PATH}', true)`;

/** A tenant database, as the control plane may talk to it. */
export class TenantDatabase implements Sql {
  readonly name: string;
  readonly #db: DataApi;
  readonly #pinned: boolean;

  private constructor(db: DataApi, pinned: boolean) {
    this.#db = db;
    this.name = db.target.database;
    this.#pinned = pinned;
  }

  /** The tenant's database (`tenant_<id>`), as the provisioner. */
  static of(cluster: DataApi, tenantId: string): TenantDatabase {
    return new TenantDatabase(cluster.on(databaseName(tenantId)), false);
  }

  /**
   * A tenant database by name: a template (or one being built), which becomes every new tenant's, or another
   * tenant's database that holds privileges for roles being dropped. The same rules hold.
   */
  static named(cluster: DataApi, name: string): TenantDatabase {
    return new TenantDatabase(cluster.on(name), false);
  }

  /**
   * A session of one of the tenant's own roles, by its secret: what runs there runs with that role's rights, no more
   * (the reconciler's check that a role's secret still logs in). Not a door for the control plane's own work.
   */
  static asTenantRole(cluster: DataApi, tenantId: string, secretArn: string): DataApi {
    return cluster.as(secretArn).on(databaseName(tenantId));
  }

  execute(sql: string, params: SqlParams = {}, options?: CallOptions): Promise<number> {
    return this.#db.execute(sql, params, options).catch(busy(this.name));
  }

  query<Row>(sql: string, params: SqlParams, row: z.ZodMiniType<Row>): Promise<Row[]> {
    return this.#db.query(sql, params, row).catch(busy(this.name));
  }

  /** Statements as one DO block (one call, applied atomically), the search path pinned first. */
  async block(tag: string, statements: readonly string[]): Promise<void> {
    await this.execute(doBlock(tag, statements));
  }

  /** A transaction whose first statement pins the search path. */
  transaction<T>(work: (tx: Sql) => Promise<T>): Promise<T> {
    if (this.#pinned) return work(this);
    return this.#db.transaction(async (tx) => {
      // A SET, not a query: a transaction may still choose its isolation level after it.
      await tx.execute(`SET LOCAL search_path = ${PINNED_SEARCH_PATH}`);
      return work(new TenantDatabase(tx, true));
    });
  }

  /** PL/pgSQL statements run first in every DO block sent here (see `functions/shared/migrations.ts`). */
  readonly blockPrologue: readonly string[] = [`${PIN};`];
}

/** Statements as one anonymous PL/pgSQL block, the search path pinned first. */
export function doBlock(tag: string, statements: readonly string[]): string {
  return [`DO $${tag}$ BEGIN`, `  ${PIN};`, ...statements.map((s) => `  ${s};`), `END $${tag}$`].join('\n');
}

/** `public.<table>`, quoted: how the control plane names a table of the tenant database. */
export const publicTable = (name: string): string => `public.${ident(name)}`;
