/**
 * THE route table of the HTTPS API: CDK makes one API Gateway route per entry (with the JWT authorizer and
 * these scopes), the local API server serves the same entries, the api Lambda dispatches on `routeKey`, and
 * the OpenAPI document lists them.
 */

/** The OAuth scopes of the API, as a Cognito resource server `tenants` defines them. */
export const SCOPES = {
  read: 'tenants/read',
  admin: 'tenants/admin',
} as const;
export type Scope = (typeof SCOPES)[keyof typeof SCOPES];
export const ALL_SCOPES: readonly Scope[] = Object.values(SCOPES);

export type OperationId = 'createTenant' | 'getTenant' | 'listTenants' | 'getOpenApi';

export interface Route {
  readonly method: 'GET' | 'POST';
  /** API Gateway's path syntax: `{name}` for a path parameter. */
  readonly path: string;
  readonly operationId: OperationId;
  readonly summary: string;
  /**
   * The token needs ANY of these scopes (API Gateway's `authorizationScopes` semantics); `null`: no authorizer.
   * Cognito resource-server scopes are independent of each other, so `tenants/admin` does not imply
   * `tenants/read` by itself: each read route lists both, and an admin client needs only `tenants/admin`.
   */
  readonly scopes: readonly Scope[] | null;
}

export const routes: readonly Route[] = [
  {
    method: 'POST',
    path: '/tenants',
    operationId: 'createTenant',
    summary: 'Create a tenant: validates, reserves the slug and starts its provisioning',
    scopes: [SCOPES.admin],
  },
  {
    method: 'GET',
    path: '/tenants',
    operationId: 'listTenants',
    summary: 'List tenants, filtered by status and plan, a page at a time',
    scopes: [SCOPES.read, SCOPES.admin],
  },
  {
    method: 'GET',
    path: '/tenants/{tenantId}',
    operationId: 'getTenant',
    summary: 'A tenant: plan, limits, configuration, resources and provisioning progress',
    scopes: [SCOPES.read, SCOPES.admin],
  },
  {
    method: 'GET',
    path: '/openapi.json',
    operationId: 'getOpenApi',
    summary: 'This API as an OpenAPI 3.1 document',
    scopes: null,
  },
];

/** API Gateway's route key, e.g. `GET /tenants/{tenantId}`: what the proxy event's `routeKey` holds. */
export const routeKey = (route: Pick<Route, 'method' | 'path'>): string => `${route.method} ${route.path}`;

/** JWT audience of the API's tokens (the authorizer's `audience`). */
export const API_AUDIENCE = 'tenant-provisioner';
