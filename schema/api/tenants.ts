import {
  AUTH_METHODS,
  BACKUP_SCHEDULES,
  backupPolicyProblems,
  FEATURE_FLAGS,
  type FeatureFlag,
  LIMIT_NAMES,
  PLAN_NAMES,
  PLANS,
  type Plan,
  type PlanLimits,
  POLICY_RETENTION_DAYS,
} from '../plans.ts';
import * as z from '../zod.ts';
import { cidrProblem } from './cidr.ts';
import { deriveSlug, RESERVED_SLUGS, SLUG_MAX_LENGTH, SLUG_MIN_LENGTH, slugProblem } from './slug.ts';
import { inspectJson, text } from './text.ts';

/**
 * The request and response bodies of the tenants API, as zod schemas: the API validates with them, the
 * registry reads its JSON columns with them, and `openapi.ts` generates the OpenAPI document from them.
 * Every object is strict (an unknown field is refused, at any depth) and every optional field has its
 * default written here, so that the document shows it.
 */

export const TenantName = text(1, 200).check(
  z.meta({
    description: 'Display name, 1 to 200 characters after trimming, no control characters.',
    examples: ['Acme Corp'],
  }),
);

export const Slug = z
  .string()
  .check(
    z.superRefine((value, ctx) => {
      const problem = slugProblem(value);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    }),
  )
  .check(
    z.meta({
      description:
        `Lowercase letters, digits and single hyphens, starting with a letter, ${SLUG_MIN_LENGTH} to ` +
        `${SLUG_MAX_LENGTH} characters, not reserved (${[...RESERVED_SLUGS].join(', ')}). ` +
        'Derived from the name when absent: diacritics removed, lowercase, other characters as hyphens.',
      pattern: '^[a-z](?:[a-z0-9]|-(?=[a-z0-9])){2,39}$',
      examples: ['acme-corp'],
    }),
  );

export const PlanName = z.enum(PLAN_NAMES).check(
  z.meta({
    description: 'The subscription plan: its quotas, auth methods and feature flags (see the plans).',
  }),
);

export const AdminUser = z
  .strictObject({
    email: z
      .email()
      .check(z.maxLength(254))
      .check(z.meta({ examples: ['admin@acme.example'] })),
    firstName: z.optional(text(1, 100)),
    lastName: z.optional(text(1, 100)),
  })
  .check(
    z.meta({ description: "The tenant's first administrator, invited when the tenant is provisioned." }),
  );

const flag = (description: string) => z._default(z.boolean(), false).check(z.meta({ description }));

/** One entry per feature flag of `plans.ts`; the `satisfies` keeps the two lists from drifting apart. */
const featureFlags = {
  customBranding: flag('Custom logo, colours and domain.'),
  apiAccess: flag('API keys for the tenant.'),
  advancedAnalytics: flag('The analytics dashboard.'),
  auditExport: flag('Export of the activity log.'),
} satisfies Record<FeatureFlag, unknown>;

export const Features = z
  .strictObject({
    auth: z
      ._default(
        z.array(z.enum(AUTH_METHODS)).check(
          z.minLength(1),
          z.maxLength(AUTH_METHODS.length),
          z.refine((methods) => new Set(methods).size === methods.length, 'Each auth method appears once'),
        ),
        ['password'],
      )
      .check(
        z.meta({
          description:
            "Sign-in methods, each once and each in the plan's. `password` is not required: an SSO-only tenant is valid.",
        }),
      ),
    storage: z
      ._default(z.boolean(), true)
      .check(z.meta({ description: 'An S3 storage area for the tenant.' })),
    email: z
      ._default(z.boolean(), true)
      .check(z.meta({ description: 'Transactional email (the four templates).' })),
    ...featureFlags,
  })
  .check(z.meta({ description: 'Features; a method or flag the plan does not include is refused.' }));

export const PasswordPolicy = z.strictObject({
  minLength: z._default(z.int().check(z.minimum(8), z.maximum(128)), 12),
  requireUppercase: z._default(z.boolean(), true),
  requireLowercase: z._default(z.boolean(), true),
  requireNumbers: z._default(z.boolean(), true),
  requireSymbols: z._default(z.boolean(), true),
  preventReuse: z
    ._default(z.int().check(z.minimum(0), z.maximum(24)), 3)
    .check(z.meta({ description: 'How many past passwords may not be reused.' })),
  expiryDays: z
    ._default(z.int().check(z.minimum(0), z.maximum(365)), 90)
    .check(z.meta({ description: 'Days until a password expires; 0: never.' })),
});

export const SessionPolicy = z.strictObject({
  timeoutSeconds: z._default(z.int().check(z.minimum(300), z.maximum(86_400)), 3600),
  maxConcurrentSessions: z._default(z.int().check(z.minimum(1), z.maximum(100)), 3),
  extendOnActivity: z._default(z.boolean(), true),
});

