/**
 * THE route table of the HTTPS API: CDK makes one API Gateway route per entry (with the JWT authorizer and
 * these scopes), the local API server serves the same entries, the api Lambda dispatches on `routeKey`, and
 * the OpenAPI document lists them.
 */

import type { CredentialOperationId } from './credentials.ts';
import type { LifecycleOperationId } from './lifecycle.ts';

/** The OAuth scopes of the API, as a Cognito resource server `tenants` defines them. */
export const SCOPES = {
  read: 'tenants/read',
  admin: 'tenants/admin',
} as const;
export type Scope = (typeof SCOPES)[keyof typeof SCOPES];
export const ALL_SCOPES: readonly Scope[] = Object.values(SCOPES);

export type OperationId =
  | 'createTenant'
  | 'getTenant'
  | 'listTenants'
  | 'getOpenApi'
  | 'getUsage'
  | LifecycleOperationId
  | CredentialOperationId
  | BulkOperationId;

/** Bulk onboarding (functions/api/batches.ts) and fleet migrations (functions/api/migrations.ts). */
export type BulkOperationId = 'createTenantBatch' | 'getTenantBatch' | 'startMigration' | 'getMigration';

export interface Route {
  readonly method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
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
    path: '/tenants/{tenantId}/usage',
    operationId: 'getUsage',
    summary: "The tenant's latest usage reading, each measure with its share of its limit",
    scopes: [SCOPES.read, SCOPES.admin],
  },
  // ---- Lifecycle (functions/api/lifecycle.ts): each long operation answers 202 with its execution.
  {
    method: 'PATCH',
    path: '/tenants/{tenantId}',
    operationId: 'changePlan',
    summary: "Change a tenant's plan and limits; refused with what exceeds when current usage would",
    scopes: [SCOPES.admin],
  },
  {
    method: 'DELETE',
    path: '/tenants/{tenantId}',
    operationId: 'deleteTenant',
    summary:
      'Delete a tenant (?confirm=<slug>): suspends it, takes a final backup, then removes its resources',
    scopes: [SCOPES.admin],
  },
  {
    method: 'POST',
    path: '/tenants/{tenantId}/suspend',
    operationId: 'suspendTenant',
    summary: 'Suspend a tenant: its database refuses its roles, open sessions end, alarm actions stop',
    scopes: [SCOPES.admin],
  },
  {
    method: 'POST',
    path: '/tenants/{tenantId}/resume',
    operationId: 'resumeTenant',
    summary: 'Resume a suspended tenant: undoes each effect of the suspension',
    scopes: [SCOPES.admin],
  },
  {
    method: 'POST',
    path: '/tenants/{tenantId}/backups',
    operationId: 'createBackup',
    summary: "Back up the tenant's database to S3 now (every table as data, a manifest with checksums)",
    scopes: [SCOPES.admin],
  },
  {
    method: 'GET',
    path: '/tenants/{tenantId}/backups',
    operationId: 'listBackups',
    summary: "The tenant's completed backups, newest first",
    scopes: [SCOPES.read, SCOPES.admin],
  },
  {
    method: 'POST',
    path: '/tenants/{tenantId}/restore',
    operationId: 'restoreTenant',
    summary: "Restore one of the tenant's backups into a new tenant, verified against the backup's manifest",
    scopes: [SCOPES.admin],
  },
  // ---- Credentials (functions/api/credentials.ts): a role's secret, issued when first needed.
  {
    method: 'POST',
    path: '/tenants/{tenantId}/credentials',
    operationId: 'issueCredentials',
    summary:
      "Issue a database role's credentials: its secret's ARN; those of a role not standing on the plan expire",
    scopes: [SCOPES.admin],
  },
  // ---- Bulk onboarding and fleet migrations: long runs answer 202 and are followed with their GET.
  {
    method: 'POST',
    path: '/tenant-batches',
    operationId: 'createTenantBatch',
    summary: 'Onboard tenants in bulk (JSON or CSV): validates every row; a dry run creates nothing',
    scopes: [SCOPES.admin],
  },
  {
    method: 'GET',
    path: '/tenant-batches/{batchId}',
    operationId: 'getTenantBatch',
    summary: "A batch: each row's tenant and outcome",
    scopes: [SCOPES.read, SCOPES.admin],
  },
  {
    method: 'POST',
    path: '/migrations',
    operationId: 'startMigration',
    summary:
      "Apply the tenant template's latest migrations to every active tenant behind it (or those named)",
    scopes: [SCOPES.admin],
  },
  {
    method: 'GET',
    path: '/migrations/{migrationId}',
    operationId: 'getMigration',
    summary: 'A fleet migration run: its counts and every tenant that failed, with why',
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
