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
  | 'alarmTopic'
  | 'eventBus'
  | 'metrics'
  | `stateMachine:${string}`
  | `executions:${string}`;

/**
 * Every environment variable a function may read, with what it holds. CDK sets each from the stack's
 * resources; the sandbox from its own.
 */
export const ENVIRONMENT = {
  STAGE: 'The stage name (dev, staging, prod; local in the sandbox).',
  CLUSTER_ARN: 'ARN of the Aurora cluster, for the Data API.',
  PROVISIONER_SECRET_ARN: 'ARN of the secret of the provisioner database role.',
  CONTROL_PLANE_DATABASE: 'Name of the registry database (control_plane).',
  STORAGE_BUCKET: "Name of the stage's tenant storage bucket.",
  ALARM_TOPIC_ARN: "ARN of the SNS topic the tenants' alarms notify.",
  EVENT_BUS_NAME: 'Name of the EventBridge bus the product announces on.',
  PROVISION_STATE_MACHINE_ARN: 'ARN of the provision-tenant state machine.',
  SCHEMA_DIR: 'Folder holding the SQL migrations (schema/).',
} as const;
export type EnvName = keyof typeof ENVIRONMENT;

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
const PROVISIONING_ENV = [
  'STAGE',
  'CLUSTER_ARN',
  'PROVISIONER_SECRET_ARN',
  'CONTROL_PLANE_DATABASE',
] as const;

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
    description: "Provisioning: the tenant's four database roles, each password only in its secret",
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
    environment: [...PROVISIONING_ENV, 'STORAGE_BUCKET'],
    permissions: [
      ...PROVISIONING_DATA_API,
      { actions: ['s3:PutObject', 's3:PutObjectTagging'], resource: 'storageObjects' },
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
    environment: [...PROVISIONING_ENV, 'STORAGE_BUCKET'],
    permissions: [
      ...PROVISIONING_DATA_API,
      { actions: ['s3:ListBucket'], resource: 'storageBucket' },
      { actions: ['s3:DeleteObject'], resource: 'storageObjects' },
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
      // The leftover scan reads every kind of tenant resource.
      { actions: ['secretsmanager:ListSecrets'], resource: 'tenantSecrets' },
      { actions: ['s3:ListBucket'], resource: 'storageBucket' },
      { actions: ['cloudwatch:DescribeAlarms'], resource: 'tenantAlarms' },
    ],
  },
  {
    id: 'Api',
    entry: 'functions/api/handler.ts',
    description: 'The HTTPS API behind API Gateway: create, get and list tenants, the OpenAPI document',
    environment: [
      'STAGE',
      'CLUSTER_ARN',
      'PROVISIONER_SECRET_ARN',
      'CONTROL_PLANE_DATABASE',
      'PROVISION_STATE_MACHINE_ARN',
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

/** The ASL substitution key of a function's ARN. */
export const arnSubstitutionKey = (fn: Pick<FunctionDefinition, 'id'>): string => `${fn.id}FunctionArn`;

/** The deployed name of a function, from the stack's prefix, e.g. `tenant-provisioner-dev-CreateDatabase`. */
export const functionName = (prefix: string, fn: Pick<FunctionDefinition, 'id'>): string =>
  `${prefix}-${fn.id}`;
