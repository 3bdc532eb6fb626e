import { openApiDocument } from '../../schema/api/openapi.ts';
import { CreateTenantRequest, ListTenantsQuery } from '../../schema/api/tenants.ts';
import type { IdempotencyStore } from '../shared/idempotency-keys.ts';
import type { ProgressStore } from '../shared/progress.ts';
import { actorOf, type CreateTenantDeps, createTenant } from './create-tenant.ts';
import { callerOf, type HttpEvent, type HttpResult, jsonBody, jsonResult, parseWith } from './http.ts';
import { idempotencyKeyOf, idempotent, requestHash } from './idempotency.ts';
import { getTenant, listTenants } from './read-tenants.ts';

/**
 * What the tenant routes run on: the create's deps, the steps' progress (for GET), the first answers to idempotent
 * creates, and where a created tenant is logged.
 */
export interface TenantRouteDeps extends CreateTenantDeps {
  readonly progress: ProgressStore;
  readonly idempotency: IdempotencyStore;
  readonly info?: (message: string, details: Record<string, unknown>) => void;
}

/**
 * The tenant routes (create, get, list) and the OpenAPI document as api-handler operations, on the clients and
 * stores the api function's composition root hands in (functions/api/handler.ts). A create with an
 * `Idempotency-Key` is answered once per key.
 */
export function tenantRoutes(
  deps: TenantRouteDeps,
): Record<
  'createTenant' | 'getTenant' | 'listTenants' | 'getOpenApi',
  (event: HttpEvent) => Promise<HttpResult>
> {
  return {
    async createTenant(event) {
      const caller = callerOf(event);
      const key = idempotencyKeyOf(event);
      const raw = jsonBody(event);
      const request = parseWith(CreateTenantRequest, raw);
      const answer = async () => {
        const created = await createTenant(deps, request, caller);
        deps.info?.('Tenant created', {
          tenantId: created.tenantId,
          slug: created.slug,
          actor: actorOf(caller),
        });
        return jsonResult(202, created, { location: created.links.self });
      };
      if (key === undefined) return answer();
      return idempotent(deps.idempotency, { caller, key, hash: requestHash(event.routeKey, raw) }, answer, {
        log: deps.log,
      });
    },

    async getTenant(event) {
      return jsonResult(200, await getTenant(deps, event.pathParameters?.tenantId ?? ''));
    },

    async listTenants(event) {
      const query = parseWith(
        ListTenantsQuery,
        event.queryStringParameters ?? {},
        'Invalid query parameters',
      );
      return jsonResult(200, await listTenants(deps.tenants, query));
    },

    async getOpenApi(event) {
      const host = event.headers.host ?? event.requestContext.domainName;
      const proto = event.headers['x-forwarded-proto'] ?? 'https';
      return jsonResult(200, openApiDocument(host ? { serverUrl: `${proto}://${host}` } : {}), {
        'cache-control': 'public, max-age=300',
      });
    },
  };
}
