import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { Duration, type RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import { Effect, PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Architecture, type IFunction, LoggingFormat, Runtime, Tracing } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat, SourceMapMode } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import {
  arnSubstitutionKey,
  DEFAULT_TIMEOUT_SECONDS,
  type EnvName,
  type FunctionDefinition,
  functionName,
} from '../../functions/registry.ts';
import { grantsOf, type PermissionTargets, statementOf } from '../permissions.ts';

/** The project root: entries, the lock file and `schema/` are found from here, whatever the cwd. */
export const PROJECT_ROOT = join(import.meta.dirname, '..', '..');

/** What the bundles carry instead of the SDK's default credential chain (see the file). */
export const LAMBDA_CREDENTIALS = join(PROJECT_ROOT, 'infra', 'bundling', 'lambda-credentials.ts');

/** Where the SQL migrations sit inside a function's bundle (`SCHEMA_DIR`). */
export const BUNDLED_SCHEMA_DIR = '/var/task/schema';

/**
 * What every function's role is granted whatever its code does: writing its own log group, and X-Ray
 * segments (active tracing). The least-privilege test allows these beside the registry's declarations.
 */
export const BASELINE_ACTIONS = [
  'logs:CreateLogStream',
  'logs:PutLogEvents',
  'xray:PutTraceSegments',
  'xray:PutTelemetryRecords',
] as const;

/** X-Ray's segment APIs name no resource; this is why their `*` is acknowledged. */
export const XRAY_WILDCARD_REASON =
  'xray:PutTraceSegments and xray:PutTelemetryRecords support no resource-level permissions; active tracing needs them on *.';

export interface ControlPlaneFunctionProps {
  /** The registry entry: entry file, handler, timeout, environment names, permissions. */
  readonly definition: FunctionDefinition;
  /** Prefix of the function's name: `<prefix>-<id>`. */
  readonly prefix: string;
  /** A value for every environment variable a definition may declare; only the declared ones are set. */
  readonly environment: Readonly<Partial<Record<EnvName, string>>>;
  /** The stack resources the definition's permissions name. */
  readonly targets: PermissionTargets;
  readonly logRetention: RetentionDays;
  /** Removal policy of the function's log group. */
  readonly logRemovalPolicy: RemovalPolicy;
  /**
   * Memory in MB; Lambda's CPU share grows with it.
   * @default 512
   */
  readonly memorySize?: number;
}

/**
 * A function of the product, pinned once: Node.js 24 on arm64, bundled and minified ESM from the local esbuild
 * (no Docker), active X-Ray tracing, JSON logs into its own log group with the stage's retention, and a role
 * that holds exactly the registry's declared permissions plus `BASELINE_ACTIONS`. Functions that read
 * `SCHEMA_DIR` get `schema/` copied into their bundle.
 */
export class ControlPlaneFunction extends Construct {
  readonly definition: FunctionDefinition;
  readonly function: NodejsFunction;
  readonly role: Role;
  readonly logGroup: LogGroup;

  constructor(scope: Construct, id: string, props: ControlPlaneFunctionProps) {
    super(scope, id);
    const { definition } = props;
    this.definition = definition;
    const name = functionName(props.prefix, definition);
    this.logGroup = new LogGroup(this, 'Logs', {
      logGroupName: `/aws/lambda/${name}`,
      retention: props.logRetention,
      removalPolicy: props.logRemovalPolicy,
    });
    this.role = new Role(this, 'Role', {
      assumedBy: new ServicePrincipal('lambda.amazonaws.com'),
      description: `${name}: the permissions declared in functions/registry.ts`,
    });
    // Not AWSLambdaBasicExecutionRole: that one may create any log group and write to all of them.
    this.role.addToPrincipalPolicy(
      new PolicyStatement({
        effect: Effect.ALLOW,
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [this.logGroup.logGroupArn],
      }),
    );
    const needsSchema = definition.environment?.includes('SCHEMA_DIR') ?? false;
    this.function = new NodejsFunction(this, 'Function', {
      functionName: name,
      ...(definition.description ? { description: definition.description } : {}),
      entry: functionEntry(definition),
      handler: 'handler',
      projectRoot: PROJECT_ROOT,
      depsLockFilePath: join(PROJECT_ROOT, 'package-lock.json'),
      runtime: Runtime.NODEJS_24_X,
      architecture: Architecture.ARM_64,
      memorySize: props.memorySize ?? 512,
      timeout: Duration.seconds(definition.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS),
      tracing: Tracing.ACTIVE,
      loggingFormat: LoggingFormat.JSON,
      logGroup: this.logGroup,
      role: this.role,
      // No NODE_OPTIONS=--enable-source-maps: Node then reads and indexes the bundle's source map (about 900 KB)
      // at every cold start, which measured 70 to 120 ms of each import (`npm run bench`, cold start). The map still
      // ships beside index.mjs, to decode a stack trace from the logs.
      environment: environmentOf(definition, props.environment),
      bundling: {
        forceDockerBundling: false,
        format: OutputFormat.ESM,
        target: 'node24',
        minify: true,
        sourceMap: true,
        sourceMapMode: SourceMapMode.DEFAULT,
        sourcesContent: false,
        // The code is tested against the SDK versions in the lock file, not the ones the runtime happens to carry.
        bundleAwsSDK: true,
        // In Lambda the credentials are always in the environment: the rest of the SDK's chain is dead weight.
        esbuildArgs: { '--alias:@aws-sdk/credential-provider-node': LAMBDA_CREDENTIALS },
        mainFields: ['module', 'main'],
        // Some dependencies are CommonJS and call require(); ESM bundles have none unless given one.
        banner:
          "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
        ...(needsSchema ? { commandHooks: copySchema } : {}),
      },
    });

    const reasons = new Map<string, Set<string>>([['Resource::*', new Set([XRAY_WILDCARD_REASON])]]);
    for (const grant of grantsOf(Stack.of(this), definition.permissions ?? [], props.targets)) {
      this.role.addToPrincipalPolicy(statementOf(grant));
      for (const { finding, reason } of grant.wildcards)
        reasons.set(finding, (reasons.get(finding) ?? new Set()).add(reason));
    }
    // Each wildcard resource is acknowledged on its own, with the reason written beside its binding.
    for (const [finding, why] of reasons) {
      Validations.of(this.role).acknowledge({
        id: `AwsSolutions-IAM5[${finding}]`,
        reason: [...why].join(' '),
      });
    }
  }
}

