import type { EnvName } from './shared/env.ts';

/**
 * The one list of Lambda functions. CDK creates a function, its role and its environment from each entry;
 * the local sandbox runs the same entries in-process when a state machine's Task calls them; ASL files
 * reach a function through the substitution `${<id>FunctionArn}`.
 */
export interface FunctionDefinition {
  /** PascalCase logical id, e.g. `CreateDatabase`. */
  readonly id: string;
  /** Handler module, relative to the project root. */
  readonly entry: string;
  /** Exported handler name; `handler` by default. */
  readonly handler?: string;
  readonly description?: string;
  /** Lambda timeout; 30 s by default. */
  readonly timeoutSeconds?: number;
  /** The environment variables the function reads (see `ENVIRONMENT`), set by CDK and by the sandbox. */
  readonly environment?: readonly EnvName[];
  /**
   * Every AWS action the function's code calls, each on the stack resource it calls it on. CDK grants
   * exactly these (and a test holds the deployed role to them); declare an action beside the code that
   * calls it.
   */
  readonly permissions?: readonly Permission[];
  /**
   * Runs the function on a schedule, with an empty event: on AWS an EventBridge Scheduler schedule with this
   * expression; in the sandbox at startup and then every `SANDBOX_SCHEDULE_SECONDS` (30 by default).
   */
  readonly schedule?: FunctionSchedule;
}

/** When a scheduled function runs. */
export interface FunctionSchedule {
  /** An EventBridge Scheduler expression, e.g. `rate(15 minutes)`. */
  readonly expression: string;
  readonly description: string;
}

/** Actions on one of the stack's resources, e.g. `{ actions: ['events:PutEvents'], resource: 'eventBus' }`. */
export interface Permission {
  /** IAM actions, e.g. `secretsmanager:CreateSecret`; no wildcards. */
  readonly actions: readonly string[];
  readonly resource: ResourceRef;
}

/**
 * The stack resources a function may be granted actions on (infra/permissions.ts maps each to its ARNs):
 * - `cluster`: the Aurora cluster (Data API calls);
 * - `masterSecret`: the cluster's master user secret (only the deploy-time setup uses it);
 * - `provisionerSecret`: the provisioner database role's secret;
 * - `tenantSecrets`: every secret named `tenants/<stage>/*`;
 * - `tenantAlarms`: every CloudWatch alarm named `tenant-*`;
 * - `storageBucket`: the stage's bucket itself (ListBucket, bucket configuration);
 * - `storageObjects`: the bucket's objects under `tenants/*` and `backups/*`;
 * - `storageKey`: the stage's KMS key for SSE-KMS tenant objects, through S3 and with a tenant id in the context;
 * - `alarmTopic`: the stage's SNS alarm topic;
 * - `eventBus`: the stage's EventBridge bus;
 * - `metrics`: CloudWatch metrics of the product's namespace (PutMetricData has no resource-level permissions);
 * - `stateMachine:<name>`: the state machine of `statemachines/<name>.asl.json`;
 * - `executions:<name>`: that state machine's executions.
 */
export type ResourceRef =
  | 'cluster'
  | 'masterSecret'
  | 'provisionerSecret'
  | 'tenantSecrets'
  | 'tenantAlarms'
  | 'storageBucket'
  | 'storageObjects'
  | 'storageKey'
  | 'alarmTopic'
  | 'eventBus'
  | 'metrics'
  | `stateMachine:${string}`
  | `executions:${string}`;

// Every environment variable a function may read, by name, with what it holds and its type: one table, which
// `environment` below names and the functions read with `readEnv`.
export { ENVIRONMENT, type EnvName } from './shared/env.ts';

/** The variable that names each state machine a function starts, and its file (`statemachines/<name>.asl.json`). */
export const STATE_MACHINE_VARIABLES = {
  PROVISION_STATE_MACHINE_ARN: 'provision-tenant',
  SUSPEND_STATE_MACHINE_ARN: 'suspend-tenant',
  RESUME_STATE_MACHINE_ARN: 'resume-tenant',
  CHANGE_PLAN_STATE_MACHINE_ARN: 'change-plan',
  DELETE_STATE_MACHINE_ARN: 'delete-tenant',
  BACKUP_STATE_MACHINE_ARN: 'backup-tenant',
  RESTORE_STATE_MACHINE_ARN: 'restore-tenant',
  BULK_ONBOARD_STATE_MACHINE_ARN: 'bulk-onboard',
  MIGRATE_FLEET_STATE_MACHINE_ARN: 'migrate-fleet',
} as const satisfies Partial<Record<EnvName, string>>;

/** Each state machine variable with the ARN `arnOf` gives its state machine (CDK's, the sandbox's). */
export function stateMachineVariables(
  arnOf: (name: string) => string,
): Record<keyof typeof STATE_MACHINE_VARIABLES, string> {
  const entries = Object.entries(STATE_MACHINE_VARIABLES).map(([variable, name]) => [variable, arnOf(name)]);
  return Object.fromEntries(entries) as Record<keyof typeof STATE_MACHINE_VARIABLES, string>;
}

