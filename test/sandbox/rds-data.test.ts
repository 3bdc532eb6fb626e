import {
  BatchExecuteStatementCommand,
  BeginTransactionCommand,
  CommitTransactionCommand,
  ExecuteStatementCommand,
  type ExecuteStatementCommandInput,
  RDSDataClient,
  RollbackTransactionCommand,
} from '@aws-sdk/client-rds-data';
import {
  CreateSecretCommand,
  DeleteSecretCommand,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  addFaults,
  clientConfig,
  removeFaults,
  sandbox,
  superuserPool,
  uniqueName,
  withStatementTimeout,
} from '../support/sandbox.ts';

const rds = new RDSDataClient(clientConfig);
const secrets = new SecretsManagerClient(clientConfig);
const sqlName = (prefix: string) => uniqueName(prefix).replaceAll('-', '_');

// Every test works in this database, created by the provisioner through the Data API itself; its sessions resolve
// names in pg_catalog only (functions/shared/tenant-db.ts), so tables are named with their schema.
const database = sqlName('rds_data');
const asProvisioner = { resourceArn: sandbox.clusterArn, secretArn: sandbox.provisionerSecretArn, database };

type Statement = Omit<ExecuteStatementCommandInput, 'resourceArn' | 'secretArn'> & {
  resourceArn?: string;
  secretArn?: string;
};
const execute = (input: Statement) => rds.send(new ExecuteStatementCommand({ ...asProvisioner, ...input }));

/** The error a promise rejects with, so that its `name` and `message` can be asserted. */
async function failure(
  promise: Promise<unknown>,
): Promise<Error & { $metadata?: { httpStatusCode?: number } }> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof Error) return error;
    throw error;
  }
  throw new Error('expected the call to fail');
}

/** The rows of a table, read as the superuser on a connection of its own (the database is dropped with FORCE). */
async function rowsIn(table: string): Promise<unknown[]> {
  const client = new pg.Client({ ...sandbox.postgres, database });
  await client.connect();
  try {
    return (await client.query(`SELECT * FROM public."${table}" ORDER BY 1`)).rows;
  } finally {
    await client.end();
  }
}

/** Makes one transaction older through the sandbox's control (no other test's transaction is touched). */
async function age(transactionId: string, seconds: number, options: { keepLastCall?: boolean } = {}) {
  const response = await fetch(`${sandbox.awsEndpoint}/_sandbox/rds-data/transactions/age`, {
    method: 'POST',
    body: JSON.stringify({ transactionId, seconds, ...options }),
  });
  if (!response.ok) throw new Error(`age: ${response.status} ${await response.text()}`);
}

/**
 * An ExecuteStatement as raw JSON text both ways, as a client that reads 64-bit integers exactly (boto3, the JDBC
 * driver) sees it; the JavaScript SDK parses numbers into doubles. The sandbox routes by the credential scope.
 */
async function wire(body: string): Promise<{ status: number; text: string }> {
  const response = await fetch(`${sandbox.awsEndpoint}/Execute`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      authorization: `AWS4-HMAC-SHA256 Credential=test/20240101/${sandbox.region}/rds-data/aws4_request, SignedHeaders=host, Signature=0`,
    },
    body,
  });
  return { status: response.status, text: await response.text() };
}

const target = () =>
  `"resourceArn":${JSON.stringify(sandbox.clusterArn)},"secretArn":${JSON.stringify(sandbox.provisionerSecretArn)},"database":${JSON.stringify(database)}`;

// The 45-second timeout itself, as AWS applies it: started first, so that it runs while the other tests do.
let defaultTimeout: Promise<{ error: Error; seconds: number }>;

beforeAll(async () => {
  await execute({ sql: `CREATE DATABASE "${database}"`, database: 'postgres' });
  const started = Date.now();
  defaultTimeout = failure(execute({ sql: 'SELECT pg_sleep(50) AS slept' })).then((error) => ({
    error,
    seconds: (Date.now() - started) / 1000,
  }));
});

afterAll(async () => {
  await superuserPool().query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
  rds.destroy();
  secrets.destroy();
});

