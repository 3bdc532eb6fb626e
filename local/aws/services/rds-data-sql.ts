import { z } from 'zod';
import { AwsError } from '../protocol.ts';

/** PostgreSQL type OIDs the Data API binds parameters as. */
export const OID = {
  unknown: 0,
  bool: 16,
  bytea: 17,
  int8: 20,
  json: 114,
  float8: 701,
  varchar: 1043,
  date: 1082,
  time: 1083,
  timestamp: 1114,
  numeric: 1700,
  uuid: 2950,
} as const;

/** The `typeHint` values of the API's TypeHint enum (RDS Data API Reference, SqlParameter); anything else is refused. */
export const TYPE_HINTS = ['UUID', 'JSON', 'TIMESTAMP', 'DATE', 'TIME', 'DECIMAL'] as const;

const LONG_MIN = -(2n ** 63n);
const LONG_MAX = 2n ** 63n - 1n;

/**
 * A `longValue` as the request carried it: `{ digits }` from the request's own text (rds-data.ts parses it so), or
 * a number. The API's `Long` is a signed 64-bit integer: anything else is refused.
 */
export const LONG_VALUE = z.union([z.object({ digits: z.string() }), z.number()]).transform((value, ctx) => {
  const text = typeof value === 'number' ? String(value) : value.digits;
  if (!/^-?\d+$/.test(text) || BigInt(text) < LONG_MIN || BigInt(text) > LONG_MAX) {
    ctx.addIssue({ code: 'custom', message: `longValue ${text} is not a 64-bit integer` });
    return z.NEVER;
  }
  return BigInt(text);
});
export type TypeHint = (typeof TYPE_HINTS)[number];

/** A Data API `Field` as the request carries it: exactly one member set. */
export interface FieldInput {
  readonly isNull?: boolean | undefined;
  readonly booleanValue?: boolean | undefined;
  readonly longValue?: bigint | undefined;
  readonly doubleValue?: number | undefined;
  readonly stringValue?: string | undefined;
  readonly blobValue?: string | undefined;
  readonly arrayValue?: unknown;
}

export interface SqlParameterInput {
  readonly name?: string | undefined;
  readonly value?: FieldInput | undefined;
  readonly typeHint?: TypeHint | undefined;
}

/** One positional parameter for `pg`, with the type it is declared as in the Parse message. */
export interface BoundValue {
  readonly value: string | Buffer | null;
  readonly oid: number;
}

/** SQL with `:name` placeholders rewritten to `$n`, and the names in `$n` order. */
export interface PreparedSql {
  readonly text: string;
  readonly names: readonly string[];
}

const HINT_OIDS: Record<TypeHint, number> = {
  UUID: OID.uuid,
  JSON: OID.json,
  TIMESTAMP: OID.timestamp,
  DATE: OID.date,
  TIME: OID.time,
  DECIMAL: OID.numeric,
};

// The formats the Data API documents for these hints; anything else is refused before it reaches the database.
const HINT_FORMATS: Partial<Record<TypeHint, RegExp>> = {
  TIMESTAMP: /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,9})?$/,
  DATE: /^\d{4}-\d{2}-\d{2}$/,
  TIME: /^\d{2}:\d{2}:\d{2}(\.\d{1,9})?$/,
};

const IDENT_START = /[A-Za-z_]/;
const IDENT_PART = /[A-Za-z0-9_$]/;
const DOLLAR_TAG = /^\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$/;

/**
 * Rewrites `:name` placeholders to `$n`, leaving `::casts`, string literals, quoted identifiers, dollar-quoted
 * bodies and comments alone. Like the Data API on Aurora Serverless v2 and provisioned clusters, refuses a string
 * holding more than one statement (a trailing `;` is fine).
 */
