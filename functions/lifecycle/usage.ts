import type { S3Client } from '@aws-sdk/client-s3';
import { DATABASE_ROLES, databaseName, roleName } from '../../schema/names.ts';
import {
  effectiveLimits,
  FEATURE_FLAGS,
  LIMIT_NAMES,
  PLANS,
  type PlanLimits,
  type PlanName,
} from '../../schema/plans.ts';
import * as z from '../../schema/zod.ts';
import { databaseExists } from '../provision/database.ts';
import { tenantObjectListing } from '../provision/storage.ts';
import { type DataApi, json } from '../shared/data-api.ts';
import type { ErrorDetail } from '../shared/errors.ts';
import { PlanChangeRefusedError } from '../shared/errors.ts';
import { TenantDatabase } from '../shared/tenant-db.ts';
import type { Tenant } from '../shared/tenants.ts';

/** What a tenant uses now, measured where it lives: its database, its storage prefix, its sessions. */
export interface TenantUsage {
  /** Rows of the tenant's `users` table. */
  readonly users: number;
  /** API keys neither revoked nor expired. */
  readonly apiKeys: number;
  /** Bytes of every object under `tenants/<id>/`. */
  readonly storageBytes: number;
  /** Open sessions of the tenant's roles on its database. */
  readonly connections: number;
}

export interface UsageDeps {
  /** The provisioner on any database of the cluster. */
  readonly cluster: DataApi;
  readonly s3: S3Client;
  readonly bucket: string;
}

const GIB = 1024 ** 3;
const count = z.object({ n: z.coerce.number() });

/** Measures the tenant's usage; a tenant without a database (yet) uses nothing there. */
export async function measureUsage(deps: UsageDeps, tenantId: string): Promise<TenantUsage> {
  const name = databaseName(tenantId);
  const [database, storageBytes] = await Promise.all([
    (async () => {
      if (!(await databaseExists(deps.cluster, name))) return { users: 0, apiKeys: 0 };
      const db = TenantDatabase.of(deps.cluster, tenantId);
      const [users] = await db.query('SELECT count(*)::int AS n FROM public.users', {}, count);
      const [apiKeys] = await db.query(
        `SELECT count(*)::int AS n FROM public.api_keys
         WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > pg_catalog.now())`,
        {},
        count,
      );
      return { users: users?.n ?? 0, apiKeys: apiKeys?.n ?? 0 };
    })(),
    storageBytesOf(deps, tenantId),
  ]);
  // Sessions of the tenant's own roles: the provisioner's (this query's included) are not the tenant's.
  const roles = DATABASE_ROLES.map((role) => roleName(tenantId, role));
  const [connections] = await deps.cluster.query(
    `SELECT count(*)::int AS n FROM pg_stat_activity
     WHERE datname = :name AND usename = ANY(ARRAY(SELECT jsonb_array_elements_text(CAST(:roles AS jsonb))))`,
    { name, roles: json(roles) },
    count,
  );
  return { ...database, storageBytes, connections: connections?.n ?? 0 };
}

async function storageBytesOf(deps: Pick<UsageDeps, 's3' | 'bucket'>, tenantId: string): Promise<number> {
  let bytes = 0;
  for await (const objects of tenantObjectListing(deps, tenantId)) {
    for (const object of objects) bytes += object.Size ?? 0;
  }
  return bytes;
}

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
  tenant: Pick<Tenant, 'plan' | 'limits'>,
  request: { plan?: PlanName | undefined; limits?: Partial<PlanLimits> | undefined },
): { target: PlanTarget; problems: ErrorDetail[] } {
  const plan = request.plan ?? tenant.plan;
  const overrides = request.limits ?? {};
  const limits = plan === tenant.plan ? { ...tenant.limits, ...overrides } : effectiveLimits(plan, overrides);
  const problems: ErrorDetail[] = [];
  for (const name of LIMIT_NAMES) {
    if (limits[name] > PLANS[plan].limits[name]) {
      problems.push({
        path: `limits.${name}`,
        message: `${name} may not exceed ${PLANS[plan].limits[name]} on the ${plan} plan`,
      });
    }
  }
  return { target: { plan, limits }, problems };
}

/**
 * Why the tenant cannot take the target plan, one detail per problem: a feature flag or sign-in method it uses
 * that the plan lacks (refused rather than silently switched off: turning a feature off is a decision for the
 * tenant's owner), and each limit its current usage exceeds, with the usage.
 */
export function planChangeProblems(
  tenant: Pick<Tenant, 'config'>,
  target: PlanTarget,
  usage: TenantUsage,
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
  if (usage.storageBytes > limits.storageQuotaGb * GIB) {
    problems.push({
      path: 'limits.storageQuotaGb',
      message: `Storage: ${usage.storageBytes} bytes in use, the new quota is ${limits.storageQuotaGb} GB (${limits.storageQuotaGb * GIB} bytes)`,
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
  const usage = await measureUsage(deps, tenant.id);
  const problems = planChangeProblems(tenant, target, usage);
  if (problems.length > 0) {
    throw new PlanChangeRefusedError(
      `The tenant does not fit the ${target.plan} plan with these limits: ${problems.map((p) => p.message).join('; ')}`,
      problems,
    );
  }
  return usage;
}
