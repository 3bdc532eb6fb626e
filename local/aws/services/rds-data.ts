import { randomBytes, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { z } from 'zod';
import { fastScram } from '../../pg-scram.ts';
import {
  AwsError,
  type CallContext,
  type HttpResponse,
  type JsonObject,
  parseJsonObject,
  type ServiceHandler,
  toAwsError,
} from '../protocol.ts';
import { type ColumnSource, columnMetadata, rawText, toJsonRecord, toRecord } from './rds-data-results.ts';
import { type BoundValue, bindParameters, prepareSql, TYPE_HINTS } from './rds-data-sql.ts';

export interface RdsDataDeps {
  readonly region: string;
  readonly accountId: string;
  /** The only `resourceArn` accepted. */
  readonly clusterArn: string;
  /** The local PostgreSQL. */
  readonly postgres: { host: string; port: number };
  /** SecretString (AWSCURRENT) of a secret by ARN or name, or undefined when it does not exist or is scheduled for deletion. */
  readonly resolveSecret: (secretId: string) => Promise<string | undefined>;
}

// Aurora's rule: a transaction no call has used for three minutes is rolled back.
const TRANSACTION_IDLE_MS = 3 * 60_000;
// Every (role, password, database) gets its own small pool; thousands of tenant databases and roles come and go
// over a benchmark, so only the most recently used pools are kept, and idle connections close quickly. Room for
// more logins than run at once (a fleet migration works on 40 tenant databases): a pool ended between two calls of
// one tenant costs its next call a new connection (SCRAM, a backend, the database's catalog caches).
const MAX_POOLS = 120;
const POOL_SIZE = 10;
/** Connections per login for transactions: each holds one from BeginTransaction to its end. */
const TRANSACTION_POOL_SIZE = 50;
const POOL_IDLE_MS = 5_000;
const DRAIN_WAIT_MS = 2_000;
const MAX_SQL_LENGTH = 65_536;

const fieldSchema = z.object({
  isNull: z.boolean().optional(),
  booleanValue: z.boolean().optional(),
  longValue: z.number().int().optional(),
  doubleValue: z.number().optional(),
  stringValue: z.string().optional(),
  blobValue: z.string().optional(),
  arrayValue: z.unknown().optional(),
});
const parameterSchema = z.object({
  name: z.string().optional(),
  value: fieldSchema.optional(),
  typeHint: z.enum(TYPE_HINTS).optional(),
});
const target = {
  resourceArn: z.string().min(1),
  secretArn: z.string().min(1),
  database: z.string().optional(),
  // Accepted and ignored, as on AWS ("Currently, the schema parameter isn't supported").
  schema: z.string().optional(),
};
const executeSchema = z.object({
  ...target,
  sql: z.string().min(1).max(MAX_SQL_LENGTH),
  parameters: z.array(parameterSchema).optional(),
  transactionId: z.string().optional(),
  includeResultMetadata: z.boolean().optional(),
  // Accepted and ignored: the sandbox has no call timeout to continue after.
  continueAfterTimeout: z.boolean().optional(),
  resultSetOptions: z
    .object({
      decimalReturnType: z.enum(['STRING', 'DOUBLE_OR_LONG']).optional(),
      longReturnType: z.enum(['STRING', 'LONG']).optional(),
    })
    .optional(),
  formatRecordsAs: z.enum(['NONE', 'JSON']).optional(),
});
const batchSchema = z.object({
  ...target,
  sql: z.string().min(1).max(MAX_SQL_LENGTH),
  parameterSets: z.array(z.array(parameterSchema)).optional(),
  transactionId: z.string().optional(),
});
const beginSchema = z.object(target);
const endSchema = z.object({
  resourceArn: z.string().min(1),
  secretArn: z.string().min(1),
  transactionId: z.string().min(1),
});
const secretSchema = z.object({ username: z.string().min(1), password: z.string() });

type ExecuteInput = z.infer<typeof executeSchema>;
type BatchInput = z.infer<typeof batchSchema>;
type TargetInput = z.infer<typeof beginSchema>;

/** Whom a statement runs as, and where. */
interface Login {
  readonly user: string;
  readonly password: string;
  readonly database: string;
}

interface Operation {
  readonly name: string;
  handle(body: JsonObject, admit: (subject: string) => void): Promise<JsonObject>;
}

/**
 * The RDS Data API (restJson1, signing name `rds-data`) over the local PostgreSQL. Each statement runs as the user
 * of its `secretArn`, with that user's password, so what a role may not do fails as it does on Aurora.
 */
export function createRdsData(deps: RdsDataDeps): ServiceHandler {
  fastScram();
  const pools = new Pools(deps.postgres);
  const transactions = new Transactions(deps.postgres);

  const checkResource = (resourceArn: string): void => {
    if (resourceArn !== deps.clusterArn) {
      throw new AwsError(
        'BadRequestException',
        `Invalid resourceArn: ${resourceArn} is not a DB cluster with the Data API enabled`,
      );
    }
  };

  const login = async ({ secretArn, database }: TargetInput): Promise<Login> => {
    const secretString = await deps.resolveSecret(secretArn);
    if (secretString === undefined) {
      throw new AwsError(
        'SecretsErrorException',
        `Secrets Manager can't find the specified secret: ${secretArn}`,
      );
    }
    const secret = secretSchema.safeParse(parseSecret(secretString));
    if (!secret.success) {
      throw new AwsError('InvalidSecretException', `The secret ${secretArn} has no username and password`);
    }
    // Like Aurora, the Data API ignores the secret's dbname: without `database`, PostgreSQL's default applies,
    // the database named after the user.
    return {
      user: secret.data.username,
      password: secret.data.password,
      database: database || secret.data.username,
    };
  };

  /** Runs `work` on the transaction's connection, or on a pooled one in autocommit. */
  const withClient = async <T>(
    input: TargetInput & { transactionId?: string | undefined },
    work: (client: pg.ClientBase) => Promise<T>,
  ): Promise<T> => {
    const who = await login(input);
    if (input.transactionId) return transactions.run(input.transactionId, input.resourceArn, work);
    try {
      return await pools.run(who, work);
    } catch (error) {
      // A statement that needs a database to itself (ALTER DATABASE ... RENAME, a template copy) fails while our
      // own idle pooled connections sit in it, which Aurora's Data API would not leave behind: close them, retry.
      const busy = error instanceof pg.DatabaseError && error.code === '55006' && busyDatabase(error.message);
      if (!busy) throw error;
      await Promise.all([pools.drain(busy), transactions.drain(busy)]);
      return pools.run(who, work);
    }
  };

  const executeStatement = async (input: ExecuteInput): Promise<JsonObject> => {
    checkResource(input.resourceArn);
    const prepared = prepareSql(input.sql);
    const values = bindParameters(prepared.names, input.parameters ?? []);
    const json = input.formatRecordsAs === 'JSON';
    // Likewise for DROP DATABASE, before it spends PostgreSQL's five-second wait for other sessions to leave.
    const dropped = input.transactionId ? undefined : droppedDatabase(input.sql);
    if (dropped) await Promise.all([pools.drain(dropped), transactions.drain(dropped)]);
    const { result, metadata } = await withClient(input, async (client) => {
      const result = await runQuery(client, prepared.text, values);
      const metadata =
        input.includeResultMetadata && !json && result.fields.length > 0
          ? await describeColumns(client, result.fields)
          : undefined;
      return { result, metadata };
    });
    const output: JsonObject = { numberOfRecordsUpdated: updatedCount(result), generatedFields: [] };
    if (result.fields.length > 0) {
      const options = input.resultSetOptions ?? {};
      if (json) {
        output.formattedRecords = JSON.stringify(
          result.rows.map((row) => toJsonRecord(result.fields, row, options)),
        );
      } else {
        output.records = result.rows.map((row) => toRecord(result.fields, row, options));
        if (metadata) output.columnMetadata = metadata;
      }
    }
    return output;
  };

  const batchExecuteStatement = async (input: BatchInput): Promise<JsonObject> => {
    checkResource(input.resourceArn);
    const prepared = prepareSql(input.sql);
    const sets = (input.parameterSets ?? []).map((set) => bindParameters(prepared.names, set));
    await withClient(input, async (client) => {
      // Outside a transaction the batch is still atomic, as the JDBC batch behind the Data API is.
      const atomic = !input.transactionId && sets.length > 1;
      if (atomic) await client.query('BEGIN');
      try {
        for (const values of sets) await runQuery(client, prepared.text, values);
        if (atomic) await client.query('COMMIT');
      } catch (error) {
        if (atomic) await client.query('ROLLBACK').catch(() => {});
        throw error;
      }
    });
    return { updateResults: sets.map(() => ({ generatedFields: [] })) };
  };

  const operations: Record<string, Operation> = {
    '/Execute': {
      name: 'ExecuteStatement',
      handle: (body, admit) => {
        const input = parseInput(executeSchema, body);
        admit(input.sql);
        return executeStatement(input);
      },
    },
    '/BatchExecute': {
      name: 'BatchExecuteStatement',
      handle: (body, admit) => {
        const input = parseInput(batchSchema, body);
        admit(input.sql);
        return batchExecuteStatement(input);
      },
    },
    '/BeginTransaction': {
      name: 'BeginTransaction',
      handle: async (body, admit) => {
        const input = parseInput(beginSchema, body);
        admit(input.database ?? '');
        checkResource(input.resourceArn);
        return { transactionId: await transactions.begin(input.resourceArn, await login(input)) };
      },
    },
    '/CommitTransaction': {
      name: 'CommitTransaction',
      handle: async (body, admit) => {
        const input = parseInput(endSchema, body);
        admit(input.transactionId);
        checkResource(input.resourceArn);
        await transactions.end(input.transactionId, input.resourceArn, 'COMMIT');
        return { transactionStatus: 'Transaction Committed' };
      },
    },
    '/RollbackTransaction': {
      name: 'RollbackTransaction',
      handle: async (body, admit) => {
        const input = parseInput(endSchema, body);
        admit(input.transactionId);
        checkResource(input.resourceArn);
        await transactions.end(input.transactionId, input.resourceArn, 'ROLLBACK');
        return { transactionStatus: 'Rollback Complete' };
      },
    },
  };

  return {
    service: 'rds-data',
    signingName: 'rds-data',
    async handle(request, context: CallContext) {
      try {
        const operation = request.method === 'POST' ? operations[request.path] : undefined;
        if (!operation) {
          throw new AwsError(
            'UnknownOperationException',
            `No operation at ${request.method} ${request.path}`,
            404,
          );
        }
        const body = parseJsonObject(request.body);
        const admit = (subject: string): void =>
          context.admit({ service: 'rds-data', operation: operation.name, subject });
        return respond(200, await operation.handle(body, admit));
      } catch (error) {
        const failure = toRdsError(error);
        return respond(failure.statusCode, { message: failure.message }, failure.code);
      }
    },
    async close() {
      await transactions.close();
      await pools.close();
    },
  };
}

function respond(statusCode: number, body: JsonObject, errorType?: string): HttpResponse {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'x-amzn-requestid': randomUUID(),
  };
  if (errorType) headers['x-amzn-errortype'] = errorType;
  return { statusCode, headers, body: JSON.stringify(body) };
}

