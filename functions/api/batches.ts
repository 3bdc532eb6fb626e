import { DescribeExecutionCommand, type SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import {
  BATCH_ID_PATTERN,
  type BatchCreatedResponse,
  type BatchDryRunResponse,
  type BatchResponse,
  type BatchRow,
  CreateBatchQuery,
  CreateBatchRequest,
  MAX_BATCH_ROWS,
} from '../../schema/api/batches.ts';
import { newTenantId } from '../../schema/names.ts';
import { csvColumnOf, csvRows, csvRowToBody } from '../bulk/csv.ts';
import { type BatchRowRecord, type BatchStore, newBatchId } from '../bulk/store.ts';
import { type BatchInputRow, validateRows } from '../bulk/validate.ts';
import { NotFoundError, ServiceUnavailableError, ValidationError } from '../shared/errors.ts';
import type { IdempotencyStore } from '../shared/idempotency-keys.ts';
import type { TenantStore } from '../shared/tenants.ts';
import { actorOf } from './create-tenant.ts';
import {
  callerOf,
  type HttpEvent,
  type HttpResult,
  jsonBody,
  jsonResult,
  MAX_BODY_BYTES,
  parseWith,
} from './http.ts';
import { idempotencyKeyOf, idempotent, requestHash } from './idempotency.ts';

export interface BatchApiDeps {
  readonly tenants: TenantStore;
  /** The first answers to requests with an `Idempotency-Key`. */
  readonly idempotency: IdempotencyStore;
  readonly batches: BatchStore;
  readonly sfn: SFNClient;
  /** The bulk-onboard state machine. */
  readonly stateMachineArn: string;
  readonly log?: (message: string, details: Record<string, unknown>) => void;
}

/** A batch as the request brought it: rows to validate, and how problems are named. */
export interface BatchInput {
  readonly source: 'json' | 'csv';
  readonly rows: readonly BatchInputRow[];
  readonly dryRun: boolean;
}

const isCsv = (event: HttpEvent): boolean =>
  /^text\/csv\b/i.test(event.headers['content-type'] ?? '') ||
  /^application\/csv\b/i.test(event.headers['content-type'] ?? '');

function textBody(event: HttpEvent): string {
  if (event.body === undefined || event.body === '') throw new ValidationError('A CSV body is required');
  const text = event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
  if (Buffer.byteLength(text) > MAX_BODY_BYTES) {
    throw new ValidationError(`The body exceeds ${MAX_BODY_BYTES} bytes`);
  }
  return text;
}

/**
 * The batch in the request: a JSON body `{tenants, dryRun}`, or a CSV body (`content-type: text/csv`) with a header
 * row; `?dryRun=true` for either. A file that cannot be read as a batch at all (not JSON, an unknown CSV column,
 * no row, too many rows) is refused with a {@link ValidationError}; a bad row is not: it is reported.
 */
export function batchInput(event: HttpEvent): BatchInput & { raw: unknown } {
  const query = parseWith(CreateBatchQuery, event.queryStringParameters ?? {}, 'Invalid query parameters');
  const queryDryRun = query.dryRun === 'true';
  if (isCsv(event)) {
    const text = textBody(event);
    const parsed = csvRows(text);
    if ('problems' in parsed) throw new ValidationError('The CSV cannot be read as a batch', parsed.problems);
    if (parsed.rows.length === 0) throw new ValidationError('The CSV has no data row');
    if (parsed.rows.length > MAX_BATCH_ROWS) {
      throw new ValidationError(
        `At most ${MAX_BATCH_ROWS} rows per batch; this one has ${parsed.rows.length}`,
      );
    }
    return {
      source: 'csv',
      dryRun: queryDryRun,
      raw: { csv: text, dryRun: queryDryRun },
      rows: parsed.rows.map((row, index) => {
        const { body, problems } = csvRowToBody(row);
        return { index, line: row.line, body, problems };
      }),
    };
  }
  const raw = jsonBody(event);
  const request = parseWith(CreateBatchRequest, raw);
  return {
    source: 'json',
    dryRun: request.dryRun || queryDryRun,
    raw: { json: raw, dryRun: queryDryRun },
    rows: request.tenants.map((body, index) => ({ index, line: null, body, problems: [] })),
  };
}

/**
 * `POST /tenant-batches`. Validates every row (see {@link validateRows}). A dry run answers the report and writes
 * nothing. A real run with any invalid row is refused whole (400, one detail per problem) so that a bad file creates
 * nothing; otherwise the batch is recorded with a tenant id chosen for each row, and the bulk-onboard execution
 * (named by the batch id) started: 202 with every row's tenant id. When the execution cannot be started the batch
 * is discarded and a 503 asks for a retry.
 */
export async function createBatch(
  deps: BatchApiDeps,
  input: BatchInput,
  caller: string,
): Promise<{ dryRun: BatchDryRunResponse } | { created: BatchCreatedResponse }> {
  const validated = await validateRows(
    deps.tenants,
    input.rows,
    input.source === 'csv' ? csvColumnOf : undefined,
  );
  const invalid = validated.filter((row) => row.report.problems.length > 0);
  if (input.dryRun) {
    return {
      dryRun: {
        dryRun: true,
        valid: invalid.length === 0,
        summary: {
          rows: validated.length,
          valid: validated.length - invalid.length,
          invalid: invalid.length,
        },
        rows: validated.map((row) => row.report),
      },
    };
  }
  if (invalid.length > 0) {
    const where = (row: (typeof invalid)[number]['report']) =>
      input.source === 'csv' ? `rows[${row.index}]` : `tenants[${row.index}]`;
    throw new ValidationError(
      `${invalid.length} of ${validated.length} rows are invalid; nothing was created (a dry run reports every row)`,
      invalid.flatMap(({ report }) =>
        report.problems.map((problem) => ({
          path: problem.path === '' ? where(report) : `${where(report)}.${problem.path}`,
          message: report.line === null ? problem.message : `line ${report.line}: ${problem.message}`,
        })),
      ),
    );
  }
  const batchId = newBatchId();
  const rows = validated.map(({ report, request }) => {
    if (!request) throw new Error(`Row ${report.index} validated without a request`);
    return {
      index: report.index,
      line: report.line,
      tenantId: newTenantId(),
      slug: request.slug,
      name: request.name,
      request,
    };
  });
  await deps.batches.create({ id: batchId, source: input.source, createdBy: actorOf(caller), rows });
  let executionArn: string | undefined;
  try {
    const started = await deps.sfn.send(
      new StartExecutionCommand({
        stateMachineArn: deps.stateMachineArn,
        name: batchId,
        input: JSON.stringify({
          batchId,
          rows: rows.map((row) => ({ index: row.index, slug: row.slug, tenantId: row.tenantId })),
        }),
      }),
    );
    executionArn = started.executionArn;
    if (!executionArn) throw new Error('StartExecution returned no executionArn');
  } catch (error) {
    deps.log?.('The batch did not start; it is discarded', {
      batchId,
      error: error instanceof Error ? error.name : String(error),
    });
    await deps.batches.discard(batchId);
    throw new ServiceUnavailableError('The batch could not be started; nothing was created, retry later', {
      cause: error,
    });
  }
  await deps.batches.setExecutionArn(batchId, executionArn);
  return {
    created: {
      batchId,
      status: 'running',
      executionArn,
      rows: rows.map((row) => ({ index: row.index, line: row.line, slug: row.slug, tenantId: row.tenantId })),
      links: { self: `/tenant-batches/${batchId}` },
    },
  };
}

/**
 * A row as the API shows it: its recorded outcome once it has one; before that, what its tenant's status already
 * says (so that progress shows without waiting for the row's watcher).
 */
export function rowResponse(row: BatchRowRecord): BatchRow {
  const base = {
    index: row.index,
    line: row.line,
    name: row.name,
    slug: row.slug,
    tenantId: row.tenantId,
    tenantStatus: row.tenantStatus,
    step: row.step,
    leftovers: row.tenantStatus === 'rollback_failed' ? row.leftovers : null,
  };
  if (row.status === 'succeeded' || row.status === 'failed') {
    return { ...base, outcome: row.status, error: row.error };
  }
  if (row.tenantStatus === null) return { ...base, outcome: row.status, error: null };
  if (row.tenantStatus === 'failed' || row.tenantStatus === 'rollback_failed') {
    const failure = row.tenantFailure;
    return {
      ...base,
      outcome: 'failed',
      error: {
        step: failure?.step ?? null,
        error: failure?.error ?? 'ProvisioningFailed',
        cause: failure?.cause ?? `The tenant is ${row.tenantStatus}`,
      },
    };
  }
  if (row.tenantStatus === 'provisioning') return { ...base, outcome: 'provisioning', error: null };
  return { ...base, outcome: 'succeeded', error: null };
}

/**
 * `GET /tenant-batches/{batchId}`: the batch and each row's tenant and outcome. A batch still `running` whose
 * execution has ended without finishing it (stopped, timed out, a sandbox restarted) is recorded failed first.
 */
export async function getBatch(deps: BatchApiDeps, batchId: string): Promise<BatchResponse> {
  let batch = BATCH_ID_PATTERN.test(batchId) ? await deps.batches.get(batchId) : undefined;
  if (!batch) throw new NotFoundError(`No batch ${batchId}`);
  if (batch.status === 'running' && batch.executionArn !== null) {
    // A read must not fail for want of this look (DescribeExecution is throttled per account): it is skipped then.
    const execution = await deps.sfn
      .send(new DescribeExecutionCommand({ executionArn: batch.executionArn }))
      .catch((error: unknown) => {
        deps.log?.('Could not look at the batch execution', {
          batchId,
          error: error instanceof Error ? error.name : String(error),
        });
        return { status: 'RUNNING' as const, error: undefined, cause: undefined };
      });
    if (execution.status !== 'RUNNING' && execution.status !== 'SUCCEEDED') {
      await deps.batches.fail(batchId, {
        error: execution.error ?? `Execution${execution.status ?? 'Ended'}`,
        cause: (execution.cause ?? `The execution ended ${execution.status ?? ''}`).slice(0, 2000),
      });
      batch = (await deps.batches.get(batchId)) ?? batch;
    }
  }
  const rows = (await deps.batches.rows(batchId)).map(rowResponse);
  const count = (outcome: BatchRow['outcome']) => rows.filter((row) => row.outcome === outcome).length;
  return {
    id: batch.id,
    status: batch.status,
    source: batch.source,
    summary: {
      rows: rows.length,
      pending: count('pending'),
      provisioning: count('provisioning'),
      succeeded: count('succeeded'),
      failed: count('failed'),
    },
    rows,
    error: batch.error,
    executionArn: batch.executionArn,
    createdAt: batch.createdAt,
    createdBy: batch.createdBy,
    endedAt: batch.endedAt,
    links: { self: `/tenant-batches/${batch.id}` },
  };
}

/**
 * The bulk onboarding routes as api-handler operations, on the clients and stores the api function's composition
 * root hands in (functions/api/handler.ts). A `POST` with an `Idempotency-Key` is answered once per key.
 */
export function batchRoutes(
  deps: BatchApiDeps,
): Record<'createTenantBatch' | 'getTenantBatch', (event: HttpEvent) => Promise<HttpResult>> {
  return {
    async createTenantBatch(event) {
      const caller = callerOf(event);
      const input = batchInput(event);
      const answer = async () => {
        const result = await createBatch(deps, input, caller);
        if ('dryRun' in result) return jsonResult(200, result.dryRun);
        return jsonResult(202, result.created, { location: result.created.links.self });
      };
      const key = idempotencyKeyOf(event);
      if (key === undefined) return answer();
      return idempotent(
        deps.idempotency,
        { caller, key, hash: requestHash(event.routeKey, input.raw) },
        answer,
        { log: deps.log },
      );
    },
    async getTenantBatch(event) {
      return jsonResult(200, await getBatch(deps, event.pathParameters?.batchId ?? ''));
    },
  };
}