export const DEFAULT_TIMEOUT_SECONDS = 30;

/** What every provisioning step needs: the Data API as the provisioner (registry and tenant databases). */
const PROVISIONING_DATA_API: readonly Permission[] = [
  {
    actions: [
      'rds-data:ExecuteStatement',
      'rds-data:BeginTransaction',
      'rds-data:CommitTransaction',
      'rds-data:RollbackTransaction',
    ],
    resource: 'cluster',
  },
  { actions: ['secretsmanager:GetSecretValue'], resource: 'provisionerSecret' },
];
/** Making a role's secret (an existing one is read, not replaced): provisioning, a plan change, issued credentials. */
const ROLE_SECRET_ISSUE: readonly Permission[] = [
  {
    actions: ['secretsmanager:GetSecretValue', 'secretsmanager:CreateSecret', 'secretsmanager:TagResource'],
    resource: 'tenantSecrets',
  },
];
/** The leftover scan of a failed run (functions/provision/outcome.ts) reads every kind of tenant resource. */
const LEFTOVER_SCAN: readonly Permission[] = [
  { actions: ['secretsmanager:ListSecrets'], resource: 'tenantSecrets' },
  { actions: ['s3:ListBucket'], resource: 'storageBucket' },
  { actions: ['cloudwatch:DescribeAlarms'], resource: 'tenantAlarms' },
];
const PROVISIONING_ENV = [
  'STAGE',
  'CLUSTER_ARN',
  'PROVISIONER_SECRET_ARN',
  'CONTROL_PLANE_DATABASE',
] as const;

/** The usage collector's tasks share one module, which reads these at load. */
const USAGE_ENV = [...PROVISIONING_ENV, 'STORAGE_BUCKET', 'EVENT_BUS_NAME'] as const;

/** The lifecycle state machines the API starts (statemachines/<name>.asl.json). */
const LIFECYCLE_STATE_MACHINES = [
  'suspend-tenant',
  'resume-tenant',
  'change-plan',
  'delete-tenant',
  'backup-tenant',
  'restore-tenant',
] as const;
const LIFECYCLE_STATE_MACHINE_ENV = [
  'SUSPEND_STATE_MACHINE_ARN',
  'RESUME_STATE_MACHINE_ARN',
  'CHANGE_PLAN_STATE_MACHINE_ARN',
  'DELETE_STATE_MACHINE_ARN',
  'BACKUP_STATE_MACHINE_ARN',
  'RESTORE_STATE_MACHINE_ARN',
] as const satisfies readonly EnvName[];

