import {
  BeginTransactionCommand,
  CommitTransactionCommand,
  ExecuteStatementCommand,
  type ExecuteStatementCommandOutput,
  type RDSDataClient,
  RollbackTransactionCommand,
  type SqlParameter,
} from '@aws-sdk/client-rds-data';
import * as z from '../../schema/zod.ts';

/** A value bound to a `:name` parameter. Objects and arrays are sent as JSON. */
export type SqlValue = string | number | boolean | null | Date | Uint8Array | SqlJson | SqlUuid;

export interface SqlJson {
  readonly json: unknown;
}
export interface SqlUuid {
  readonly uuid: string;
}
export const json = (value: unknown): SqlJson => ({ json: value });
export const uuid = (value: string): SqlUuid => ({ uuid: value });

/** ISO 8601 in UTC, formatted by PostgreSQL: the Data API would drop the offset of a timestamptz. */
export const isoText = (column: string): string =>
  `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/** A json/jsonb column, which the Data API returns as text, parsed and then checked against `schema`. */
export function jsonText<T>(schema: z.ZodMiniType<T>) {
  return z.pipe(
    z.pipe(
      z.string(),
      z.transform((text: string, ctx) => {
        try {
          return JSON.parse(text) as unknown;
        } catch {
          // A mini transform has no ctx.addIssue: the issue is pushed as classic's addIssue would record it.
          ctx.issues.push({ code: 'custom', message: 'Not JSON', input: text });
          return z.NEVER;
        }
      }),
    ),
    schema,
  );
}

export type SqlParams = Readonly<Record<string, SqlValue | undefined>>;

/** What runs SQL: a {@link DataApi}, or a door onto one (`functions/shared/tenant-db.ts`). */
/**
 * How one call runs. `continueAfterTimeout`: the statement goes on after the Data API's 45 s call timeout answers
 * StatementTimeoutException ("Controlling Data API timeout behavior", Aurora User Guide: recommended for DDL, which a
 * cancellation can leave half done); the caller must then find out the statement's outcome itself.
 */
export interface CallOptions {
  readonly continueAfterTimeout?: boolean;
}

export interface Sql {
  execute(sql: string, params?: SqlParams, options?: CallOptions): Promise<number>;
  query<Row>(sql: string, params: SqlParams, row: z.ZodMiniType<Row>): Promise<Row[]>;
  transaction<T>(work: (tx: Sql) => Promise<T>): Promise<T>;
  /** PL/pgSQL statements that every DO block sent through it begins with. */
  readonly blockPrologue?: readonly string[];
}

export interface DataApiTarget {
  readonly resourceArn: string;
  readonly secretArn: string;
  readonly database: string;
}

/**
 * PostgreSQL through the RDS Data API: SQL with named parameters in, rows as plain objects out
 * (`formatRecordsAs: JSON`), checked against a zod schema so that nothing is cast.
 */
/** A transaction a {@link DataApi} runs its statements in; `failed` once one of them failed. */
interface OpenTransaction {
  readonly id: string;
  failed: boolean;
}

/** A statement was sent in a transaction after one of its statements failed, which ended it. */
export class TransactionAbortedError extends Error {
  override readonly name = 'TransactionAbortedError';
}

export class DataApi implements Sql {
  readonly #client: RDSDataClient;
  readonly target: DataApiTarget;
  readonly #transaction: OpenTransaction | undefined;

  constructor(client: RDSDataClient, target: DataApiTarget, transaction?: OpenTransaction) {
    this.#client = client;
    this.target = target;
    this.#transaction = transaction;
  }

  /** The same cluster and secret, another database. */
  on(database: string): DataApi {
    return new DataApi(this.#client, { ...this.target, database });
  }

  /** The same cluster and database, another secret (another database role). */
  as(secretArn: string): DataApi {
    return new DataApi(this.#client, { ...this.target, secretArn });
  }

  /** Runs a statement; returns how many rows it changed. */
  async execute(sql: string, params: SqlParams = {}, options: CallOptions = {}): Promise<number> {
    const output = await this.#send(
      new ExecuteStatementCommand({
        ...this.#request(sql, params),
        ...(options.continueAfterTimeout ? { continueAfterTimeout: true } : {}),
      }),
    );
    return output.numberOfRecordsUpdated ?? 0;
  }

  /** Runs a query and returns its rows, each checked against the schema. */
  async query<Row>(sql: string, params: SqlParams, row: z.ZodMiniType<Row>): Promise<Row[]> {
    const output = await this.#send(
      new ExecuteStatementCommand({ ...this.#request(sql, params), formatRecordsAs: 'JSON' }),
    );
    return rowsOf(row).parse(JSON.parse(output.formattedRecords ?? '[]'));
  }

  /** Runs `work` in one transaction: committed when it resolves, rolled back when it throws. */
  async transaction<T>(work: (tx: DataApi) => Promise<T>): Promise<T> {
    const { transactionId } = await this.#client.send(
      new BeginTransactionCommand({
        resourceArn: this.target.resourceArn,
        secretArn: this.target.secretArn,
        database: this.target.database,
      }),
    );
    if (!transactionId) throw new Error('BeginTransaction returned no transactionId');
    const ids = { resourceArn: this.target.resourceArn, secretArn: this.target.secretArn, transactionId };
    let result: T;
    try {
      result = await work(new DataApi(this.#client, this.target, { id: transactionId, failed: false }));
    } catch (error) {
      await this.#client.send(new RollbackTransactionCommand(ids)).catch(() => {
        // The transaction is lost either way; the original error is the one worth reporting.
      });
      throw error;
    }
    try {
      await this.#client.send(new CommitTransactionCommand(ids));
    } catch (error) {
      // A commit that failed leaves the transaction open, holding its locks (a reserved slug) until the Data
      // API times it out, minutes later: end it now. When the commit did go through, there is nothing to end.
      await this.#client.send(new RollbackTransactionCommand(ids)).catch(() => {});
      throw error;
    }
    return result;
  }

  #request(sql: string, params: SqlParams) {
    return {
      resourceArn: this.target.resourceArn,
      secretArn: this.target.secretArn,
      database: this.target.database,
      sql,
      parameters: toSqlParameters(params),
      ...(this.#transaction ? { transactionId: this.#transaction.id } : {}),
    };
  }

  /**
   * Sends a statement. In a transaction, a failed statement ends it on the Data API ("Transaction <id> is not
   * found" afterwards), so a statement after one that failed is refused here, naming the first failure, before it
   * is sent: no code goes on inside a transaction that is gone, even by catching the error.
   */
  async #send(command: ExecuteStatementCommand): Promise<ExecuteStatementCommandOutput> {
    const transaction = this.#transaction;
    if (!transaction) return this.#client.send(command);
    if (transaction.failed) {
      throw new TransactionAbortedError(
        `Transaction ${transaction.id} ended at a failed statement; nothing more runs in it`,
      );
    }
    try {
      return await this.#client.send(command);
    } catch (error) {
      transaction.failed = true;
      throw error;
    }
  }
}

// A query's row schema is usually a module constant: its array schema is made once, not on every query.
const arrays = new WeakMap<z.ZodMiniType, z.ZodMiniType>();

function rowsOf<Row>(row: z.ZodMiniType<Row>): z.ZodMiniType<Row[]> {
  let rows = arrays.get(row);
  if (!rows) {
    rows = z.array(row);
    arrays.set(row, rows);
  }
  // The map holds each row schema's own array schema.
  return rows as z.ZodMiniType<Row[]>;
}

/** Named values as Data API parameters, with the type hints PostgreSQL needs to read them. */
export function toSqlParameters(params: SqlParams): SqlParameter[] {
  const parameters: SqlParameter[] = [];
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined) continue;
    parameters.push({ name, ...toField(value) });
  }
  return parameters;
}

function toField(value: SqlValue): Omit<SqlParameter, 'name'> {
  if (value === null) return { value: { isNull: true } };
  if (typeof value === 'string') return { value: { stringValue: value } };
  if (typeof value === 'boolean') return { value: { booleanValue: value } };
  if (typeof value === 'number') {
    return Number.isInteger(value) ? { value: { longValue: value } } : { value: { doubleValue: value } };
  }
  if (value instanceof Date) {
    return {
      value: { stringValue: value.toISOString().replace('T', ' ').replace('Z', '') },
      typeHint: 'TIMESTAMP',
    };
  }
  if (value instanceof Uint8Array) return { value: { blobValue: value } };
  if ('uuid' in value) return { value: { stringValue: value.uuid }, typeHint: 'UUID' };
  return { value: { stringValue: JSON.stringify(value.json) }, typeHint: 'JSON' };
}
