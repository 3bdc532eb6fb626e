import * as z from '../zod.ts';
import { MigrationId, MigrationResponse, StartMigrationRequest } from './fleet.ts';
import { CreateTenantRequest, ErrorDetailSchema, Links, TenantId, TenantStatusSchema } from './tenants.ts';

/**
 * Bulk onboarding, `POST /tenant-batches` and `GET /tenant-batches/{batchId}`: a JSON list of create-tenant bodies
 * or a CSV file, validated whole (each row with the create-tenant rules, slugs unique in the file and free in the
 * registry), then provisioned row by row by the bulk-onboard state machine.
 */

/**
 * At most this many rows per batch; a larger onboarding is several batches. The bound is Step Functions': an
 * execution has at most 25,000 history events, and a row costs about 25 (its Map iteration, two tasks, the choices,
 * and a wait loop or two while its provisioning runs).
 */
export const MAX_BATCH_ROWS = 500;

export const BatchId = z
  .string()
  .check(z.meta({ description: 'Generated: `b` and 15 of `[a-z0-9]`.', examples: ['b4k2m9x0q7w1z3ab'] }));
export const BATCH_ID_PATTERN = /^b[a-z0-9]{15}$/;

/**
 * The JSON body. Each element of `tenants` is a `POST /tenants` body, validated on its own so that every row's
 * problems are reported (the body is not refused at the first bad row).
 */
export const CreateBatchRequest = z.strictObject({
  tenants: z
    .array(z.unknown())
    .check(z.minLength(1), z.maxLength(MAX_BATCH_ROWS))
    .check(z.meta({ description: `1 to ${MAX_BATCH_ROWS} create-tenant bodies (as POST /tenants takes).` })),
  dryRun: z
    ._default(z.boolean(), false)
    .check(z.meta({ description: 'Validate and report every row, create nothing (also `?dryRun=true`).' })),
});
export type CreateBatchRequest = z.output<typeof CreateBatchRequest>;

/** The same body as the OpenAPI document shows it: rows described as the create-tenant body. */
export const CreateBatchRequestDocument = z.extend(CreateBatchRequest, {
  tenants: z.array(CreateTenantRequest).check(z.minLength(1), z.maxLength(MAX_BATCH_ROWS)),
});

/** `?dryRun=true` (for CSV bodies, which have no field for it). */
export const CreateBatchQuery = z.strictObject({
  dryRun: z
    .optional(z.enum(['true', 'false']))
    .check(z.meta({ description: 'true: validate only, create nothing.' })),
});

/**
 * The CSV columns: a header row names them, in any order; `name`, `plan` and `admin_email` are required, the
 * others may be absent or empty. Lists (`auth`, `features`) separate their items with `;`.
 */
export const CSV_COLUMNS = {
  name: 'Display name.',
  slug: 'The slug; derived from the name when empty.',
  plan: 'basic, professional or enterprise.',
  admin_email: "The first administrator's email.",
  admin_first_name: "The administrator's first name.",
  admin_last_name: "The administrator's last name.",
  auth: 'Sign-in methods, e.g. `password;2fa`.',
  features: 'Feature flags to turn on, e.g. `apiAccess;advancedAnalytics`.',
  mfa_required: 'true or false.',
  retention_days: 'Days stored objects are kept (30, 90, 180, 365, 730, 2555).',
  encryption_level: 'standard or enhanced.',
  max_users: "Lower than the plan's user quota.",
  storage_quota_gb: "Lower than the plan's storage quota.",
} as const;
export type CsvColumn = keyof typeof CSV_COLUMNS;
export const REQUIRED_CSV_COLUMNS: readonly CsvColumn[] = ['name', 'plan', 'admin_email'];

/** One row as a dry run reports it. */
export const BatchRowReport = z.strictObject({
  index: z
    .int()
    .check(z.meta({ description: 'The row, from 0: `tenants[index]`, or the index-th data line of a CSV.' })),
  line: z
    .nullable(z.int())
    .check(z.meta({ description: 'The CSV line (the header is line 1); null for JSON.' })),
  name: z.nullable(z.string()),
  slug: z
    .nullable(z.string())
    .check(z.meta({ description: 'The slug the row would take (given or derived).' })),
  plan: z.nullable(z.string()),
  problems: z.array(ErrorDetailSchema).check(
    z.meta({
      description: "Everything wrong with the row; `path` within the row (a CSV column's name for CSV).",
    }),
  ),
  suggestions: z.array(z.string()).check(z.meta({ description: 'For a taken slug: free ones like it.' })),
});
export type BatchRowReport = z.output<typeof BatchRowReport>;

