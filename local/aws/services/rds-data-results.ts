import type { FieldDef } from 'pg';
import { AwsError, type JsonObject } from '../protocol.ts';

/**
 * An integer written into JSON as its digits (ES2025's `JSON.rawJSON`, Node 21 on): a `Long` is 64 bits, and a
 * JavaScript number would round it above 2^53 (9007199254740993 would go out as ...992).
 */
export interface ExactInteger {
  readonly rawJSON: string;
}
const { rawJSON } = JSON as unknown as { rawJSON: (text: string) => ExactInteger };

/** JSON text of a response, its integers exact. */
export const stringifyExact = (value: unknown): string => JSON.stringify(value);

const INT64 = /^-?\d{1,19}$/;
const LONG_MIN = -(2n ** 63n);
const LONG_MAX = 2n ** 63n - 1n;

/** PostgreSQL's text of an integer as a `Long` on the wire: exact when it fits in 64 bits. */
function exactLong(text: string): number | ExactInteger {
  if (!INT64.test(text)) return Number(text);
  const value = BigInt(text);
  return value >= LONG_MIN && value <= LONG_MAX ? rawJSON(text) : Number(text);
}

/**
 * "The Data API size limit is 64 KB per row in the result set returned by the database" and "The response size
 * limit is 1 MiB" (Limitations for the Amazon RDS Data API; the Aurora quota "Data API maximum result set size" is
 * 1 MB). Troubleshooting Amazon RDS Data API names the errors: "Packet for query is too large" (a row) and "Database
 * response exceeded size limit" (the result); on Aurora Serverless v2 and provisioned clusters the exception is
 * UnsupportedResultException, whose conditions include "The size was too large" (RDS Data API Reference;
 * BadRequestException "only appears in calls from Aurora Serverless v1 databases").
 */
export const MAX_ROW_BYTES = 64 * 1024;
export const MAX_RESULT_BYTES = 1024 * 1024;

/**
 * Refuses a result over the Data API's limits. A value counts as the bytes the database returns for it: a bytea
 * its bytes, anything else its UTF-8 text. Also refuses a multidimensional array, which Aurora Serverless v2 and
 * provisioned clusters do not return ("ExecuteStatement behavior", Comparing Data API behaviors).
 */
export function checkResultSize(fields: readonly FieldDef[], rows: readonly (readonly unknown[])[]): void {
  let total = 0;
  for (const row of rows) {
    let size = 0;
    fields.forEach((field, index) => {
      const value = row[index];
      if (typeof value !== 'string') return;
      if (ARRAYS.has(field.dataTypeID) && isMultidimensional(value)) {
        throw new AwsError(
          'UnsupportedResultException',
          `The result contains the unsupported data type: a multidimensional array (column ${field.name})`,
        );
      }
      size +=
        field.dataTypeID === 17 && value.startsWith('\\x')
          ? (value.length - 2) / 2
          : Buffer.byteLength(value);
    });
    if (size > MAX_ROW_BYTES)
      throw new AwsError('UnsupportedResultException', 'Packet for query is too large');
    total += size;
    if (total > MAX_RESULT_BYTES) {
      throw new AwsError('UnsupportedResultException', 'Database response exceeded size limit');
    }
  }
}

/** Whether PostgreSQL's array text has arrays in it: `{{1,2},{3,4}}`, after an optional `[1:2][1:2]=` prefix. */
function isMultidimensional(text: string): boolean {
  const body = text.startsWith('[') ? text.slice(text.indexOf('=') + 1) : text;
  return body.startsWith('{{');
}

/** How `resultSetOptions` asks for DECIMAL and LONG columns. */
export interface ResultOptions {
  readonly decimalReturnType?: 'STRING' | 'DOUBLE_OR_LONG' | undefined;
  readonly longReturnType?: 'STRING' | 'LONG' | undefined;
}

/** What the catalog says about a result column that comes from a table. */
export interface ColumnSource {
  readonly tableName: string;
  readonly notNull: boolean;
  readonly autoIncrement: boolean;
}

/** A value as the Data API returns it: one member of the `Field` union. */
export type Field =
  | { isNull: true }
  | { booleanValue: boolean }
  | { longValue: number | ExactInteger }
  | { doubleValue: number }
  | { stringValue: string }
  | { blobValue: string }
  | { arrayValue: ArrayValue };

