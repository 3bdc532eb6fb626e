import { randomBytes, randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { z } from 'zod';
import { fastScram } from '../pg-scram.ts';
import {
  AwsError,
  type CallContext,
  type HttpResponse,
  type JsonObject,
  type SandboxRoute,
  type ServiceHandler,
  toAwsError,
} from '../protocol.ts';
import { json as jsonResponse } from '../server.ts';
import {
  type ColumnSource,
  checkResultSize,
  columnMetadata,
  rawText,
  stringifyExact,
  toJsonRecord,
  toRecord,
} from './rds-data-results.ts';
import { type BoundValue, bindParameters, LONG_VALUE, prepareSql, TYPE_HINTS } from './rds-data-sql.ts';

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

/**
 * BeginTransaction (RDS Data API Reference): "A transaction times out if no calls use its transaction ID in three
 * minutes ... it's rolled back automatically", and "A transaction can run for a maximum of 24 hours".
 */
export const TRANSACTION_IDLE_MS = 3 * 60_000;
export const TRANSACTION_MAX_MS = 24 * 60 * 60_000;
/** How often expired transactions are rolled back (their connections and locks released) without waiting for a call. */
const TRANSACTION_SWEEP_MS = 10_000;
/**
 * "Controlling Data API timeout behavior" (Aurora User Guide): "By default, the Data API cancels an operation and
 * returns a timeout error if the operation doesn't finish processing within 45 seconds."
 */
export const STATEMENT_TIMEOUT_MS = 45_000;
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
  // Parsed from the request's own digits (see parseRequest): a full 64-bit integer, as the API's `Long` is.
  longValue: LONG_VALUE.optional(),
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
  // "Schema parameter behavior" (Comparing Data API behaviors for Aurora Serverless v2 and provisioned clusters): v2
  // and provisioned clusters answer "ValidationException: The schema parameter isn't supported".
  schema: z.string().optional(),
};
const executeSchema = z.object({
  ...target,
  sql: z.string().min(1).max(MAX_SQL_LENGTH),
  parameters: z.array(parameterSchema).optional(),
  transactionId: z.string().optional(),
  includeResultMetadata: z.boolean().optional(),
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
  /** The response body: JSON text, whose integers may exceed what a JavaScript number holds exactly. */
  handle(body: JsonObject, admit: (subject: string) => void): Promise<string>;
}

/** A statement timeout for calls whose SQL contains `match` (a sandbox control, for tests that cannot wait 45 s). */
const timeoutRuleSchema = z.object({ match: z.string().min(1), ms: z.number().int().positive() });

/**
 * The RDS Data API (restJson1, signing name `rds-data`) over the local PostgreSQL. Each statement runs as the user
 * of its `secretArn`, with that user's password, so what a role may not do fails as it does on Aurora. The limits
 * AWS documents for Aurora Serverless v2 and provisioned clusters are kept (docs/sandbox-data-api.md lists each with
 * its source and test): result and row sizes, the 45-second call timeout, transactions that end on an error, expire
 * and refuse a second concurrent call, full 64-bit integers both ways.
 *
 * Sandbox controls: `POST /_sandbox/rds-data/transactions/age` with `{ transactionId, seconds, keepLastCall? }`
 * makes one transaction that much older (its start, and its last call unless kept), so that expiry is tested
 * without waiting minutes, and without touching the transactions of other tests;
 * `POST|DELETE /_sandbox/rds-data/statement-timeouts` with `[{ match, ms }]` gives calls whose SQL contains `match`
 * a shorter timeout than 45 s.
 */
export function createRdsData(deps: RdsDataDeps): ServiceHandler {
  fastScram();
  const pools = new Pools(deps.postgres);
  const transactions = new Transactions(deps.postgres);
  const timeoutRules: z.infer<typeof timeoutRuleSchema>[] = [];

  const checkResource = (resourceArn: string): void => {
    // "HttpEndpoint isn't enabled for cluster <cluster_ID>" (Troubleshooting Amazon RDS Data API): what a cluster
    // without the Data API, or an ARN that doesn't precisely match the cluster's, is answered; the exception is
    // HttpEndpointNotEnabledException (RDS Data API Reference, Errors).
    if (resourceArn !== deps.clusterArn) {
      const named = resourceArn.split(':').at(-1) || resourceArn;
      throw new AwsError(
        'HttpEndpointNotEnabledException',
        `HttpEndpoint is not enabled for cluster ${named}`,
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

  const timeoutFor = (sql: string): number =>
    timeoutRules.find((rule) => sql.includes(rule.match))?.ms ?? STATEMENT_TIMEOUT_MS;

  /**
   * Runs `work` on the transaction's connection, or on a pooled one in autocommit, within the call's timeout: at
   * the deadline the statement is cancelled and the call answers StatementTimeoutException, or, with
   * `continueAfterTimeout`, the call answers the same while the statement runs on to its end ("Controlling Data API
   * timeout behavior"). In a transaction, any error of the statement ends the transaction (see {@link Transactions}).
   */
  const withClient = async <T>(
    input: TargetInput & { transactionId?: string | undefined },
    options: { readonly sql: string; readonly continueAfterTimeout?: boolean | undefined },
    work: (client: pg.ClientBase) => Promise<T>,
  ): Promise<T> => {
    const deadline = Date.now() + timeoutFor(options.sql);
    const who = await login(input);
    const timed = (client: pg.ClientBase) =>
      withDeadline(deps.postgres, client, deadline, options.continueAfterTimeout ?? false, () =>
        work(client),
      );
    if (input.transactionId) return transactions.run(input.transactionId, input.resourceArn, timed);
    try {
      return await pools.run(who, timed);
    } catch (error) {
      // A statement that needs a database to itself (ALTER DATABASE ... RENAME, a template copy) fails while our
      // own idle pooled connections sit in it, which Aurora's Data API would not leave behind: close them, retry.
      const busy = error instanceof pg.DatabaseError && error.code === '55006' && busyDatabase(error.message);
      if (!busy) throw error;
      await Promise.all([pools.drain(busy), transactions.drain(busy)]);
      return pools.run(who, timed);
    }
  };

  const executeStatement = async (input: ExecuteInput): Promise<string> => {
    checkResource(input.resourceArn);
    const prepared = prepareSql(input.sql);
    const values = bindParameters(prepared.names, input.parameters ?? []);
    const json = input.formatRecordsAs === 'JSON';
    // Likewise for DROP DATABASE, before it spends PostgreSQL's five-second wait for other sessions to leave.
    const dropped = input.transactionId ? undefined : droppedDatabase(input.sql);
    if (dropped) await Promise.all([pools.drain(dropped), transactions.drain(dropped)]);
    const options = input.resultSetOptions ?? {};
    return withClient(input, input, async (client) => {
      const result = await runQuery(client, prepared.text, values);
      const output: JsonObject = { numberOfRecordsUpdated: updatedCount(result), generatedFields: [] };
      if (result.fields.length === 0) return stringifyExact(output);
      // The result is refused before it is mapped: inside the call, so that a refusal ends a transaction as any
      // error of its statement does.
      checkResultSize(result.fields, result.rows);
      if (json) {
        const formatted = stringifyExact(result.rows.map((row) => toJsonRecord(result.fields, row, options)));
        // "Processing Amazon RDS Data API query results in JSON format", Troubleshooting: "The JSON response is
        // limited to 10 megabytes ... your program receives a BadRequestException error"; the Aurora quota "Data
        // API maximum JSON response string size" is 10 MB.
        if (Buffer.byteLength(formatted) > MAX_JSON_RESPONSE_BYTES) {
          throw new AwsError('BadRequestException', 'Database response exceeded size limit');
        }
        output.formattedRecords = formatted;
        return stringifyExact(output);
      }
      output.records = result.rows.map((row) => toRecord(result.fields, row, options));
      if (input.includeResultMetadata) output.columnMetadata = await describeColumns(client, result.fields);
      return stringifyExact(output);
    });
  };

  const batchExecuteStatement = async (input: BatchInput): Promise<JsonObject> => {
    checkResource(input.resourceArn);
    const prepared = prepareSql(input.sql);
    const sets = (input.parameterSets ?? []).map((set) => bindParameters(prepared.names, set));
    await withClient(input, input, async (client) => {
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

  const refuseSchema = (input: { schema?: string | undefined }): void => {
    if (input.schema !== undefined) {
      throw new AwsError('ValidationException', "The schema parameter isn't supported");
    }
  };

  const operations: Record<string, Operation> = {
    '/Execute': {
      name: 'ExecuteStatement',
      handle: (body, admit) => {
        const input = parseInput(executeSchema, body);
        admit(input.sql);
        refuseSchema(input);
        return executeStatement(input);
      },
    },
    '/BatchExecute': {
      name: 'BatchExecuteStatement',
      handle: async (body, admit) => {
        const input = parseInput(batchSchema, body);
        admit(input.sql);
        refuseSchema(input);
        return stringifyExact(await batchExecuteStatement(input));
      },
    },
    '/BeginTransaction': {
      name: 'BeginTransaction',
      handle: async (body, admit) => {
        const input = parseInput(beginSchema, body);
        admit(input.database ?? '');
        refuseSchema(input);
        checkResource(input.resourceArn);
        return stringifyExact({
          transactionId: await transactions.begin(input.resourceArn, await login(input)),
        });
      },
    },
    '/CommitTransaction': {
      name: 'CommitTransaction',
      handle: async (body, admit) => {
        const input = parseInput(endSchema, body);
        admit(input.transactionId);
        checkResource(input.resourceArn);
        await transactions.end(input.transactionId, input.resourceArn, 'COMMIT');
        return stringifyExact({ transactionStatus: 'Transaction Committed' });
      },
    },
    '/RollbackTransaction': {
      name: 'RollbackTransaction',
      handle: async (body, admit) => {
        const input = parseInput(endSchema, body);
        admit(input.transactionId);
        checkResource(input.resourceArn);
        await transactions.end(input.transactionId, input.resourceArn, 'ROLLBACK');
        return stringifyExact({ transactionStatus: 'Rollback Complete' });
      },
    },
  };

  const routes: Record<string, SandboxRoute> = {
    'POST /_sandbox/rds-data/transactions/age': async (request) => {
      const parsed = z
        .object({
          transactionId: z.string().min(1),
          seconds: z.number().positive(),
          // Only the start moves: a transaction in steady use that reaches its maximum life.
          keepLastCall: z.boolean().optional(),
        })
        .safeParse(controlBody(request.body));
      if (!parsed.success) return jsonResponse(400, { error: z.prettifyError(parsed.error) });
      const { transactionId, seconds, keepLastCall } = parsed.data;
      const found = await transactions.age(transactionId, seconds * 1000, keepLastCall ?? false);
      return jsonResponse(found ? 200 : 404, { transactionId, found });
    },
    'POST /_sandbox/rds-data/statement-timeouts': async (request) => {
      const parsed = z.array(timeoutRuleSchema).safeParse(controlBody(request.body));
      if (!parsed.success) return jsonResponse(400, { error: z.prettifyError(parsed.error) });
      timeoutRules.push(...parsed.data);
      return jsonResponse(200, timeoutRules);
    },
    'DELETE /_sandbox/rds-data/statement-timeouts': async (request) => {
      const parsed = z.array(timeoutRuleSchema).safeParse(controlBody(request.body));
      if (!parsed.success) return jsonResponse(400, { error: z.prettifyError(parsed.error) });
      for (const rule of parsed.data) {
        const at = timeoutRules.findIndex((kept) => kept.match === rule.match && kept.ms === rule.ms);
        if (at !== -1) timeoutRules.splice(at, 1);
      }
      return jsonResponse(200, timeoutRules);
    },
  };

  return {
    service: 'rds-data',
    signingName: 'rds-data',
    routes,
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
        const body = parseRequest(request.body);
        const admit = (subject: string): void =>
          context.admit({ service: 'rds-data', operation: operation.name, subject });
        return respond(200, await operation.handle(body, admit));
      } catch (error) {
        const failure = toRdsError(error);
        const body: JsonObject = { message: failure.message };
        if (failure instanceof StatementTimeoutError) body.dbConnectionId = failure.dbConnectionId;
        return respond(failure.statusCode, JSON.stringify(body), failure.code);
      }
    },
    async close() {
      await transactions.close();
      await pools.close();
    },
  };
}

/** "Data API maximum JSON response string size" (Quotas in Amazon Aurora): 10 MB. */
const MAX_JSON_RESPONSE_BYTES = 10 * 1024 * 1024;

/** StatementTimeoutException, with the `dbConnectionId` member its shape has (RDS Data API Reference). */
class StatementTimeoutError extends AwsError {
  readonly dbConnectionId: number;
  constructor(dbConnectionId: number) {
    // The message AWS sends is not documented; "Request timed out" is what callers have reported seeing.
    super('StatementTimeoutException', 'Request timed out');
    this.dbConnectionId = dbConnectionId;
  }
}

/**
 * Runs `work` (one statement on `client`) until `deadline`. Past it, without `continueAfterTimeout`, the statement
 * is cancelled (PostgreSQL's cancel request, as a driver's query timeout sends it) and StatementTimeoutException
 * thrown once it has stopped; with it, StatementTimeoutException is thrown at once and the statement runs on, its
 * connection held (a transaction's stays busy) until it ends.
 */
async function withDeadline<T>(
  server: { host: string; port: number },
  client: pg.ClientBase,
  deadline: number,
  continueAfterTimeout: boolean,
  work: () => Promise<T>,
): Promise<T> {
  const running = work();
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<'expired'>((resolve) => {
    timer = setTimeout(() => resolve('expired'), Math.max(0, deadline - Date.now()));
  });
  try {
    const first = await Promise.race([running, expired]);
    if (first !== 'expired') return first;
  } finally {
    clearTimeout(timer);
  }
  const pid = processId(client);
  if (continueAfterTimeout) {
    // The caller learns of the outcome by looking; the statement's own end is not an error of this call.
    running.catch(() => {});
    throw new ContinuingTimeout(new StatementTimeoutError(pid), running);
  }
  await cancelBackend(server, client);
  await running.catch(() => {});
  throw new StatementTimeoutError(pid);
}

/** A timeout whose statement runs on: the call answers `timeout`; its connection is held until `running` ends. */
class ContinuingTimeout extends Error {
  readonly timeout: StatementTimeoutError;
  readonly running: Promise<unknown>;
  constructor(timeout: StatementTimeoutError, running: Promise<unknown>) {
    super(timeout.message);
    this.timeout = timeout;
    this.running = running;
  }
}

function processId(client: pg.ClientBase): number {
  const id = (client as unknown as { processID?: unknown }).processID;
  return typeof id === 'number' ? id : 0;
}

/** PostgreSQL's CancelRequest for the statement running on `client` (its backend's pid and secret key). */
function cancelBackend(server: { host: string; port: number }, client: pg.ClientBase): Promise<void> {
  const keys = client as unknown as { processID?: unknown; secretKey?: unknown };
  if (typeof keys.processID !== 'number' || typeof keys.secretKey !== 'number') return Promise.resolve();
  const packet = Buffer.alloc(16);
  packet.writeInt32BE(16, 0);
  packet.writeInt32BE(80877102, 4);
  packet.writeInt32BE(keys.processID, 8);
  packet.writeInt32BE(keys.secretKey, 12);
  return new Promise((resolve) => {
    const socket = connect(server.port, server.host, () => socket.end(packet));
    socket.on('close', () => resolve());
    socket.on('error', () => resolve());
  });
}

/** A sandbox control's JSON body (undefined when it is not JSON, which its schema then refuses). */
function controlBody(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
}

/**
 * A request body as JSON, with every `longValue` kept as the digits it was sent as: a `Long` is a 64-bit integer,
 * which a JavaScript number would round above 2^53.
 */
function parseRequest(body: Buffer): JsonObject {
  if (body.length === 0) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'), exactLongs);
  } catch {
    throw new AwsError('SerializationException', 'Request body is not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new AwsError('SerializationException', 'Request body must be a JSON object');
  }
  return parsed as JsonObject;
}

/** JSON.parse's reviver with the source text (ES2025 "JSON.parse source text access", Node 21 on). */
function exactLongs(this: unknown, key: string, value: unknown, context?: { source?: string }): unknown {
  if (key === 'longValue' && typeof value === 'number' && context?.source !== undefined) {
    return { digits: context.source };
  }
  return value;
}

function respond(statusCode: number, body: string, errorType?: string): HttpResponse {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'x-amzn-requestid': randomUUID(),
  };
  if (errorType) headers['x-amzn-errortype'] = errorType;
  return { statusCode, headers, body };
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
  if (error instanceof ContinuingTimeout) return error.timeout;
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
    try {
      const result = await work(client);
      client.release();
      return result;
    } catch (error) {
      // A statement that runs on after its call timed out keeps its connection until it ends.
      if (error instanceof ContinuingTimeout) {
        void error.running.then(
          () => client.release(),
          (ended: unknown) => client.release(unusable(ended)),
        );
      } else {
        client.release(unusable(error));
      }
      throw error;
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

/** An SQL error leaves a connection usable; anything else (a dropped socket, a FATAL) is returned to be destroyed. */
function unusable(error: unknown): Error | undefined {
  if (error instanceof pg.DatabaseError && error.severity === 'ERROR') return undefined;
  if (error instanceof AwsError) return undefined;
  return error instanceof Error ? error : new Error(String(error));
}

function isIdle(pool: pg.Pool): boolean {
  return pool.waitingCount === 0 && pool.idleCount === pool.totalCount;
}

interface Transaction {
  readonly client: pg.PoolClient;
  readonly resourceArn: string;
  /** When BeginTransaction made it, and when a call last used it (ms since the epoch; the age control moves both). */
  beganAt: number;
  lastCallAt: number;
  /** A call is running on it (a statement that went on past its call's timeout included). */
  busy: boolean;
  /** Gives the connection back (destroyed when `broken`); once. */
  readonly release: (broken?: Error) => void;
}

/** Why a transaction id is no longer known: the causes "Transaction <transaction_ID> isn't found" appends. */
const ENDED = {
  expired: 'Transaction may be expired.',
  finished: 'One previous call resulted in a termination of your transaction.',
  aborted: 'Transaction has been aborted due to an error from a previous call.',
} as const;
type Ended = keyof typeof ENDED;
/** Ended transaction ids remembered for their cause; the oldest are forgotten first. */
const ENDED_KEPT = 10_000;

/**
 * Open transactions, each holding a connection for its life; the live connections are the state, so they stay in
 * memory. The connections come from pools of their own (not the autocommit statements'), so that transactions
 * waiting on an autocommit statement can never hold every connection it needs; a connection is reused by the next
 * transaction instead of being opened (a backend started, a SCRAM exchange) for each.
 *
 * As on Aurora Serverless v2 and provisioned clusters ("Troubleshooting Amazon RDS Data API"):
 * - an error of any call in a transaction ends it, rolled back: later calls with its id, CommitTransaction included,
 *   answer TransactionNotFoundException "Transaction <id> is not found" with the cause appended;
 * - a transaction no call used for three minutes, or older than 24 hours, is rolled back (BeginTransaction);
 * - a call while another runs in the same transaction answers at once "DatabaseErrorException: Transaction is still
 *   running a query".
 */
class Transactions {
  readonly #pools: Pools;
  readonly #open = new Map<string, Transaction>();
  readonly #ended = new Map<string, Ended>();
  readonly #sweeper: NodeJS.Timeout;

  constructor(server: { host: string; port: number }) {
    this.#pools = new Pools(server, TRANSACTION_POOL_SIZE);
    this.#sweeper = setInterval(() => void this.#sweep(), TRANSACTION_SWEEP_MS);
    this.#sweeper.unref();
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
      this.#forget(id, 'aborted');
      release(error);
    };
    client.on('error', onError);
    try {
      await client.query('BEGIN');
    } catch (error) {
      release(error instanceof Error ? error : new Error(String(error)));
      throw error;
    }
    const now = Date.now();
    this.#open.set(id, { client, resourceArn, beganAt: now, lastCallAt: now, busy: false, release });
    return id;
  }

  /** Closes the idle connections to a database, so that it can be dropped or copied. */
  drain(database: string): Promise<void> {
    return this.#pools.drain(database);
  }

  /** Runs a statement in the transaction; if it fails, the transaction ends, rolled back. */
  async run<T>(id: string, resourceArn: string, work: (client: pg.ClientBase) => Promise<T>): Promise<T> {
    const transaction = this.#claim(id, resourceArn);
    try {
      const result = await work(transaction.client);
      this.#settle(transaction);
      return result;
    } catch (error) {
      if (error instanceof ContinuingTimeout) {
        // The statement runs on: the transaction stays open and busy until it ends, and ends with it if it fails.
        void error.running.then(
          () => this.#settle(transaction),
          () => void this.#abort(id, transaction),
        );
      } else {
        await this.#abort(id, transaction);
      }
      throw error;
    }
  }

  async end(id: string, resourceArn: string, command: 'COMMIT' | 'ROLLBACK'): Promise<void> {
    const transaction = this.#claim(id, resourceArn);
    this.#forget(id, 'finished');
    let broken: Error | undefined;
    try {
      await transaction.client.query(command);
    } catch (error) {
      // A COMMIT that fails (a deferred constraint) has ended the transaction all the same.
      broken = unusable(error);
      throw error;
    } finally {
      transaction.release(broken);
    }
  }

  /** Moves a transaction's start and last call `ms` into the past, then ends it if that expired it. */
  async age(id: string, ms: number, keepLastCall: boolean): Promise<boolean> {
    const transaction = this.#open.get(id);
    if (!transaction) return false;
    transaction.beganAt -= ms;
    if (!keepLastCall) transaction.lastCallAt -= ms;
    await this.#sweep();
    return true;
  }

  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    const open = [...this.#open.values()];
    this.#open.clear();
    // Destroying the connection rolls the transaction back.
    for (const transaction of open) transaction.release(new Error('The sandbox is stopping'));
    await this.#pools.close();
  }

  /** The transaction for a call: known, live, not busy; marked busy and used now. */
  #claim(id: string, resourceArn: string): Transaction {
    const transaction = this.#open.get(id);
    if (transaction && this.#expired(transaction)) void this.#expire(id, transaction);
    const live = this.#open.get(id);
    if (!live || live.resourceArn !== resourceArn) {
      const cause = this.#ended.get(id) ?? 'expired';
      throw new AwsError(
        'TransactionNotFoundException',
        `Transaction ${id} is not found. ${ENDED[cause]}`,
        404,
      );
    }
    if (live.busy) throw new AwsError('DatabaseErrorException', 'Transaction is still running a query');
    live.busy = true;
    live.lastCallAt = Date.now();
    return live;
  }

  #settle(transaction: Transaction): void {
    transaction.busy = false;
    transaction.lastCallAt = Date.now();
  }

  #expired(transaction: Transaction, now = Date.now()): boolean {
    return (
      (!transaction.busy && now - transaction.lastCallAt > TRANSACTION_IDLE_MS) ||
      now - transaction.beganAt > TRANSACTION_MAX_MS
    );
  }

  async #sweep(): Promise<void> {
    const now = Date.now();
    const expired = [...this.#open].filter(([, transaction]) => this.#expired(transaction, now));
    await Promise.all(expired.map(([id, transaction]) => this.#expire(id, transaction)));
  }

  /** Rolls back a transaction that timed out: destroying its connection ends a statement still running in it. */
  async #expire(id: string, transaction: Transaction): Promise<void> {
    this.#forget(id, 'expired');
    if (transaction.busy) {
      transaction.release(new Error('The transaction expired'));
      return;
    }
    await this.#rollback(transaction);
  }

  async #abort(id: string, transaction: Transaction): Promise<void> {
    this.#forget(id, 'aborted');
    await this.#rollback(transaction);
  }

  async #rollback(transaction: Transaction): Promise<void> {
    let broken: Error | undefined;
    try {
      await transaction.client.query('ROLLBACK');
    } catch (error) {
      broken = error instanceof Error ? error : new Error(String(error));
    } finally {
      transaction.release(broken);
    }
  }

  #forget(id: string, cause: Ended): void {
    if (!this.#open.delete(id)) return;
    this.#ended.set(id, cause);
    for (const oldest of this.#ended.keys()) {
      if (this.#ended.size <= ENDED_KEPT) break;
      this.#ended.delete(oldest);
    }
  }
}