describe('RDS Data API: statements and values', () => {
  it('binds every parameter kind and type hint and returns them typed', async () => {
    // Prepare
    const id = '6f1c2b1e-1111-4222-8333-444455556666';

    // Act
    const output = await execute({
      sql: `SELECT :text AS text, :long AS long, :double AS double, :bool AS bool, :none::int AS none,
                   :blob AS blob, :id AS id, :doc AS doc, :at AS at, :day AS day, :clock AS clock,
                   :price AS price, pg_typeof(:text)::text AS text_type, ':not_a_param' AS literal`,
      parameters: [
        { name: 'text', value: { stringValue: "it's" } },
        { name: 'long', value: { longValue: 9_007_199_254_740_991 } },
        { name: 'double', value: { doubleValue: 2.5 } },
        { name: 'bool', value: { booleanValue: true } },
        { name: 'none', value: { isNull: true } },
        { name: 'blob', value: { blobValue: new Uint8Array([0, 1, 255]) } },
        { name: 'id', value: { stringValue: id }, typeHint: 'UUID' },
        { name: 'doc', value: { stringValue: '{"plan":"pro"}' }, typeHint: 'JSON' },
        { name: 'at', value: { stringValue: '2024-01-02 03:04:05.123' }, typeHint: 'TIMESTAMP' },
        { name: 'day', value: { stringValue: '2024-01-02' }, typeHint: 'DATE' },
        { name: 'clock', value: { stringValue: '03:04:05' }, typeHint: 'TIME' },
        { name: 'price', value: { stringValue: '12.340' }, typeHint: 'DECIMAL' },
      ],
    });

    // Assess
    expect(output.records).toEqual([
      [
        { stringValue: "it's" },
        { longValue: 9_007_199_254_740_991 },
        { doubleValue: 2.5 },
        { booleanValue: true },
        { isNull: true },
        { blobValue: new Uint8Array([0, 1, 255]) },
        { stringValue: id },
        { stringValue: '{"plan":"pro"}' },
        { stringValue: '2024-01-02 03:04:05.123' },
        { stringValue: '2024-01-02' },
        { stringValue: '03:04:05' },
        { stringValue: '12.340' },
        { stringValue: 'character varying' },
        { stringValue: ':not_a_param' },
      ],
    ]);
    expect(output.numberOfRecordsUpdated).toBe(0);
  });

  it('maps PostgreSQL result types as Aurora does, arrays included', async () => {
    // Act
    const output = await execute({
      sql: `SELECT 7::int2 AS small, 1.5::float4 AS real, 3.10::numeric(4,2) AS num, '\\x0aff'::bytea AS bytes,
                   '2024-01-02 03:04:05.5+02'::timestamptz AS instant, '{"a": 1}'::jsonb AS doc,
                   ARRAY[1, NULL, 3] AS ints, ARRAY['a', 'b c'] AS texts, NULL::text AS nothing`,
    });

    // Assess
    expect(output.records).toEqual([
      [
        { longValue: 7 },
        { doubleValue: 1.5 },
        { stringValue: '3.10' },
        { blobValue: new Uint8Array([0x0a, 0xff]) },
        { stringValue: '2024-01-02 01:04:05.5' },
        { stringValue: '{"a": 1}' },
        { arrayValue: { longValues: [1, null, 3] } },
        { arrayValue: { stringValues: ['a', 'b c'] } },
        { isNull: true },
      ],
    ]);
  });

  it('describes the columns with includeResultMetadata', async () => {
    // Prepare
    const table = sqlName('plans');
    await execute({
      sql: `CREATE TABLE public."${table}" (id serial PRIMARY KEY, name varchar(40) NOT NULL, fee numeric(8,2))`,
    });
    await execute({ sql: `INSERT INTO public."${table}" (name, fee) VALUES ('pro', 9.5)` });

    // Act
    const output = await execute({
      sql: `SELECT id, name, fee, fee * 2 AS double_fee FROM public."${table}"`,
      includeResultMetadata: true,
    });

    // Assess
    expect(output.records).toEqual([
      [{ longValue: 1 }, { stringValue: 'pro' }, { stringValue: '9.50' }, { stringValue: '19.00' }],
    ]);
    expect(output.columnMetadata).toMatchObject([
      {
        name: 'id',
        label: 'id',
        typeName: 'serial',
        type: 4,
        nullable: 0,
        isAutoIncrement: true,
        tableName: table,
      },
      { name: 'name', typeName: 'varchar', type: 12, nullable: 0, precision: 40, tableName: table },
      { name: 'fee', typeName: 'numeric', type: 2, nullable: 1, precision: 8, scale: 2, isSigned: true },
      { name: 'double_fee', typeName: 'numeric', type: 2, nullable: 2, tableName: '' },
    ]);
  });

  it('returns formattedRecords instead of records with formatRecordsAs JSON', async () => {
    // Act
    const output = await execute({
      sql: `SELECT 1 AS id, 'pro' AS plan, 2.5::float8 AS ratio, true AS active, NULL AS ended,
                   ARRAY[1, 2] AS seats, '{"a": 1}'::jsonb AS doc, 9.50::numeric AS fee`,
      formatRecordsAs: 'JSON',
      includeResultMetadata: true,
    });

    // Assess
    expect(output.records).toBeUndefined();
    expect(output.columnMetadata).toBeUndefined();
    expect(JSON.parse(output.formattedRecords ?? '')).toEqual([
      {
        id: 1,
        plan: 'pro',
        ratio: 2.5,
        active: true,
        ended: null,
        seats: [1, 2],
        doc: '{"a": 1}',
        fee: '9.50',
      },
    ]);
  });

  it('runs in the database the `database` field names, and otherwise in the one named after the user', async () => {
    // Act
    const named = await execute({ sql: 'SELECT current_database() AS db, current_user AS who' });
    const unnamed = await failure(execute({ sql: 'SELECT 1', database: undefined }));

    // Assess
    expect(named.records).toEqual([[{ stringValue: database }, { stringValue: 'provisioner' }]]);
    expect(unnamed.name).toBe('DatabaseErrorException');
    expect(unnamed.message).toMatch(/database "provisioner" does not exist; SQLState: 3D000$/);
  });

  it('runs a batch once per parameter set, all or nothing outside a transaction', async () => {
    // Prepare
    const table = sqlName('seats');
    await execute({ sql: `CREATE TABLE public."${table}" (name text NOT NULL)` });
    const insert = { ...asProvisioner, sql: `INSERT INTO public."${table}" (name) VALUES (:name)` };

    // Act
    const output = await rds.send(
      new BatchExecuteStatementCommand({
        ...insert,
        parameterSets: [
          [{ name: 'name', value: { stringValue: 'a' } }],
          [{ name: 'name', value: { stringValue: 'b' } }],
        ],
      }),
    );
    const failed = await failure(
      rds.send(
        new BatchExecuteStatementCommand({
          ...insert,
          parameterSets: [
            [{ name: 'name', value: { stringValue: 'c' } }],
            [{ name: 'name', value: { isNull: true } }],
          ],
        }),
      ),
    );

    // Assess
    expect(output.updateResults).toEqual([{ generatedFields: [] }, { generatedFields: [] }]);
    expect(failed.name).toBe('DatabaseErrorException');
    expect(failed.message).toMatch(/SQLState: 23502$/);
    expect(await rowsIn(table)).toEqual([{ name: 'a' }, { name: 'b' }]);
  });
});