export type ArrayValue =
  | { booleanValues: (boolean | null)[] }
  | { longValues: (number | ExactInteger | null)[] }
  | { doubleValues: (number | null)[] }
  | { stringValues: (string | null)[] }
  | { arrayValues: ArrayValue[] };

type Kind = 'bool' | 'long' | 'double' | 'decimal' | 'bytea' | 'timestamptz' | 'string';

interface TypeInfo {
  readonly name: string;
  readonly kind: Kind;
  /** java.sql.Types, which the Data API reports as a column's `type`. */
  readonly jdbc: number;
}

const JDBC = {
  BIT: -7,
  BIGINT: -5,
  BINARY: -2,
  CHAR: 1,
  NUMERIC: 2,
  INTEGER: 4,
  SMALLINT: 5,
  REAL: 7,
} as const;
const JDBC_DOUBLE = 8;
const JDBC_VARCHAR = 12;
const JDBC_DATE = 91;
const JDBC_TIME = 92;
const JDBC_TIMESTAMP = 93;
const JDBC_OTHER = 1111;
const JDBC_ARRAY = 2003;
const TEMPORAL_JDBC: ReadonlySet<number> = new Set([JDBC_DATE, JDBC_TIME, JDBC_TIMESTAMP]);
const UNKNOWN_LENGTH = 2147483647;

const SCALARS: ReadonlyMap<number, TypeInfo> = new Map([
  [16, { name: 'bool', kind: 'bool', jdbc: JDBC.BIT }],
  [17, { name: 'bytea', kind: 'bytea', jdbc: JDBC.BINARY }],
  [18, { name: 'char', kind: 'string', jdbc: JDBC.CHAR }],
  [19, { name: 'name', kind: 'string', jdbc: JDBC_VARCHAR }],
  [20, { name: 'int8', kind: 'long', jdbc: JDBC.BIGINT }],
  [21, { name: 'int2', kind: 'long', jdbc: JDBC.SMALLINT }],
  [23, { name: 'int4', kind: 'long', jdbc: JDBC.INTEGER }],
  [25, { name: 'text', kind: 'string', jdbc: JDBC_VARCHAR }],
  [26, { name: 'oid', kind: 'long', jdbc: JDBC.BIGINT }],
  [114, { name: 'json', kind: 'string', jdbc: JDBC_OTHER }],
  [700, { name: 'float4', kind: 'double', jdbc: JDBC.REAL }],
  [701, { name: 'float8', kind: 'double', jdbc: JDBC_DOUBLE }],
  [1042, { name: 'bpchar', kind: 'string', jdbc: JDBC.CHAR }],
  [1043, { name: 'varchar', kind: 'string', jdbc: JDBC_VARCHAR }],
  [1082, { name: 'date', kind: 'string', jdbc: JDBC_DATE }],
  [1083, { name: 'time', kind: 'string', jdbc: JDBC_TIME }],
  [1114, { name: 'timestamp', kind: 'string', jdbc: JDBC_TIMESTAMP }],
  [1184, { name: 'timestamptz', kind: 'timestamptz', jdbc: JDBC_TIMESTAMP }],
  [1266, { name: 'timetz', kind: 'string', jdbc: JDBC_TIME }],
  [1700, { name: 'numeric', kind: 'decimal', jdbc: JDBC.NUMERIC }],
  [2950, { name: 'uuid', kind: 'string', jdbc: JDBC_OTHER }],
  [3802, { name: 'jsonb', kind: 'string', jdbc: JDBC_OTHER }],
]);

/** Array type OID -> element type OID, for the built-in element types above. */
const ARRAYS: ReadonlyMap<number, number> = new Map([
  [1000, 16],
  [1001, 17],
  [1002, 18],
  [1003, 19],
  [1016, 20],
  [1005, 21],
  [1007, 23],
  [1009, 25],
  [1028, 26],
  [199, 114],
  [1021, 700],
  [1022, 701],
  [1014, 1042],
  [1015, 1043],
  [1182, 1082],
  [1183, 1083],
  [1115, 1114],
  [1185, 1184],
  [1270, 1266],
  [1231, 1700],
  [2951, 2950],
  [3807, 3802],
]);