/** Where the functions' own entry files are written at synth (under the project root, as CDK requires). */
const FUNCTION_ENTRIES_DIR = join(PROJECT_ROOT, 'node_modules', '.cache', 'tenant-provisioner', 'entries');

/**
 * An entry file of the function's own, exporting its handler alone as `handler`. A handler module groups related
 * steps (`functions/provision/outcome-handlers.ts`: Activate, MarkFailed, MarkRollbackFailed); bundled from such a
 * file, each function carries only the code and SDK clients its handler reaches, not its neighbours'. For that the
 * modules annotate each handler's making as pure (`@__PURE__`: making one has no effect, so esbuild drops those the
 * entry does not export) and make a client only where a handler reaches it. The file is replaced atomically and
 * only when its text changes: test files synthesize in parallel.
 */
function functionEntry(definition: FunctionDefinition): string {
  const file = join(FUNCTION_ENTRIES_DIR, `${definition.id}.ts`);
  const module = relative(FUNCTION_ENTRIES_DIR, join(PROJECT_ROOT, definition.entry)).split(sep).join('/');
  const text = `export { ${definition.handler ?? 'handler'} as handler } from '${module}';\n`;
  if (!existsSync(file) || readFileSync(file, 'utf8') !== text) {
    mkdirSync(FUNCTION_ENTRIES_DIR, { recursive: true });
    const temporary = `${file}.${randomUUID()}.tmp`;
    writeFileSync(temporary, text);
    renameSync(temporary, file);
  }
  return file;
}

/** The declared variables, each from the stack's values; a declared variable without a value fails synth. */
function environmentOf(
  definition: FunctionDefinition,
  values: Readonly<Partial<Record<EnvName, string>>>,
): Record<string, string> {
  const environment: Record<string, string> = {};
  for (const name of definition.environment ?? []) {
    const value = name === 'SCHEMA_DIR' ? BUNDLED_SCHEMA_DIR : values[name];
    if (value === undefined)
      throw new Error(`${definition.id} reads ${name}, which the stack does not provide`);
    environment[name] = value;
  }
  return environment;
}

/** Ships `schema/` (the SQL migrations) inside the bundle, where `SCHEMA_DIR` points. */
const copySchema = {
  beforeBundling: (): string[] => [],
  beforeInstall: (): string[] => [],
  afterBundling: (inputDir: string, outputDir: string): string[] => [
    `cp -R "${join(inputDir, 'schema')}" "${join(outputDir, 'schema')}"`,
  ],
};

export interface RegistryFunctionsProps extends Omit<ControlPlaneFunctionProps, 'definition'> {
  /** The functions to create; `functions/registry.ts` in the stack. */
  readonly definitions: readonly FunctionDefinition[];
}

/** One `ControlPlaneFunction` per registry entry, with ids, names and substitution keys from the entry. */
export class RegistryFunctions extends Construct {
  readonly byId: ReadonlyMap<string, ControlPlaneFunction>;

  constructor(scope: Construct, id: string, props: RegistryFunctionsProps) {
    super(scope, id);
    const { definitions, ...common } = props;
    const byId = new Map<string, ControlPlaneFunction>();
    for (const definition of definitions) {
      if (byId.has(definition.id)) throw new Error(`functions/registry.ts lists ${definition.id} twice`);
      byId.set(definition.id, new ControlPlaneFunction(this, definition.id, { ...common, definition }));
    }
    this.byId = byId;
  }

  /** The function of a registry id; a missing one fails synth. */
  get(id: string): ControlPlaneFunction {
    const fn = this.byId.get(id);
    if (!fn) throw new Error(`functions/registry.ts has no function ${id}`);
    return fn;
  }

  /** Each function under its ASL substitution key, `<Id>FunctionArn`. */
  bySubstitutionKey(): Map<string, IFunction> {
    return new Map([...this.byId.values()].map((fn) => [arnSubstitutionKey(fn.definition), fn.function]));
  }
}
