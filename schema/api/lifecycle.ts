import { PLANS } from '../plans.ts';
import * as z from '../zod.ts';
import {
  BackupPolicyFields,
  CreateTenantResponse,
  LimitsOverride,
  limitsWithinPlan,
  PlanName,
  Slug,
  TenantId,
  TenantName,
  TenantStatusSchema,
} from './tenants.ts';
import { text } from './text.ts';

/**
 * The request and response bodies of the lifecycle routes (suspend, resume, plan change, delete, backups,
 * restore), as zod schemas: `functions/api/lifecycle.ts` validates with them and `openapi.ts` documents them.
 * Every object is strict, as in `tenants.ts`.
 */

export const Reason = text(1, 500).check(
  z.meta({
    description: 'Why, for the audit log and the event: 1 to 500 characters, no control characters.',
    examples: ['Invoice 2024-117 unpaid for 60 days'],
  }),
);

/** The lifecycle operations, as the registry's `tenant_operations` and the API's answers name them. */
export const LIFECYCLE_OPERATIONS = [
  'suspend',
  'resume',
  'change_plan',
  'delete',
  'backup',
  'restore',
] as const;
export const LifecycleOperation = z.enum(LIFECYCLE_OPERATIONS);
export type LifecycleOperation = z.output<typeof LifecycleOperation>;

/** `POST /tenants/{tenantId}/suspend`. */
export const SuspendTenantRequest = z.strictObject({ reason: Reason });
export type SuspendTenantRequest = z.output<typeof SuspendTenantRequest>;

/** `POST /tenants/{tenantId}/resume`. */
export const ResumeTenantRequest = z.strictObject({ reason: Reason });
export type ResumeTenantRequest = z.output<typeof ResumeTenantRequest>;

/**
 * `PATCH /tenants/{tenantId}`: a new plan, new limits, or both. With a new plan the limits become that plan's,
 * lowered where `limits` asks; without one, `limits` lowers or raises the current limits within the current plan.
 * A limit above the plan's maximum is refused here when the plan is given, and against the tenant's plan otherwise.
 */
export const ChangePlanRequest = z
  .strictObject({
    plan: z.optional(PlanName),
    limits: z.optional(LimitsOverride),
    backupPolicy: z.optional(
      z.partial(BackupPolicyFields).check(
        z.meta({
          description:
            "The tenant's backup policy, or part of it; the rest is kept (or, with a new plan, that plan's). Within the target plan's bounds.",
        }),
      ),
    ),
    reason: z.optional(Reason),
  })
  .check(
    z.superRefine((body, ctx) => {
      const limits = body.limits === undefined ? 0 : Object.keys(body.limits).length;
      const policy = body.backupPolicy === undefined ? 0 : Object.keys(body.backupPolicy).length;
      if (body.plan === undefined && limits === 0 && policy === 0) {
        ctx.addIssue({ code: 'custom', path: [], message: 'Give a plan, limits or a backup policy' });
      }
      if (body.plan === undefined || body.limits === undefined) return;
      limitsWithinPlan(ctx, PLANS[body.plan], body.limits);
    }),
  );
export type ChangePlanRequest = z.output<typeof ChangePlanRequest>;

/** `DELETE /tenants/{tenantId}?confirm=<slug>`: the tenant's slug, repeated, so that no id typo deletes a tenant. */
export const DeleteTenantQuery = z.strictObject({
  confirm: z.optional(z.string().check(z.maxLength(100))).check(
    z.meta({
      description: "The tenant's slug, repeated; without it, or with another, nothing is deleted.",
    }),
  ),
  reason: z.optional(Reason),
});
export type DeleteTenantQuery = z.output<typeof DeleteTenantQuery>;

/** `POST /tenants/{tenantId}/backups`; the body may be absent. */
export const CreateBackupRequest = z.strictObject({ reason: z.optional(Reason) });
export type CreateBackupRequest = z.output<typeof CreateBackupRequest>;

/** A backup's id: its UTC start time, ISO 8601 to the millisecond, which is also its folder name. */
export const BackupId = z
  .string()
  .check(
    z.regex(
      /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/,
      'A backup id is its ISO time, e.g. 2025-01-31T12:00:00.000Z',
    ),
  )
  .check(
    z.meta({
      description: 'The backup: its UTC start time, the folder under backups/<tenantId>/.',
      examples: ['2025-01-31T12:00:00.000Z'],
    }),
  );

