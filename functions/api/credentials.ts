import {
  type CredentialOperationId,
  DEFAULT_CREDENTIAL_TTL_HOURS,
  IssueCredentialsRequest,
  type IssueCredentialsResponse,
} from '../../schema/api/credentials.ts';
import { TENANT_ID_PATTERN } from '../../schema/names.ts';
import type { LifecycleStore } from '../lifecycle/operations.ts';
import {
  credentialExpiry,
  issueRoleCredentials,
  type RoleCredentialDeps,
  revokeRoleCredentials,
  standsOn,
} from '../provision/role-credentials.ts';
import type { AuditStore } from '../shared/audit.ts';
import { NotFoundError, OperationInProgressError, TenantStateError } from '../shared/errors.ts';
import { actorOf } from './create-tenant.ts';
import { callerOf, type HttpEvent, type HttpResult, jsonBody, jsonResult, parseWith } from './http.ts';

export interface CredentialRouteDeps extends RoleCredentialDeps {
  readonly audit: AuditStore;
  /** A tenant whose lifecycle operation runs is changing its roles: no credentials meanwhile. */
  readonly store: Pick<LifecycleStore, 'running'>;
  readonly now?: () => number;
}

/** The answer and whether it made the secret. */
export interface IssuedCredentials {
  readonly body: IssueCredentialsResponse;
  readonly created: boolean;
}

/**
 * `POST /tenants/{id}/credentials`: the role's credentials for an active tenant (409 otherwise, and while an operation
 * runs; 404 for an unknown tenant). A role standing on the plan answers its secret (made again if it was lost); any
 * other role's live credentials are answered as they are, with their expiry, or issued for `ttlHours` with a fresh
 * password. Only the secret's ARN is answered. A suspension that begins meanwhile still closes the tenant: it revokes
 * CONNECT on the database, which a LOGIN given here does not bypass.
 */
export async function issueCredentials(
  deps: CredentialRouteDeps,
  tenantId: string,
  request: IssueCredentialsRequest,
  caller: string,
): Promise<IssuedCredentials> {
  if (!TENANT_ID_PATTERN.test(tenantId)) throw new NotFoundError(`No tenant ${tenantId}`);
  const tenant = await deps.tenants.require(tenantId);
  if (tenant.status !== 'active') {
    throw new TenantStateError(
      `Tenant ${tenantId} is ${tenant.status}: credentials are issued to active tenants`,
    );
  }
  if (await deps.store.running(tenantId)) {
    throw new OperationInProgressError(
      `An operation is running for tenant ${tenantId}; retry when it has ended`,
    );
  }
  const { role } = request;
  const now = deps.now?.() ?? Date.now();
  const standing = standsOn(tenant.plan, role);
  const current = credentialExpiry(tenant, role);
  const live = current !== undefined && Date.parse(current) > now;
  const expiresAt = standing
    ? null
    : live
      ? current
      : new Date(now + (request.ttlHours ?? DEFAULT_CREDENTIAL_TTL_HOURS) * 3_600_000).toISOString();
  const actor = actorOf(caller);
  // Expired but not yet taken back by the reconciler: taken back now, so that the new ones have a fresh password.
  if (current !== undefined && !live && !standing) await revokeRoleCredentials(deps, tenantId, role, actor);
  const issued = await issueRoleCredentials(deps, tenant, role, { expiresAt, login: true, by: actor });
  if (issued.created) {
    await deps.audit.add(tenantId, 'TENANT_CREDENTIALS_ISSUED', actor, {
      role,
      secretArn: issued.secretArn,
      ...(expiresAt !== null ? { expiresAt } : {}),
    });
  }
  return {
    body: {
      tenantId,
      role,
      secretArn: issued.secretArn,
      ...(expiresAt !== null ? { expiresAt } : {}),
    },
    created: issued.created,
  };
}

/** The credential route as an api-handler operation (functions/api/handler.ts hands in the clients). */
export function credentialRoutes(
  deps: CredentialRouteDeps,
): Record<CredentialOperationId, (event: HttpEvent) => Promise<HttpResult>> {
  return {
    async issueCredentials(event) {
      const body = parseWith(IssueCredentialsRequest, jsonBody(event));
      const issued = await issueCredentials(
        deps,
        event.pathParameters?.tenantId ?? '',
        body,
        callerOf(event),
      );
      return jsonResult(issued.created ? 201 : 200, issued.body);
    },
  };
}