describe('RDS Data API: transactions and autocommit', () => {
  it('leaves nothing behind a rolled-back transaction and keeps what a committed one wrote', async () => {
    // Prepare
    const table = sqlName('ledger');
    await execute({ sql: `CREATE TABLE public."${table}" (entry text)` });
    const begin = () => rds.send(new BeginTransactionCommand(asProvisioner));
    const write = (transactionId: string | undefined, entry: string) =>
      execute({
        sql: `INSERT INTO public."${table}" VALUES (:entry)`,
        parameters: [{ name: 'entry', value: { stringValue: entry } }],
        transactionId,
      });
    const ids = (transactionId: string | undefined) => ({ ...asProvisioner, transactionId });

    // Act
    const rolledBack = await begin();
    await write(rolledBack.transactionId, 'undone');
    const rollback = await rds.send(new RollbackTransactionCommand(ids(rolledBack.transactionId)));
    const committed = await begin();
    await write(committed.transactionId, 'kept');
    const visibleBeforeCommit = await rowsIn(table);
    const commit = await rds.send(new CommitTransactionCommand(ids(committed.transactionId)));

    // Assess
    expect(rollback.transactionStatus).toBe('Rollback Complete');
    expect(commit.transactionStatus).toBe('Transaction Committed');
    expect(visibleBeforeCommit).toEqual([]);
    expect(await rowsIn(table)).toEqual([{ entry: 'kept' }]);
  });

  it('ends a transaction at its first failed statement: later calls and the commit find no transaction', async () => {
    // Prepare
    const table = sqlName('aborted');
    await execute({ sql: `CREATE TABLE public."${table}" (entry text)` });
    const { transactionId } = await rds.send(new BeginTransactionCommand(asProvisioner));
    await execute({ sql: `INSERT INTO public."${table}" VALUES ('before')`, transactionId });
    const failed = await failure(execute({ sql: 'SELECT 1 / 0', transactionId }));

    // Act
    const next = await failure(execute({ sql: 'SELECT 1', transactionId }));
    const commit = await failure(rds.send(new CommitTransactionCommand({ ...asProvisioner, transactionId })));

    // Assess
    expect(failed.name).toBe('DatabaseErrorException');
    expect(failed.message).toMatch(/SQLState: 22012$/);
    for (const refused of [next, commit]) {
      expect(refused.name).toBe('TransactionNotFoundException');
      expect(refused.message).toBe(
        `Transaction ${transactionId} is not found. Transaction has been aborted due to an error from a previous call.`,
      );
    }
    expect(await rowsIn(table)).toEqual([]);
  });

  it('refuses a second call while the transaction runs one: "Transaction is still running a query"', async () => {
    // Prepare
    const { transactionId } = await rds.send(new BeginTransactionCommand(asProvisioner));

    // Act
    const slow = execute({ sql: 'SELECT pg_sleep(1.5) AS slept', transactionId });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const second = await failure(execute({ sql: 'SELECT 2', transactionId }));
    const commitMeanwhile = await failure(
      rds.send(new CommitTransactionCommand({ ...asProvisioner, transactionId })),
    );
    await slow;
    const commit = await rds.send(new CommitTransactionCommand({ ...asProvisioner, transactionId }));

    // Assess
    for (const refused of [second, commitMeanwhile]) {
      expect(refused.name).toBe('DatabaseErrorException');
      expect(refused.message).toBe('Transaction is still running a query');
    }
    expect(commit.transactionStatus).toBe('Transaction Committed');
  });

  it('rolls back a transaction no call used for three minutes, and one older than 24 hours', async () => {
    // Prepare
    const table = sqlName('expiring');
    await execute({ sql: `CREATE TABLE public."${table}" (entry text)` });
    const begin = async (entry: string) => {
      const { transactionId = '' } = await rds.send(new BeginTransactionCommand(asProvisioner));
      await execute({
        sql: `INSERT INTO public."${table}" VALUES (:entry)`,
        parameters: [{ name: 'entry', value: { stringValue: entry } }],
        transactionId,
      });
      return transactionId;
    };
    const idle = await begin('idle');
    const lively = await begin('lively');
    const old = await begin('old');

    // Act
    await age(idle, 181);
    await age(lively, 170);
    await age(old, 24 * 3600 + 1, { keepLastCall: true });
    const idleCall = await failure(execute({ sql: 'SELECT 1', transactionId: idle }));
    const oldCommit = await failure(
      rds.send(new CommitTransactionCommand({ ...asProvisioner, transactionId: old })),
    );
    const livelyCommit = await rds.send(
      new CommitTransactionCommand({ ...asProvisioner, transactionId: lively }),
    );

    // Assess
    for (const [refused, id] of [
      [idleCall, idle],
      [oldCommit, old],
    ] as const) {
      expect(refused.name).toBe('TransactionNotFoundException');
      expect(refused.message).toBe(`Transaction ${id} is not found. Transaction may be expired.`);
    }
    expect(livelyCommit.transactionStatus).toBe('Transaction Committed');
    expect(await rowsIn(table)).toEqual([{ entry: 'lively' }]);
  });

  it('creates (and drops) a database in autocommit, and refuses to inside a transaction', async () => {
    // Prepare
    const created = sqlName('rds_created');
    const refused = sqlName('rds_refused');
    const { transactionId } = await rds.send(
      new BeginTransactionCommand({ ...asProvisioner, database: 'postgres' }),
    );

    // Act
    await execute({ sql: `CREATE DATABASE "${created}"`, database: 'postgres' });
    const inCreated = await execute({ sql: 'SELECT current_database()', database: created });
    const inTransaction = await failure(
      execute({ sql: `CREATE DATABASE "${refused}"`, database: 'postgres', transactionId }),
    );
    // The failed statement ended the transaction, as on AWS: there is nothing left to roll back.
    const rollback = await failure(
      rds.send(new RollbackTransactionCommand({ ...asProvisioner, transactionId })),
    );
    const dropped = await execute({ sql: `DROP DATABASE "${created}"`, database: 'postgres' });

    // Assess
    expect(inCreated.records).toEqual([[{ stringValue: created }]]);
    expect(inTransaction.name).toBe('DatabaseErrorException');
    expect(inTransaction.message).toMatch(
      /^ERROR: CREATE DATABASE cannot run inside a transaction block; SQLState: 25001$/,
    );
    expect(rollback.name).toBe('TransactionNotFoundException');
    expect(dropped.numberOfRecordsUpdated).toBe(0);
    const { rows } = await superuserPool().query('SELECT datname FROM pg_database WHERE datname = ANY($1)', [
      [created, refused],
    ]);
    expect(rows).toEqual([]);
  });

  it('answers TransactionNotFoundException for a transaction it does not know or has finished', async () => {
    // Prepare
    const { transactionId } = await rds.send(new BeginTransactionCommand(asProvisioner));
    await rds.send(new CommitTransactionCommand({ ...asProvisioner, transactionId }));

    // Act
    const finished = await failure(execute({ sql: 'SELECT 1', transactionId }));
    const unknown = await failure(
      rds.send(new RollbackTransactionCommand({ ...asProvisioner, transactionId: 'no-such-transaction' })),
    );

    // Assess
    expect(finished.name).toBe('TransactionNotFoundException');
    expect(finished.message).toBe(
      `Transaction ${transactionId} is not found. One previous call resulted in a termination of your transaction.`,
    );
    expect(unknown.name).toBe('TransactionNotFoundException');
    expect(unknown.$metadata?.httpStatusCode).toBe(404);
  });
});

