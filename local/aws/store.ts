import pg from 'pg';
import type { PostgresConnection } from '../postgres.ts';

/** The database, on the local PostgreSQL, where the sandbox keeps the state of the AWS services it plays. */
export const STORE_DATABASE = 'aws_sandbox';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS item (
  service text NOT NULL,
  kind text NOT NULL,
  key text COLLATE "C" NOT NULL,
  doc jsonb NOT NULL,
  body bytea,
  PRIMARY KEY (service, kind, key)
)`;

export interface Item<T> {
  readonly key: string;
  readonly doc: T;
}

export interface ListOptions {
  readonly prefix?: string;
  /** Keys strictly after this one, in byte order (S3's and pagination tokens' order). */
  readonly after?: string;
  readonly limit?: number;
}

/**
 * Service state that survives restarts, as AWS's does: one row per resource, its description in `doc`,
 * its bytes (an S3 object's body) in `body`.
 */
export class Store {
  readonly #pool: pg.Pool;

  private constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  static async open(superuser: PostgresConnection): Promise<Store> {
    const admin = new pg.Client({ ...superuser });
    await admin.connect();
    try {
      const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [
        STORE_DATABASE,
      ]);
      if (rowCount === 0) await admin.query(`CREATE DATABASE "${STORE_DATABASE}"`);
    } finally {
      await admin.end();
    }
    const pool = new pg.Pool({ ...superuser, database: STORE_DATABASE, max: 20 });
    // An idle connection ended by the server (a restart, a terminated backend) is replaced on next use.
    pool.on('error', () => {});
    await pool.query(SCHEMA);
    return new Store(pool);
  }

  collection<T>(service: string, kind: string): Collection<T> {
    return new Collection<T>(this.#pool, service, kind);
  }

  close(): Promise<void> {
    return this.#pool.end();
  }
}

/** The items of one kind of one service, e.g. Secrets Manager's secrets. */
export class Collection<T> {
  readonly #pool: pg.Pool;
  readonly #scope: [string, string];

  constructor(pool: pg.Pool, service: string, kind: string) {
    this.#pool = pool;
    this.#scope = [service, kind];
  }

  async get(key: string): Promise<T | undefined> {
    const { rows } = await this.#pool.query<{ doc: T }>(
      'SELECT doc FROM item WHERE service = $1 AND kind = $2 AND key = $3',
      [...this.#scope, key],
    );
    return rows[0]?.doc;
  }

  async getBody(key: string): Promise<Buffer | undefined> {
    const { rows } = await this.#pool.query<{ body: Buffer | null }>(
      'SELECT body FROM item WHERE service = $1 AND kind = $2 AND key = $3',
      [...this.#scope, key],
    );
    return rows[0]?.body ?? undefined;
  }

  /** Writes the item, replacing any with that key. */
  async put(key: string, doc: T, body?: Buffer): Promise<void> {
    await this.#pool.query(
      `INSERT INTO item (service, kind, key, doc, body) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (service, kind, key) DO UPDATE SET doc = excluded.doc, body = excluded.body`,
      [...this.#scope, key, JSON.stringify(doc), body ?? null],
    );
  }

  /** Writes the items, replacing any with their keys, in one statement. */
  async putMany(items: readonly Item<T>[]): Promise<void> {
    if (items.length === 0) return;
    await this.#pool.query(
      `INSERT INTO item (service, kind, key, doc)
       SELECT $1, $2, key, doc FROM unnest($3::text[], $4::jsonb[]) AS batch(key, doc)
       ON CONFLICT (service, kind, key) DO UPDATE SET doc = excluded.doc, body = NULL`,
      [...this.#scope, items.map((item) => item.key), items.map((item) => JSON.stringify(item.doc))],
    );
  }

  /** Writes the item unless one with that key exists; says whether it wrote. Atomic under concurrency. */
  async insert(key: string, doc: T, body?: Buffer): Promise<boolean> {
    const { rowCount } = await this.#pool.query(
      `INSERT INTO item (service, kind, key, doc, body) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (service, kind, key) DO NOTHING`,
      [...this.#scope, key, JSON.stringify(doc), body ?? null],
    );
    return rowCount === 1;
  }

  async delete(key: string): Promise<boolean> {
    const { rowCount } = await this.#pool.query(
      'DELETE FROM item WHERE service = $1 AND kind = $2 AND key = $3',
      [...this.#scope, key],
    );
    return rowCount === 1;
  }

  /** Deletes every item whose key starts with the prefix; returns how many went. */
  async deletePrefix(prefix: string): Promise<number> {
    const { rowCount } = await this.#pool.query(
      'DELETE FROM item WHERE service = $1 AND kind = $2 AND starts_with(key, $3)',
      [...this.#scope, prefix],
    );
    return rowCount ?? 0;
  }

  /** Items in key order (byte order), optionally under a prefix and after a key. */
  async list(options: ListOptions = {}): Promise<Item<T>[]> {
    const { rows } = await this.#pool.query<Item<T>>(
      `SELECT key, doc FROM item
       WHERE service = $1 AND kind = $2 AND starts_with(key, $3) AND key > $4
       ORDER BY key LIMIT $5`,
      [...this.#scope, options.prefix ?? '', options.after ?? '', options.limit ?? null],
    );
    return rows;
  }
}