function parseInput<T>(schema: z.ZodType<T>, body: JsonObject): T {
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw new AwsError('BadRequestException', z.prettifyError(parsed.error));
  return parsed.data;
}

function parseSecret(secretString: string): unknown {
  try {
    return JSON.parse(secretString);
  } catch {
    return undefined;
  }
}

/**
 * PostgreSQL's errors in the Data API's shape, e.g. `ERROR: syntax error at or near "x"\n  Position: 8; SQLState: 42601`
 * (no Detail or Where, which the Data API leaves out).
 */
function toRdsError(error: unknown): AwsError {
  if (error instanceof AwsError) return error;
  if (error instanceof pg.DatabaseError) {
    let message = `ERROR: ${error.message}`;
    if (error.hint) message += `\n  Hint: ${error.hint}`;
    if (error.position) message += `\n  Position: ${error.position}`;
    return new AwsError('DatabaseErrorException', `${message}; SQLState: ${error.code}`);
  }
  if (error instanceof Error && 'code' in error && /^E[A-Z]+$/.test(String(error.code))) {
    return new AwsError('DatabaseUnavailableException', `The database is unavailable: ${error.message}`, 504);
  }
  const internal = toAwsError(error);
  return new AwsError('InternalServerErrorException', internal.message, 500);
}