/** Every function of the product. */
export const functions: readonly FunctionDefinition[] = [
  // ---- provision-tenant: forward steps (statemachines/provision-tenant.asl.json)
  {
    id: 'CreateDatabase',
    entry: 'functions/provision/database-handlers.ts',
    handler: 'createDatabase',
    description: "Provisioning: creates tenant_<id> with the plan's connection limit, closed to PUBLIC",
    environment: [...PROVISIONING_ENV, 'SCHEMA_DIR'],
    permissions: PROVISIONING_DATA_API,
  },
  {
    id: 'ApplyMigrations',
    entry: 'functions/provision/database-handlers.ts',
    handler: 'applyMigrations',
    description:
      'Provisioning: applies the tenant template (schema/tenant) and validates its tables and indexes',
    timeoutSeconds: 120,
    environment: [...PROVISIONING_ENV, 'SCHEMA_DIR'],
    permissions: PROVISIONING_DATA_API,
  },
  {
    id: 'CreateRoles',
    entry: 'functions/provision/roles-handlers.ts',
    handler: 'createRoles',
    description:
      "Provisioning: the tenant's four database roles; those standing on its plan log in, each password only in its secret",
    environment: PROVISIONING_ENV,
    permissions: [
      ...PROVISIONING_DATA_API,
      {
        actions: [
          'secretsmanager:GetSecretValue',
          'secretsmanager:CreateSecret',
          'secretsmanager:TagResource',
        ],
        resource: 'tenantSecrets',
      },
    ],
  },
  {
    id: 'ConfigureStorage',
    entry: 'functions/provision/storage-handlers.ts',
    handler: 'configureStorage',
    description: "Provisioning: the tenant's S3 prefix, its tagged marker object and retention",
    environment: [...PROVISIONING_ENV, 'STORAGE_BUCKET', 'STORAGE_KEY_ARN'],
    permissions: [
      ...PROVISIONING_DATA_API,
      { actions: ['s3:PutObject', 's3:PutObjectTagging'], resource: 'storageObjects' },
      // encryptionLevel enhanced: SSE-KMS with the stage key.
      { actions: ['kms:GenerateDataKey'], resource: 'storageKey' },
    ],
  },
  {
    id: 'ConfigureAlarms',
    entry: 'functions/provision/alarm-handlers.ts',
    handler: 'configureAlarms',
    description: "Provisioning: the tenant's CloudWatch alarms, thresholds from its plan",
    environment: [...PROVISIONING_ENV, 'ALARM_TOPIC_ARN'],
    permissions: [
      ...PROVISIONING_DATA_API,
      { actions: ['cloudwatch:PutMetricAlarm', 'cloudwatch:TagResource'], resource: 'tenantAlarms' },
    ],
  },
  {
    id: 'SeedDefaults',
    entry: 'functions/provision/seed-handlers.ts',
    handler: 'seedDefaults',
    description:
      "Provisioning: the tenant's default data and the admin's invitation (token in Secrets Manager)",
    environment: PROVISIONING_ENV,
    permissions: [
      ...PROVISIONING_DATA_API,
      {
        actions: [
          'secretsmanager:GetSecretValue',
          'secretsmanager:CreateSecret',
          'secretsmanager:TagResource',
        ],
        resource: 'tenantSecrets',
      },
    ],
  },
  {
    id: 'Activate',
    entry: 'functions/provision/outcome-handlers.ts',
    handler: 'activate',
    description:
      'Provisioning: opens the tenant database to its roles, marks the tenant active, announces it',
    environment: [...PROVISIONING_ENV, 'EVENT_BUS_NAME', 'STORAGE_BUCKET'],
    permissions: [...PROVISIONING_DATA_API, { actions: ['events:PutEvents'], resource: 'eventBus' }],
  },
  // ---- provision-tenant: undo steps and the outcome of a failed run
  {
    id: 'RemoveAlarms',
    entry: 'functions/provision/alarm-handlers.ts',
    handler: 'removeAlarms',
    description: 'Provisioning undo: deletes every alarm named tenant-<id>-*',
    environment: [...PROVISIONING_ENV, 'ALARM_TOPIC_ARN'],
    permissions: [
      ...PROVISIONING_DATA_API,
      // DescribeAlarms has no resource-level permissions: infra maps it to all alarms.
      { actions: ['cloudwatch:DescribeAlarms', 'cloudwatch:DeleteAlarms'], resource: 'tenantAlarms' },
    ],
  },
  {
    id: 'RemoveStorage',
    entry: 'functions/provision/storage-handlers.ts',
    handler: 'removeStorage',
    description: 'Provisioning undo: deletes every object under tenants/<id>/',
    timeoutSeconds: 300,
    // The module it shares with its counterpart reads the key at load: every variable it reads, declared.
    environment: [...PROVISIONING_ENV, 'STORAGE_BUCKET', 'STORAGE_KEY_ARN'],
    permissions: [
      ...PROVISIONING_DATA_API,
      // Every version and delete marker, by version id: the bucket is versioned in staging and prod.
      { actions: ['s3:ListBucketVersions'], resource: 'storageBucket' },
      { actions: ['s3:DeleteObjectVersion'], resource: 'storageObjects' },
    ],
  },
  {
    id: 'RemoveRoles',
    entry: 'functions/provision/roles-handlers.ts',
    handler: 'removeRoles',
    description:
      "Provisioning undo: drops the tenant's roles, deletes every secret under its prefix without recovery",
    environment: PROVISIONING_ENV,
    permissions: [
      ...PROVISIONING_DATA_API,
      // ListSecrets has no resource-level permissions: infra maps it to all secrets.
      { actions: ['secretsmanager:ListSecrets', 'secretsmanager:DeleteSecret'], resource: 'tenantSecrets' },
    ],
  },
  {
    id: 'DropDatabase',
    entry: 'functions/provision/database-handlers.ts',
    handler: 'dropDatabase',
    description: 'Provisioning undo: drops tenant_<id>, ending its sessions',
    environment: [...PROVISIONING_ENV, 'SCHEMA_DIR'],
    permissions: PROVISIONING_DATA_API,
  },
  {
    id: 'MarkFailed',
    entry: 'functions/provision/outcome-handlers.ts',
    handler: 'markFailed',
    description: 'Provisioning: marks the tenant failed with the step and cause, announces it',
    environment: [...PROVISIONING_ENV, 'EVENT_BUS_NAME', 'STORAGE_BUCKET'],
    permissions: [...PROVISIONING_DATA_API, { actions: ['events:PutEvents'], resource: 'eventBus' }],
  },
  {
    id: 'MarkRollbackFailed',
    entry: 'functions/provision/outcome-handlers.ts',
    handler: 'markRollbackFailed',
    description: 'Provisioning: marks the tenant rollback_failed with what is left (scanned), announces it',
    environment: [...PROVISIONING_ENV, 'EVENT_BUS_NAME', 'STORAGE_BUCKET'],
    permissions: [
      ...PROVISIONING_DATA_API,
      { actions: ['events:PutEvents'], resource: 'eventBus' },
      ...LEFTOVER_SCAN,
    ],
  },
  // ---- the drift reconciler (functions/reconcile), on a schedule
  {
    id: 'Reconcile',
    entry: 'functions/reconcile/handler.ts',
    description:
      'Drift reconciler: settles provisionings, lifecycle operations and bulk batches whose run died; reports resources without a tenant and what active tenants lack; repairs alarms, storage markers and role passwords',
    timeoutSeconds: 300,
    schedule: {
      expression: 'rate(15 minutes)',
      description:
        'Finds tenants stuck in provisioning, operations and batches whose run died, and drift between the registry and AWS',
    },
    environment: [
      ...PROVISIONING_ENV,
      'STORAGE_BUCKET',
      'STORAGE_KEY_ARN',
      'ALARM_TOPIC_ARN',
      'EVENT_BUS_NAME',
      'PROVISION_STATE_MACHINE_ARN',
      ...LIFECYCLE_STATE_MACHINE_ENV,
    ],
    permissions: [
      ...PROVISIONING_DATA_API,
      {
        actions: ['states:StartExecution', 'states:ListExecutions'],
        resource: 'stateMachine:provision-tenant',
      },
      {
        actions: ['states:StartExecution', 'states:ListExecutions'],
        resource: 'stateMachine:rollback-tenant',
      },
      {
        actions: ['states:DescribeExecution', 'states:GetExecutionHistory'],
        resource: 'executions:provision-tenant',
      },
      {
        actions: ['states:DescribeExecution', 'states:GetExecutionHistory'],
        resource: 'executions:rollback-tenant',
      },
      // The inventory reads every kind of tenant resource; the repair puts alarms and the storage marker again.
      { actions: ['secretsmanager:ListSecrets'], resource: 'tenantSecrets' },
      { actions: ['s3:ListBucket'], resource: 'storageBucket' },
      { actions: ['s3:PutObject', 's3:PutObjectTagging'], resource: 'storageObjects' },
      { actions: ['kms:GenerateDataKey'], resource: 'storageKey' },
      {
        actions: ['cloudwatch:DescribeAlarms', 'cloudwatch:PutMetricAlarm', 'cloudwatch:TagResource'],
        resource: 'tenantAlarms',
      },
      { actions: ['events:PutEvents'], resource: 'eventBus' },
      // A lifecycle operation whose run died is claimed again and its state machine started again.
      ...LIFECYCLE_STATE_MACHINES.flatMap((name): Permission[] => [
        { actions: ['states:StartExecution'], resource: `stateMachine:${name}` },
        {
          actions: ['states:DescribeExecution', 'states:GetExecutionHistory'],
          resource: `executions:${name}`,
        },
      ]),
      // A batch whose run died is settled from its rows' tenants.
      { actions: ['states:DescribeExecution'], resource: 'executions:bulk-onboard' },
      // The credential check logs in with each active tenant's role secrets (the Data API reads them as the caller)
      // and reads a secret's password to put its SCRAM verifier back on the role.
      { actions: ['secretsmanager:GetSecretValue'], resource: 'tenantSecrets' },
      // Expired issued credentials and invitations no longer needed: their secrets deleted without recovery.
      { actions: ['secretsmanager:DeleteSecret'], resource: 'tenantSecrets' },
    ],
  },
  // ---- lifecycle after creation (statemachines/{suspend,resume,delete,restore}-tenant, change-plan, backup-tenant)
  {
    id: 'DisableTenantAccess',
    entry: 'functions/lifecycle/access-handlers.ts',
    handler: 'disableTenantAccess',
    description: "Lifecycle: the tenant's roles lose LOGIN and CONNECT, their sessions end (suspend, delete)",
    environment: PROVISIONING_ENV,
    permissions: PROVISIONING_DATA_API,
  },
  {
    id: 'EnableTenantAccess',
    entry: 'functions/lifecycle/access-handlers.ts',
    handler: 'enableTenantAccess',
    description: "Lifecycle: LOGIN and CONNECT back for the tenant's roles (resume)",
    environment: PROVISIONING_ENV,
    permissions: PROVISIONING_DATA_API,
  },
  {
    id: 'DisableAlarmActions',
    entry: 'functions/lifecycle/access-handlers.ts',
    handler: 'disableAlarmActions',
    description: "Lifecycle: actions of the tenant's alarms off (suspend, delete)",
    environment: PROVISIONING_ENV,
    permissions: [
      ...PROVISIONING_DATA_API,
      { actions: ['cloudwatch:DescribeAlarms', 'cloudwatch:DisableAlarmActions'], resource: 'tenantAlarms' },
    ],
  },
  {
    id: 'EnableAlarmActions',
    entry: 'functions/lifecycle/access-handlers.ts',
    handler: 'enableAlarmActions',
    description: "Lifecycle: actions of the tenant's alarms on again (resume)",
    environment: PROVISIONING_ENV,
    permissions: [
      ...PROVISIONING_DATA_API,
      { actions: ['cloudwatch:DescribeAlarms', 'cloudwatch:EnableAlarmActions'], resource: 'tenantAlarms' },
    ],
  },
  {
    id: 'CheckPlanUsage',
    entry: 'functions/lifecycle/plan-handlers.ts',
    handler: 'checkPlanUsage',
    description:
      "Plan change: refuses a plan the tenant's usage (users, API keys, storage, connections) exceeds",
    environment: [...PROVISIONING_ENV, 'STORAGE_BUCKET', 'ALARM_TOPIC_ARN'],
    permissions: [...PROVISIONING_DATA_API, { actions: ['s3:ListBucket'], resource: 'storageBucket' }],
  },
  {
    id: 'ApplyTenantLimits',
    entry: 'functions/lifecycle/plan-handlers.ts',
    handler: 'applyTenantLimits',
    description:
      "Plan change: the database's connection limit, the roles' shares, the apiAccess quotas, the plan's standing roles' secrets",
    environment: [...PROVISIONING_ENV, 'STORAGE_BUCKET', 'ALARM_TOPIC_ARN'],
    permissions: [...PROVISIONING_DATA_API, ...ROLE_SECRET_ISSUE],
  },
  {
    id: 'ApplyPlanAlarms',
    entry: 'functions/lifecycle/plan-handlers.ts',
    handler: 'applyPlanAlarms',
    description: "Plan change: the plan's alarms and thresholds put again, alarms the plan lacks deleted",
    environment: [...PROVISIONING_ENV, 'STORAGE_BUCKET', 'ALARM_TOPIC_ARN'],
    permissions: [
      ...PROVISIONING_DATA_API,
      {
        actions: [
          'cloudwatch:PutMetricAlarm',
          'cloudwatch:TagResource',
          'cloudwatch:DescribeAlarms',
          'cloudwatch:DeleteAlarms',
        ],
        resource: 'tenantAlarms',
      },
    ],
  },
  {
    id: 'RecordPlan',
    entry: 'functions/lifecycle/plan-handlers.ts',
    handler: 'recordPlan',
    description: "Plan change: the registry's plan and limits",
    environment: [...PROVISIONING_ENV, 'STORAGE_BUCKET', 'ALARM_TOPIC_ARN'],
    permissions: PROVISIONING_DATA_API,
  },
  {
    id: 'BackupDatabase',
    entry: 'functions/lifecycle/backup-handlers.ts',
    handler: 'backupDatabase',
    description:
      'Backup: every table as JSON lines from one snapshot, a manifest with counts and sha256, to S3',
    timeoutSeconds: 900,
    environment: [...PROVISIONING_ENV, 'STORAGE_BUCKET', 'STORAGE_KEY_ARN'],
    permissions: [
      ...PROVISIONING_DATA_API,
      { actions: ['s3:PutObject', 's3:PutObjectTagging'], resource: 'storageObjects' },
      { actions: ['kms:GenerateDataKey'], resource: 'storageKey' },
    ],
  },
  {
    id: 'DiscardBackup',
    entry: 'functions/lifecycle/backup-handlers.ts',
    handler: 'discardBackup',
    description: 'Backup undo: deletes the objects of an incomplete backup',
    timeoutSeconds: 300,
    // The module it shares with its counterpart reads the key at load: every variable it reads, declared.
    environment: [...PROVISIONING_ENV, 'STORAGE_BUCKET', 'STORAGE_KEY_ARN'],
    permissions: [
      ...PROVISIONING_DATA_API,
      // Every version and delete marker, by version id: the bucket is versioned in staging and prod.
      { actions: ['s3:ListBucketVersions'], resource: 'storageBucket' },
      { actions: ['s3:DeleteObjectVersion'], resource: 'storageObjects' },
    ],
  },
  {
    id: 'RestoreSchema',
    entry: 'functions/lifecycle/restore-handlers.ts',
    handler: 'restoreSchema',
    description: "Restore: the new tenant's database at the backup's template version",
    timeoutSeconds: 120,
    environment: [...PROVISIONING_ENV, 'STORAGE_BUCKET', 'SCHEMA_DIR'],
    permissions: [
      ...PROVISIONING_DATA_API,
      { actions: ['s3:GetObject'], resource: 'storageObjects' },
      // A backup of an enhanced tenant is SSE-KMS: S3 decrypts it with the stage key, as the caller.
      { actions: ['kms:Decrypt'], resource: 'storageKey' },
    ],
  },
  {
    id: 'LoadBackup',
    entry: 'functions/lifecycle/restore-handlers.ts',
    handler: 'loadBackup',
    description: "Restore: loads the backup's tables and checks counts and checksums against its manifest",
    timeoutSeconds: 900,
    environment: [...PROVISIONING_ENV, 'STORAGE_BUCKET', 'SCHEMA_DIR'],
    permissions: [
      ...PROVISIONING_DATA_API,
      { actions: ['s3:GetObject'], resource: 'storageObjects' },
      // A backup of an enhanced tenant is SSE-KMS: S3 decrypts it with the stage key, as the caller.
      { actions: ['kms:Decrypt'], resource: 'storageKey' },
    ],
  },
  {
    id: 'RetainStorage',
    entry: 'functions/lifecycle/retire-handlers.ts',
    handler: 'retainStorage',
    description:
      "Delete: rewrites the tenant's objects with its retention tag, so the lifecycle rules count from the deletion",
    timeoutSeconds: 300,
    environment: [...PROVISIONING_ENV, 'STORAGE_BUCKET', 'STORAGE_KEY_ARN', 'SECRET_RECOVERY_DAYS'],
    permissions: [
      ...PROVISIONING_DATA_API,
      { actions: ['s3:ListBucket'], resource: 'storageBucket' },
      // CopyObject onto itself reads the object (GetObject) and writes it with new tags (PutObject,
      // PutObjectTagging); GetObjectTagging tells a copy an earlier attempt made.
      {
        actions: ['s3:GetObject', 's3:GetObjectTagging', 's3:PutObject', 's3:PutObjectTagging'],
        resource: 'storageObjects',
      },
      // An enhanced tenant's objects are SSE-KMS: S3 decrypts the source and encrypts the copy with the stage key.
      { actions: ['kms:Decrypt', 'kms:GenerateDataKey'], resource: 'storageKey' },
      // The noncurrent versions and delete markers, deleted by version id (not kept for the retention).
      { actions: ['s3:ListBucketVersions'], resource: 'storageBucket' },
      { actions: ['s3:DeleteObjectVersion'], resource: 'storageObjects' },
    ],
  },
  {
    id: 'RetireRolesAndSecrets',
    entry: 'functions/lifecycle/retire-handlers.ts',
    handler: 'retireRolesAndSecrets',
    description: "Delete: drops the tenant's roles, schedules its secrets' deletion with the recovery window",
    // The module it shares with RetainStorage reads the key at load: every variable it reads, declared.
    environment: [...PROVISIONING_ENV, 'STORAGE_BUCKET', 'STORAGE_KEY_ARN', 'SECRET_RECOVERY_DAYS'],
    permissions: [
      ...PROVISIONING_DATA_API,
      // ListSecrets has no resource-level permissions: infra maps it to all secrets.
      { actions: ['secretsmanager:ListSecrets', 'secretsmanager:DeleteSecret'], resource: 'tenantSecrets' },
    ],
  },
  {
    id: 'CompleteOperation',
    entry: 'functions/lifecycle/outcome-handlers.ts',
    handler: 'completeOperation',
    description: "Lifecycle: a run's success in the registry (status, operation, audit) and on the event bus",
    // STORAGE_BUCKET: the module it shares with FailOperation names the bucket at load; this one never reads it.
    environment: [...PROVISIONING_ENV, 'EVENT_BUS_NAME', 'STORAGE_BUCKET'],
    permissions: [...PROVISIONING_DATA_API, { actions: ['events:PutEvents'], resource: 'eventBus' }],
  },
  {
    id: 'FailOperation',
    entry: 'functions/lifecycle/outcome-handlers.ts',
    handler: 'failOperation',
    description: "Lifecycle: a run's failure, the status it leaves and what is left (scanned), announced",
    environment: [...PROVISIONING_ENV, 'EVENT_BUS_NAME', 'STORAGE_BUCKET'],
    permissions: [
      ...PROVISIONING_DATA_API,
      { actions: ['events:PutEvents'], resource: 'eventBus' },
      ...LEFTOVER_SCAN,
    ],
  },
  // ---- bulk-onboard (statemachines/bulk-onboard.asl.json): one Map iteration per row of a batch
  {
    id: 'StartBatchRow',
    entry: 'functions/bulk/handlers.ts',
    handler: 'startBatchRow',
    description:
      "Bulk onboarding: reserves a row's tenant (its id chosen with the batch) and starts its provisioning",
    environment: [...PROVISIONING_ENV, 'PROVISION_STATE_MACHINE_ARN'],
    permissions: [
      ...PROVISIONING_DATA_API,
      { actions: ['states:StartExecution'], resource: 'stateMachine:provision-tenant' },
    ],
  },
  {
    id: 'AwaitBatchRow',
    entry: 'functions/bulk/handlers.ts',
    handler: 'awaitBatchRow',
    description:
      "Bulk onboarding: watches a row's tenant for up to 45 s, records the row's outcome when it ends",
    timeoutSeconds: 60,
    environment: [...PROVISIONING_ENV, 'PROVISION_STATE_MACHINE_ARN'],
    permissions: [
      ...PROVISIONING_DATA_API,
      { actions: ['states:DescribeExecution'], resource: 'executions:provision-tenant' },
    ],
  },
  {
    id: 'RecordBatchRowFailure',
    entry: 'functions/bulk/handlers.ts',
    handler: 'recordBatchRowFailure',
    description:
      'Bulk onboarding: a row whose task failed beyond its retries, recorded; an unstarted reservation undone',
    environment: [...PROVISIONING_ENV, 'PROVISION_STATE_MACHINE_ARN'],
    permissions: PROVISIONING_DATA_API,
  },
  {
    id: 'FinishTenantBatch',
    entry: 'functions/bulk/handlers.ts',
    handler: 'finishTenantBatch',
    description: "Bulk onboarding: the batch's status from its rows' outcomes",
    environment: [...PROVISIONING_ENV, 'PROVISION_STATE_MACHINE_ARN'],
    permissions: PROVISIONING_DATA_API,
  },
  {
    id: 'FailTenantBatch',
    entry: 'functions/bulk/handlers.ts',
    handler: 'failTenantBatch',
    description: 'Bulk onboarding: a batch whose run failed (not one row), recorded with the error',
    environment: [...PROVISIONING_ENV, 'PROVISION_STATE_MACHINE_ARN'],
    permissions: PROVISIONING_DATA_API,
  },
  // ---- migrate-fleet (statemachines/migrate-fleet.asl.json): the tenant template's new migrations, fleet-wide
  {
    id: 'PlanFleetMigration',
    entry: 'functions/fleet/handlers.ts',
    handler: 'planFleetMigration',
    description: "Fleet migration: the run's pending tenants, cut into chunks",
    environment: [...PROVISIONING_ENV, 'SCHEMA_DIR'],
    permissions: PROVISIONING_DATA_API,
  },
  {
    id: 'MigrateTenants',
    entry: 'functions/fleet/handlers.ts',
    handler: 'migrateTenants',
    description:
      "Fleet migration: a chunk of tenants, 5 at a time: each database's missing migrations, validated; outcome and schema version recorded",
    timeoutSeconds: 900,
    environment: [...PROVISIONING_ENV, 'SCHEMA_DIR'],
    permissions: PROVISIONING_DATA_API,
  },
  {
    id: 'RecordFleetChunkFailure',
    entry: 'functions/fleet/handlers.ts',
    handler: 'recordFleetChunkFailure',
    description:
      'Fleet migration: a chunk whose invocation failed beyond its retries; its pending tenants failed',
    environment: [...PROVISIONING_ENV, 'SCHEMA_DIR'],
    permissions: PROVISIONING_DATA_API,
  },
  {
    id: 'FinishFleetMigration',
    entry: 'functions/fleet/handlers.ts',
    handler: 'finishFleetMigration',
    description: "Fleet migration: the run's status against its tolerated failures",
    environment: [...PROVISIONING_ENV, 'SCHEMA_DIR'],
    permissions: PROVISIONING_DATA_API,
  },
  {
    id: 'FailFleetMigration',
    entry: 'functions/fleet/handlers.ts',
    handler: 'failFleetMigration',
    description: 'Fleet migration: a run that failed as a whole, recorded with the error',
    environment: [...PROVISIONING_ENV, 'SCHEMA_DIR'],
    permissions: PROVISIONING_DATA_API,
  },
  // ---- scheduled backups (functions/lifecycle/scheduled-backups.ts), on a schedule
  {
    id: 'ScheduleBackups',
    entry: 'functions/lifecycle/scheduled-backups-handler.ts',
    description:
      "Backup scheduler: starts a backup-tenant run for every active tenant whose policy's slot has passed without a scheduled backup",
    timeoutSeconds: 300,
    schedule: {
      expression: 'rate(1 hour)',
      description: "Starts the tenants' scheduled backups, each at its slot of its policy's day or week",
    },
    environment: [...PROVISIONING_ENV, 'BACKUP_STATE_MACHINE_ARN'],
    permissions: [
      ...PROVISIONING_DATA_API,
      { actions: ['states:StartExecution'], resource: 'stateMachine:backup-tenant' },
      // An operation whose run ended without closing it is settled before another is claimed.
      { actions: ['states:DescribeExecution'], resource: 'executions:backup-tenant' },
    ],
  },
  // ---- collect-usage (statemachines/collect-usage.asl.json), on a schedule (STATE_MACHINE_SCHEDULES)
  {
    id: 'PlanUsageCollection',
    entry: 'functions/usage/handlers.ts',
    handler: 'planUsageCollection',
    description: "Usage collection: the run's time and the active tenants, cut into chunks",
    environment: USAGE_ENV,
    permissions: PROVISIONING_DATA_API,
  },
  {
    id: 'CollectUsage',
    entry: 'functions/usage/handlers.ts',
    handler: 'collectUsage',
    description:
      'Usage collection: a chunk of tenants measured (database, sessions, storage, users, API keys), published to CloudWatch, crossings announced, readings recorded',
    timeoutSeconds: 120,
    environment: USAGE_ENV,
    permissions: [
      ...PROVISIONING_DATA_API,
      { actions: ['s3:ListBucket'], resource: 'storageBucket' },
      { actions: ['cloudwatch:PutMetricData'], resource: 'metrics' },
      { actions: ['events:PutEvents'], resource: 'eventBus' },
    ],
  },
  {
    id: 'FinishUsageCollection',
    entry: 'functions/usage/handlers.ts',
    handler: 'finishUsageCollection',
    description: 'Usage collection: what was measured; a chunk that failed fails the run',
    environment: USAGE_ENV,
    permissions: PROVISIONING_DATA_API,
  },
  {
    id: 'Api',
    entry: 'functions/api/handler.ts',
    description:
      'The HTTPS API behind API Gateway: create, get and list tenants, their lifecycle operations, backups and role credentials, bulk onboarding, fleet migrations, the OpenAPI document',
    environment: [
      'STAGE',
      'CLUSTER_ARN',
      'PROVISIONER_SECRET_ARN',
      'CONTROL_PLANE_DATABASE',
      'PROVISION_STATE_MACHINE_ARN',
      ...LIFECYCLE_STATE_MACHINE_ENV,
      // The plan change's usage check reads the tenant's storage.
      'STORAGE_BUCKET',
      'BULK_ONBOARD_STATE_MACHINE_ARN',
      'MIGRATE_FLEET_STATE_MACHINE_ARN',
      // The fleet migration's target: the tenant template's latest version.
      'SCHEMA_DIR',
    ],
    permissions: [
      {
        actions: [
          'rds-data:ExecuteStatement',
          'rds-data:BeginTransaction',
          'rds-data:CommitTransaction',
          'rds-data:RollbackTransaction',
        ],
        resource: 'cluster',
      },
      { actions: ['secretsmanager:GetSecretValue'], resource: 'provisionerSecret' },
      { actions: ['states:StartExecution'], resource: 'stateMachine:provision-tenant' },
      // Lifecycle operations: each starts its machine, and looks at a run that ended without closing its operation.
      ...LIFECYCLE_STATE_MACHINES.flatMap((name): Permission[] => [
        { actions: ['states:StartExecution'], resource: `stateMachine:${name}` },
        { actions: ['states:DescribeExecution'], resource: `executions:${name}` },
      ]),
      { actions: ['s3:ListBucket'], resource: 'storageBucket' },
      // Bulk onboarding and fleet migrations: each starts its machine, and looks at a run that ended unclosed.
      { actions: ['states:StartExecution'], resource: 'stateMachine:bulk-onboard' },
      { actions: ['states:DescribeExecution'], resource: 'executions:bulk-onboard' },
      { actions: ['states:StartExecution'], resource: 'stateMachine:migrate-fleet' },
      { actions: ['states:DescribeExecution'], resource: 'executions:migrate-fleet' },
      // POST /tenants/{id}/credentials: the role's secret, made or read (the password is set from it, never shown);
      // expired credentials the reconciler has not taken back yet are deleted first, so new ones get a new password.
      ...ROLE_SECRET_ISSUE,
      { actions: ['secretsmanager:DeleteSecret'], resource: 'tenantSecrets' },
    ],
  },
  {
    id: 'SetupControlPlane',
    entry: 'functions/setup/handler.ts',
    description:
      'Deploy-time custom resource: creates the provisioner role and applies the control-plane migrations',
    timeoutSeconds: 300,
    environment: ['CLUSTER_ARN', 'PROVISIONER_SECRET_ARN', 'CONTROL_PLANE_DATABASE', 'SCHEMA_DIR'],
    permissions: [
      {
        actions: [
          'rds-data:ExecuteStatement',
          'rds-data:BeginTransaction',
          'rds-data:CommitTransaction',
          'rds-data:RollbackTransaction',
        ],
        resource: 'cluster',
      },
      { actions: ['secretsmanager:GetSecretValue'], resource: 'masterSecret' },
      { actions: ['secretsmanager:GetSecretValue'], resource: 'provisionerSecret' },
    ],
  },
];

