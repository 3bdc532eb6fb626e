import type { DatabaseRole } from './names.ts';

/**
 * The subscription plans: one definition, read by request validation, by the provisioning steps
 * (connection limit, quotas) and by the alarms (thresholds). Quotas after seed 003, connection
 * limits after seed 004.
 */
export const PLAN_NAMES = ['basic', 'professional', 'enterprise'] as const;
export type PlanName = (typeof PLAN_NAMES)[number];

export const AUTH_METHODS = ['password', '2fa', 'passkey', 'sso'] as const;
export type AuthMethod = (typeof AUTH_METHODS)[number];

/** Feature flags a plan may include; a request asking for one its plan lacks is refused. */
export const FEATURE_FLAGS = ['customBranding', 'apiAccess', 'advancedAnalytics', 'auditExport'] as const;
export type FeatureFlag = (typeof FEATURE_FLAGS)[number];

/** Quotas a request may lower (never raise) with `limits`. */
export interface PlanLimits {
  readonly maxUsers: number;
  readonly storageQuotaGb: number;
  /** The tenant database's `CONNECTION LIMIT`. */
  readonly maxConnections: number;
  readonly maxApiKeys: number;
  readonly apiRequestsPerMinute: number;
}
export const LIMIT_NAMES = [
  'maxUsers',
  'storageQuotaGb',
  'maxConnections',
  'maxApiKeys',
  'apiRequestsPerMinute',
] as const satisfies readonly (keyof PlanLimits)[];

/** How often a plan's scheduled backups run. */
export const BACKUP_SCHEDULES = ['daily', 'weekly'] as const;
export type BackupSchedule = (typeof BACKUP_SCHEDULES)[number];

/**
 * The retentions a backup policy may keep its backups for: each has a lifecycle rule under `backups/`
 * (functions/shared/storage.ts BACKUP_RETENTION_DAYS holds them all).
 */
export const POLICY_RETENTION_DAYS = [14, 30, 35, 90] as const;
export type PolicyRetentionDays = (typeof POLICY_RETENTION_DAYS)[number];

/** A tenant's scheduled backups (seed 004's backup policy): how often, and how long each is kept. */
export interface BackupPolicy {
  readonly schedule: BackupSchedule;
  readonly retentionDays: PolicyRetentionDays;
}

export interface Plan {
  readonly name: PlanName;
  readonly limits: PlanLimits;
  readonly auth: readonly AuthMethod[];
  readonly features: readonly FeatureFlag[];
  /**
   * The database roles whose credentials stand from provisioning on: each has its Secrets Manager secret and LOGIN.
   * The plan's other roles exist with the same privileges but are NOLOGIN without a password until their credentials
   * are issued (`POST /tenants/{id}/credentials`), for a while. A secret costs $0.40 a month whether used or not, so
   * a small plan stands only the role its application runs as.
   */
  readonly standingRoles: readonly DatabaseRole[];
  readonly alarms: {
    /** Alarm when used storage passes this share of the quota. */
    readonly storageRatio: number;
    /** Alarm when open connections pass this share of the limit. */
    readonly connectionsRatio: number;
    /** Alarm when 5xx responses pass this share of requests (seed 004: 5%). */
    readonly errorRate: number;
    /** p99 latency alarm in milliseconds; enterprise only. */
    readonly latencyP99Ms?: number;
  };
  /**
   * Whether the tenant's usage is published to CloudWatch with its `TenantId` and watched there by alarms of its
   * own. A custom metric costs $0.30 a month and an alarm $0.10 per metric it evaluates, about $1.90 a tenant: more
   * than a basic tenant's whole budget ($0.60). Without, the usage collector compares the tenant's readings with
   * the same thresholds itself and announces what crosses them (functions/usage/quotas.ts); the fleet's sums per
   * plan are published either way.
   */
  readonly perTenantMonitoring: boolean;
  /** The plan's backup policy, and the bounds within which a tenant may change it (`PATCH /tenants/{id}`). */
  readonly backups: {
    readonly policy: BackupPolicy;
    readonly schedules: readonly BackupSchedule[];
    readonly maxRetentionDays: PolicyRetentionDays;
  };
}

const ALARMS = { storageRatio: 0.8, connectionsRatio: 0.8, errorRate: 0.05 } as const;

export const PLANS: Readonly<Record<PlanName, Plan>> = {
  basic: {
    name: 'basic',
    limits: { maxUsers: 10, storageQuotaGb: 10, maxConnections: 10, maxApiKeys: 2, apiRequestsPerMinute: 60 },
    auth: ['password', '2fa'],
    features: [],
    standingRoles: ['app'],
    alarms: ALARMS,
    perTenantMonitoring: false,
    backups: {
      policy: { schedule: 'weekly', retentionDays: 14 },
      schedules: ['weekly'],
      maxRetentionDays: 14,
    },
  },
  professional: {
    name: 'professional',
    limits: {
      maxUsers: 50,
      storageQuotaGb: 100,
      maxConnections: 50,
      maxApiKeys: 10,
      apiRequestsPerMinute: 600,
    },
    auth: ['password', '2fa', 'passkey'],
    features: ['apiAccess', 'advancedAnalytics'],
    standingRoles: ['app', 'admin', 'readonly'],
    alarms: ALARMS,
    perTenantMonitoring: true,
    backups: {
      policy: { schedule: 'daily', retentionDays: 35 },
      schedules: ['daily', 'weekly'],
      maxRetentionDays: 35,
    },
  },
  enterprise: {
    name: 'enterprise',
    limits: {
      maxUsers: 200,
      storageQuotaGb: 500,
      maxConnections: 200,
      maxApiKeys: 50,
      apiRequestsPerMinute: 6000,
    },
    auth: ['password', '2fa', 'passkey', 'sso'],
    features: ['apiAccess', 'advancedAnalytics', 'customBranding', 'auditExport'],
    standingRoles: ['admin', 'app', 'readonly', 'auditor'],
    alarms: { ...ALARMS, latencyP99Ms: 1000 },
    perTenantMonitoring: true,
    backups: {
      policy: { schedule: 'daily', retentionDays: 90 },
      schedules: ['daily', 'weekly'],
      maxRetentionDays: 90,
    },
  },
};

/** A tenant's effective limits: the plan's, lowered where the tenant asked. */
export function effectiveLimits(plan: PlanName, overrides: Partial<PlanLimits> = {}): PlanLimits {
  return { ...PLANS[plan].limits, ...overrides };
}

/** A tenant's backup policy: the one it chose, or its plan's. */
export const backupPolicyOf = (plan: PlanName, chosen: BackupPolicy | undefined): BackupPolicy =>
  chosen ?? PLANS[plan].backups.policy;

/** Why a backup policy is outside the plan's bounds, one message per problem (none: within). */
export function backupPolicyProblems(
  plan: PlanName,
  policy: Partial<BackupPolicy>,
): { path: string; message: string }[] {
  const bounds = PLANS[plan].backups;
  const problems: { path: string; message: string }[] = [];
  if (policy.schedule !== undefined && !bounds.schedules.includes(policy.schedule)) {
    problems.push({
      path: 'backupPolicy.schedule',
      message: `The ${plan} plan backs up ${bounds.schedules.join(' or ')}, not ${policy.schedule}`,
    });
  }
  if (policy.retentionDays !== undefined && policy.retentionDays > bounds.maxRetentionDays) {
    problems.push({
      path: 'backupPolicy.retentionDays',
      message: `The ${plan} plan keeps backups at most ${bounds.maxRetentionDays} days`,
    });
  }
  return problems;
}