export const Cidr = z
  .string()
  .check(
    z.maxLength(64),
    z.superRefine((value, ctx) => {
      const problem = cidrProblem(value);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    }),
  )
  .check(
    z.meta({
      description: 'An IPv4 or IPv6 network in CIDR notation, no bit set past the prefix.',
      examples: ['203.0.113.0/24'],
    }),
  );

export const SecurityPolicy = z.strictObject({
  passwordPolicy: z.prefault(PasswordPolicy, {}),
  session: z.prefault(SessionPolicy, {}),
  mfaRequired: z._default(z.boolean(), false).check(
    z.meta({
      description: 'Every user needs a second factor: `features.auth` must then include `2fa` or `passkey`.',
    }),
  ),
  allowedIpRanges: z
    ._default(z.array(Cidr).check(z.maxLength(100)), [])
    .check(z.meta({ description: 'Networks users may sign in from; empty: anywhere.' })),
});

/**
 * Retention of the tenant's stored objects, in days. A fixed set of values rather than any number: the stage's
 * bucket carries one lifecycle rule per value, filtered by the `RetentionDays` tag that the provisioning
 * tags the tenant's objects with. A bucket has one lifecycle document (at most 1,000 rules) for all tenants,
 * so a rule per tenant would mean rewriting a shared document on every provisioning and running out of rules.
 * 2,555 days is seven years, a common legal retention.
 */
export const RETENTION_DAYS = [30, 90, 180, 365, 730, 2555] as const;

export const Compliance = z.strictObject({
  retentionDays: z._default(z.literal(RETENTION_DAYS), 365).check(
    z.meta({
      description: 'Days stored objects are kept; one of the values the bucket has a lifecycle rule for.',
    }),
  ),
  encryptionLevel: z._default(z.enum(['standard', 'enhanced']), 'standard').check(
    z.meta({
      description: 'standard: SSE-S3; enhanced: SSE-KMS with the stage key.',
    }),
  ),
});

export const SETTINGS_MAX_BYTES = 16_384;
export const SETTINGS_MAX_DEPTH = 5;

/**
 * Free settings: a JSON object, its nesting measured and its keys and strings checked at any depth without
 * recursion (a body of 256 KB can nest 100,000 levels), its size measured only once its nesting is known to be
 * within bounds (`JSON.stringify` recurses too).
 */
export const Settings = z
  .record(z.string().check(z.maxLength(100)), z.unknown())
  .check(
    z.superRefine((value, ctx) => {
      const { tooDeep, problems } = inspectJson(value, SETTINGS_MAX_DEPTH);
      if (tooDeep) {
        ctx.addIssue({ code: 'custom', message: `At most ${SETTINGS_MAX_DEPTH} levels of nesting` });
      } else if (Buffer.byteLength(JSON.stringify(value)) > SETTINGS_MAX_BYTES) {
        ctx.addIssue({ code: 'custom', message: `At most ${SETTINGS_MAX_BYTES} bytes of JSON` });
      }
      for (const problem of problems) {
        ctx.addIssue({ code: 'custom', path: [...problem.path], message: problem.message });
      }
    }),
  )
  .check(
    z.meta({
      description: `Free application settings: a JSON object of at most ${SETTINGS_MAX_BYTES} bytes and ${SETTINGS_MAX_DEPTH} levels, no NUL character or lone surrogate in its keys and strings.`,
      examples: [{ theme: 'corporate', timezone: 'America/New_York' }],
    }),
  );

const limitValue = z.int().check(z.minimum(1));

/** The full limits of a tenant, as stored and answered. */
export const Limits = z.strictObject({
  maxUsers: limitValue,
  storageQuotaGb: limitValue,
  maxConnections: limitValue.check(z.meta({ description: "The tenant database's connection limit." })),
  maxApiKeys: limitValue,
  apiRequestsPerMinute: limitValue,
}) satisfies z.ZodMiniType<PlanLimits>;

export const LimitsOverride = z.partial(Limits).check(
  z.meta({
    description: "Lower quotas than the plan's; a value above the plan's maximum is refused.",
  }),
);

/** What the provisioning steps read beside the name, slug, plan and limits; stored as the tenant's `config`. */
/** A backup policy's fields, for the PATCH that changes some of them. */
export const BackupPolicyFields = z.strictObject({
  schedule: z.enum(BACKUP_SCHEDULES),
  retentionDays: z.union(POLICY_RETENTION_DAYS.map((days) => z.literal(days))),
});

export const BackupPolicySchema = BackupPolicyFields.check(
  z.meta({
    description:
      "The tenant's scheduled backups: how often and how long each is kept (days); the plan's policy when absent. Within the plan's bounds: basic weekly, at most 14 days; professional daily or weekly, at most 35; enterprise at most 90.",
  }),
);

