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
}

export const DEFAULT_TIMEOUT_SECONDS = 30;

/** Every function of the product. */
export const functions: readonly FunctionDefinition[] = [];

/** The ASL substitution key of a function's ARN. */
export const arnSubstitutionKey = (fn: Pick<FunctionDefinition, 'id'>): string => `${fn.id}FunctionArn`;

/** The deployed name of a function, from the stack's prefix, e.g. `tenant-provisioner-dev-CreateDatabase`. */
export const functionName = (prefix: string, fn: Pick<FunctionDefinition, 'id'>): string => `${prefix}-${fn.id}`;