/** `200` to a dry run. */
export const BatchDryRunResponse = z.strictObject({
  dryRun: z.literal(true),
  valid: z.boolean().check(z.meta({ description: 'Whether a real run of this batch would be accepted.' })),
  summary: z.strictObject({ rows: z.int(), valid: z.int(), invalid: z.int() }),
  rows: z.array(BatchRowReport),
});
export type BatchDryRunResponse = z.output<typeof BatchDryRunResponse>;

/** `202` to a real run: every row's tenant id is known from the start. */
export const BatchCreatedResponse = z.strictObject({
  batchId: BatchId,
  status: z.literal('running'),
  executionArn: z
    .string()
    .check(z.meta({ description: 'The bulk-onboard execution provisioning the rows.' })),
  rows: z.array(
    z.strictObject({ index: z.int(), line: z.nullable(z.int()), slug: z.string(), tenantId: TenantId }),
  ),
  links: Links,
});
export type BatchCreatedResponse = z.output<typeof BatchCreatedResponse>;

export const BATCH_STATUSES = ['running', 'succeeded', 'completed_with_failures', 'failed'] as const;
export type BatchStatus = (typeof BATCH_STATUSES)[number];
export const ROW_OUTCOMES = ['pending', 'provisioning', 'succeeded', 'failed'] as const;
export type RowOutcome = (typeof ROW_OUTCOMES)[number];

export const RowError = z.strictObject({
  step: z
    .nullable(z.string())
    .check(z.meta({ description: 'The provisioning step that failed, when one did.' })),
  error: z.string(),
  cause: z.string(),
});
export type RowError = z.output<typeof RowError>;

export const BatchRow = z.strictObject({
  index: z.int(),
  line: z.nullable(z.int()),
  name: z.string(),
  slug: z.string(),
  tenantId: TenantId,
  outcome: z.enum(ROW_OUTCOMES),
  tenantStatus: z.nullable(TenantStatusSchema).check(
    z.meta({
      description: 'The tenant as the registry has it now; null when the row never reserved it.',
    }),
  ),
  step: z.nullable(z.string()).check(z.meta({ description: 'The provisioning step last started.' })),
  error: z.nullable(RowError),
  leftovers: z
    .nullable(z.array(z.string()))
    .check(z.meta({ description: 'For a tenant that ended rollback_failed: what could not be undone.' })),
});
export type BatchRow = z.output<typeof BatchRow>;

/** `GET /tenant-batches/{batchId}`. */
export const BatchResponse = z.strictObject({
  id: BatchId,
  status: z.enum(BATCH_STATUSES).check(
    z.meta({
      description:
        'running; succeeded (every row); completed_with_failures (some rows failed, the rest succeeded); failed.',
    }),
  ),
  source: z.enum(['json', 'csv']),
  summary: z.strictObject({
    rows: z.int(),
    pending: z.int(),
    provisioning: z.int(),
    succeeded: z.int(),
    failed: z.int(),
  }),
  rows: z.array(BatchRow),
  error: z.nullable(z.strictObject({ error: z.string(), cause: z.string() })),
  executionArn: z.nullable(z.string()),
  createdAt: z.string(),
  createdBy: z.string(),
  endedAt: z.nullable(z.string()),
  links: Links,
});
export type BatchResponse = z.output<typeof BatchResponse>;

// ---- OpenAPI: bulk onboarding and fleet migrations (fleet.ts's schemas are documented here too) ----

type JsonSchema = Record<string, unknown>;

/** The helpers of `openapi.ts` the operations are written with (passed in: no import cycle). */
export interface BulkOpenApiHelpers {
  readonly jsonSchema: (schema: z.ZodMiniType, io: 'input' | 'output') => JsonSchema;
  readonly ref: (name: string) => JsonSchema;
  readonly json: (schema: JsonSchema) => Record<string, unknown>;
  readonly error: (description: string, schema?: string) => Record<string, unknown>;
  readonly authErrors: Record<string, unknown>;
}

