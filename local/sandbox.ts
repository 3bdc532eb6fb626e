import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FunctionDefinition } from '../functions/registry.ts';
import { functions, STATE_MACHINE_SCHEDULES } from '../functions/registry.ts';
import { startApiServer } from './api/server.ts';
import { Chaos } from './aws/chaos.ts';
import { CallLog, startAwsEndpoint } from './aws/server.ts';
import { createCloudWatch } from './aws/services/cloudwatch.ts';
import { createEventBridge } from './aws/services/eventbridge.ts';
import { createLogs } from './aws/services/logs.ts';
import { createRdsData } from './aws/services/rds-data.ts';
import { createS3 } from './aws/services/s3.ts';
import { createSecretsManager } from './aws/services/secrets-manager.ts';
import { createStepFunctions } from './aws/services/sfn.ts';
import { createSns } from './aws/services/sns.ts';
import { Store } from './aws/store.ts';
import { bootstrap } from './bootstrap.ts';
import {
  ACCOUNT_ID,
  CLUSTER_ARN,
  PROJECT_ROOT,
  REGION,
  type SandboxInfo,
  STACK_PREFIX,
  STORAGE_KEY_ARN,
  sandboxFile,
  stateMachineArn,
} from './constants.ts';
import { createLambdaRuntime } from './lambda.ts';
import { lockSandbox } from './lock.ts';
import { startPostgres } from './postgres.ts';
import { startSchedules } from './schedule.ts';

export interface SandboxOptions {
  /** Where the sandbox keeps its data (`.local/`); `sandbox.json` is written there. */
  readonly dir: string;
  readonly host: string;
  readonly awsPort: number;
  /** The local API Gateway's port. */
  readonly apiPort: number;
  readonly postgresPort: number;
  /** How often the registry's scheduled functions run (the drift reconciler); 0: at startup only. 30 by default. */
  readonly scheduleSeconds?: number;
  /** How often the usage collector runs (STATE_MACHINE_SCHEDULES); 0: only when started. 300 by default. */
  readonly usageSeconds?: number;
  /** Scheduled functions (registry ids) not run on the sandbox's clock: only when invoked. */
  readonly unscheduled?: readonly string[];
  /** How often CloudWatch evaluates every alarm as of the wall clock; 0: only when asked. 60 by default, as on AWS. */
  readonly alarmEvaluationSeconds?: number;
  /** Functions beyond the product's registry, e.g. test fixtures. */
  readonly extraFunctions?: readonly FunctionDefinition[];
  /** The SQL migrations the functions read (SCHEMA_DIR); the project's `schema/` by default. */
  readonly schemaDir?: string;
  readonly log: (line: string) => void;
}

export interface Sandbox {
  readonly info: SandboxInfo;
  stop(): Promise<void>;
}

/**
 * Starts PostgreSQL, the AWS endpoint, and in them what a deployed stack has (the provisioner role and
 * its secret, the registry database, the bucket, the bus, the state machines); writes `sandbox.json` (mode 0600).
 * Throws a SandboxRunningError (lock.ts) while another sandbox runs on the directory.
 */