/**
 * `POST /tenants/{tenantId}/restore`: restores one of the tenant's backups into a NEW tenant (its own id, database,
 * roles and secrets), whatever the source's status, deleted included. The new tenant has the source's plan, limits
 * and configuration; its name and slug default to the source's name with " (restored)" and a free slug derived
 * from it.
 */
export const RestoreTenantRequest = z.strictObject({
  backup: BackupId,
  name: z.optional(TenantName),
  slug: z.optional(Slug),
});
export type RestoreTenantRequest = z.output<typeof RestoreTenantRequest>;

// ---- Responses ----

export const OperationLinks = z.strictObject({
  self: z
    .string()
    .check(z.meta({ description: 'The tenant: its status and step progress show how the run goes.' })),
});

/** The answer to every lifecycle operation that starts a state machine run. */
export const OperationAccepted = z.strictObject({
  tenantId: TenantId,
  operationId: z.string().check(z.meta({ description: 'The operation, as the registry records it.' })),
  operation: LifecycleOperation,
  status: TenantStatusSchema.check(z.meta({ description: "The tenant's status when the run started." })),
  executionArn: z.string().check(z.meta({ description: 'The Step Functions execution doing the work.' })),
  backupId: z
    .optional(z.string())
    .check(
      z.meta({ description: 'For a backup or a delete (its final backup): the id the backup will have.' }),
    ),
  links: OperationLinks,
});
export type OperationAccepted = z.output<typeof OperationAccepted>;

export const BACKUP_KINDS = ['scheduled', 'on_demand', 'final'] as const;

export const BackupLocation = z.strictObject({
  bucket: z.string(),
  prefix: z.string().check(z.meta({ description: 'backups/<tenantId>/<backupId>/' })),
  manifest: z
    .string()
    .check(z.meta({ description: "The manifest's key: tables, row counts, sha256 checksums." })),
});

export const BackupSummary = z.strictObject({
  backupId: BackupId,
  tenantId: TenantId,
  kind: z.enum(BACKUP_KINDS),
  createdAt: z.string(),
  schemaVersion: z.int().check(z.meta({ description: "The tenant template's version the data has." })),
  tables: z.int(),
  rows: z.int(),
  bytes: z.int(),
  location: BackupLocation,
});
export type BackupSummary = z.output<typeof BackupSummary>;

export const BackupListResponse = z.strictObject({ items: z.array(BackupSummary) });
export type BackupListResponse = z.output<typeof BackupListResponse>;

export const RestoreTenantResponse = z.strictObject({
  ...CreateTenantResponse.shape,
  restoredFrom: z.strictObject({ tenantId: TenantId, backupId: BackupId }),
});
export type RestoreTenantResponse = z.output<typeof RestoreTenantResponse>;

// ---- OpenAPI ----

type JsonSchema = Record<string, unknown>;

/** The helpers of `openapi.ts` this file's operations are written with (passed in: no import cycle). */
export interface OpenApiHelpers {
  readonly jsonSchema: (schema: z.ZodMiniType, io: 'input' | 'output') => JsonSchema;
  readonly ref: (name: string) => JsonSchema;
  readonly json: (schema: JsonSchema) => Record<string, unknown>;
  readonly error: (description: string, schema?: string) => Record<string, unknown>;
  readonly authErrors: Record<string, unknown>;
  /** Query parameters from a flat query schema. */
  readonly queryParameters: (schema: z.ZodMiniObject) => unknown[];
}

/** The lifecycle routes' operation ids (routes.ts routes them). */
export type LifecycleOperationId =
  | 'suspendTenant'
  | 'resumeTenant'
  | 'changePlan'
  | 'deleteTenant'
  | 'createBackup'
  | 'listBackups'
  | 'restoreTenant';