/** The bulk operations and their component schemas. */
export function bulkOpenApi(h: BulkOpenApiHelpers): {
  operations: Record<'createTenantBatch' | 'getTenantBatch' | 'startMigration' | 'getMigration', JsonSchema>;
  schemas: Record<string, JsonSchema>;
} {
  const idempotencyKey = {
    name: 'Idempotency-Key',
    in: 'header',
    required: false,
    description:
      'As for POST /tenants: the first answer to this key (per caller and body) is answered again.',
    schema: { type: 'string', minLength: 1, maxLength: 255 },
  };
  const pathId = (name: string, schema: z.ZodMiniType) => ({
    name,
    in: 'path',
    required: true,
    schema: h.jsonSchema(schema, 'output'),
  });
  const csvColumns = Object.entries(CSV_COLUMNS)
    .map(
      ([column, description]) =>
        `\`${column}\`${(REQUIRED_CSV_COLUMNS as readonly string[]).includes(column) ? ' (required)' : ''}: ${description}`,
    )
    .join(' ');
  return {
    operations: {
      createTenantBatch: {
        parameters: [
          {
            name: 'dryRun',
            in: 'query',
            required: false,
            description: 'true: validate every row and report, create nothing.',
            schema: { type: 'string', enum: ['true', 'false'] },
          },
          idempotencyKey,
        ],
        requestBody: {
          required: true,
          content: {
            'application/json': { schema: h.ref('CreateTenantBatchRequest') },
            'text/csv': {
              schema: {
                type: 'string',
                description: `A header row, then one tenant per line. Columns: ${csvColumns}`,
              },
            },
          },
        },
        responses: {
          '200': {
            description: 'The dry run: every row and its problems.',
            ...h.json(h.ref('TenantBatchDryRun')),
          },
          '202': {
            description:
              "Accepted: the batch is recorded and its run started; each row's tenant id is given.",
            ...h.json(h.ref('TenantBatchCreated')),
          },
          '400': h.error(
            'The body is no batch (bad JSON, an unknown CSV column, too many rows), or a real run has invalid rows: nothing was created; `details` name each problem.',
          ),
          ...h.authErrors,
          '409': h.error('The Idempotency-Key is in progress.'),
          '422': h.error('The Idempotency-Key was used with another body.'),
          '503': h.error('The run could not be started; nothing was created; retry.'),
        },
      },
      getTenantBatch: {
        parameters: [pathId('batchId', BatchId)],
        responses: {
          '200': { description: 'The batch.', ...h.json(h.ref('TenantBatch')) },
          ...h.authErrors,
          '404': h.error('No batch has this id.'),
        },
      },
      startMigration: {
        parameters: [idempotencyKey],
        requestBody: { required: false, ...h.json(h.ref('StartMigrationRequest')) },
        responses: {
          '200': {
            description: 'Nothing to migrate: the run is recorded `succeeded` with no tenant.',
            ...h.json(h.ref('Migration')),
          },
          '202': { description: 'The migrate-fleet run started.', ...h.json(h.ref('Migration')) },
          '400': h.error('Invalid body, or a tenant named is unknown or not active.'),
          ...h.authErrors,
          '409': h.error('Another migration runs (`migration_in_progress`).'),
          '503': h.error('The run could not be started; nothing changed; retry.'),
        },
      },
      getMigration: {
        parameters: [pathId('migrationId', MigrationId)],
        responses: {
          '200': { description: 'The run.', ...h.json(h.ref('Migration')) },
          ...h.authErrors,
          '404': h.error('No migration run has this id.'),
        },
      },
    },
    schemas: {
      CreateTenantBatchRequest: h.jsonSchema(CreateBatchRequestDocument, 'input'),
      TenantBatchDryRun: h.jsonSchema(BatchDryRunResponse, 'output'),
      TenantBatchCreated: h.jsonSchema(BatchCreatedResponse, 'output'),
      TenantBatch: h.jsonSchema(BatchResponse, 'output'),
      StartMigrationRequest: h.jsonSchema(StartMigrationRequest, 'input'),
      Migration: h.jsonSchema(MigrationResponse, 'output'),
    },
  };
}
