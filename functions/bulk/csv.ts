import { CSV_COLUMNS, type CsvColumn, REQUIRED_CSV_COLUMNS } from '../../schema/api/batches.ts';
import { FEATURE_FLAGS, type FeatureFlag } from '../../schema/plans.ts';
import type { ErrorDetail } from '../shared/errors.ts';

/** A record of a CSV file and the line it starts on (1-based). */
export interface CsvRecord {
  readonly line: number;
  readonly cells: readonly string[];
}

/**
 * Splits CSV text into records (RFC 4180): fields separated by commas, records by CRLF or LF, a field in double
 * quotes may hold commas, line breaks and doubled quotes. A byte order mark is dropped; blank lines are skipped.
 * An unterminated quote is reported, not guessed at.
 */
export function parseCsv(text: string): { records: CsvRecord[]; problem?: string } {
  const source = text.startsWith('\uFEFF') ? text.slice(1) : text;
  const records: CsvRecord[] = [];
  let cells: string[] = [];
  let cell = '';
  let line = 1;
  let recordLine = 1;
  let quoted = false;
  let quoteLine = 0;
  let i = 0;
  const endRecord = () => {
    cells.push(cell);
    if (cells.length > 1 || cells[0] !== '') records.push({ line: recordLine, cells });
    cells = [];
    cell = '';
  };
  while (i < source.length) {
    const char = source[i];
    if (quoted) {
      if (char === '"' && source[i + 1] === '"') {
        cell += '"';
        i += 2;
        continue;
      }
      if (char === '"') quoted = false;
      else {
        if (char === '\n') line += 1;
        cell += char;
      }
      i += 1;
      continue;
    }
    if (char === '"' && cell.trim() === '') {
      quoted = true;
      quoteLine = line;
      cell = '';
    } else if (char === ',') {
      cells.push(cell);
      cell = '';
    } else if (char === '\n' || char === '\r') {
      endRecord();
      if (char === '\r' && source[i + 1] === '\n') i += 1;
      line += 1;
      recordLine = line;
    } else {
      cell += char;
    }
    i += 1;
  }
  if (quoted) return { records, problem: `Line ${quoteLine}: a quoted field is not closed` };
  endRecord();
  return { records };
}

/** A data row of a batch CSV: its line and its non-empty cells by column. */
export interface CsvRow {
  readonly line: number;
  readonly values: Partial<Record<CsvColumn, string>>;
}

const isColumn = (name: string): name is CsvColumn => Object.hasOwn(CSV_COLUMNS, name);

/**
 * The data rows of a batch CSV, by column. Problems with the file as a whole (no header, an unknown, repeated or
 * missing required column, a row with more cells than the header) are returned instead: the file is refused.
 */
export function csvRows(text: string): { rows: CsvRow[] } | { problems: ErrorDetail[] } {
  const { records, problem } = parseCsv(text);
  if (problem) return { problems: [{ path: '', message: problem }] };
  const [header, ...data] = records;
  if (!header) return { problems: [{ path: '', message: 'The CSV is empty: a header row is required' }] };
  const problems: ErrorDetail[] = [];
  const columns: CsvColumn[] = [];
  header.cells.forEach((raw, i) => {
    const name = raw.trim().toLowerCase();
    if (!isColumn(name)) {
      problems.push({
        path: `header[${i}]`,
        message: `Unknown column "${raw.trim()}" (columns: ${Object.keys(CSV_COLUMNS).join(', ')})`,
      });
    } else if (columns.includes(name)) {
      problems.push({ path: `header[${i}]`, message: `The column "${name}" appears twice` });
    }
    if (isColumn(name)) columns.push(name);
  });
  for (const required of REQUIRED_CSV_COLUMNS) {
    if (!columns.includes(required)) {
      problems.push({ path: 'header', message: `The column "${required}" is required` });
    }
  }
  for (const record of data) {
    if (record.cells.length > header.cells.length) {
      problems.push({
        path: `line ${record.line}`,
        message: `${record.cells.length} cells for ${header.cells.length} columns`,
      });
    }
  }
  if (problems.length > 0) return { problems };
  return {
    rows: data.map((record) => {
      const values: Partial<Record<CsvColumn, string>> = {};
      columns.forEach((column, i) => {
        const value = record.cells[i]?.trim() ?? '';
        if (value !== '') values[column] = value;
      });
      return { line: record.line, values };
    }),
  };
}

