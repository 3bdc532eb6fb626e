import type { UsageResponse } from '../../schema/api/usage.ts';
import { TENANT_ID_PATTERN } from '../../schema/names.ts';
import { NotFoundError } from '../shared/errors.ts';
import type { TenantStore } from '../shared/tenants.ts';
import { QUOTAS, readingsOf } from '../usage/quotas.ts';
import type { UsageStore } from '../usage/store.ts';
import { type HttpEvent, type HttpResult, jsonResult } from './http.ts';

export interface UsageRouteDeps {
  readonly tenants: TenantStore;
  readonly usage: UsageStore;
}

/**
 * The tenant's latest usage reading, each measure against the tenant's limits as they are now (a plan change since
 * the reading shows against the new ones). Any status: a suspended tenant's last reading is still its last. A
 * malformed id is a 404 like an unknown one.
 */
export async function getUsage(deps: UsageRouteDeps, tenantId: string): Promise<UsageResponse> {
  const tenant = TENANT_ID_PATTERN.test(tenantId) ? await deps.tenants.get(tenantId) : undefined;
  if (!tenant) throw new NotFoundError(`No tenant ${tenantId}`);
  const latest = await deps.usage.latest(tenant.id);
  const crossed = new Set(latest?.crossed ?? []);
  return {
    tenantId: tenant.id,
    plan: tenant.plan,
    measuredAt: latest?.measuredAt ?? null,
    readings: readingsOf(latest?.usage ?? {}, tenant.limits),
    exceeded: QUOTAS.filter((quota) => crossed.has(`quota:${quota}`)),
    problems: (latest?.problems ?? []).map((problem) => ({
      measures: [...problem.measures],
      reason: problem.reason,
    })),
  };
}

/** The usage route as an api-handler operation. */
export function usageRoutes(
  deps: UsageRouteDeps,
): Record<'getUsage', (event: HttpEvent) => Promise<HttpResult>> {
  return {
    async getUsage(event) {
      return jsonResult(200, await getUsage(deps, event.pathParameters?.tenantId ?? ''));
    },
  };
}
