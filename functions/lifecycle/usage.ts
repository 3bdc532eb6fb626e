import {
  type BackupPolicy,
  backupPolicyOf,
  backupPolicyProblems,
  effectiveLimits,
  FEATURE_FLAGS,
  LIMIT_NAMES,
  PLANS,
  type PlanLimits,
  type PlanName,
} from '../../schema/plans.ts';
import type { ErrorDetail } from '../shared/errors.ts';
import { PlanChangeRefusedError } from '../shared/errors.ts';
import type { Tenant } from '../shared/tenants.ts';
import { type MeasureDeps, measureTenant, type TenantUsage } from '../usage/measure.ts';
import { storageQuotaBytes } from '../usage/quotas.ts';

export type { TenantUsage };
export type UsageDeps = MeasureDeps;

/** The plan and limits a PATCH asks for, resolved against the tenant's current ones. */
export interface PlanTarget {
  readonly plan: PlanName;
  readonly limits: PlanLimits;
}

/**
 * The effective plan and limits of a change: a new plan takes that plan's limits, lowered where asked; the same
 * plan keeps the current limits with those given. A limit above the plan's maximum is refused (400).
 */
export function resolvePlanTarget(
  tenant: Pick<Tenant, 'plan' | 'limits'> & { readonly config: Pick<Tenant['config'], 'backupPolicy'> },
  request: {
    plan?: PlanName | undefined;
    limits?: Partial<PlanLimits> | undefined;
    backupPolicy?: Partial<BackupPolicy> | undefined;
  },
): { target: PlanTarget; backupPolicy: BackupPolicy; problems: ErrorDetail[] } {
  const plan = request.plan ?? tenant.plan;
  const overrides = request.limits ?? {};
  const limits = plan === tenant.plan ? { ...tenant.limits, ...overrides } : effectiveLimits(plan, overrides);
  // As the limits: the same plan keeps the tenant's policy with what is given; a new plan starts from its own.
  const backupPolicy: BackupPolicy = {
    ...(plan === tenant.plan ? backupPolicyOf(plan, tenant.config.backupPolicy) : PLANS[plan].backups.policy),
    ...request.backupPolicy,
  };
  const problems: ErrorDetail[] = backupPolicyProblems(plan, backupPolicy);
  for (const name of LIMIT_NAMES) {
    if (limits[name] > PLANS[plan].limits[name]) {
      problems.push({
        path: `limits.${name}`,
        message: `${name} may not exceed ${PLANS[plan].limits[name]} on the ${plan} plan`,
      });
    }
  }
  return { target: { plan, limits }, backupPolicy, problems };
}

/**
 * Why the tenant cannot take the target plan, one detail per problem: a feature flag or sign-in method it uses
 * that the plan lacks (refused rather than silently switched off: turning a feature off is a decision for the
 * tenant's owner), and each limit its current usage exceeds, with the usage.
 */
export function planChangeProblems(
  tenant: Pick<Tenant, 'config'>,
  target: PlanTarget,
  usage: Omit<TenantUsage, 'databaseBytes'>,
): ErrorDetail[] {
  const plan = PLANS[target.plan];
  const problems: ErrorDetail[] = [];
  for (const flag of FEATURE_FLAGS) {
    if (tenant.config.features[flag] && !plan.features.includes(flag)) {
      problems.push({
        path: `features.${flag}`,
        message: `The tenant uses ${flag}, which the ${plan.name} plan does not include`,
      });
    }
  }
  for (const method of tenant.config.features.auth) {
    if (!plan.auth.includes(method)) {
      problems.push({
        path: 'features.auth',
        message: `The tenant signs in with ${method}, which the ${plan.name} plan does not include`,
      });
    }
  }
  const { limits } = target;
  const exceeds = (path: string, used: number, limit: number, what: string) => {
    if (used > limit) problems.push({ path, message: `${what}: ${used} in use, the new limit is ${limit}` });
  };
  exceeds('limits.maxUsers', usage.users, limits.maxUsers, 'Users');
  exceeds('limits.maxApiKeys', usage.apiKeys, limits.maxApiKeys, 'Live API keys');
  exceeds('limits.maxConnections', usage.connections, limits.maxConnections, 'Open database connections');
  const quota = storageQuotaBytes(limits);
  if (usage.storageBytes > quota) {
    problems.push({
      path: 'limits.storageQuotaGb',
      message: `Storage: ${usage.storageBytes} bytes in use, the new quota is ${limits.storageQuotaGb} GB (${quota} bytes)`,
    });
  }
  return problems;
}

/** Measures and refuses with a {@link PlanChangeRefusedError} naming every problem; returns the usage. */
export async function assertPlanFits(
  deps: UsageDeps,
  tenant: Pick<Tenant, 'id' | 'config'>,
  target: PlanTarget,
): Promise<TenantUsage> {
  const usage = await measureTenant(deps, tenant.id);
  const problems = planChangeProblems(tenant, target, usage);
  if (problems.length > 0) {
    throw new PlanChangeRefusedError(
      `The tenant does not fit the ${target.plan} plan with these limits: ${problems.map((p) => p.message).join('; ')}`,
      problems,
    );
  }
  return usage;
}
