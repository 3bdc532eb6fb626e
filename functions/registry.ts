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
}

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

/** Every function of the product. */
export const functions: readonly FunctionDefinition[] = [];

/** The ASL substitution key of a function's ARN. */
export const arnSubstitutionKey = (fn: Pick<FunctionDefinition, 'id'>): string => `${fn.id}FunctionArn`;

/** The deployed name of a function, from the stack's prefix, e.g. `tenant-provisioner-dev-CreateDatabase`. */
export const functionName = (prefix: string, fn: Pick<FunctionDefinition, 'id'>): string =>
  `${prefix}-${fn.id}`;
