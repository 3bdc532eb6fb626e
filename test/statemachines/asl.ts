import { readFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';
import { RETRIES_EVERY_ERROR, RETRY, type Retrier, retryOf } from '../../functions/shared/transient.ts';
import { stateMachineFiles } from '../../infra/constructs/provisioning.ts';

/** A state, with the fields these checks read; every other field is kept as the file has it. */
const State = z.looseObject({
  Type: z.string(),
  Retry: z.unknown().optional(),
  Next: z.string().optional(),
  Default: z.string().optional(),
  Catch: z.array(z.looseObject({ Next: z.string() })).optional(),
  Choices: z.array(z.looseObject({ Next: z.string() })).optional(),
  ItemProcessor: z.unknown().optional(),
  Iterator: z.unknown().optional(),
  Branches: z.array(z.unknown()).optional(),
});
export type State = z.infer<typeof State>;

export const Machine = z.looseObject({ StartAt: z.string(), States: z.record(z.string(), State) });
export type Machine = z.infer<typeof Machine>;

/** Every `statemachines/*.asl.json` by name, read from the paths CDK deploys. */
export function loadMachines(): Map<string, Machine> {
  return new Map(
    stateMachineFiles().map((file) => [
      file.name,
      Machine.parse(JSON.parse(readFileSync(file.path, 'utf8'))),
    ]),
  );
}

/** Every state of a machine, those of its Map iterations and Parallel branches too, by path (`Map/State`). */
export function statesOf(machine: Machine, prefix = ''): { path: string; name: string; state: State }[] {
  return Object.entries(machine.States).flatMap(([name, state]) => {
    const inner = [
      ...(state.ItemProcessor === undefined ? [] : [state.ItemProcessor]),
      ...(state.Iterator === undefined ? [] : [state.Iterator]),
      ...(state.Branches ?? []),
    ].flatMap((nested) => statesOf(Machine.parse(nested), `${prefix}${name}/`));
    return [{ path: `${prefix}${name}`, name, state }, ...inner];
  });
}

/** The states a state can go to next. */
export const successorsOf = (state: State): string[] => [
  ...(state.Next === undefined ? [] : [state.Next]),
  ...(state.Default === undefined ? [] : [state.Default]),
  ...(state.Catch ?? []).map((handler) => handler.Next),
  ...(state.Choices ?? []).map((choice) => choice.Next),
];

/** The names of the states reachable from `start` (itself included), at the machine's top level. */
export function reachableFrom(machine: Machine, start: string): Set<string> {
  const seen = new Set<string>();
  const queue = [start];
  for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
    const state = machine.States[name];
    if (seen.has(name) || state === undefined) continue;
    seen.add(name);
    queue.push(...successorsOf(state));
  }
  return seen;
}

/** How one retrier differs from another, in words: the names it lacks or adds, the timings that differ. */
function retrierDifference(actual: unknown, expected: Retrier): string[] {
  const parsed = z.looseObject({ ErrorEquals: z.array(z.string()) }).safeParse(actual);
  if (!parsed.success) return [`${JSON.stringify(actual)} is no retrier`];
  const differences: string[] = [];
  const lacks = expected.ErrorEquals.filter((name) => !parsed.data.ErrorEquals.includes(name));
  const adds = parsed.data.ErrorEquals.filter((name) => !expected.ErrorEquals.includes(name));
  if (lacks.length > 0) differences.push(`lacks ${lacks.join(', ')}`);
  if (adds.length > 0) differences.push(`also names ${adds.join(', ')}`);
  if (
    lacks.length === 0 &&
    adds.length === 0 &&
    !isDeepStrictEqual(parsed.data.ErrorEquals, expected.ErrorEquals)
  )
    differences.push('lists ErrorEquals in another order');
  const keys = new Set(
    [...Object.keys(parsed.data), ...Object.keys(expected)].filter((key) => key !== 'ErrorEquals'),
  );
  for (const key of keys) {
    const have: unknown = Reflect.get(parsed.data, key);
    const want: unknown = Reflect.get(expected, key);
    if (!isDeepStrictEqual(have, want))
      differences.push(`${key} ${JSON.stringify(have)}, not ${JSON.stringify(want)}`);
  }
  return differences;
}

const policyName = (retry: readonly Retrier[]): string =>
  retry === RETRY.everyError ? 'RETRY.everyError' : 'RETRY.transient';

/**
 * Where the machines' `Retry` blocks differ from functions/shared/transient.ts, one line each; none when they
 * agree. Every Task retries by {@link retryOf}; Map and Parallel states retry nothing themselves (a retried Map
 * would run every iteration again); every machine has its entry in {@link RETRIES_EVERY_ERROR}, which names
 * only Tasks that exist.
 */
export function retryDrift(machines: ReadonlyMap<string, Machine>): string[] {
  const problems: string[] = [];
  for (const [machineName, machine] of machines) {
    const named = RETRIES_EVERY_ERROR[machineName];
    if (named === undefined) {
      problems.push(`${machineName}: no entry in RETRIES_EVERY_ERROR (functions/shared/transient.ts)`);
    }
    const states = statesOf(machine);
    for (const { path, name, state } of states) {
      if (state.Type !== 'Task') {
        if (state.Retry !== undefined) problems.push(`${machineName} ${path}: a ${state.Type} with a Retry`);
        continue;
      }
      const expected = retryOf(machineName, name);
      if (isDeepStrictEqual(state.Retry, expected)) continue;
      const actual = Array.isArray(state.Retry) ? state.Retry : [];
      const detail =
        state.Retry === undefined
          ? ['has no Retry']
          : actual.length !== expected.length
            ? [`has ${actual.length} retriers`]
            : expected.flatMap((retrier, index) => retrierDifference(actual[index], retrier));
      problems.push(`${machineName} ${path}: Retry is not ${policyName(expected)}: ${detail.join('; ')}`);
    }
    const tasks = new Set(states.filter(({ state }) => state.Type === 'Task').map(({ name }) => name));
    for (const [reason, names] of Object.entries(named ?? {})) {
      for (const name of names ?? []) {
        if (!tasks.has(name)) {
          problems.push(
            `${machineName}: RETRIES_EVERY_ERROR names ${name} (${reason}), which is no Task of it`,
          );
        }
      }
    }
  }
  for (const machineName of Object.keys(RETRIES_EVERY_ERROR)) {
    if (!machines.has(machineName)) {
      problems.push(`RETRIES_EVERY_ERROR names ${machineName}, which is no file of statemachines/`);
    }
  }
  return problems;
}
