import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { RemovalPolicy, Validations } from 'aws-cdk-lib';
import { Effect, PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { DefinitionBody, LogLevel, StateMachine, StateMachineType } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { PROJECT_ROOT } from './function.ts';

/** Where the ASL files are: `statemachines/<name>.asl.json`, deployed as `<prefix>-<name>`. */
export const STATE_MACHINES_DIR = join(PROJECT_ROOT, 'statemachines');

/** A state machine file and the function substitutions it references. */
export interface StateMachineFile {
  /** The file's base name, e.g. `provision-tenant`. */
  readonly name: string;
  readonly path: string;
  /** Every `${key}` in the file, in order of first use. */
  readonly substitutionKeys: readonly string[];
  /** Top-level `TimeoutSeconds`; Step Functions fails a run that takes longer. */
  readonly timeoutSeconds: number | undefined;
}

/**
 * Every `statemachines/*.asl.json`, read as CDK deploys it and the sandbox runs it. Throws when the folder cannot
 * be read or holds no ASL file: a synth without the state machines would still succeed, with functions and
 * alarms pointing at state machines that do not exist.
 */
export function stateMachineFiles(dir = STATE_MACHINES_DIR): StateMachineFile[] {
  let files: string[];
  try {
    files = readdirSync(dir).filter((file) => file.endsWith('.asl.json'));
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`Cannot read the state machine folder ${dir}: ${reason}`, { cause: error });
  }
  if (files.length === 0) throw new Error(`No state machine (*.asl.json) in ${dir}`);
  return files.sort().map((file) => {
    const path = join(dir, file);
    const text = readFileSync(path, 'utf8');
    const keys = [...new Set([...text.matchAll(/\$\{([A-Za-z0-9_]+)\}/g)].map((match) => match[1] ?? ''))];
    const definition: unknown = JSON.parse(text);
    const timeout =
      typeof definition === 'object' && definition !== null && 'TimeoutSeconds' in definition
        ? definition.TimeoutSeconds
        : undefined;
    return {
      name: basename(file, '.asl.json'),
      path,
      substitutionKeys: keys,
      timeoutSeconds: typeof timeout === 'number' ? timeout : undefined,
    };
  });
}

export interface ProvisioningProps {
  /** State machines are named `<prefix>-<file name>`. */
  readonly prefix: string;
  /** The function behind each substitution key (`<Id>FunctionArn`); the ASL may reference no other key. */
  readonly functionsBySubstitution: ReadonlyMap<string, IFunction>;
  /** @default the ASL files under `statemachines/` */
  readonly files?: readonly StateMachineFile[];
  /** @default RetentionDays.ONE_MONTH */
  readonly logRetention?: RetentionDays;
  /** @default RemovalPolicy.RETAIN */
  readonly logRemovalPolicy?: RemovalPolicy;
  /**
   * Whether the execution log carries each state's input and output. The design keeps secrets out of state
   * (ARNs only), and operators need the payloads to see why a step failed.
   * @default true
   */
  readonly includeExecutionData?: boolean;
}

/**
 * Every state machine of `statemachines/`, as it is: `DefinitionBody.fromFile` with `${<Id>FunctionArn}`
 * substituted, Standard type, every event logged, X-Ray on, and a role that may invoke exactly the functions its
 * file references. The run's timeout is the file's own top-level `TimeoutSeconds` (CloudFormation has no other;
 * the sandbox honours the same one); a file without one fails synth.
 */
export class Provisioning extends Construct {
  readonly stateMachines: ReadonlyMap<string, StateMachine>;
  readonly logGroups: ReadonlyMap<string, LogGroup>;
  /** Per state machine, the functions its role may invoke. */
  readonly invokes: ReadonlyMap<string, readonly IFunction[]>;

  constructor(scope: Construct, id: string, props: ProvisioningProps) {
    super(scope, id);
    const stateMachines = new Map<string, StateMachine>();
    const logGroups = new Map<string, LogGroup>();
    const invokes = new Map<string, IFunction[]>();
    for (const file of props.files ?? stateMachineFiles()) {
      if (file.timeoutSeconds === undefined) {
        throw new Error(`${file.path}: no top-level TimeoutSeconds; every run needs an upper bound`);
      }
      const substitutions: Record<string, string> = {};
      const functions: IFunction[] = [];
      for (const key of file.substitutionKeys) {
        const fn = props.functionsBySubstitution.get(key);
        if (!fn) throw new Error(`${file.path}: \${${key}} is no function of functions/registry.ts`);
        substitutions[key] = fn.functionArn;
        functions.push(fn);
      }
      const name = `${props.prefix}-${file.name}`;
      const scopeId = pascal(file.name);
      const role = new Role(this, `${scopeId}Role`, {
        assumedBy: new ServicePrincipal('states.amazonaws.com'),
        description: `${name}: invokes the functions its ASL references`,
      });
      if (functions.length > 0) {
        // The ASL calls the unqualified ARNs: no version or alias wildcard is needed.
        role.addToPrincipalPolicy(
          new PolicyStatement({
            effect: Effect.ALLOW,
            actions: ['lambda:InvokeFunction'],
            resources: functions.map((fn) => fn.functionArn),
          }),
        );
      }
      const logGroup = new LogGroup(this, `${scopeId}Logs`, {
        logGroupName: `/aws/vendedlogs/states/${name}`,
        retention: props.logRetention ?? RetentionDays.ONE_MONTH,
        removalPolicy: props.logRemovalPolicy ?? RemovalPolicy.RETAIN,
      });
      const stateMachine = new StateMachine(this, scopeId, {
        stateMachineName: name,
        stateMachineType: StateMachineType.STANDARD,
        definitionBody: DefinitionBody.fromFile(file.path),
        definitionSubstitutions: substitutions,
        role,
        logs: {
          destination: logGroup,
          level: LogLevel.ALL,
          includeExecutionData: props.includeExecutionData ?? true,
        },
        tracingEnabled: true,
      });
      Validations.of(role).acknowledge({
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason:
          'CloudWatch Logs delivery (logs:CreateLogDelivery and friends) and X-Ray (xray:PutTraceSegments, GetSampling*) support no resource-level permissions; Step Functions needs them on * to log and trace.',
      });
      stateMachines.set(file.name, stateMachine);
      logGroups.set(file.name, logGroup);
      invokes.set(file.name, functions);
    }
    this.stateMachines = stateMachines;
    this.logGroups = logGroups;
    this.invokes = invokes;
  }
}

const pascal = (name: string): string =>
  name
    .split(/[^A-Za-z0-9]+/)
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1))
    .join('');
