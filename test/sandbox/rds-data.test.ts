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

beforeAll(async () => {
  await execute({ sql: `CREATE DATABASE "${database}"`, database: 'postgres' });
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
                   ARRAY[1, NULL, 3] AS ints, ARRAY['a', 'b c'] AS texts, ARRAY[[true], [false]] AS nested,
                   NULL::text AS nothing`,
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
        { arrayValue: { arrayValues: [{ booleanValues: [true] }, { booleanValues: [false] }] } },
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

  it('keeps a transaction open but aborted after a failed statement', async () => {
    // Prepare
    const { transactionId } = await rds.send(new BeginTransactionCommand(asProvisioner));
    await failure(execute({ sql: 'SELECT 1 / 0', transactionId }));

    // Act
    const next = await failure(execute({ sql: 'SELECT 1', transactionId }));
    const rollback = await rds.send(new RollbackTransactionCommand({ ...asProvisioner, transactionId }));

    // Assess
    expect(next.name).toBe('DatabaseErrorException');
    expect(next.message).toMatch(/SQLState: 25P02$/);
    expect(rollback.transactionStatus).toBe('Rollback Complete');
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
    await rds.send(new RollbackTransactionCommand({ ...asProvisioner, transactionId }));
    const dropped = await execute({ sql: `DROP DATABASE "${created}"`, database: 'postgres' });

    // Assess
    expect(inCreated.records).toEqual([[{ stringValue: created }]]);
    expect(inTransaction.name).toBe('DatabaseErrorException');
    expect(inTransaction.message).toMatch(
      /^ERROR: CREATE DATABASE cannot run inside a transaction block; SQLState: 25001$/,
    );
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
    expect(unknown.name).toBe('TransactionNotFoundException');
    expect(unknown.$metadata?.httpStatusCode).toBe(404);
  });
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
    const syntax = await failure(execute({ sql: 'SELEC 1' }));

    // Assess
    expect(missingParameter.name).toBe('BadRequestException');
    expect(arrayParameter.name).toBe('BadRequestException');
    expect(unknownSecret.name).toBe('SecretsErrorException');
    expect(otherCluster.name).toBe('BadRequestException');
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
