import { CloudWatchClient, DescribeAlarmsCommand } from '@aws-sdk/client-cloudwatch';
import { ExecuteStatementCommand, RDSDataClient } from '@aws-sdk/client-rds-data';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { ListSecretsCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import {
  DescribeExecutionCommand,
  type DescribeExecutionCommandOutput,
  SFNClient,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import { z } from 'zod';
import { removeTenantAlarms } from '../../functions/provision/alarms.ts';
import { dropTenantDatabase } from '../../functions/provision/database.ts';
import { removeTenantRoles } from '../../functions/provision/roles.ts';
import { removeTenantStorage } from '../../functions/provision/storage.ts';
import { DataApi } from '../../functions/shared/data-api.ts';
import { Registry } from '../../functions/shared/registry.ts';
import { TenantConfig } from '../../functions/shared/tenants.ts';
import { STAGE, STORAGE_BUCKET, stateMachineArn } from '../../local/constants.ts';
import { databaseName, newTenantId, secretPrefix, storagePrefix } from '../../schema/names.ts';
import { effectiveLimits, type PlanLimits, type PlanName } from '../../schema/plans.ts';
import { clientConfig, sandbox, superuserPool, uniqueName } from '../support/sandbox.ts';

/** Real SDK clients on the sandbox, as a person's script would make them. */
export const clients = {
  rdsData: new RDSDataClient(clientConfig),
  secrets: new SecretsManagerClient(clientConfig),
  s3: new S3Client({ ...clientConfig, forcePathStyle: true }),
  cloudWatch: new CloudWatchClient(clientConfig),
  sfn: new SFNClient(clientConfig),
};

/** The provisioner on the cluster (registry database), as the steps are. */
export const provisioner = new DataApi(clients.rdsData, {
  resourceArn: sandbox.clusterArn,
  secretArn: sandbox.provisionerSecretArn,
  database: 'control_plane',
});
export const registry = new Registry(provisioner);

export const PROVISION_STATE_MACHINE = stateMachineArn('provision-tenant');

export interface TenantOptions {
  readonly plan?: PlanName;
  readonly limits?: Partial<PlanLimits>;
  readonly config?: Omit<z.input<typeof TenantConfig>, 'adminUser'>;
}

/** Reserves a tenant in the registry (status provisioning), as the API does before it starts the execution. */
export async function reserveTenant(options: TenantOptions = {}) {
  const id = newTenantId();
  const slug = uniqueName('provision');
  const plan = options.plan ?? 'basic';
  const config = TenantConfig.parse({
    adminUser: { email: `Admin.${id}@example.com`, firstName: 'Ada', lastName: 'Admin' },
    ...options.config,
  });
  const reserved = await registry.tenants.reserve(
    { id, slug, name: `Tenant ${slug}`, plan, limits: effectiveLimits(plan, options.limits), config },
    'provision-test',
  );
  if (!reserved) throw new Error(`slug ${slug} taken`);
  return { id, slug, plan, config };
}

/** Starts provisioning as the API does: the execution is named after the tenant, its input is the id only. */
export async function startProvisioning(tenantId: string): Promise<string> {
  const { executionArn } = await clients.sfn.send(
    new StartExecutionCommand({
      stateMachineArn: PROVISION_STATE_MACHINE,
      name: tenantId,
      input: JSON.stringify({ tenantId }),
    }),
  );
  if (!executionArn) throw new Error('StartExecution returned no executionArn');
  return executionArn;
}

/** Waits for the execution to end; returns its description. */
export async function waitForExecution(
  executionArn: string,
  timeoutMs = 90_000,
): Promise<DescribeExecutionCommandOutput> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const execution = await clients.sfn.send(new DescribeExecutionCommand({ executionArn }));
    if (execution.status !== 'RUNNING' && execution.status !== 'PENDING_REDRIVE') return execution;
    if (Date.now() > deadline) throw new Error(`${executionArn} still running after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Reserves a tenant, provisions it and waits for the end. */
export async function provision(options: TenantOptions = {}) {
  const tenant = await reserveTenant(options);
  const execution = await waitForExecution(await startProvisioning(tenant.id));
  return { ...tenant, execution };
}

/**
 * Everything of the tenant that exists, looked up independently of the product's code: the database and roles
 * through the superuser, secrets (scheduled for deletion included), objects and alarms through the SDK.
 */
export async function tenantTraces(tenantId: string) {
  const db = databaseName(tenantId);
  const pg = superuserPool();
  const databases = await pg.query<{ datname: string }>(
    'SELECT datname FROM pg_database WHERE datname = $1',
    [db],
  );
  const roles = await pg.query<{ rolname: string }>(
    "SELECT rolname FROM pg_roles WHERE rolname LIKE $1 || '%' ORDER BY rolname",
    [db],
  );
  const secrets = await clients.secrets.send(
    new ListSecretsCommand({
      Filters: [{ Key: 'name', Values: [secretPrefix(STAGE, tenantId)] }],
      IncludePlannedDeletion: true,
    }),
  );
  const objects = await clients.s3.send(
    new ListObjectsV2Command({ Bucket: STORAGE_BUCKET, Prefix: storagePrefix(tenantId) }),
  );
  const alarms = await clients.cloudWatch.send(
    new DescribeAlarmsCommand({ AlarmNamePrefix: `tenant-${tenantId}-` }),
  );
  return {
    databases: databases.rows.map((row) => row.datname),
    roles: roles.rows.map((row) => row.rolname),
    secrets: (secrets.SecretList ?? []).map((secret) => secret.Name),
    objects: (objects.Contents ?? []).map((object) => object.Key),
    alarms: (alarms.MetricAlarms ?? []).map((alarm) => alarm.AlarmName),
  };
}

export const NOTHING_LEFT = { databases: [], roles: [], secrets: [], objects: [], alarms: [] };

const SandboxEvents = z.array(
  z.object({
    bus: z.string(),
    source: z.string(),
    detailType: z.string(),
    detail: z.looseObject({ tenantId: z.string().optional() }),
    resources: z.array(z.string()),
  }),
);

/** The events the sandbox's EventBridge received of one type, for one tenant. */
export async function eventsFor(tenantId: string, detailType: string) {
  const query = new URLSearchParams({ source: 'tenant-provisioner', detailType });
  const response = await fetch(`${sandbox.awsEndpoint}/_sandbox/events?${query}`);
  if (!response.ok) throw new Error(`events: ${response.status}`);
  const events = SandboxEvents.parse(await response.json());
  return events.filter((event) => event.detail.tenantId === tenantId);
}

/** A statement as a tenant role, through the Data API with the role's own secret. */
export function asRole(secretArn: string, database: string) {
  return new DataApi(clients.rdsData, { resourceArn: sandbox.clusterArn, secretArn, database });
}

/** The error name a Data API call fails with, or 'ok'. */
export async function outcome(call: Promise<unknown>): Promise<string> {
  try {
    await call;
    return 'ok';
  } catch (error) {
    return error instanceof Error ? error.name : String(error);
  }
}

/** Runs one statement as a secret, with the raw client (no DataApi), for the error message. */
export async function executeAs(secretArn: string, database: string, sql: string) {
  return clients.rdsData.send(
    new ExecuteStatementCommand({ resourceArn: sandbox.clusterArn, secretArn, database, sql }),
  );
}

/** Removes whatever a test left of a tenant (after a rollback that was made to fail), with the undo modules. */
export async function cleanUpTenant(tenantId: string): Promise<void> {
  await removeTenantAlarms(clients.cloudWatch, tenantId);
  await removeTenantStorage({ s3: clients.s3, bucket: STORAGE_BUCKET }, tenantId);
  await removeTenantRoles({ cluster: provisioner, secrets: clients.secrets, stage: STAGE }, tenantId);
  await dropTenantDatabase(provisioner, tenantId);
}