const list = (value: string) =>
  value
    .split(';')
    .map((item) => item.trim())
    .filter((item) => item !== '');

const isFlag = (name: string): name is FeatureFlag => (FEATURE_FLAGS as readonly string[]).includes(name);

const BOOLEANS: Readonly<Record<string, boolean>> = {
  true: true,
  yes: true,
  '1': true,
  false: false,
  no: false,
  '0': false,
};

/**
 * A CSV row as a create-tenant body (which the create-tenant schema then validates), and the problems of cells that
 * do not convert (a number that is none, an unknown feature): those are reported at their column.
 */
export function csvRowToBody(row: CsvRow): { body: Record<string, unknown>; problems: ErrorDetail[] } {
  const { values } = row;
  const problems: ErrorDetail[] = [];
  for (const column of REQUIRED_CSV_COLUMNS) {
    if (values[column] === undefined) problems.push({ path: column, message: 'Required' });
  }
  const integer = (column: CsvColumn): number | undefined => {
    const value = values[column];
    if (value === undefined) return undefined;
    if (!/^\d{1,9}$/.test(value)) {
      problems.push({ path: column, message: `"${value}" is not a whole number` });
      return undefined;
    }
    return Number(value);
  };
  const features: Record<string, unknown> = {};
  if (values.auth !== undefined) features.auth = list(values.auth);
  for (const flag of list(values.features ?? '')) {
    if (isFlag(flag)) features[flag] = true;
    else
      problems.push({ path: 'features', message: `Unknown feature "${flag}" (${FEATURE_FLAGS.join(', ')})` });
  }
  const securityPolicy: Record<string, unknown> = {};
  if (values.mfa_required !== undefined) {
    const mfa = BOOLEANS[values.mfa_required.toLowerCase()];
    if (mfa === undefined) problems.push({ path: 'mfa_required', message: 'true or false' });
    else securityPolicy.mfaRequired = mfa;
  }
  const compliance: Record<string, unknown> = {};
  const retentionDays = integer('retention_days');
  if (retentionDays !== undefined) compliance.retentionDays = retentionDays;
  if (values.encryption_level !== undefined) compliance.encryptionLevel = values.encryption_level;
  const limits: Record<string, unknown> = {};
  const maxUsers = integer('max_users');
  if (maxUsers !== undefined) limits.maxUsers = maxUsers;
  const storageQuotaGb = integer('storage_quota_gb');
  if (storageQuotaGb !== undefined) limits.storageQuotaGb = storageQuotaGb;
  const body: Record<string, unknown> = {
    ...(values.name !== undefined ? { name: values.name } : {}),
    ...(values.slug !== undefined ? { slug: values.slug } : {}),
    ...(values.plan !== undefined ? { plan: values.plan } : {}),
    adminUser: {
      ...(values.admin_email !== undefined ? { email: values.admin_email } : {}),
      ...(values.admin_first_name !== undefined ? { firstName: values.admin_first_name } : {}),
      ...(values.admin_last_name !== undefined ? { lastName: values.admin_last_name } : {}),
    },
    features,
    securityPolicy,
    compliance,
    limits,
  };
  return { body, problems };
}

/** Where in a create-tenant body each column lands; `features` last, as it takes the flags left over. */
const COLUMN_PATHS: readonly (readonly [CsvColumn, readonly string[]])[] = [
  ['name', ['name']],
  ['slug', ['slug']],
  ['plan', ['plan']],
  ['admin_email', ['adminUser', 'email']],
  ['admin_first_name', ['adminUser', 'firstName']],
  ['admin_last_name', ['adminUser', 'lastName']],
  ['auth', ['features', 'auth']],
  ['mfa_required', ['securityPolicy', 'mfaRequired']],
  ['retention_days', ['compliance', 'retentionDays']],
  ['encryption_level', ['compliance', 'encryptionLevel']],
  ['max_users', ['limits', 'maxUsers']],
  ['storage_quota_gb', ['limits', 'storageQuotaGb']],
  ['features', ['features']],
];

/** The column a problem of the create-tenant body is about, e.g. `adminUser.email` → `admin_email`. */
export function csvColumnOf(path: readonly PropertyKey[]): string {
  for (const [column, prefix] of COLUMN_PATHS) {
    if (prefix.every((key, i) => path[i] === key)) return column;
  }
  return path.map(String).join('.');
}
