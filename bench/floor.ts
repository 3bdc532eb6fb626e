import { join } from 'node:path';
import type pg from 'pg';
import { scramVerifier } from '../functions/provision/credentials.ts';
import { grantsBlock, roleConnectionLimits } from '../functions/provision/roles.ts';
import { loadMigrations, type Migration } from '../functions/shared/migrations.ts';
import { doBlock } from '../functions/shared/tenant-db.ts';
import { PROJECT_ROOT } from '../local/constants.ts';
import { DATABASE_ROLES, databaseName, ident, literal, newTenantId, roleName } from '../schema/names.ts';
import type { BenchSandbox } from './lib/sandbox.ts';

/** The professional plan's connection limit, as the provisioned tenants have. */
const CONNECTION_LIMIT = 50;

/**
 * The physical floor of a provisioning: the SQL a tenant needs, sent straight to PostgreSQL over one connection
 * to the cluster and one to the new database, with no API, no Step Functions, no Lambda, no Data API, no
 * bookkeeping. The same statements the steps send: CREATE DATABASE with its limit and PUBLIC revoked, the
 * template's migrations (each migration's statements as one multi-statement query in its own transaction,
 * the fewest round trips a driver allows), the four login roles (SCRAM verifiers computed beforehand: hashing is
 * the client's work, not PostgreSQL's), their grants, and CONNECT. `template` copies a prepared database
 * instead of running the migrations: the floor of the template technique.
 */
export class Floor {
  readonly #sandbox: BenchSandbox;
  readonly #cluster: pg.Client;
  readonly #migrations: Migration[];
  #template: string | undefined;

  private constructor(sandbox: BenchSandbox, cluster: pg.Client, migrations: Migration[]) {
    this.#sandbox = sandbox;
    this.#cluster = cluster;
    this.#migrations = migrations;
  }

  static async open(sandbox: BenchSandbox): Promise<Floor> {
    const migrations = await loadMigrations(join(PROJECT_ROOT, 'schema', 'tenant'));
    const cluster = sandbox.connect();
    await cluster.connect();
    return new Floor(sandbox, cluster, migrations);
  }

  /** One tenant's SQL; returns the milliseconds it took. */
  async provision(options: { template?: boolean } = {}): Promise<number> {
    const template = options.template ? await this.#prepareTemplate() : undefined;
    const tenantId = newTenantId();
    const name = databaseName(tenantId);
    const verifiers = await Promise.all(
      DATABASE_ROLES.map(() => scramVerifier(`floor-${tenantId}-password-0123456789abcdef`)),
    );
    const limits = roleConnectionLimits(CONNECTION_LIMIT);

    const started = performance.now();
    const from = template ? ` TEMPLATE ${ident(template)}` : '';
    await this.#cluster.query(`CREATE DATABASE ${ident(name)}${from} CONNECTION LIMIT ${CONNECTION_LIMIT}`);
    await this.#cluster.query(`REVOKE CONNECT, TEMPORARY ON DATABASE ${ident(name)} FROM PUBLIC`);
    const db = this.#sandbox.connect(name);
    await db.connect();
    try {
      if (!template) await this.#migrate(db);
      for (const [index, role] of DATABASE_ROLES.entries()) {
        await this.#cluster.query(
          `CREATE ROLE ${ident(roleName(tenantId, role))} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE ` +
            `NOREPLICATION NOBYPASSRLS INHERIT CONNECTION LIMIT ${limits[role]} PASSWORD ${literal(verifiers[index] ?? '')}`,
        );
      }
      await db.query(doBlock('grants', grantsBlock(tenantId)));
      const roles = DATABASE_ROLES.map((role) => ident(roleName(tenantId, role))).join(', ');
      await this.#cluster.query(`GRANT CONNECT ON DATABASE ${ident(name)} TO ${roles}`);
    } finally {
      await db.end();
    }
    return performance.now() - started;
  }

  async close(): Promise<void> {
    await this.#cluster.end();
  }

  async #migrate(db: pg.Client): Promise<void> {
    await db.query(
      `REVOKE ALL ON SCHEMA public FROM PUBLIC;
       CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,
         applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    for (const migration of this.#migrations) {
      await db.query(
        [
          'BEGIN',
          ...migration.statements,
          `INSERT INTO schema_migrations (version, name) VALUES (${migration.version}, ${literal(migration.name)})`,
          'COMMIT',
        ].join(';\n'),
      );
    }
  }

  /** A database with the template's schema, made once (untimed) for the template variant. */
  async #prepareTemplate(): Promise<string> {
    if (this.#template) return this.#template;
    const name = 'floor_template';
    await this.#cluster.query(`CREATE DATABASE ${ident(name)}`);
    const db = this.#sandbox.connect(name);
    await db.connect();
    try {
      await this.#migrate(db);
    } finally {
      await db.end();
    }
    this.#template = name;
    return name;
  }
}