const TEXT: TypeInfo = { name: 'text', kind: 'string', jdbc: JDBC_OTHER };

/** Every result column arrives as PostgreSQL's text output; the mapping below works from that. */
export const rawText = { getTypeParser: () => (value: string) => value };

/** A row as `records` carries it, mapped as Aurora maps PostgreSQL types. */
export function toRecord(
  fields: readonly FieldDef[],
  row: readonly unknown[],
  options: ResultOptions,
): Field[] {
  return fields.map((field, index) => {
    const value = row[index];
    return typeof value === 'string' ? toField(field.dataTypeID, value, options) : { isNull: true };
  });
}

function toField(oid: number, text: string, options: ResultOptions): Field {
  const element = ARRAYS.get(oid);
  if (element !== undefined) return { arrayValue: toArrayValue(parseArray(text), element, options) };
  const kind = (SCALARS.get(oid) ?? TEXT).kind;
  switch (kind) {
    case 'bool':
      return { booleanValue: text === 't' };
    case 'long':
      return options.longReturnType === 'STRING' ? { stringValue: text } : { longValue: exactLong(text) };
    case 'double':
      return { doubleValue: Number(text) };
    case 'decimal':
      if (options.decimalReturnType !== 'DOUBLE_OR_LONG') return { stringValue: text };
      return text.includes('.') ? { doubleValue: Number(text) } : { longValue: exactLong(text) };
    case 'bytea':
      return { blobValue: decodeBytea(text).toString('base64') };
    case 'timestamptz':
      return { stringValue: stripUtcOffset(text) };
    default:
      return { stringValue: text };
  }
}

type ArrayItem = string | null | ArrayItem[];

function toArrayValue(items: ArrayItem[], element: number, options: ResultOptions): ArrayValue {
  if (items.some(Array.isArray)) {
    return {
      arrayValues: items.map((item) => toArrayValue(Array.isArray(item) ? item : [item], element, options)),
    };
  }
  const scalars = items.filter((item): item is string | null => !Array.isArray(item));
  const each = <T>(map: (text: string) => T): (T | null)[] =>
    scalars.map((item) => (item === null ? null : map(item)));
  const kind = (SCALARS.get(element) ?? TEXT).kind;
  if (kind === 'bool') return { booleanValues: each((text) => text === 't') };
  // "Some array entries can be null" (RDS Data API Reference, LongArray and the other arrays): a NULL element is
  // sent as null, which botocore and the JavaScript SDK both read as such.
  if (kind === 'long' && options.longReturnType !== 'STRING') return { longValues: each(exactLong) };
  if (kind === 'double') return { doubleValues: each(Number) };
  if (kind === 'bytea') return { stringValues: each((text) => decodeBytea(text).toString('base64')) };
  if (kind === 'timestamptz') return { stringValues: each(stripUtcOffset) };
  return { stringValues: each((text) => text) };
}

/** A row of `formattedRecords`: column labels to JSON values (json/jsonb columns stay strings, as on AWS). */
export function toJsonRecord(
  fields: readonly FieldDef[],
  row: readonly unknown[],
  options: ResultOptions,
): JsonObject {
  const record: JsonObject = {};
  fields.forEach((field, index) => {
    const value = row[index];
    record[field.name] =
      typeof value === 'string' ? jsonValue(toField(field.dataTypeID, value, options)) : null;
  });
  return record;
}

function jsonValue(field: Field): unknown {
  if ('arrayValue' in field) return jsonArray(field.arrayValue);
  if ('isNull' in field) return null;
  return Object.values(field)[0];
}

function jsonArray(array: ArrayValue): unknown[] {
  if ('arrayValues' in array) return array.arrayValues.map(jsonArray);
  return Object.values(array)[0] ?? [];
}

/**
 * `columnMetadata` as the Data API reports it (its JDBC driver's view): `type` is a java.sql.Types code,
 * `typeName` PostgreSQL's type name, `nullable` 0 (no nulls), 1 (nullable) or 2 (unknown, for expressions).
 */