export async function startSandbox(options: SandboxOptions): Promise<Sandbox> {
  await mkdir(options.dir, { recursive: true });
  // Before anything on the directory is touched: a second start would stop this one's PostgreSQL.
  const lock = await lockSandbox(options.dir);
  const stops: (() => Promise<void>)[] = [lock.release];
  const stop = async () => {
    for (const step of stops.reverse()) await step().catch((error) => options.log(`stop: ${error}`));
  };
  try {
    await rm(sandboxFile(options.dir), { force: true });
    const postgres = await startPostgres({
      dataDir: join(options.dir, 'postgres'),
      port: options.postgresPort,
    });
    stops.push(postgres.stop);
    const store = await Store.open(postgres.connection);
    stops.push(() => store.close());
    const deps = { store, region: REGION, accountId: ACCOUNT_ID };
    const secretsManager = createSecretsManager(deps);
    const sns = createSns(deps);
    const allFunctions = [...functions, ...(options.extraFunctions ?? [])];
    const lambda = createLambdaRuntime({
      region: REGION,
      accountId: ACCOUNT_ID,
      functionNamePrefix: STACK_PREFIX,
      functions: allFunctions,
      projectRoot: PROJECT_ROOT,
    });
    const cloudWatch = createCloudWatch(deps, {
      evaluationIntervalMs: (options.alarmEvaluationSeconds ?? 60) * 1000,
      publish: (topicArn, message, subject) => sns.publish(topicArn, message, subject),
    });
    const services = [
      secretsManager,
      createRdsData({
        region: REGION,
        accountId: ACCOUNT_ID,
        clusterArn: CLUSTER_ARN,
        postgres: { host: postgres.connection.host, port: postgres.connection.port },
        resolveSecret: (secretId) => secretsManager.resolveSecret(secretId),
      }),
      cloudWatch,
      createLogs(deps, { putMetricData: (input) => cloudWatch.putMetricData(input) }),
      createS3(deps, { keyArns: [STORAGE_KEY_ARN] }),
      createStepFunctions({ ...deps, lambda }),
      createEventBridge(deps),
      sns,
    ];
    stops.push(async () => {
      for (const service of services) await service.close?.();
    });
    const endpoint = await startAwsEndpoint({
      host: options.host,
      port: options.awsPort,
      services,
      chaos: new Chaos(),
      calls: new CallLog(),
    });
    stops.push(endpoint.close);
    // The functions run in this process and reach AWS as they would on Lambda: through the SDK's
    // standard environment, here pointed at the local endpoint.
    Object.assign(process.env, {
      AWS_REGION: REGION,
      AWS_ENDPOINT_URL: endpoint.url,
      AWS_ACCESS_KEY_ID: 'sandbox',
      AWS_SECRET_ACCESS_KEY: 'sandbox',
    });
    const { provisionerSecretArn, environment } = await bootstrap({
      superuser: postgres.connection,
      functions: allFunctions,
      ...(options.schemaDir !== undefined ? { schemaDir: options.schemaDir } : {}),
      newPassword: () => randomBytes(24).toString('base64url'),
    });
    Object.assign(process.env, environment);
    const api = await startApiServer({
      host: options.host,
      port: options.apiPort,
      dir: options.dir,
      log: options.log,
    });
    stops.push(api.close);
    const info: SandboxInfo = {
      pid: process.pid,
      region: REGION,
      accountId: ACCOUNT_ID,
      awsEndpoint: endpoint.url,
      postgres: postgres.connection,
      clusterArn: CLUSTER_ARN,
      provisionerSecretArn,
      apiUrl: api.url,
      token: api.devToken,
    };
    // The drift reconciler at startup finds what a killed sandbox left half done, then runs on its schedule.
    const schedules = startSchedules({
      functions: allFunctions.filter((fn) => !options.unscheduled?.includes(fn.id)),
      lambda,
      intervalMs: (options.scheduleSeconds ?? 30) * 1000,
      stateMachines: [
        {
          arn: stateMachineArn(STATE_MACHINE_SCHEDULES.usageCollection.stateMachine),
          input: STATE_MACHINE_SCHEDULES.usageCollection.input,
          intervalMs: (options.usageSeconds ?? 300) * 1000,
        },
      ],
      log: options.log,
    });
    stops.push(schedules.stop);
    // Written whole then renamed, so that a reader never sees half a file; owner-only from its creation, since it
    // holds the superuser's password and an admin token (a `.tmp` a killed start left keeps its mode, so it goes).
    const partial = `${sandboxFile(options.dir)}.tmp`;
    await rm(partial, { force: true });
    await writeFile(partial, `${JSON.stringify(info, null, 2)}\n`, { flag: 'wx', mode: 0o600 });
    await rename(partial, sandboxFile(options.dir));
    await lock.ready({
      api: Number(new URL(api.url).port || 80),
      aws: endpoint.port,
      postgres: postgres.connection.port,
    });
    return { info, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
