import * as z from '../zod.ts';

/**
 * Text that PostgreSQL can store, checked where a request's strings enter the API (the schemas of this folder).
 * PostgreSQL's text and jsonb cannot hold U+0000 (22021, and 22P05 for jsonb's `\u0000`), and a string with a lone
 * UTF-16 surrogate has no UTF-8 form: jsonb refuses its `\ud800` escape (22P02) and a text parameter arrives with
 * U+FFFD in its place, stored altered without a word. Refused at the schema, each is a 400 naming its field.
 */

/** Why PostgreSQL cannot store this text, or undefined when it can. */
export function unstorableText(value: string): string | undefined {
  if (value.includes('\u0000')) return 'NUL characters (U+0000) are not allowed';
  if (!value.isWellFormed()) return 'Lone UTF-16 surrogates (U+D800 to U+DFFF unpaired) are not allowed';
  return undefined;
}

/** A string check: refuses text PostgreSQL cannot store (see {@link unstorableText}). */
export const storable = () =>
  z.superRefine((value: string, ctx) => {
    const problem = unstorableText(value);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

/** Control characters but NUL, which {@link storable} reports (once, by its name). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the NUL is named to be left out
const CONTROL_CHARACTERS = /(?!\u0000)\p{Cc}/u;

/** Free text of a request (a name, a reason): trimmed, `min` to `max` characters, no control character, storable. */
export const text = (min: number, max: number) =>
  z.string().check(
    z.trim(),
    z.minLength(min),
    z.maxLength(max),
    z.refine((value) => !CONTROL_CHARACTERS.test(value), 'Control characters are not allowed'),
    storable(),
  );

/** The text as it can be stored: NUL and lone surrogates replaced by U+FFFD. */
export const toStorable = (value: string): string => value.toWellFormed().replaceAll('\u0000', '\uFFFD');

export interface JsonProblem {
  readonly path: readonly PropertyKey[];
  readonly message: string;
}

/** At most this many text problems of one JSON value are reported: the rest would say the same. */
const MAX_TEXT_PROBLEMS = 10;

/**
 * A parsed JSON value (an object or array, at any depth) looked through without recursion, so that no nesting
 * overflows the stack: whether it nests deeper than `maxDepth` levels (a flat object or array is 1 level; nothing
 * deeper is walked), and its keys and strings PostgreSQL cannot store (a key at the path of the object holding it,
 * a string at its own path; at most {@link MAX_TEXT_PROBLEMS}).
 */
export function inspectJson(value: unknown, maxDepth: number): { tooDeep: boolean; problems: JsonProblem[] } {
  const problems: JsonProblem[] = [];
  let textProblems = 0;
  let tooDeep = false;
  const report = (path: readonly PropertyKey[], message: string) => {
    textProblems += 1;
    if (textProblems <= MAX_TEXT_PROBLEMS) problems.push({ path, message });
  };
  const stack: { value: unknown; path: readonly PropertyKey[]; level: number }[] = [
    { value, path: [], level: 0 },
  ];
  for (let entry = stack.pop(); entry !== undefined; entry = stack.pop()) {
    const { path, level } = entry;
    const node = entry.value;
    if (typeof node === 'string') {
      const problem = unstorableText(node);
      if (problem) report(path, problem);
      continue;
    }
    if (typeof node !== 'object' || node === null) continue;
    if (level + 1 > maxDepth) {
      tooDeep = true;
      continue;
    }
    const entries: [PropertyKey, unknown][] = Array.isArray(node)
      ? node.map((item, i) => [i, item])
      : Object.entries(node);
    const children: typeof stack = [];
    for (const [key, item] of entries) {
      const problem = typeof key === 'string' ? unstorableText(key) : undefined;
      if (problem) report(path, `In a key: ${problem}`);
      else children.push({ value: item, path: [...path, key], level: level + 1 });
    }
    // Pushed last to first, so that problems come in document order (one by one: a spread of a wide array
    // would overflow the stack as surely as recursion into a deep one).
    for (let i = children.length - 1; i >= 0; i -= 1) stack.push(children[i] as (typeof stack)[number]);
  }
  return { tooDeep, problems };
}
