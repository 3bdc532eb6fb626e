import type { BatchRowReport } from '../../schema/api/batches.ts';
import { deriveSlug, slugProblem } from '../../schema/api/slug.ts';
import { CreateTenantRequest } from '../../schema/api/tenants.ts';
import { PLAN_NAMES, type PlanName } from '../../schema/plans.ts';
import type * as z from '../../schema/zod.ts';
import { SUGGESTION_COUNT, slugCandidates } from '../api/create-tenant.ts';
import { formatPath } from '../api/http.ts';
import type { ErrorDetail } from '../shared/errors.ts';
import type { TenantStore } from '../shared/tenants.ts';

/** A row of a batch before validation: a create-tenant body, and what its conversion from CSV found. */
export interface BatchInputRow {
  readonly index: number;
  /** The CSV line; null for JSON. */
  readonly line: number | null;
  readonly body: unknown;
  /** Problems found before the body could be validated (a CSV cell that does not convert). */
  readonly problems: readonly ErrorDetail[];
}

/** A validated row: its report and, when it has no problem, the request to provision. */
export interface ValidatedRow {
  readonly report: BatchRowReport;
  readonly request: CreateTenantRequest | undefined;
}

/** How a problem's place in the body is named: a dotted path for JSON, the CSV column for CSV. */
export type PathNamer = (path: readonly PropertyKey[]) => string;

const stringField = (body: unknown, key: string): string | undefined => {
  if (typeof body !== 'object' || body === null || !(key in body)) return undefined;
  const value: unknown = Reflect.get(body, key);
  return typeof value === 'string' ? value : undefined;
};

const isPlan = (value: string): value is PlanName => (PLAN_NAMES as readonly string[]).includes(value);

function zodProblems(error: z.core.$ZodError, namePath: PathNamer): ErrorDetail[] {
  return error.issues.flatMap((issue) => {
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => ({ path: namePath([...issue.path, key]), message: 'Unknown field' }));
    }
    return [{ path: namePath(issue.path), message: issue.message }];
  });
}

/**
 * Validates every row of a batch as `POST /tenants` would, and the batch as a whole: each row against the
 * create-tenant schema (plan rules included), each slug unique within the batch (a later row repeating one is
 * refused, naming the first) and free in the registry (with free suggestions, none of them used by the batch).
 * Two registry queries whatever the batch's size; nothing is written.
 */
export async function validateRows(
  tenants: TenantStore,
  rows: readonly BatchInputRow[],
  namePath: PathNamer = formatPath,
): Promise<ValidatedRow[]> {
  const parsed = rows.map((row) => {
    const result = CreateTenantRequest.safeParse(row.body);
    const reported = new Set(row.problems.map((problem) => problem.path));
    const problems: ErrorDetail[] = [...row.problems];
    if (!result.success) {
      // A cell that did not convert is already reported at its column; zod would only repeat it.
      problems.push(...zodProblems(result.error, namePath).filter((problem) => !reported.has(problem.path)));
    }
    const request = result.success && row.problems.length === 0 ? result.data : undefined;
    const name = request?.name ?? stringField(row.body, 'name')?.trim() ?? null;
    const given = stringField(row.body, 'slug');
    const slug = request?.slug ?? given ?? (name ? deriveSlug(name) : null);
    const plan = request?.plan ?? stringField(row.body, 'plan') ?? null;
    return { row, request, problems, name, slug, plan, suggestions: [] as string[] };
  });

  const firstBySlug = new Map<string, (typeof parsed)[number]>();
  for (const entry of parsed) {
    if (entry.slug === null || entry.slug === '') continue;
    const first = firstBySlug.get(entry.slug);
    if (first) {
      const where = first.row.line === null ? `row ${first.row.index}` : `line ${first.row.line}`;
      entry.problems.push({
        path: namePath(['slug']),
        message: `The slug "${entry.slug}" is also that of ${where} of this batch`,
      });
    } else {
      firstBySlug.set(entry.slug, entry);
    }
  }

  // Only well-formed slugs are looked up: a malformed one is already reported, and may hold text PostgreSQL
  // cannot take (a NUL, a lone surrogate).
  const slugs = [...firstBySlug.keys()].filter((slug) => !slugProblem(slug));
  const free = new Set(slugs.length > 0 ? await tenants.freeSlugs(slugs) : []);
  const taken = parsed.filter(
    (entry) =>
      entry.slug !== null &&
      firstBySlug.get(entry.slug) === entry &&
      !slugProblem(entry.slug) &&
      !free.has(entry.slug),
  );
  if (taken.length > 0) {
    const candidatesOf = new Map(
      taken.map((entry) => {
        const slug = entry.slug ?? '';
        const plan: PlanName = entry.plan !== null && isPlan(entry.plan) ? entry.plan : 'basic';
        return [
          entry,
          slugCandidates(slug, plan).filter((candidate) => !firstBySlug.has(candidate)),
        ] as const;
      }),
    );
    const freeCandidates = new Set(await tenants.freeSlugs([...new Set([...candidatesOf.values()].flat())]));
    for (const entry of taken) {
      entry.problems.push({ path: namePath(['slug']), message: `The slug "${entry.slug}" is taken` });
      entry.suggestions = (candidatesOf.get(entry) ?? [])
        .filter((candidate) => freeCandidates.has(candidate))
        .slice(0, SUGGESTION_COUNT);
    }
  }

  return parsed.map((entry) => ({
    report: {
      index: entry.row.index,
      line: entry.row.line,
      name: entry.name,
      slug: entry.slug,
      plan: entry.plan,
      problems: entry.problems,
      suggestions: entry.suggestions,
    },
    request: entry.problems.length === 0 ? entry.request : undefined,
  }));
}
