// CloudWatch metric math ("Using math expressions with CloudWatch metrics", CloudWatch User Guide), the part the
// sandbox evaluates: numbers, query ids, + - * / ^, comparisons (== != < <= > >=), AND/&&, OR/||, NOT/!,
// IF(condition, a, b) and parentheses, over time series aligned by period. Anything else (the other functions,
// SEARCH, METRICS(), string literals) is refused by name when the expression is parsed, so that an alarm or a
// GetMetricData the sandbox cannot evaluate fails at once instead of answering something AWS would not.

/** A time series: value by period start (epoch milliseconds). */
export type Series = ReadonlyMap<number, number>;

/** An expression the sandbox cannot parse or evaluate; CloudWatch answers these with a ValidationError. */
export class ExpressionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExpressionError';
  }
}

export type Expr =
  | { readonly kind: 'number'; readonly value: number }
  | { readonly kind: 'id'; readonly id: string }
  | { readonly kind: 'unary'; readonly op: '-' | 'NOT'; readonly operand: Expr }
  | { readonly kind: 'binary'; readonly op: BinaryOp; readonly left: Expr; readonly right: Expr }
  | { readonly kind: 'if'; readonly condition: Expr; readonly then: Expr; readonly otherwise: Expr };

type BinaryOp = '+' | '-' | '*' | '/' | '^' | '==' | '!=' | '<' | '<=' | '>' | '>=' | 'AND' | 'OR';

interface Token {
  readonly text: string;
  readonly kind: 'number' | 'name' | 'op';
  readonly at: number;
}

const OPERATORS = ['&&', '||', '==', '!=', '<=', '>=', '<', '>', '!', '+', '-', '*', '/', '^', '(', ')', ','];

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let at = 0;
  while (at < text.length) {
    const rest = text.slice(at);
    const space = /^\s+/.exec(rest);
    if (space) {
      at += space[0].length;
      continue;
    }
    const number = /^(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?/.exec(rest);
    if (number) {
      tokens.push({ text: number[0], kind: 'number', at });
      at += number[0].length;
      continue;
    }
    const name = /^[A-Za-z_][A-Za-z0-9_]*/.exec(rest);
    if (name) {
      tokens.push({ text: name[0], kind: 'name', at });
      at += name[0].length;
      continue;
    }
    const op = OPERATORS.find((candidate) => rest.startsWith(candidate));
    if (!op) throw new ExpressionError(`Unsupported character '${rest[0]}' at position ${at + 1}.`);
    tokens.push({ text: op, kind: 'op', at });
    at += op.length;
  }
  return tokens;
}

/** Parses a metric math expression; throws an ExpressionError that says what is not supported. */
export function parseExpression(text: string): Expr {
  const tokens = tokenize(text);
  let position = 0;
  const peek = (): Token | undefined => tokens[position];
  const isOp = (token: Token | undefined, ...ops: string[]) =>
    token !== undefined &&
    ((token.kind === 'op' && ops.includes(token.text)) ||
      (token.kind === 'name' && ops.includes(token.text.toUpperCase())));
  const expect = (op: string): void => {
    const token = peek();
    if (!isOp(token, op)) {
      throw new ExpressionError(
        token ? `Expected '${op}' at position ${token.at + 1}.` : `Expected '${op}' at the end.`,
      );
    }
    position += 1;
  };

  const binaryLevel =
    (ops: readonly string[], next: () => Expr, normalise: (op: string) => BinaryOp) => (): Expr => {
      let left = next();
      while (isOp(peek(), ...ops)) {
        const op = normalise((peek() as Token).text.toUpperCase());
        position += 1;
        left = { kind: 'binary', op, left, right: next() };
      }
      return left;
    };

  const primary = (): Expr => {
    const token = peek();
    if (!token) throw new ExpressionError('The expression ends where a value was expected.');
    position += 1;
    if (token.kind === 'number') return { kind: 'number', value: Number(token.text) };
    if (isOp(token, '(')) {
      const inner = or();
      expect(')');
      return inner;
    }
    if (token.kind === 'name') {
      if (isOp(peek(), '(')) {
        if (token.text.toUpperCase() !== 'IF') {
          throw new ExpressionError(`The function ${token.text} is not supported by the sandbox (only IF).`);
        }
        position += 1;
        const condition = or();
        expect(',');
        const then = or();
        expect(',');
        const otherwise = or();
        expect(')');
        return { kind: 'if', condition, then, otherwise };
      }
      return { kind: 'id', id: token.text };
    }
    throw new ExpressionError(`Unexpected '${token.text}' at position ${token.at + 1}.`);
  };
  const unary = (): Expr => {
    if (isOp(peek(), '-')) {
      position += 1;
      return { kind: 'unary', op: '-', operand: unary() };
    }
    if (isOp(peek(), '+')) {
      position += 1;
      return unary();
    }
    return power();
  };
  const power = (): Expr => {
    const base = primary();
    if (!isOp(peek(), '^')) return base;
    position += 1;
    return { kind: 'binary', op: '^', left: base, right: unary() };
  };
  const same = (op: string) => op as BinaryOp;
  const multiplicative = binaryLevel(['*', '/'], unary, same);
  const additive = binaryLevel(['+', '-'], multiplicative, same);
  const comparison = binaryLevel(['==', '!=', '<=', '>=', '<', '>'], additive, same);
  const not = (): Expr => {
    if (isOp(peek(), '!', 'NOT')) {
      position += 1;
      return { kind: 'unary', op: 'NOT', operand: not() };
    }
    return comparison();
  };
  const and = binaryLevel(['&&', 'AND'], not, () => 'AND');
  const or = binaryLevel(['||', 'OR'], and, () => 'OR');

  const expression = or();
  const left = peek();
  if (left) throw new ExpressionError(`Unexpected '${left.text}' at position ${left.at + 1}.`);
  return expression;
}