describe('RDS Data API: documented limits', () => {
  it('refuses a row over 64 KB, a result over 1 MiB and a JSON answer over 10 MB, and takes what fits', async () => {
    // Act
    const wideRow = await failure(execute({ sql: `SELECT repeat('x', 70 * 1024) AS wide` }));
    const bigResult = await failure(
      execute({ sql: `SELECT repeat('x', 50 * 1024) AS wide FROM generate_series(1, 30)` }),
    );
    const bigJson = await failure(
      execute({
        sql: `SELECT 1 AS ${'a'.repeat(63)} FROM generate_series(1, 200000)`,
        formatRecordsAs: 'JSON',
      }),
    );
    const fits = await execute({
      sql: `SELECT repeat('x', 60 * 1024) AS wide FROM generate_series(1, 16)`,
      formatRecordsAs: 'JSON',
    });

    // Assess
    expect([wideRow.name, wideRow.message]).toEqual([
      'UnsupportedResultException',
      'Packet for query is too large',
    ]);
    expect([bigResult.name, bigResult.message]).toEqual([
      'UnsupportedResultException',
      'Database response exceeded size limit',
    ]);
    expect([bigJson.name, bigJson.message]).toEqual([
      'BadRequestException',
      'Database response exceeded size limit',
    ]);
    expect(JSON.parse(fits.formattedRecords ?? '')).toHaveLength(16);
  });

  it('refuses a result too large inside a transaction, which ends it', async () => {
    // Prepare
    const { transactionId } = await rds.send(new BeginTransactionCommand(asProvisioner));

    // Act
    const tooLarge = await failure(execute({ sql: `SELECT repeat('x', 70 * 1024) AS wide`, transactionId }));
    const next = await failure(execute({ sql: 'SELECT 1', transactionId }));

    // Assess
    expect(tooLarge.name).toBe('UnsupportedResultException');
    expect(next.name).toBe('TransactionNotFoundException');
  });

  it('answers UnsupportedResultException for a two-dimensional array, and returns NULL array entries as null', async () => {
    // Act
    const nested = await failure(execute({ sql: 'SELECT ARRAY[[1, 2], [3, 4]] AS grid' }));
    const flat = await execute({ sql: `SELECT ARRAY[1, NULL]::int8[] AS ids, ARRAY['a', NULL] AS names` });

    // Assess
    expect(nested.name).toBe('UnsupportedResultException');
    expect(flat.records).toEqual([
      [{ arrayValue: { longValues: [1, null] } }, { arrayValue: { stringValues: ['a', null] } }],
    ]);
  });

  it('carries every digit of a 64-bit integer both ways, up to 2^63 - 1, and refuses one beyond', async () => {
    // Act
    const big = await wire(
      `{${target()},"sql":"SELECT 9007199254740993::int8 AS big, ARRAY[-9223372036854775808]::int8[] AS low, (:top)::text AS top","parameters":[{"name":"top","value":{"longValue":9223372036854775807}}]}`,
    );
    const asJson = await wire(
      `{${target()},"sql":"SELECT 9007199254740993::int8 AS big","formatRecordsAs":"JSON"}`,
    );
    const beyond = await wire(
      `{${target()},"sql":"SELECT :v AS v","parameters":[{"name":"v","value":{"longValue":9223372036854775808}}]}`,
    );

    // Assess
    expect(big.status).toBe(200);
    expect(big.text).toContain(
      '"records":[[{"longValue":9007199254740993},{"arrayValue":{"longValues":[-9223372036854775808]}},{"stringValue":"9223372036854775807"}]]',
    );
    expect(JSON.parse(JSON.parse(asJson.text).formattedRecords)).toHaveLength(1);
    expect(JSON.parse(asJson.text).formattedRecords).toBe('[{"big":9007199254740993}]');
    expect(beyond.status).toBe(400);
    expect(JSON.parse(beyond.text).message).toMatch(/longValue 9223372036854775808 is not a 64-bit integer/);
  });
});