/** The database a `DROP DATABASE` statement drops, as PostgreSQL reads its name. */
function droppedDatabase(sql: string): string | undefined {
  const name = /^\s*DROP\s+DATABASE\s+(?:IF\s+EXISTS\s+)?("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)/i.exec(
    sql,
  )?.[1];
  if (!name) return undefined;
  return name.startsWith('"') ? name.slice(1, -1).replaceAll('""', '"') : name.toLowerCase();
}

function busyDatabase(message: string): string | undefined {
  return /database "(.+)" is being accessed by other users/.exec(message)?.[1];
}

async function runQuery(client: pg.ClientBase, text: string, values: readonly BoundValue[]) {
  return client.query<unknown[]>({
    text,
    values: values.map((bound) => bound.value),
    rowMode: 'array',
    // `pg` declares these as the parameter types in its Parse message: strings go as varchar, numbers as
    // int8/float8, as the Data API's driver binds them, so PostgreSQL resolves operators as it does on Aurora.
    types: Object.assign(
      values.map((bound) => bound.oid),
      rawText,
    ),
  });
}

function updatedCount(result: pg.QueryArrayResult<unknown[]>): number {
  if (result.fields.length > 0) return 0;
  return ['INSERT', 'UPDATE', 'DELETE', 'MERGE', 'COPY'].includes(result.command)
    ? (result.rowCount ?? 0)
    : 0;
}