export const TenantConfig = z.strictObject({
  adminUser: AdminUser,
  backupPolicy: z.optional(BackupPolicySchema),
  features: z.prefault(Features, {}),
  securityPolicy: z.prefault(SecurityPolicy, {}),
  compliance: z.prefault(Compliance, {}),
  settings: z._default(Settings, {}),
});
export type TenantConfig = z.output<typeof TenantConfig>;

const CreateTenantBody = z.strictObject({
  name: TenantName,
  slug: z.optional(Slug),
  plan: PlanName,
  ...TenantConfig.shape,
  limits: z._default(LimitsOverride, {}),
});

/** Limits may only lower a plan's quotas: an issue at `limits.<name>` for each one above the plan's. */
export function limitsWithinPlan(
  ctx: z.core.$RefinementCtx,
  plan: Plan,
  limits: Readonly<Partial<PlanLimits>>,
): void {
  for (const name of LIMIT_NAMES) {
    const value = limits[name];
    if (value !== undefined && value > plan.limits[name]) {
      ctx.addIssue({
        code: 'custom',
        path: ['limits', name],
        message: `${name} may not exceed ${plan.limits[name]} on the ${plan.name} plan`,
      });
    }
  }
}

/**
 * `POST /tenants`. Beyond each field's own rules: the plan must include every auth method and feature flag
 * asked for, limits may only lower the plan's, and `mfaRequired` needs a second factor among the auth methods.
 * The output always has a slug (derived from the name when absent).
 */
export const CreateTenantRequest = z.pipe(
  CreateTenantBody.check(
    z.superRefine((body, ctx) => {
      const plan = PLANS[body.plan];
      body.features.auth.forEach((method, i) => {
        if (!plan.auth.includes(method)) {
          ctx.addIssue({
            code: 'custom',
            path: ['features', 'auth', i],
            message: `The ${plan.name} plan does not include the auth method "${method}" (it has: ${plan.auth.join(', ')})`,
          });
        }
      });
      for (const name of FEATURE_FLAGS) {
        if (body.features[name] && !plan.features.includes(name)) {
          ctx.addIssue({
            code: 'custom',
            path: ['features', name],
            message: `The ${plan.name} plan does not include the feature "${name}"`,
          });
        }
      }
      limitsWithinPlan(ctx, plan, body.limits);
      for (const problem of backupPolicyProblems(plan.name, body.backupPolicy ?? {})) {
        ctx.addIssue({ code: 'custom', path: problem.path.split('.'), message: problem.message });
      }
      if (
        body.securityPolicy.mfaRequired &&
        !body.features.auth.some((method) => method === '2fa' || method === 'passkey')
      ) {
        ctx.addIssue({
          code: 'custom',
          path: ['securityPolicy', 'mfaRequired'],
          message: 'mfaRequired needs "2fa" or "passkey" in features.auth',
        });
      }
    }),
  ),
  z.transform((body, ctx) => {
    if (body.slug !== undefined) return { ...body, slug: body.slug };
    const slug = deriveSlug(body.name);
    const problem = slugProblem(slug);
    if (problem) {
      // A transform's context has no `addIssue` in zod mini: the issue is pushed as classic zod's would be.
      ctx.issues.push({
        code: 'custom',
        path: ['slug'],
        message: `No usable slug derives from the name ("${slug}": ${problem}); give one`,
        input: body,
      });
      return z.NEVER;
    }
    return { ...body, slug };
  }),
);
export type CreateTenantRequest = z.output<typeof CreateTenantRequest>;

// ---- Responses ----

/** Re-exported by `functions/shared/tenants.ts`, which the steps import. */
export const TENANT_STATUSES = [
  'provisioning',
  'active',
  'failed',
  'rollback_failed',
  'suspended',
  'deprovisioning',
  'deleted',
] as const;
export const TenantStatusSchema = z.enum(TENANT_STATUSES);

export const TenantId = z
  .string()
  .check(z.meta({ description: 'Generated: `t` and 15 of `[a-z0-9]`.', examples: ['t4k2m9x0q7w1z3ab'] }));

export const Links = z.strictObject({ self: z.string() });

export const CreateTenantResponse = z.strictObject({
  tenantId: TenantId,
  slug: z.string(),
  status: z.literal('provisioning'),
  executionArn: z
    .string()
    .check(z.meta({ description: 'The Step Functions execution provisioning the tenant.' })),
  links: Links,
});
export type CreateTenantResponse = z.output<typeof CreateTenantResponse>;

export const ErrorDetailSchema = z.strictObject({
  path: z
    .string()
    .check(
      z.meta({ description: 'Where in the request, e.g. `features.auth[1]`; empty for the whole body.' }),
    ),
  message: z.string(),
});