describe('RDS Data API: statement timeout', () => {
  it('cancels a statement at the timeout, or with continueAfterTimeout lets it run on after answering', async () => {
    // Prepare
    const marker = sqlName('timeout');
    const cancelled = sqlName('cancelled');
    const continued = sqlName('continued');
    const create = (table: string) =>
      `CREATE TABLE public."${table}" AS SELECT 1 AS v FROM pg_catalog.pg_sleep(3) /* ${marker} */`;

    // Act
    const [stopped, goingOn, inTransaction] = await withStatementTimeout(marker, 1_000, async () => {
      const started = Date.now();
      const stopped = await failure(execute({ sql: create(cancelled) }));
      const stoppedAfter = Date.now() - started;
      const goingOn = await failure(execute({ sql: create(continued), continueAfterTimeout: true }));
      const { transactionId } = await rds.send(new BeginTransactionCommand(asProvisioner));
      await failure(execute({ sql: `SELECT pg_catalog.pg_sleep(3) /* ${marker} */`, transactionId }));
      const inTransaction = await failure(execute({ sql: 'SELECT 1', transactionId }));
      return [{ error: stopped, ms: stoppedAfter }, goingOn, inTransaction] as const;
    });
    await new Promise((resolve) => setTimeout(resolve, 3_500));

    // Assess
    expect(stopped.error.name).toBe('StatementTimeoutException');
    expect(stopped.ms).toBeLessThan(2_500);
    expect(goingOn.name).toBe('StatementTimeoutException');
    expect(inTransaction.name).toBe('TransactionNotFoundException');
    const { rows } = await superuserPool(database).query(
      `SELECT relname FROM pg_class WHERE relname = ANY($1) ORDER BY 1`,
      [[cancelled, continued]],
    );
    expect(rows).toEqual([{ relname: continued }]);
  });

  it('ends a call after 45 seconds by default', async () => {
    // Act
    const { error, seconds } = await defaultTimeout;

    // Assess
    expect(error.name).toBe('StatementTimeoutException');
    expect(seconds).toBeGreaterThanOrEqual(45);
    expect(seconds).toBeLessThan(48);
  }, 60_000);
});