/** A state machine run on a schedule: on AWS an EventBridge Scheduler schedule; in the sandbox, local/schedule.ts. */
export interface StateMachineSchedule {
  /** `statemachines/<name>.asl.json`. */
  readonly stateMachine: string;
  readonly description: string;
  /**
   * The run's input; EventBridge Scheduler replaces `<aws.scheduler.scheduled-time>` with the time the run is
   * for (and the sandbox with its own clock's).
   */
  readonly input: Readonly<Record<string, string>>;
}

/** The state machines that run on a schedule; the period of each is the stage's (infra/config.ts). */
export const STATE_MACHINE_SCHEDULES = {
  usageCollection: {
    stateMachine: 'collect-usage',
    description: "Measures every active tenant's usage, publishes it and announces quotas crossed",
    input: { scheduledTime: '<aws.scheduler.scheduled-time>' },
  },
} as const satisfies Record<string, StateMachineSchedule>;

/** The ASL substitution key of a function's ARN. */
export const arnSubstitutionKey = (fn: Pick<FunctionDefinition, 'id'>): string => `${fn.id}FunctionArn`;

/** The deployed name of a function, from the stack's prefix, e.g. `tenant-provisioner-dev-CreateDatabase`. */
export const functionName = (prefix: string, fn: Pick<FunctionDefinition, 'id'>): string =>
  `${prefix}-${fn.id}`;
