import { TENANT_ID_PATTERN } from '../names.ts';
import * as z from '../zod.ts';
import { Links, TenantId } from './tenants.ts';

/**
 * Fleet migrations, `POST /migrations` and `GET /migrations/{migrationId}`: the tenant template's latest
 * migrations (`schema/tenant/`) applied to every active tenant behind it, or to the tenants named (a retry of those
 * that failed), by the migrate-fleet state machine.
 */

export const MigrationId = z
  .string()
  .check(z.meta({ description: 'Generated: `m` and 15 of `[a-z0-9]`.', examples: ['m4k2m9x0q7w1z3ab'] }));
export const MIGRATION_ID_PATTERN = /^m[a-z0-9]{15}$/;

/** Without a threshold in the request: more than this share of the run's tenants failing stops it. */
export const DEFAULT_TOLERATED_FAILURE_PERCENTAGE = 10;
export const MAX_MIGRATION_TENANT_IDS = 1000;

export const StartMigrationRequest = z.strictObject({
  tenantIds: z
    .optional(
      z.array(z.string().check(z.regex(TENANT_ID_PATTERN, 'Not a tenant id'))).check(
        z.minLength(1),
        z.maxLength(MAX_MIGRATION_TENANT_IDS),
        z.refine((ids) => new Set(ids).size === ids.length, 'Each tenant appears once'),
      ),
    )
    .check(
      z.meta({
        description:
          'Only these tenants (each must be active), e.g. those a run reported failed; every active tenant behind the latest version by default.',
      }),
    ),
  toleratedFailureCount: z.optional(z.int().check(z.minimum(0))).check(
    z.meta({
      description: 'More failed tenants than this stop the run; the tenants not yet started are skipped.',
    }),
  ),
  toleratedFailurePercentage: z.optional(z.number().check(z.minimum(0), z.maximum(100))).check(
    z.meta({
      description: `The same as a share of the run's tenants; ${DEFAULT_TOLERATED_FAILURE_PERCENTAGE}% when neither threshold is given. With both, the lower wins.`,
    }),
  ),
});
export type StartMigrationRequest = z.output<typeof StartMigrationRequest>;

export const MIGRATION_STATUSES = ['running', 'succeeded', 'completed_with_failures', 'failed'] as const;
export type MigrationStatus = (typeof MIGRATION_STATUSES)[number];

export const TenantMigrationFailure = z.strictObject({
  tenantId: TenantId,
  slug: z.nullable(z.string()),
  fromVersion: z.nullable(z.int()),
  error: z.strictObject({ error: z.string(), cause: z.string() }),
});
export type TenantMigrationFailure = z.output<typeof TenantMigrationFailure>;

/** A run, as `POST /migrations` and `GET /migrations/{migrationId}` answer it. */
export const MigrationResponse = z.strictObject({
  id: MigrationId,
  status: z.enum(MIGRATION_STATUSES).check(
    z.meta({
      description:
        'running; succeeded (every tenant, or nothing to do); completed_with_failures (failures within the ' +
        'threshold); failed (the threshold was exceeded, or the run itself failed).',
    }),
  ),
  scope: z
    .enum(['fleet', 'tenants'])
    .check(z.meta({ description: 'Every active tenant, or the tenants named.' })),
  targetVersion: z.int().check(z.meta({ description: "The tenant template's latest version." })),
  toleratedFailures: z.int(),
  summary: z.strictObject({
    tenants: z
      .int()
      .check(z.meta({ description: 'Tenants the run covers: those behind the target version.' })),
    pending: z.int(),
    succeeded: z.int(),
    failed: z.int(),
    skipped: z
      .int()
      .check(z.meta({ description: 'No longer active when reached, or not started after the threshold.' })),
  }),
  failures: z
    .array(TenantMigrationFailure)
    .check(z.meta({ description: 'Every tenant that failed, with why.' })),
  error: z.nullable(z.strictObject({ error: z.string(), cause: z.string() })),
  executionArn: z
    .nullable(z.string())
    .check(z.meta({ description: 'Null when there was nothing to migrate.' })),
  createdAt: z.string(),
  createdBy: z.string(),
  endedAt: z.nullable(z.string()),
  durationMs: z.nullable(z.int()),
  links: Links,
});
export type MigrationResponse = z.output<typeof MigrationResponse>;