describe('RDS Data API: who runs the statement', () => {
  const role = sqlName('rds_role');
  const secretName = uniqueName('rds-data-test/role');
  let roleSecretArn = '';

  beforeAll(async () => {
    const password = uniqueName('pw');
    await superuserPool().query(`CREATE ROLE "${role}" LOGIN PASSWORD '${password}'`);
    const secret = await secrets.send(
      new CreateSecretCommand({
        Name: secretName,
        SecretString: JSON.stringify({
          engine: 'postgres',
          host: sandbox.postgres.host,
          port: sandbox.postgres.port,
          username: role,
          password,
          dbname: database,
        }),
      }),
    );
    roleSecretArn = secret.ARN ?? '';
  });

  afterAll(async () => {
    await secrets.send(new DeleteSecretCommand({ SecretId: secretName, ForceDeleteWithoutRecovery: true }));
    await superuserPool().query(`DROP ROLE IF EXISTS "${role}"`);
  });

  it("runs as the secret's role, which is denied what it has no privilege for (SQLState 42501)", async () => {
    // Prepare
    const table = sqlName('private');
    await execute({ sql: `CREATE TABLE public."${table}" (secret text)` });

    // Act
    const who = await execute({ sql: 'SELECT current_user AS who', secretArn: roleSecretArn });
    const createDatabase = await failure(
      execute({ sql: `CREATE DATABASE "${sqlName('rds_denied')}"`, secretArn: roleSecretArn }),
    );
    const read = await failure(execute({ sql: `SELECT * FROM public."${table}"`, secretArn: roleSecretArn }));

    // Assess
    expect(who.records).toEqual([[{ stringValue: role }]]);
    expect(createDatabase.name).toBe('DatabaseErrorException');
    expect(createDatabase.message).toMatch(/^ERROR: permission denied to create database; SQLState: 42501$/);
    expect(read.name).toBe('DatabaseErrorException');
    expect(read.message).toMatch(/^ERROR: permission denied for table .*; SQLState: 42501$/);
  });
});