export function columnMetadata(
  field: FieldDef,
  typeName: string,
  source: ColumnSource | undefined,
): JsonObject {
  const element = ARRAYS.get(field.dataTypeID);
  const info = SCALARS.get(field.dataTypeID);
  const modifier = field.dataTypeModifier;
  const numeric = info?.kind === 'long' || info?.kind === 'double' || info?.kind === 'decimal';
  const serial = source?.autoIncrement && (typeName === 'int4' || typeName === 'int8');
  return {
    name: field.name,
    type: element !== undefined ? JDBC_ARRAY : (info?.jdbc ?? JDBC_OTHER),
    typeName: serial ? (typeName === 'int4' ? 'serial' : 'bigserial') : typeName,
    label: field.name,
    schemaName: '',
    tableName: source?.tableName ?? '',
    isAutoIncrement: source?.autoIncrement ?? false,
    isSigned: numeric,
    isCurrency: false,
    isCaseSensitive: !numeric && info?.kind !== 'bool' && !TEMPORAL_JDBC.has(info?.jdbc ?? JDBC_OTHER),
    nullable: source ? (source.notNull ? 0 : 1) : 2,
    precision: precision(field.dataTypeID, modifier),
    scale: scale(field.dataTypeID, modifier),
    arrayBaseColumnType: element !== undefined ? (SCALARS.get(element)?.jdbc ?? JDBC_OTHER) : 0,
  };
}

function precision(oid: number, modifier: number): number {
  switch (oid) {
    case 16:
    case 18:
      return 1;
    case 21:
      return 5;
    case 23:
    case 26:
      return 10;
    case 20:
      return 19;
    case 700:
      return 8;
    case 701:
      return 17;
    case 1700:
      return modifier === -1 ? 0 : ((modifier - 4) >> 16) & 0xffff;
    case 1042:
    case 1043:
      return modifier === -1 ? UNKNOWN_LENGTH : modifier - 4;
    case 1082:
      return 13;
    case 1083:
      return 8 + fractionDigits(modifier);
    case 1266:
      return 14 + fractionDigits(modifier);
    case 1114:
      return 20 + fractionDigits(modifier);
    case 1184:
      return 26 + fractionDigits(modifier);
    default:
      return UNKNOWN_LENGTH;
  }
}

function scale(oid: number, modifier: number): number {
  switch (oid) {
    case 700:
      return 8;
    case 701:
      return 17;
    case 1700:
      return modifier === -1 ? 0 : (modifier - 4) & 0xffff;
    case 1083:
    case 1266:
    case 1114:
    case 1184:
      return modifier === -1 ? 6 : modifier;
    default:
      return 0;
  }
}

function fractionDigits(modifier: number): number {
  const digits = modifier === -1 ? 6 : modifier;
  return digits > 0 ? digits + 1 : 0;
}

/** Aurora runs sessions in UTC and returns timestamptz values without the offset. */
function stripUtcOffset(text: string): string {
  return text.replace(/\+00(?::00)?$/, '');
}

function decodeBytea(text: string): Buffer {
  return text.startsWith('\\x') ? Buffer.from(text.slice(2), 'hex') : Buffer.from(text, 'latin1');
}

/** Parses PostgreSQL's array text output (`{1,2,NULL}`, `{{a,"b c"},{d,e}}`, with an optional `[1:2]=` prefix). */
export function parseArray(text: string): ArrayItem[] {
  let i = text.startsWith('[') ? text.indexOf('=') + 1 : 0;
  const parseList = (): ArrayItem[] => {
    const items: ArrayItem[] = [];
    i += 1; // {
    while (i < text.length && text[i] !== '}') {
      if (text[i] === '{') {
        items.push(parseList());
      } else if (text[i] === '"') {
        let value = '';
        i += 1;
        while (i < text.length && text[i] !== '"') {
          if (text[i] === '\\') i += 1;
          value += text[i] ?? '';
          i += 1;
        }
        i += 1;
        items.push(value);
      } else {
        let end = i;
        while (end < text.length && text[end] !== ',' && text[end] !== '}') end += 1;
        const value = text.slice(i, end);
        items.push(value === 'NULL' ? null : value);
        i = end;
      }
      if (text[i] === ',') i += 1;
    }
    i += 1; // }
    return items;
  };
  return parseList();
}
