import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import { RetentionDays } from 'aws-cdk-lib/aws-logs';

/** The stages a team deploys, one stack each. */
export const STAGES = ['dev', 'staging', 'prod'] as const;
export type StageName = (typeof STAGES)[number];

export const isStageName = (value: unknown): value is StageName =>
  typeof value === 'string' && (STAGES as readonly string[]).includes(value);

/** Who may call the API: tokens of an existing issuer, or of a Cognito user pool the stack creates. */
export interface JwtConfig {
  /** e.g. `https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc`, or any OIDC issuer. */
  readonly issuer: string;
  /** Accepted `aud` (or, for Cognito access tokens, `client_id`) values. */
  readonly audience: readonly string[];
}

/** Everything that differs between stages, decided once in `infra/bin` and passed down as props. */
export interface StageConfig {
  readonly stage: StageName;
  /** Prefix of every physical name: `tenant-provisioner-<stage>`. */
  readonly prefix: string;
  /** What happens to the bucket, the secrets, the user pool and the log groups when the stack goes. */
  readonly removalPolicy: RemovalPolicy;
  readonly database: {
    /** What happens to the cluster when the stack goes (SNAPSHOT keeps a final snapshot). */
    readonly removalPolicy: RemovalPolicy;
    /** Aurora Serverless v2 capacity; a minimum of 0 lets the writer pause when idle. */
    readonly minCapacity: number;
    readonly maxCapacity: number;
    /** Idle time before an auto-pausing (min 0) writer pauses. */
    readonly autoPauseAfter: Duration;
    /** Serverless v2 readers beside the writer, in another AZ, to fail over to. */
    readonly readers: number;
    readonly backupRetention: Duration;
    readonly deletionProtection: boolean;
  };
  /** Retention of every log group of the stage (functions, state machines, API access, VPC flow). */
  readonly logRetention: RetentionDays;
  readonly storage: {
    readonly versioned: boolean;
    /** Noncurrent object versions are expired after this long (only with versioning). */
    readonly noncurrentVersionExpiration: Duration;
  };
  /** Days Secrets Manager keeps a deleted stack secret recoverable (7 to 30). */
  readonly secretRecoveryWindow: Duration;
  /** Absent: the stack creates a Cognito user pool with the `tenants/admin` and `tenants/read` scopes. */
  readonly jwt?: JwtConfig;
  /** Stage-wide API Gateway throttling. */
  readonly throttling: { readonly rateLimit: number; readonly burstLimit: number };
  /** Addresses subscribed to the alarm topic on deploy. */
  readonly alarmEmails: readonly string[];
  /**
   * How often the usage collector (statemachines/collect-usage.asl.json) measures every active tenant: 1 to 5
   * minutes, so that each of the tenant alarms' 5-minute periods holds a reading (functions/provision/alarms.ts).
   */
  readonly usageCollectionPeriod: Duration;
}

/** Per-stage choices a deployer may override through context (see `stageConfig`). */
export interface StageOverrides {
  readonly jwt?: JwtConfig;
  readonly alarmEmails?: readonly string[];
  /** 1 to 5 minutes. */
  readonly usageCollectionPeriod?: Duration;
}

/** The usage collector's default period, every stage. */
const USAGE_COLLECTION_PERIOD = Duration.minutes(5);

const DEFAULTS: Record<
  StageName,
  Omit<StageConfig, 'stage' | 'prefix' | 'jwt' | 'alarmEmails' | 'usageCollectionPeriod'>
> = {
  dev: {
    removalPolicy: RemovalPolicy.DESTROY,
    database: {
      removalPolicy: RemovalPolicy.DESTROY,
      // 0 ACU: the writer pauses after 5 idle minutes, so an unused dev stage costs storage only.
      minCapacity: 0,
      maxCapacity: 2,
      autoPauseAfter: Duration.minutes(5),
      readers: 0,
      backupRetention: Duration.days(1),
      deletionProtection: false,
    },
    logRetention: RetentionDays.ONE_WEEK,
    storage: { versioned: false, noncurrentVersionExpiration: Duration.days(1) },
    secretRecoveryWindow: Duration.days(7),
    throttling: { rateLimit: 20, burstLimit: 40 },
  },
  staging: {
    removalPolicy: RemovalPolicy.RETAIN,
    database: {
      removalPolicy: RemovalPolicy.SNAPSHOT,
      minCapacity: 0,
      maxCapacity: 4,
      autoPauseAfter: Duration.hours(1),
      readers: 0,
      backupRetention: Duration.days(7),
      deletionProtection: false,
    },
    logRetention: RetentionDays.ONE_MONTH,
    storage: { versioned: true, noncurrentVersionExpiration: Duration.days(7) },
    secretRecoveryWindow: Duration.days(7),
    throttling: { rateLimit: 50, burstLimit: 100 },
  },
  prod: {
    removalPolicy: RemovalPolicy.RETAIN,
    database: {
      removalPolicy: RemovalPolicy.RETAIN,
      // Never paused: a resuming writer adds ~15 s to the first request after idle time.
      minCapacity: 0.5,
      maxCapacity: 16,
      autoPauseAfter: Duration.minutes(5),
      readers: 1,
      backupRetention: Duration.days(35),
      deletionProtection: true,
    },
    logRetention: RetentionDays.ONE_YEAR,
    storage: { versioned: true, noncurrentVersionExpiration: Duration.days(90) },
    secretRecoveryWindow: Duration.days(30),
    throttling: { rateLimit: 200, burstLimit: 400 },
  },
};

/** The stage's configuration: the defaults above with the deployer's overrides. */
export function stageConfig(stage: StageName, overrides: StageOverrides = {}): StageConfig {
  const usageCollectionPeriod = overrides.usageCollectionPeriod ?? USAGE_COLLECTION_PERIOD;
  const minutes = usageCollectionPeriod.toMinutes({ integral: false });
  if (!Number.isInteger(minutes) || minutes < 1 || minutes > 5) {
    throw new Error(
      `usageCollectionPeriod must be a whole number of minutes from 1 to 5 (the tenant alarms' period is 5 minutes): ${usageCollectionPeriod.toHumanString()}`,
    );
  }
  return {
    stage,
    prefix: `tenant-provisioner-${stage}`,
    ...DEFAULTS[stage],
    ...(overrides.jwt ? { jwt: overrides.jwt } : {}),
    alarmEmails: overrides.alarmEmails ?? [],
    usageCollectionPeriod,
  };
}