/** Column metadata, with type names and table facts from the catalog (one query). */
async function describeColumns(client: pg.ClientBase, fields: readonly pg.FieldDef[]): Promise<JsonObject[]> {
  const fromTables = fields.filter((field) => field.tableID !== 0);
  const { rows } = await client.query<{ kind: string; a: string; b: string; name: string; flags: string }>({
    text: `SELECT 'type' AS kind, oid::text AS a, '' AS b, typname AS name, '' AS flags
             FROM pg_type WHERE oid = ANY($1::oid[])
           UNION ALL
           SELECT 'column', a.attrelid::text, a.attnum::text, c.relname,
                  (CASE WHEN a.attnotnull THEN 'n' ELSE '' END) ||
                  (CASE WHEN a.attidentity <> '' OR pg_get_expr(d.adbin, d.adrelid) LIKE 'nextval(%' THEN 'a' ELSE '' END)
             FROM unnest($2::oid[], $3::int2[]) AS wanted(rel, num)
             JOIN pg_attribute a ON a.attrelid = wanted.rel AND a.attnum = wanted.num
             JOIN pg_class c ON c.oid = a.attrelid
             LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum`,
    values: [
      fields.map((field) => field.dataTypeID),
      fromTables.map((field) => field.tableID),
      fromTables.map((field) => field.columnID),
    ],
    types: rawText,
  });
  const typeNames = new Map<string, string>();
  const sources = new Map<string, ColumnSource>();
  for (const row of rows) {
    if (row.kind === 'type') typeNames.set(row.a, row.name);
    else {
      sources.set(`${row.a}.${row.b}`, {
        tableName: row.name,
        notNull: row.flags.includes('n'),
        autoIncrement: row.flags.includes('a'),
      });
    }
  }
  return fields.map((field) =>
    columnMetadata(
      field,
      typeNames.get(String(field.dataTypeID)) ?? 'unknown',
      sources.get(`${field.tableID}.${field.columnID}`),
    ),
  );
}

