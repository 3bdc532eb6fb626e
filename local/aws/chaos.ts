import { z } from 'zod';
import { type ApiCall, AwsError, SERVICE_NAMES } from './protocol.ts';

/**
 * A fault rule, modelled on LocalStack's chaos API: the calls it matches fail with its error.
 * Every field but `error` narrows the match; a rule with none matches every call.
 */
export const faultRuleSchema = z.strictObject({
  service: z.enum(SERVICE_NAMES).optional(),
  operation: z.string().min(1).optional(),
  /** A substring of the call's subject: the SQL, the secret name, the alarm name, the object key. */
  match: z.string().min(1).optional(),
  error: z
    .strictObject({
      code: z.string().min(1).default('InternalError'),
      statusCode: z.number().int().min(400).max(599).default(500),
      message: z.string().optional(),
    })
    .default({ code: 'InternalError', statusCode: 500 }),
  /** How many matching calls fail before the rule is spent; without it, every one does. */
  count: z.number().int().positive().optional(),
  /** The chance that a matching call fails. */
  probability: z.number().min(0).max(1).default(1),
  /**
   * Holds the answer of a matching call back this long instead of failing it (LocalStack's latency effect):
   * the call is carried out, its caller waits. `error` is then unused.
   */
  latencyMs: z.number().int().positive().max(600_000).optional(),
});
export type FaultRule = z.infer<typeof faultRuleSchema>;

export const faultRulesSchema = z.array(faultRuleSchema).max(1000);

interface ActiveRule {
  readonly rule: FaultRule;
  remaining: number;
}

/** The active fault rules; what `/_sandbox/chaos/faults` reads and writes. */
export class Chaos {
  #rules: ActiveRule[] = [];

  list(): FaultRule[] {
    return this.#rules.map(({ rule, remaining }) =>
      rule.count === undefined ? rule : { ...rule, count: remaining },
    );
  }

  /** Replaces every rule (LocalStack's POST). */
  set(rules: readonly FaultRule[]): void {
    this.#rules = rules.map(activate);
  }

  /** Adds rules to those in force (LocalStack's PATCH). */
  add(rules: readonly FaultRule[]): void {
    this.#rules.push(...rules.map(activate));
  }

  /** Removes the rules equal to those given, or all of them when none are given. */
  remove(rules?: readonly FaultRule[]): void {
    if (!rules || rules.length === 0) {
      this.#rules = [];
      return;
    }
    const gone = new Set(rules.map((rule) => JSON.stringify(rule)));
    this.#rules = this.#rules.filter(({ rule }) => !gone.has(JSON.stringify(rule)));
  }

  /**
   * Throws the error of the first rule that matches the call, spending one of its count; for a latency rule,
   * returns how long to hold the call's answer back instead (0: no delay).
   */
  check(call: ApiCall): number {
    const index = this.#rules.findIndex(({ rule }) => matches(rule, call));
    const active = this.#rules[index];
    if (!active || Math.random() >= active.rule.probability) return 0;
    active.remaining -= 1;
    if (active.remaining <= 0) this.#rules.splice(index, 1);
    if (active.rule.latencyMs !== undefined) return active.rule.latencyMs;
    const { code, statusCode, message } = active.rule.error;
    throw new AwsError(
      code,
      message ?? `Fault injected by the sandbox's chaos rules into ${call.operation}`,
      statusCode,
    );
  }
}

function activate(rule: FaultRule): ActiveRule {
  return { rule, remaining: rule.count ?? Number.POSITIVE_INFINITY };
}

function matches(rule: FaultRule, call: ApiCall): boolean {
  return (
    (rule.service === undefined || rule.service === call.service) &&
    (rule.operation === undefined || rule.operation === call.operation) &&
    (rule.match === undefined || (call.subject?.includes(rule.match) ?? false))
  );
}
