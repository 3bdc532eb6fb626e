import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import { openApiDocument } from '../../schema/api/openapi.ts';
import { CreateTenantRequest, ListTenantsQuery } from '../../schema/api/tenants.ts';
import { rdsDataClient, sfnClient } from '../shared/clients.ts';
import { DataApi } from '../shared/data-api.ts';
import { readEnv } from '../shared/env.ts';
import { NotFoundError } from '../shared/errors.ts';
import { TenantRegistry } from '../shared/tenants.ts';
import * as z from '../shared/zod.ts';
import { batchRoutes } from './batches.ts';
import { actorOf, createTenant } from './create-tenant.ts';
import {
  callerOf,
  HttpEvent,
  type HttpResult,
  httpErrors,
  jsonBody,
  jsonResult,
  parseWith,
  requireScopes,
  requireWellFormedPath,
} from './http.ts';
import { idempotencyKeyOf, idempotent, requestHash } from './idempotency.ts';
import { lifecycleRoutes } from './lifecycle.ts';
import { migrationRoutes } from './migrations.ts';
import { getTenant, listTenants } from './read-tenants.ts';
import { type OperationId, routeKey, routes } from './routes.ts';

/** The environment the api function reads; its registry entry lists the same names. */
const env = readEnv({
  STAGE: z.string().check(z.minLength(1)),
  CLUSTER_ARN: z.string().check(z.startsWith('arn:')),
  PROVISIONER_SECRET_ARN: z.string().check(z.startsWith('arn:')),
  CONTROL_PLANE_DATABASE: z.string().check(z.minLength(1)),
  PROVISION_STATE_MACHINE_ARN: z.string().check(z.startsWith('arn:')),
});

const logger = new Logger({ serviceName: 'tenant-provisioner-api' });
const registry = new TenantRegistry(
  new DataApi(rdsDataClient(), {
    resourceArn: env.CLUSTER_ARN,
    secretArn: env.PROVISIONER_SECRET_ARN,
    database: env.CONTROL_PLANE_DATABASE,
  }),
);
const routeByKey = new Map(routes.map((route) => [routeKey(route), route]));

const operations: Record<OperationId, (event: HttpEvent) => Promise<HttpResult>> = {
  ...lifecycleRoutes(registry, (message, details) => logger.warn(message, details)),
  ...batchRoutes(registry, (message, details) => logger.warn(message, details)),
  ...migrationRoutes(registry, (message, details) => logger.warn(message, details)),
  async createTenant(event) {
    const caller = callerOf(event);
    const key = idempotencyKeyOf(event);
    const raw = jsonBody(event);
    const request = parseWith(CreateTenantRequest, raw);
    const answer = async () => {
      const created = await createTenant(
        {
          registry,
          sfn: sfnClient(),
          stateMachineArn: env.PROVISION_STATE_MACHINE_ARN,
          log: (message, details) => logger.warn(message, details),
        },
        request,
        caller,
      );
      logger.info('Tenant created', {
        tenantId: created.tenantId,
        slug: created.slug,
        actor: actorOf(caller),
      });
      return jsonResult(202, created, { location: created.links.self });
    };
    if (key === undefined) return answer();
    return idempotent(registry, { caller, key, hash: requestHash(event.routeKey, raw) }, answer);
  },

  async getTenant(event) {
    return jsonResult(200, await getTenant(registry, event.pathParameters?.tenantId ?? ''));
  },

  async listTenants(event) {
    const query = parseWith(ListTenantsQuery, event.queryStringParameters ?? {}, 'Invalid query parameters');
    return jsonResult(200, await listTenants(registry, query));
  },

  async getOpenApi(event) {
    const host = event.headers.host ?? event.requestContext.domainName;
    const proto = event.headers['x-forwarded-proto'] ?? 'https';
    return jsonResult(200, openApiDocument(host ? { serverUrl: `${proto}://${host}` } : {}), {
      'cache-control': 'public, max-age=300',
    });
  },
};

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