function connectionConfig(server: { host: string; port: number }, who: Login): pg.ClientConfig {
  return {
    host: server.host,
    port: server.port,
    user: who.user,
    password: who.password,
    database: who.database,
    application_name: 'rds-data-api',
    // Aurora sessions run in UTC unless the cluster's parameter group says otherwise.
    options: '-c TimeZone=UTC',
    types: rawText,
  };
}

interface PoolEntry {
  readonly pool: pg.Pool;
  readonly database: string;
}

/** Pools per (user, password, database), least recently used first, at most MAX_POOLS of them. */
class Pools {
  readonly #server: { host: string; port: number };
  readonly #pools = new Map<string, PoolEntry>();
  readonly #size: number;

  constructor(server: { host: string; port: number }, size = POOL_SIZE) {
    this.#server = server;
    this.#size = size;
  }

  /** A connection of the login's pool, for the caller to release. */
  checkout(who: Login): Promise<pg.PoolClient> {
    return this.#pool(who).connect();
  }

  async run<T>(who: Login, work: (client: pg.ClientBase) => Promise<T>): Promise<T> {
    const client = await this.#pool(who).connect();
    let broken: Error | undefined;
    try {
      return await work(client);
    } catch (error) {
      // An SQL error leaves the connection usable; anything else (a dropped socket, a FATAL) does not.
      const usable = error instanceof pg.DatabaseError && error.severity === 'ERROR';
      if (!usable) broken = error instanceof Error ? error : new Error(String(error));
      throw error;
    } finally {
      client.release(broken);
    }
  }

  /** Closes the idle pools connected to a database, so that it can be dropped or copied. */
  async drain(database: string): Promise<void> {
    const ending: Promise<void>[] = [];
    for (const [key, entry] of this.#pools) {
      if (entry.database !== database || !isIdle(entry.pool)) continue;
      this.#pools.delete(key);
      ending.push(entry.pool.end());
    }
    await Promise.race([Promise.allSettled(ending), sleep(DRAIN_WAIT_MS)]);
  }

  async close(): Promise<void> {
    const entries = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.allSettled(entries.map((entry) => entry.pool.end()));
  }

  #pool(who: Login): pg.Pool {
    const key = JSON.stringify([who.user, who.password, who.database]);
    const found = this.#pools.get(key);
    if (found) {
      this.#pools.delete(key);
      this.#pools.set(key, found);
      return found.pool;
    }
    // Room is made before the new pool is listed: listed first, it was idle (no connection yet) and could be the
    // one ended, failing its own call with "Cannot use a pool after calling end on the pool". A pool still in use
    // is skipped (ending it would strand its waiting requests); it goes on a later call.
    for (const [oldest, entry] of this.#pools) {
      if (this.#pools.size < MAX_POOLS) break;
      if (!isIdle(entry.pool)) continue;
      this.#pools.delete(oldest);
      void entry.pool.end().catch(() => {});
    }
    const pool = new pg.Pool({
      ...connectionConfig(this.#server, who),
      max: this.#size,
      idleTimeoutMillis: POOL_IDLE_MS,
      allowExitOnIdle: true,
    });
    // An idle connection ended by the server (DROP DATABASE ... WITH (FORCE), a terminated backend) is just gone.
    pool.on('error', () => {});
    this.#pools.set(key, { pool, database: who.database });
    return pool;
  }
}

function isIdle(pool: pg.Pool): boolean {
  return pool.waitingCount === 0 && pool.idleCount === pool.totalCount;
}

interface Transaction {
  readonly client: pg.PoolClient;
  readonly resourceArn: string;
  readonly timer: NodeJS.Timeout;
  /** Gives the connection back (destroyed when `broken`); once. */
  readonly release: (broken?: Error) => void;
}

/**
 * Open transactions, each holding a connection for its life; the live connections are the state, so they stay in
 * memory. The connections come from pools of their own (not the autocommit statements'), so that transactions
 * waiting on an autocommit statement can never hold every connection it needs; a connection is reused by the next
 * transaction instead of being opened (a backend started, a SCRAM exchange) for each.
 */
class Transactions {
  readonly #pools: Pools;
  readonly #open = new Map<string, Transaction>();

