import { readdir, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import {
  CreateEventBusCommand,
  EventBridgeClient,
  ResourceAlreadyExistsException,
} from '@aws-sdk/client-eventbridge';
import { RDSDataClient } from '@aws-sdk/client-rds-data';
import {
  CreateBucketCommand,
  PutBucketLifecycleConfigurationCommand,
  PutBucketVersioningCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import {
  CreateSecretCommand,
  GetSecretValueCommand,
  ResourceNotFoundException,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { CreateStateMachineCommand, SFNClient, UpdateStateMachineCommand } from '@aws-sdk/client-sfn';
import { CreateTopicCommand, SNSClient } from '@aws-sdk/client-sns';
import pg from 'pg';
import { z } from 'zod';
import { scramVerifier } from '../functions/provision/credentials.ts';
import {
  arnSubstitutionKey,
  type EnvName,
  type FunctionDefinition,
  stateMachineVariables,
} from '../functions/registry.ts';
import { setupControlPlane } from '../functions/setup/control-plane.ts';
import { provisionerRoleStatements } from '../functions/setup/provisioner-role.ts';
import { DataApi } from '../functions/shared/data-api.ts';
import { bucketLifecycleRules } from '../functions/shared/storage.ts';
import {
  ACCOUNT_ID,
  ALARM_TOPIC_ARN,
  CLUSTER_ARN,
  CONTROL_PLANE_DATABASE,
  EVENT_BUS_NAME,
  PROJECT_ROOT,
  PROVISIONER_ROLE,
  PROVISIONER_SECRET_NAME,
  REGION,
  STACK_PREFIX,
  STAGE,
  STORAGE_BUCKET,
  STORAGE_KEY_ARN,
  STORAGE_VERSIONED,
  stateMachineArn,
} from './constants.ts';
import type { PostgresConnection } from './postgres.ts';

export interface BootstrapOptions {
  readonly superuser: PostgresConnection;
  readonly functions: readonly FunctionDefinition[];
  readonly newPassword: () => string;
  /** The SQL migrations (`control-plane/`, `tenant/`); the project's `schema/` by default. */
  readonly schemaDir?: string;
}

const STATE_MACHINES_DIR = join(PROJECT_ROOT, 'statemachines');

/**
 * Makes in the sandbox what the CDK stack makes on deploy, idempotently, through the same AWS APIs:
 * the provisioner role and its secret, the registry database with its migrations, the storage bucket with
 * its retention rules, the event bus, the alarm topic, and every state machine with its substitutions. Returns the
 * functions' environment.
 */
export async function bootstrap(options: BootstrapOptions): Promise<{
  provisionerSecretArn: string;
  environment: Record<EnvName, string>;
}> {
  await lockDownSystemDatabases(options.superuser);
  const provisionerSecretArn = await ensureProvisioner(options);
  const environment: Record<EnvName, string> = {
    STAGE,
    CLUSTER_ARN,
    PROVISIONER_SECRET_ARN: provisionerSecretArn,
    CONTROL_PLANE_DATABASE,
    STORAGE_BUCKET,
    STORAGE_KEY_ARN,
    ALARM_TOPIC_ARN,
    EVENT_BUS_NAME,
    ...stateMachineVariables(stateMachineArn),
    SCHEMA_DIR: options.schemaDir ?? join(PROJECT_ROOT, 'schema'),
    // Secrets Manager's shortest recovery window, as the dev stage has.
    SECRET_RECOVERY_DAYS: '7',
  };
  const rdsData = new RDSDataClient({});
  const s3 = new S3Client({ forcePathStyle: true });
  const events = new EventBridgeClient({});
  const sfn = new SFNClient({});
  const sns = new SNSClient({});
  try {
    await setupControlPlane(
      new DataApi(rdsData, {
        resourceArn: CLUSTER_ARN,
        secretArn: provisionerSecretArn,
        database: 'postgres',
      }),
      { database: CONTROL_PLANE_DATABASE, schemaDir: environment.SCHEMA_DIR },
    );
    await s3
      .send(new CreateBucketCommand({ Bucket: STORAGE_BUCKET }))
      .catch(ignore('BucketAlreadyOwnedByYou'));
    if (STORAGE_VERSIONED) {
      await s3.send(
        new PutBucketVersioningCommand({
          Bucket: STORAGE_BUCKET,
          VersioningConfiguration: { Status: 'Enabled' },
        }),
      );
    }
    await s3.send(
      new PutBucketLifecycleConfigurationCommand({
        Bucket: STORAGE_BUCKET,
        // Staging's noncurrent-version expiry: the sandbox plays a versioned stage.
        LifecycleConfiguration: {
          Rules: bucketLifecycleRules({ versioned: STORAGE_VERSIONED, noncurrentVersionDays: 7 }),
        },
      }),
    );
    await events.send(new CreateEventBusCommand({ Name: EVENT_BUS_NAME })).catch((error: unknown) => {
      if (!(error instanceof ResourceAlreadyExistsException)) throw error;
    });
    // CreateTopic is idempotent; the topic's name is the last part of the ARN the functions are given.
    await sns.send(new CreateTopicCommand({ Name: ALARM_TOPIC_ARN.split(':').at(-1) }));
    await registerStateMachines(sfn, options.functions);
  } finally {
    for (const client of [rdsData, s3, events, sfn, sns]) client.destroy();
  }
  return { provisionerSecretArn, environment };
}

const ignore = (name: string) => (error: unknown) => {
  if (!(error instanceof Error && error.name === name)) throw error;
};

/**
 * Tenant roles reach their own database only: no role may connect to the system databases but the
 * superuser (on Aurora, the master user runs the same statements once per cluster).
 */
async function lockDownSystemDatabases(superuser: PostgresConnection): Promise<void> {
  const admin = new pg.Client(superuser);
  await admin.connect();
  try {
    const { rows } = await admin.query<{ datname: string }>(
      "SELECT datname FROM pg_database WHERE datallowconn AND datname <> 'template0'",
    );
    for (const { datname } of rows) {
      if (datname === CONTROL_PLANE_DATABASE || datname.startsWith('tenant_')) continue;
      await admin.query(`REVOKE CONNECT, TEMPORARY ON DATABASE "${datname}" FROM PUBLIC`);
    }
    await admin.query(`GRANT CONNECT ON DATABASE postgres TO "${PROVISIONER_ROLE}"`).catch(() => {
      // The provisioner does not exist on the very first start; ensureProvisioner grants it then.
    });
  } finally {
    await admin.end();
  }
}

const rdsSecretSchema = z.object({ username: z.string(), password: z.string() });

/**
 * The provisioner role and its secret in the RDS secret format, as the CDK stack makes them on AWS.
 * The secret is the source of truth: a restart keeps its password and sets the role's to match.
 */
async function ensureProvisioner(options: BootstrapOptions): Promise<string> {
  const secrets = new SecretsManagerClient({});
  let password: string;
  let arn: string | undefined;
  try {
    const existing = await secrets.send(new GetSecretValueCommand({ SecretId: PROVISIONER_SECRET_NAME }));
    password = rdsSecretSchema.parse(JSON.parse(existing.SecretString ?? '{}')).password;
    arn = existing.ARN;
  } catch (error) {
    if (!(error instanceof ResourceNotFoundException)) throw error;
    password = options.newPassword();
    const created = await secrets.send(
      new CreateSecretCommand({
        Name: PROVISIONER_SECRET_NAME,
        Description: 'Tenant Provisioner: the database role the provisioning functions use',
        SecretString: JSON.stringify({
          engine: 'postgres',
          host: options.superuser.host,
          port: options.superuser.port,
          username: PROVISIONER_ROLE,
          password,
          dbname: 'postgres',
        }),
        Tags: [{ Key: 'Stage', Value: STAGE }],
      }),
    );
    arn = created.ARN;
  } finally {
    secrets.destroy();
  }
  if (!arn) throw new Error('Secrets Manager returned no ARN for the provisioner secret');
  const admin = new pg.Client(options.superuser);
  await admin.connect();
  try {
    const { rowCount } = await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [PROVISIONER_ROLE]);
    const verifier = await scramVerifier(password);
    for (const statement of provisionerRoleStatements(PROVISIONER_ROLE, verifier, rowCount !== 0)) {
      await admin.query(statement);
    }
    await admin.query(`GRANT CONNECT ON DATABASE postgres TO "${PROVISIONER_ROLE}"`);
  } finally {
    await admin.end();
  }
  return arn;
}

/**
 * Every `statemachines/*.asl.json`, as CDK deploys it: `${<Id>FunctionArn}` replaced by the function's ARN,
 * named `<stack prefix>-<file name>`. A changed file updates the state machine on the next start.
 */
async function registerStateMachines(sfn: SFNClient, fns: readonly FunctionDefinition[]): Promise<void> {
  const substitutions = Object.fromEntries(
    fns.map((fn) => [
      arnSubstitutionKey(fn),
      `arn:aws:lambda:${REGION}:${ACCOUNT_ID}:function:${STACK_PREFIX}-${fn.id}`,
    ]),
  );
  const files = (await readdir(STATE_MACHINES_DIR).catch(() => [])).filter((file) =>
    file.endsWith('.asl.json'),
  );
  for (const file of files) {
    const name = basename(file, '.asl.json');
    const definition = substitute(
      await readFile(join(STATE_MACHINES_DIR, file), 'utf8'),
      substitutions,
      file,
    );
    const roleArn = `arn:aws:iam::${ACCOUNT_ID}:role/${STACK_PREFIX}-${name}`;
    try {
      await sfn.send(new CreateStateMachineCommand({ name: `${STACK_PREFIX}-${name}`, definition, roleArn }));
    } catch (error) {
      if (!(error instanceof Error && error.name === 'StateMachineAlreadyExists')) throw error;
      await sfn.send(new UpdateStateMachineCommand({ stateMachineArn: stateMachineArn(name), definition }));
    }
  }
}

/** CloudFormation's `definitionSubstitutions`: every `${key}` must have a value. */
export function substitute(
  definition: string,
  values: Readonly<Record<string, string>>,
  file: string,
): string {
  return definition.replaceAll(/\$\{([A-Za-z0-9_]+)\}/g, (_, key: string) => {
    const value = values[key];
    if (value === undefined) throw new Error(`${file}: no substitution for \${${key}}`);
    return value;
  });
}