export const ErrorResponse = z.strictObject({
  error: z.strictObject({
    code: z.string().check(
      z.meta({
        description:
          'invalid_request, not_found, slug_taken, idempotency_key_reused, idempotency_key_in_progress, ' +
          'service_unavailable, internal_error.',
      }),
    ),
    message: z.string(),
    details: z.array(ErrorDetailSchema),
    suggestions: z
      .optional(z.array(z.string()))
      .check(z.meta({ description: 'For slug_taken: free slugs, checked when the answer was made.' })),
  }),
});
export type ErrorResponse = z.output<typeof ErrorResponse>;

/** A value per database role, for the roles that have one. */
const ByRole = z.strictObject({
  admin: z.optional(z.string()),
  app: z.optional(z.string()),
  readonly: z.optional(z.string()),
  auditor: z.optional(z.string()),
});

export const TenantResourcesSchema = z.strictObject({
  database: z.optional(z.string()),
  secrets: z.optional(ByRole).check(
    z.meta({
      description:
        'Secret ARNs by database role, for the roles that have credentials (those standing on the plan, and those issued with POST /tenants/{tenantId}/credentials); never a secret value.',
    }),
  ),
  credentialExpiries: z.optional(ByRole).check(
    z.meta({
      description: 'When issued credentials of roles not standing on the plan are revoked, by role.',
    }),
  ),
  invitationSecretArn: z.optional(z.string()),
  storage: z.optional(z.strictObject({ bucket: z.string(), prefix: z.string() })),
  alarms: z.optional(z.array(z.string())).check(z.meta({ description: 'Alarm names.' })),
  finalBackup: z
    .optional(
      z.strictObject({ backupId: z.string(), bucket: z.string(), prefix: z.string(), manifest: z.string() }),
    )
    .check(z.meta({ description: 'For a deleted tenant: where its final backup is.' })),
});

export const StepFailureSchema = z.strictObject({ step: z.string(), error: z.string(), cause: z.string() });

export const STEP_STATUSES = ['running', 'succeeded', 'failed'] as const;

export const StepProgress = z.strictObject({
  step: z.string(),
  status: z.enum(STEP_STATUSES),
  startedAt: z.string(),
  endedAt: z.nullable(z.string()),
  durationMs: z.nullable(z.int()),
  attempts: z.int(),
  error: z.nullable(z.strictObject({ error: z.string(), cause: z.string() })),
});
export type StepProgress = z.output<typeof StepProgress>;

export const TenantResponse = z.strictObject({
  id: TenantId,
  slug: z.string(),
  name: z.string(),
  plan: PlanName,
  status: TenantStatusSchema,
  limits: Limits,
  adminUser: AdminUser,
  features: Features,
  securityPolicy: SecurityPolicy,
  compliance: Compliance,
  settings: Settings,
  backupPolicy: BackupPolicySchema,
  resources: TenantResourcesSchema,
  failure: z.nullable(StepFailureSchema).check(
    z.meta({
      description: 'For failed and rollback_failed: the step and why.',
    }),
  ),
  leftovers: z
    .nullable(z.array(z.string()))
    .check(z.meta({ description: 'For rollback_failed: what could not be undone.' })),
  executionArn: z.nullable(z.string()),
  schemaVersion: z.nullable(z.int()),
  progress: z
    .array(StepProgress)
    .check(z.meta({ description: 'Each step run so far, in the order it started.' })),
  createdAt: z.string(),
  createdBy: z.string(),
  updatedAt: z.string(),
  updatedBy: z.string(),
  links: Links,
});
export type TenantResponse = z.output<typeof TenantResponse>;

export const TenantSummary = z.strictObject({
  id: TenantId,
  slug: z.string(),
  name: z.string(),
  plan: PlanName,
  status: TenantStatusSchema,
  createdAt: z.string(),
  updatedAt: z.string(),
  links: Links,
});
export type TenantSummary = z.output<typeof TenantSummary>;

export const LIST_DEFAULT_LIMIT = 20;
export const LIST_MAX_LIMIT = 100;

export const ListTenantsQuery = z.strictObject({
  status: z.optional(TenantStatusSchema),
  plan: z.optional(PlanName),
  limit: z._default(
    z.coerce.number().check(z.int(), z.minimum(1), z.maximum(LIST_MAX_LIMIT)),
    LIST_DEFAULT_LIMIT,
  ),
  cursor: z
    .optional(z.string().check(z.maxLength(200)))
    .check(z.meta({ description: 'The `nextCursor` of the previous page.' })),
});
export type ListTenantsQuery = z.output<typeof ListTenantsQuery>;

export const TenantListResponse = z.strictObject({
  items: z.array(TenantSummary),
  nextCursor: z
    .nullable(z.string())
    .check(z.meta({ description: 'Pass as `cursor` for the next page; null on the last.' })),
});
export type TenantListResponse = z.output<typeof TenantListResponse>;