  constructor(server: { host: string; port: number }) {
    this.#pools = new Pools(server, TRANSACTION_POOL_SIZE);
  }

  async begin(resourceArn: string, who: Login): Promise<string> {
    const id = randomBytes(48).toString('base64');
    const client = await this.#pools.checkout(who);
    let released = false;
    const release = (broken?: Error) => {
      if (released) return;
      released = true;
      client.off('error', onError);
      client.release(broken);
    };
    // A connection lost while the transaction is open ends it: Aurora would roll it back.
    const onError = (error: Error) => {
      this.#forget(id);
      release(error);
    };
    client.on('error', onError);
    try {
      await client.query('BEGIN');
    } catch (error) {
      release(error instanceof Error ? error : new Error(String(error)));
      throw error;
    }
    const timer = setTimeout(
      () => void this.end(id, resourceArn, 'ROLLBACK').catch(() => {}),
      TRANSACTION_IDLE_MS,
    );
    timer.unref();
    this.#open.set(id, { client, resourceArn, timer, release });
    return id;
  }

  /** Closes the idle connections to a database, so that it can be dropped or copied. */
  drain(database: string): Promise<void> {
    return this.#pools.drain(database);
  }

  /** Runs a statement in the transaction; an error leaves it open but aborted, as on Aurora. */
  async run<T>(id: string, resourceArn: string, work: (client: pg.ClientBase) => Promise<T>): Promise<T> {
    const transaction = this.#get(id, resourceArn);
    transaction.timer.refresh();
    try {
      return await work(transaction.client);
    } finally {
      transaction.timer.refresh();
    }
  }

  async end(id: string, resourceArn: string, command: 'COMMIT' | 'ROLLBACK'): Promise<void> {
    const transaction = this.#get(id, resourceArn);
    this.#forget(id);
    let broken: Error | undefined;
    try {
      // COMMIT of an aborted transaction rolls it back without an error, as through Aurora's JDBC driver.
      await transaction.client.query(command);
    } catch (error) {
      // An SQL error leaves the connection usable (the transaction is over); anything else does not.
      if (!(error instanceof pg.DatabaseError && error.severity === 'ERROR')) {
        broken = error instanceof Error ? error : new Error(String(error));
      }
      throw error;
    } finally {
      transaction.release(broken);
    }
  }

  async close(): Promise<void> {
    const open = [...this.#open.values()];
    for (const transaction of open) clearTimeout(transaction.timer);
    this.#open.clear();
    // Destroying the connection rolls the transaction back.
    for (const transaction of open) transaction.release(new Error('The sandbox is stopping'));
    await this.#pools.close();
  }

  #get(id: string, resourceArn: string): Transaction {
    const transaction = this.#open.get(id);
    if (!transaction || transaction.resourceArn !== resourceArn) {
      throw new AwsError('TransactionNotFoundException', `Transaction ${id} is not found`, 404);
    }
    return transaction;
  }

  #forget(id: string): void {
    const transaction = this.#open.get(id);
    if (!transaction) return;
    clearTimeout(transaction.timer);
    this.#open.delete(id);
  }
}