describe('RDS Data API: request errors', () => {
  it('names the errors of a bad request as AWS does', async () => {
    // Act
    const missingParameter = await failure(execute({ sql: 'SELECT :absent' }));
    const arrayParameter = await failure(
      execute({
        sql: 'SELECT :ids',
        parameters: [{ name: 'ids', value: { arrayValue: { longValues: [1] } } }],
      }),
    );
    const unknownSecret = await failure(
      execute({ sql: 'SELECT 1', secretArn: uniqueName('rds-data-test/none') }),
    );
    const otherCluster = await failure(
      execute({ sql: 'SELECT 1', resourceArn: `${sandbox.clusterArn}-other` }),
    );
    const twoStatements = await failure(execute({ sql: 'SELECT 1; SELECT 2' }));
    const withSchema = await failure(execute({ sql: 'SELECT 1', schema: 'public' }));
    const syntax = await failure(execute({ sql: 'SELEC 1' }));

    // Assess
    expect(missingParameter.name).toBe('BadRequestException');
    expect(arrayParameter.name).toBe('BadRequestException');
    expect(unknownSecret.name).toBe('SecretsErrorException');
    expect(otherCluster.name).toBe('HttpEndpointNotEnabledException');
    expect(otherCluster.message).toBe(
      `HttpEndpoint is not enabled for cluster ${sandbox.clusterArn.split(':').at(-1)}-other`,
    );
    expect(withSchema.name).toBe('ValidationException');
    expect(withSchema.message).toBe("The schema parameter isn't supported");
    expect(twoStatements.name).toBe('ValidationException');
    expect(syntax.name).toBe('DatabaseErrorException');
    expect(syntax.message).toBe('ERROR: syntax error at or near "SELEC"\n  Position: 1; SQLState: 42601');
  });

  it('fails exactly the statement a chaos rule matches', async () => {
    // Prepare
    const marker = uniqueName('chaos');
    const rule = {
      service: 'rds-data' as const,
      operation: 'ExecuteStatement',
      match: marker,
      error: {
        code: 'DatabaseResumingException',
        statusCode: 400,
        message: 'The Aurora DB instance is resuming',
      },
    };
    await addFaults([rule]);
    try {
      // Act
      const matched = await failure(execute({ sql: `SELECT '${marker}' AS marker` }));
      const other = await execute({ sql: `SELECT 'not ${marker.toUpperCase()}' AS marker` });

      // Assess
      expect(matched.name).toBe('DatabaseResumingException');
      expect(matched.message).toBe('The Aurora DB instance is resuming');
      expect(other.records).toEqual([[{ stringValue: `not ${marker.toUpperCase()}` }]]);
    } finally {
      await removeFaults([rule]);
    }
  });
});