/** The query ids an expression reads. */
export function referencedIds(expr: Expr): Set<string> {
  switch (expr.kind) {
    case 'number':
      return new Set();
    case 'id':
      return new Set([expr.id]);
    case 'unary':
      return referencedIds(expr.operand);
    case 'binary':
      return new Set([...referencedIds(expr.left), ...referencedIds(expr.right)]);
    case 'if':
      return new Set([
        ...referencedIds(expr.condition),
        ...referencedIds(expr.then),
        ...referencedIds(expr.otherwise),
      ]);
  }
}

type Value = number | Series;

const truth = (value: number): boolean => value !== 0;

function apply(op: BinaryOp, a: number, b: number): number {
  switch (op) {
    case '+':
      return a + b;
    case '-':
      return a - b;
    case '*':
      return a * b;
    case '/':
      return a / b;
    case '^':
      return a ** b;
    case '==':
      return Number(a === b);
    case '!=':
      return Number(a !== b);
    case '<':
      return Number(a < b);
    case '<=':
      return Number(a <= b);
    case '>':
      return Number(a > b);
    case '>=':
      return Number(a >= b);
    case 'AND':
      return Number(truth(a) && truth(b));
    case 'OR':
      return Number(truth(a) || truth(b));
  }
}

/**
 * Combines values point by point: a number applies to every point; two series combine on the timestamps both
 * have (a timestamp one lacks has no result, as AWS does without FILL). A result that is not a finite number
 * (division by zero) is no datapoint.
 */
function combine(values: readonly Value[], f: (args: number[]) => number): Value {
  const series = values.filter((value): value is Series => typeof value !== 'number');
  if (series.length === 0) return f(values as number[]);
  const [first, ...others] = series;
  const result = new Map<number, number>();
  for (const t of (first as Series).keys()) {
    if (!others.every((other) => other.has(t))) continue;
    const value = f(values.map((v) => (typeof v === 'number' ? v : (v.get(t) as number))));
    if (Number.isFinite(value)) result.set(t, value);
  }
  return result;
}

/** Evaluates an expression over the series of the queries it names. */
export function evaluateExpression(expr: Expr, series: ReadonlyMap<string, Series>): Value {
  switch (expr.kind) {
    case 'number':
      return expr.value;
    case 'id': {
      const found = series.get(expr.id);
      if (!found) throw new ExpressionError(`Unrecognized metric or expression id ${expr.id}.`);
      return found;
    }
    case 'unary': {
      const operand = evaluateExpression(expr.operand, series);
      return combine([operand], ([a = 0]) => (expr.op === '-' ? -a : Number(!truth(a))));
    }
    case 'binary': {
      const left = evaluateExpression(expr.left, series);
      const right = evaluateExpression(expr.right, series);
      return combine([left, right], ([a = 0, b = 0]) => apply(expr.op, a, b));
    }
    case 'if': {
      // IF(condition, a, b): at each timestamp of the condition, a where it is true and b where it is false; the
      // branch not taken need not have a point there.
      const condition = evaluateExpression(expr.condition, series);
      const then = evaluateExpression(expr.then, series);
      const otherwise = evaluateExpression(expr.otherwise, series);
      const pick = (branch: Value, t: number): number | undefined =>
        typeof branch === 'number' ? branch : branch.get(t);
      if (typeof condition === 'number') return truth(condition) ? then : otherwise;
      const result = new Map<number, number>();
      for (const [t, value] of condition) {
        const chosen = pick(truth(value) ? then : otherwise, t);
        if (chosen !== undefined && Number.isFinite(chosen)) result.set(t, chosen);
      }
      return result;
    }
  }
}