/** The lifecycle operations and component schemas of the OpenAPI document. */
export function lifecycleOpenApi(h: OpenApiHelpers): {
  operations: Record<LifecycleOperationId, Record<string, unknown>>;
  schemas: Record<string, JsonSchema>;
} {
  const tenantIdParameter = {
    name: 'tenantId',
    in: 'path',
    required: true,
    schema: h.jsonSchema(TenantId, 'output'),
  };
  const idempotencyKey = {
    name: 'Idempotency-Key',
    in: 'header',
    required: false,
    description:
      'As for POST /tenants: the first answer to this key (per caller, path and body) is answered again.',
    schema: { type: 'string', minLength: 1, maxLength: 255 },
  };
  const accepted = (description: string) => ({ description, ...h.json(h.ref('OperationAccepted')) });
  const common = {
    ...h.authErrors,
    '404': h.error('No tenant has this id.'),
    '409': h.error(
      'The tenant is not in a status the operation starts from (`invalid_state`), or another operation runs (`operation_in_progress`).',
    ),
    '503': h.error('The run could not be started; nothing changed; retry.'),
  };
  const withBody = (schema: string) => ({ required: true, ...h.json(h.ref(schema)) });
  return {
    operations: {
      suspendTenant: {
        parameters: [tenantIdParameter, idempotencyKey],
        requestBody: withBody('SuspendTenantRequest'),
        responses: {
          '202': accepted('The suspend-tenant run started; the tenant is `suspended` when it ends.'),
          '400': h.error('Invalid body.'),
          ...common,
        },
      },
      resumeTenant: {
        parameters: [tenantIdParameter, idempotencyKey],
        requestBody: withBody('ResumeTenantRequest'),
        responses: {
          '202': accepted('The resume-tenant run started; the tenant is `active` when it ends.'),
          '400': h.error('Invalid body.'),
          ...common,
        },
      },
      changePlan: {
        parameters: [tenantIdParameter, idempotencyKey],
        requestBody: withBody('ChangePlanRequest'),
        responses: {
          '202': accepted('The change-plan run started.'),
          '400': h.error('Invalid body, or a limit above the plan’s maximum.'),
          ...common,
          '409': h.error(
            '`plan_change_refused`: current usage exceeds the new limits, or the plan lacks a feature the tenant uses; `details` names each. Or `invalid_state`, `operation_in_progress`.',
          ),
        },
      },
      deleteTenant: {
        parameters: [tenantIdParameter, ...h.queryParameters(DeleteTenantQuery), idempotencyKey],
        responses: {
          '202': accepted(
            'The delete-tenant run started; the tenant is `deprovisioning`, then `deleted` with its final backup.',
          ),
          '400': h.error('`confirm` is missing or is not the tenant’s slug; nothing was deleted.'),
          ...common,
        },
      },
      createBackup: {
        parameters: [tenantIdParameter, idempotencyKey],
        requestBody: { required: false, ...h.json(h.ref('CreateBackupRequest')) },
        responses: {
          '202': accepted('The backup-tenant run started; `backupId` is the backup’s id.'),
          '400': h.error('Invalid body.'),
          ...common,
        },
      },
      listBackups: {
        parameters: [tenantIdParameter],
        responses: {
          '200': { description: 'Completed backups, newest first.', ...h.json(h.ref('BackupList')) },
          ...h.authErrors,
          '404': h.error('No tenant has this id.'),
        },
      },
      restoreTenant: {
        parameters: [tenantIdParameter, idempotencyKey],
        requestBody: withBody('RestoreTenantRequest'),
        responses: {
          '202': {
            description: 'A new tenant is reserved and the restore-tenant run started.',
            ...h.json(h.ref('RestoreTenantResponse')),
          },
          '400': h.error('Invalid body.'),
          ...h.authErrors,
          '404': h.error('No tenant has this id, or it has no completed backup with this id.'),
          '409': h.error('The slug asked for is taken (`slug_taken`, with `suggestions`).'),
          '503': h.error('The run could not be started; nothing was created; retry.'),
        },
      },
    },
    schemas: {
      SuspendTenantRequest: h.jsonSchema(SuspendTenantRequest, 'input'),
      ResumeTenantRequest: h.jsonSchema(ResumeTenantRequest, 'input'),
      ChangePlanRequest: h.jsonSchema(ChangePlanRequest, 'input'),
      CreateBackupRequest: h.jsonSchema(CreateBackupRequest, 'input'),
      RestoreTenantRequest: h.jsonSchema(RestoreTenantRequest, 'input'),
      OperationAccepted: h.jsonSchema(OperationAccepted, 'output'),
      BackupList: h.jsonSchema(BackupListResponse, 'output'),
      RestoreTenantResponse: h.jsonSchema(RestoreTenantResponse, 'output'),
    },
  };
}
