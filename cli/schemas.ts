import { z } from 'zod';

/**
 * The API's answers as the CLI reads them: only the fields it uses, loose objects, so that a field the API adds
 * does not break a CLI of an older version.
 */

export const Step = z.looseObject({
  step: z.string(),
  status: z.enum(['running', 'succeeded', 'failed']),
  startedAt: z.string(),
  endedAt: z.string().nullable(),
  durationMs: z.number().nullable(),
  attempts: z.number(),
  error: z.looseObject({ error: z.string(), cause: z.string() }).nullable(),
});
export type Step = z.infer<typeof Step>;

export const Tenant = z.looseObject({
  id: z.string(),
  slug: z.string(),
  name: z.string(),
  plan: z.string(),
  status: z.string(),
  limits: z.record(z.string(), z.number()),
  failure: z.looseObject({ step: z.string(), error: z.string(), cause: z.string() }).nullable(),
  leftovers: z.array(z.string()).nullable(),
  executionArn: z.string().nullable(),
  schemaVersion: z.number().nullable(),
  progress: z.array(Step),
  resources: z.record(z.string(), z.unknown()),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type Tenant = z.infer<typeof Tenant>;

export const TenantList = z.looseObject({
  items: z.array(
    z.looseObject({
      id: z.string(),
      slug: z.string(),
      name: z.string(),
      plan: z.string(),
      status: z.string(),
      createdAt: z.string(),
    }),
  ),
  nextCursor: z.string().nullable(),
});

export const Created = z.looseObject({
  tenantId: z.string(),
  slug: z.string(),
  status: z.string(),
  executionArn: z.string(),
});

export const Restored = Created.extend({
  restoredFrom: z.looseObject({ tenantId: z.string(), backupId: z.string() }),
});

export const OperationAccepted = z.looseObject({
  tenantId: z.string(),
  operationId: z.string(),
  operation: z.string(),
  status: z.string(),
  executionArn: z.string(),
});

export const IssuedCredentials = z.looseObject({
  tenantId: z.string(),
  role: z.string(),
  secretArn: z.string(),
  expiresAt: z.string().optional(),
});

export const BackupList = z.looseObject({
  items: z.array(
    z.looseObject({
      backupId: z.string(),
      kind: z.string(),
      createdAt: z.string(),
      schemaVersion: z.number(),
      tables: z.number(),
      rows: z.number(),
      bytes: z.number(),
    }),
  ),
});

const Reading = z.looseObject({
  used: z.number(),
  unit: z.string(),
  limit: z.number().optional(),
  share: z.number().optional(),
});

export const Usage = z.looseObject({
  tenantId: z.string(),
  measuredAt: z.string().nullable(),
  readings: z.record(z.string(), Reading),
  exceeded: z.array(z.string()),
  problems: z.array(z.looseObject({ measures: z.array(z.string()), reason: z.string() })),
});

const Problem = z.looseObject({ path: z.string(), message: z.string() });

export const BatchDryRun = z.looseObject({
  dryRun: z.literal(true),
  valid: z.boolean(),
  summary: z.looseObject({ rows: z.number(), valid: z.number(), invalid: z.number() }),
  rows: z.array(
    z.looseObject({
      index: z.number(),
      line: z.number().nullable(),
      name: z.string().nullable(),
      slug: z.string().nullable(),
      plan: z.string().nullable(),
      problems: z.array(Problem),
      suggestions: z.array(z.string()),
    }),
  ),
});
export type BatchDryRun = z.infer<typeof BatchDryRun>;

export const BatchCreated = z.looseObject({
  batchId: z.string(),
  status: z.string(),
  executionArn: z.string(),
  rows: z.array(
    z.looseObject({ index: z.number(), line: z.number().nullable(), slug: z.string(), tenantId: z.string() }),
  ),
});

export const BatchRow = z.looseObject({
  index: z.number(),
  line: z.number().nullable(),
  name: z.string(),
  slug: z.string(),
  tenantId: z.string(),
  outcome: z.enum(['pending', 'provisioning', 'succeeded', 'failed']),
  tenantStatus: z.string().nullable(),
  step: z.string().nullable(),
  error: z.looseObject({ step: z.string().nullable(), error: z.string(), cause: z.string() }).nullable(),
  leftovers: z.array(z.string()).nullable(),
});
export type BatchRow = z.infer<typeof BatchRow>;

export const Batch = z.looseObject({
  id: z.string(),
  status: z.string(),
  summary: z.looseObject({
    rows: z.number(),
    pending: z.number(),
    provisioning: z.number(),
    succeeded: z.number(),
    failed: z.number(),
  }),
  rows: z.array(BatchRow),
  error: z.looseObject({ error: z.string(), cause: z.string() }).nullable(),
});
export type Batch = z.infer<typeof Batch>;

export const Migration = z.looseObject({
  id: z.string(),
  status: z.string(),
  targetVersion: z.number(),
  toleratedFailures: z.number(),
  summary: z.looseObject({
    tenants: z.number(),
    pending: z.number(),
    succeeded: z.number(),
    failed: z.number(),
    skipped: z.number(),
  }),
  failures: z.array(
    z.looseObject({
      tenantId: z.string(),
      slug: z.string().nullable(),
      error: z.looseObject({ error: z.string(), cause: z.string() }),
    }),
  ),
  error: z.looseObject({ error: z.string(), cause: z.string() }).nullable(),
  executionArn: z.string().nullable(),
  durationMs: z.number().nullable(),
});
export type Migration = z.infer<typeof Migration>;