export function prepareSql(sql: string): PreparedSql {
  const names: string[] = [];
  let text = '';
  let ended = false;
  let i = 0;
  const take = (end: number): void => {
    const chunk = sql.slice(i, end);
    if (ended && chunk.trim() !== '' && !isComment(chunk)) throw multistatement();
    text += chunk;
    i = end;
  };
  while (i < sql.length) {
    const c = sql[i] ?? '';
    const next = sql[i + 1] ?? '';
    if (c === "'") {
      take(endOfQuoted(sql, i, "'", isEscapeString(sql, i)));
    } else if (c === '"') {
      take(endOfQuoted(sql, i, '"', false));
    } else if (c === '-' && next === '-') {
      const newline = sql.indexOf('\n', i);
      take(newline === -1 ? sql.length : newline + 1);
    } else if (c === '/' && next === '*') {
      take(endOfBlockComment(sql, i));
    } else if (c === '$' && !IDENT_PART.test(sql[i - 1] ?? ' ') && DOLLAR_TAG.test(sql.slice(i))) {
      const tag = DOLLAR_TAG.exec(sql.slice(i))?.[0] ?? '$$';
      const close = sql.indexOf(tag, i + tag.length);
      take(close === -1 ? sql.length : close + tag.length);
    } else if (c === ':' && next === ':') {
      take(i + 2);
    } else if (c === ':' && IDENT_START.test(next)) {
      if (ended) throw multistatement();
      let end = i + 2;
      while (end < sql.length && /[A-Za-z0-9_]/.test(sql[end] ?? '')) end += 1;
      const name = sql.slice(i + 1, end);
      let position = names.indexOf(name);
      if (position === -1) position = names.push(name) - 1;
      text += `$${position + 1}`;
      i = end;
    } else if (c === ';') {
      text += c;
      i += 1;
      ended = true;
    } else {
      take(i + 1);
    }
  }
  return { text, names };
}

/** The values for the placeholders, in `$n` order, typed as the Data API types them (strings as varchar). */
export function bindParameters(
  names: readonly string[],
  parameters: readonly SqlParameterInput[],
): BoundValue[] {
  const byName = new Map<string, SqlParameterInput>();
  for (const parameter of parameters) {
    if (!parameter.name) throw new AwsError('BadRequestException', 'A parameter has no name');
    byName.set(parameter.name.replace(/^:/, ''), parameter);
  }
  return names.map((name) => {
    const parameter = byName.get(name);
    if (!parameter) throw new AwsError('BadRequestException', `No value specified for parameter: ${name}`);
    return bindValue(name, parameter);
  });
}

function bindValue(name: string, { value, typeHint }: SqlParameterInput): BoundValue {
  if (value?.arrayValue !== undefined) {
    throw new AwsError('BadRequestException', 'Array parameters are not supported.');
  }
  if (value?.isNull) return { value: null, oid: OID.unknown };
  if (value?.booleanValue !== undefined) return { value: String(value.booleanValue), oid: OID.bool };
  if (value?.longValue !== undefined) return { value: String(value.longValue), oid: OID.int8 };
  if (value?.doubleValue !== undefined) return { value: String(value.doubleValue), oid: OID.float8 };
  if (value?.blobValue !== undefined)
    return { value: Buffer.from(value.blobValue, 'base64'), oid: OID.bytea };
  if (value?.stringValue !== undefined) {
    if (!typeHint) return { value: value.stringValue, oid: OID.varchar };
    const format = HINT_FORMATS[typeHint];
    if (format && !format.test(value.stringValue)) {
      throw new AwsError(
        'BadRequestException',
        `Cannot parse ${typeHint} parameter ${name}: "${value.stringValue}"`,
      );
    }
    return { value: value.stringValue, oid: HINT_OIDS[typeHint] };
  }
  throw new AwsError('BadRequestException', `Parameter "${name}" has value with no field set`);
}

function multistatement(): AwsError {
  return new AwsError('ValidationException', "Multistatements aren't supported.");
}

function isComment(chunk: string): boolean {
  const trimmed = chunk.trimStart();
  return trimmed.startsWith('--') || trimmed.startsWith('/*');
}

/** `E'...'` strings take backslash escapes; a plain `'...'` (standard_conforming_strings) does not. */
function isEscapeString(sql: string, quote: number): boolean {
  const prefix = sql[quote - 1] ?? '';
  return (prefix === 'E' || prefix === 'e') && !IDENT_PART.test(sql[quote - 2] ?? ' ');
}

function endOfQuoted(sql: string, start: number, quote: string, backslashEscapes: boolean): number {
  let i = start + 1;
  while (i < sql.length) {
    const c = sql[i];
    if (backslashEscapes && c === '\\') {
      i += 2;
    } else if (c === quote) {
      if (sql[i + 1] !== quote) return i + 1;
      i += 2;
    } else {
      i += 1;
    }
  }
  return sql.length;
}

function endOfBlockComment(sql: string, start: number): number {
  let depth = 0;
  let i = start;
  while (i < sql.length) {
    if (sql.startsWith('/*', i)) {
      depth += 1;
      i += 2;
    } else if (sql.startsWith('*/', i)) {
      depth -= 1;
      i += 2;
      if (depth === 0) return i;
    } else {
      i += 1;
    }
  }
  return sql.length;
}
