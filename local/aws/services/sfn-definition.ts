import { StateMachine, type StateMachineDefinition } from 'aws-local-stepfunctions';
import { AwsError, type JsonObject } from '../protocol.ts';

/** The optimized integration `arn:aws:states:::lambda:invoke`, whose result wraps the function's in `Payload`. */
export const LAMBDA_INVOKE = 'arn:aws:states:::lambda:invoke';

const FUNCTION_ARN = /^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]+(:[A-Za-z0-9_$-]+)?$/;

/** A Task state, by what it calls. */
export interface TaskState {
  /** `function`: the Resource is a function ARN; `lambda:invoke`: the optimized integration. */
  readonly kind: 'function' | 'lambda:invoke';
  readonly resource: string;
  readonly timeoutSeconds: number | undefined;
}

/** A definition that passed {@link checkDefinition}. */
export interface CheckedDefinition {
  readonly definition: JsonObject;
  /** Every Task state, by name (names are unique across the whole machine, nested ones included). */
  readonly tasks: ReadonlyMap<string, TaskState>;
}

// setTimeout's ceiling (~24.8 days); the library's timers overflow beyond it.
const NO_TIMEOUT_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

/**
 * Validates a definition as CreateStateMachine does, with `asl-validator` (through aws-local-stepfunctions),
 * throwing `InvalidDefinition`. Beyond AWS's rules it refuses what the sandbox cannot run faithfully:
 * JSONata (the library would silently ignore it) and Task resources other than Lambda.
 *
 * asl-validator compiles its JSON schemas on every call (a few hundred milliseconds of CPU), so verdicts
 * are remembered by definition text, and runs use {@link parseDefinition}, which skips it.
 */
export function checkDefinition(text: string): CheckedDefinition {
  let verdict = verdicts.get(text);
  if (!verdict) {
    try {
      const checked = parseDefinition(text);
      const problems = validatorProblems(checked.definition);
      verdict = problems.length === 0 ? checked : invalid(problems.join(', '));
    } catch (error) {
      if (!(error instanceof AwsError)) throw error;
      verdict = error;
    }
    if (verdicts.size >= MAX_VERDICTS) verdicts.delete(verdicts.keys().next().value ?? '');
    verdicts.set(text, verdict);
  }
  if (verdict instanceof AwsError) throw verdict;
  return verdict;
}

const MAX_VERDICTS = 200;
const verdicts = new Map<string, CheckedDefinition | AwsError>();

/** A definition's Task states, and the sandbox's own refusals; what a run needs of a definition already validated. */
export function parseDefinition(text: string): CheckedDefinition {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw invalid(`INVALID_JSON_DESCRIPTION: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (!isObject(parsed)) throw invalid('INVALID_JSON_DESCRIPTION: the definition is not a JSON object');
  const definition = parsed;

  const problems: string[] = [];
  if (definition.QueryLanguage === 'JSONata') {
    problems.push(
      'UNSUPPORTED_FEATURE: the sandbox runs JSONPath definitions only, not QueryLanguage JSONata',
    );
  }
  const tasks = new Map<string, TaskState>();
  visitStates(definition, (name, state) => {
    if (state.QueryLanguage === 'JSONata') {
      problems.push(
        `UNSUPPORTED_FEATURE: state ${name} uses QueryLanguage JSONata; the sandbox runs JSONPath only`,
      );
    }
    if (state.Type !== 'Task') return;
    const resource = typeof state.Resource === 'string' ? state.Resource : '';
    const timeoutSeconds = typeof state.TimeoutSeconds === 'number' ? state.TimeoutSeconds : undefined;
    if (FUNCTION_ARN.test(resource)) {
      tasks.set(name, { kind: 'function', resource, timeoutSeconds });
    } else if (resource === LAMBDA_INVOKE) {
      const parameters = isObject(state.Parameters) ? state.Parameters : {};
      if (!('FunctionName' in parameters) && !('FunctionName.$' in parameters)) {
        problems.push(`SCHEMA_VALIDATION_FAILED: state ${name}: the field 'FunctionName' is required`);
      }
      tasks.set(name, { kind: 'lambda:invoke', resource, timeoutSeconds });
    } else {
      const hint = resource.includes('${') ? ' (were the definitionSubstitutions applied?)' : '';
      problems.push(
        `UNSUPPORTED_FEATURE: state ${name}: the sandbox runs Lambda tasks only (a function ARN or ${LAMBDA_INVOKE}), not '${resource}'${hint}`,
      );
    }
  });
  if (problems.length > 0) throw invalid(problems.join(', '));
  return { definition, tasks };
}

/**
 * The library's state machine for a checked definition. A Task without TimeoutSeconds gets no timeout,
 * as on AWS (the library would apply 60 s): the function's own timeout is what ends it.
 */
export function runnableMachine(checked: CheckedDefinition): StateMachine {
  const definition = structuredClone(checked.definition);
  visitStates(definition, (_, state) => {
    if (
      state.Type === 'Task' &&
      state.TimeoutSeconds === undefined &&
      state.TimeoutSecondsPath === undefined
    ) {
      state.TimeoutSeconds = NO_TIMEOUT_SECONDS;
    }
  });
  return new StateMachine(asDefinition(definition), { validationOptions: { noValidate: true } });
}

function validatorProblems(definition: JsonObject): string[] {
  try {
    // asl-validator writes a default QueryLanguage into each state it sees: give it a copy.
    new StateMachine(asDefinition(structuredClone(definition)), {
      validationOptions: { checkArn: true, checkPaths: true },
    });
    return [];
  } catch (error) {
    // The library's message is a heading line, then one line per asl-validator error.
    const lines = (error instanceof Error ? error.message : String(error)).split('\n').slice(1);
    return lines.map((line) => line.trim()).filter((line) => line.length > 0);
  }
}

/** Calls `visit` on every state, those in Parallel branches and Map processors included. */
function visitStates(machine: JsonObject, visit: (name: string, state: JsonObject) => void): void {
  if (!isObject(machine.States)) return;
  for (const [name, state] of Object.entries(machine.States)) {
    if (!isObject(state)) continue;
    visit(name, state);
    if (state.Type === 'Parallel' && Array.isArray(state.Branches)) {
      for (const branch of state.Branches) if (isObject(branch)) visitStates(branch, visit);
    }
    const processor = state.ItemProcessor ?? state.Iterator;
    if (state.Type === 'Map' && isObject(processor)) visitStates(processor, visit);
  }
}

// The library's own type for what asl-validator accepts; the validator, not this cast, checks the shape.
const asDefinition = (definition: JsonObject): StateMachineDefinition =>
  definition as unknown as StateMachineDefinition;

export const isObject = (value: unknown): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const invalid = (detail: string) =>
  new AwsError('InvalidDefinition', `Invalid State Machine Definition: '${detail}'`);
