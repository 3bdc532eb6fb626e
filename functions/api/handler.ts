import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import { type OperationId, routeKey, routes } from '../../schema/api/routes.ts';
import * as z from '../../schema/zod.ts';
import { BatchStore } from '../bulk/store.ts';
import { FleetStore } from '../fleet/store.ts';
import { LifecycleStore } from '../lifecycle/operations.ts';
import { rdsDataClient, s3Client, secretsManagerClient, sfnClient } from '../shared/clients.ts';
import { DataApi } from '../shared/data-api.ts';
import { readEnv } from '../shared/env.ts';
import { NotFoundError } from '../shared/errors.ts';
import { Registry } from '../shared/registry.ts';
import { UsageStore } from '../usage/store.ts';
import { batchRoutes } from './batches.ts';
import { credentialRoutes } from './credentials.ts';
import { HttpEvent, type HttpResult, httpErrors, requireScopes, requireWellFormedPath } from './http.ts';
import { lifecycleRoutes } from './lifecycle.ts';
import { latestTemplateVersion, migrationRoutes } from './migrations.ts';
import { tenantRoutes } from './tenants.ts';
import { usageRoutes } from './usage.ts';

// The api function's composition root: its environment read once, each client and store made once, here, and
// handed to the routes, which neither read the environment nor make a client.

/** The variables the api function reads: the names of its registry entry (test/api/composition.test.ts). */
export const API_ENVIRONMENT = [
  'STAGE',
  'CLUSTER_ARN',
  'PROVISIONER_SECRET_ARN',
  'CONTROL_PLANE_DATABASE',
  'PROVISION_STATE_MACHINE_ARN',
  'SUSPEND_STATE_MACHINE_ARN',
  'RESUME_STATE_MACHINE_ARN',
  'CHANGE_PLAN_STATE_MACHINE_ARN',
  'DELETE_STATE_MACHINE_ARN',
  'BACKUP_STATE_MACHINE_ARN',
  'RESTORE_STATE_MACHINE_ARN',
  'STORAGE_BUCKET',
  'BULK_ONBOARD_STATE_MACHINE_ARN',
  'MIGRATE_FLEET_STATE_MACHINE_ARN',
  'SCHEMA_DIR',
] as const;
const env = readEnv(API_ENVIRONMENT);

const logger = new Logger({ serviceName: 'tenant-provisioner-api' });
const log = (message: string, details: Record<string, unknown>) => logger.warn(message, details);

/** The provisioner on the registry database: the tenants, their operations, batches and fleet migrations. */
const controlPlane = new DataApi(rdsDataClient(), {
  resourceArn: env.CLUSTER_ARN,
  secretArn: env.PROVISIONER_SECRET_ARN,
  database: env.CONTROL_PLANE_DATABASE,
});
const registry = new Registry(controlPlane);
const sfn = sfnClient();
const lifecycle = new LifecycleStore(controlPlane);

const operations: Record<OperationId, (event: HttpEvent) => Promise<HttpResult>> = {
  ...tenantRoutes({
    tenants: registry.tenants,
    progress: registry.progress,
    idempotency: registry.idempotency,
    sfn,
    stateMachineArn: env.PROVISION_STATE_MACHINE_ARN,
    log,
    info: (message, details) => logger.info(message, details),
  }),
  ...lifecycleRoutes({
    tenants: registry.tenants,
    audit: registry.audit,
    idempotency: registry.idempotency,
    store: lifecycle,
    sfn,
    stateMachines: {
      suspend: env.SUSPEND_STATE_MACHINE_ARN,
      resume: env.RESUME_STATE_MACHINE_ARN,
      change_plan: env.CHANGE_PLAN_STATE_MACHINE_ARN,
      delete: env.DELETE_STATE_MACHINE_ARN,
      backup: env.BACKUP_STATE_MACHINE_ARN,
      restore: env.RESTORE_STATE_MACHINE_ARN,
    },
    // The plan change's usage check measures the tenant's database and storage.
    usage: { cluster: controlPlane, s3: s3Client(), bucket: env.STORAGE_BUCKET },
    log,
  }),
  ...credentialRoutes({
    tenants: registry.tenants,
    audit: registry.audit,
    store: lifecycle,
    // Role statements are cluster-wide: the provisioner on the registry database.
    cluster: controlPlane,
    secrets: secretsManagerClient(),
    stage: env.STAGE,
    clusterArn: env.CLUSTER_ARN,
    provisionerSecretArn: env.PROVISIONER_SECRET_ARN,
  }),
  ...batchRoutes({
    tenants: registry.tenants,
    idempotency: registry.idempotency,
    batches: new BatchStore(controlPlane),
    sfn,
    stateMachineArn: env.BULK_ONBOARD_STATE_MACHINE_ARN,
    log,
  }),
  ...usageRoutes({ tenants: registry.tenants, usage: new UsageStore(controlPlane) }),
  ...migrationRoutes({
    idempotency: registry.idempotency,
    fleet: new FleetStore(controlPlane),
    sfn,
    stateMachineArn: env.MIGRATE_FLEET_STATE_MACHINE_ARN,
    latestVersion: () => latestTemplateVersion(env.SCHEMA_DIR),
    log,
  }),
};
const routeByKey = new Map(routes.map((route) => [routeKey(route), route]));

/** The api Lambda behind API Gateway's HTTP API: parses the v2 event and dispatches on its route key. */
async function route(input: unknown): Promise<HttpResult> {
  const parsed = HttpEvent.safeParse(input);
  // A malformed event is a wiring fault (a 500), not the client's.
  if (!parsed.success) throw new Error(`Malformed API Gateway event: ${z.prettifyError(parsed.error)}`);
  const matched = routeByKey.get(parsed.data.routeKey);
  if (!matched) throw new NotFoundError(`No route ${parsed.data.routeKey}`);
  requireScopes(parsed.data, matched.scopes);
  requireWellFormedPath(parsed.data.rawPath);
  return operations[matched.operationId](parsed.data);
}

export const handler = middy(route)
  .use(injectLambdaContext(logger))
  .use(
    httpErrors((error) =>
      logger.error('Request failed', { error: error instanceof Error ? error : String(error) }),
    ),
  );
