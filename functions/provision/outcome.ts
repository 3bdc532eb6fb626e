import type { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import type { S3Client } from '@aws-sdk/client-s3';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { databaseName, secretPrefix, storagePrefix } from '../../schema/names.ts';
import * as z from '../../schema/zod.ts';
import type { AuditStore } from '../shared/audit.ts';
import type { DataApi } from '../shared/data-api.ts';
import { type Announcer, announce } from '../shared/events.ts';
import { describeError } from '../shared/step.ts';
import type { StepFailure, Tenant, TenantStore } from '../shared/tenants.ts';
import { existingTenantAlarms } from './alarms.ts';
import { databaseExists } from './database.ts';
import { existingTenantRoles, openTenantDatabase } from './roles.ts';
import { listSecretsUnder } from './secrets.ts';
import { tenantObjectPages } from './storage.ts';

export const DETAIL_TYPES = {
  provisioned: 'Tenant Provisioned',
  failed: 'Tenant Provisioning Failed',
  rollbackFailed: 'Tenant Rollback Failed',
} as const;

export interface ActivateDeps extends Announcer {
  /** The provisioner on any database of the cluster. */
  readonly cluster: DataApi;
  readonly tenants: TenantStore;
  readonly actor: string;
}

/**
 * The last step: opens the tenant database to its roles, marks the tenant `active` with its audit entry
 * (once: a rerun does not repeat it), and announces `Tenant Provisioned` with names and ARNs,
 * never a secret value. The registry first, the event last: an event is only sent for a tenant that is active.
 */
export async function activateTenant(deps: ActivateDeps, tenant: Tenant): Promise<{ status: 'active' }> {
  await openTenantDatabase(deps.cluster, tenant.id);
  const { resources } = tenant;
  // Active and audited (once: a rerun does not repeat the entry) in one statement.
  await deps.tenants.setStatusAuditedOnce(
    tenant.id,
    'active',
    deps.actor,
    { failure: null, leftovers: null },
    {
      action: 'TENANT_PROVISIONED',
      details: { plan: tenant.plan, database: resources.database, schemaVersion: tenant.schemaVersion },
    },
  );
  const secretArns = [...Object.values(resources.secrets ?? {}), resources.invitationSecretArn].flatMap(
    (arn) => (arn ? [arn] : []),
  );
  await announce(
    deps,
    DETAIL_TYPES.provisioned,
    {
      tenantId: tenant.id,
      slug: tenant.slug,
      plan: tenant.plan,
      database: resources.database,
      secrets: resources.secrets ?? {},
      invitationSecretArn: resources.invitationSecretArn,
      storage: resources.storage,
      alarms: resources.alarms ?? [],
      schemaVersion: tenant.schemaVersion,
    },
    secretArns,
  );
  return { status: 'active' };
}

/** What Step Functions hands a Catch: `Error`, and `Cause` (for a Lambda error, its JSON error payload). */
export const CaughtFailure = z.object({ step: z.string(), Error: z.string(), Cause: z.optional(z.string()) });
export type CaughtFailure = z.infer<typeof CaughtFailure>;

const LambdaErrorPayload = z.object({ errorType: z.optional(z.string()), errorMessage: z.string() });
const CAUSE_MAX = 2000;

/** A caught failure as the registry keeps it: the Lambda error's message (without its stack), bounded. */
export function stepFailure(caught: CaughtFailure): StepFailure {
  let cause = caught.Cause ?? '';
  try {
    const payload = LambdaErrorPayload.safeParse(JSON.parse(cause));
    if (payload.success) cause = payload.data.errorMessage;
  } catch {
    // Not a Lambda payload (a States.* error): the cause is plain text.
  }
  return { step: caught.step, error: caught.Error, cause: cause.slice(0, CAUSE_MAX) };
}

/** What recording a run's failed end needs: the tenants, the audit log, and who writes it. */
export interface MarkDeps extends Announcer {
  readonly tenants: TenantStore;
  readonly audit: AuditStore;
  readonly actor: string;
}

/**
 * After the undo chain: the tenant is `failed` with the step and cause, audited (once), and
 * `Tenant Provisioning Failed` is announced.
 */
export async function markTenantFailed(
  deps: MarkDeps,
  tenantId: string,
  failure: StepFailure,
): Promise<{ status: 'failed' }> {
  const tenant = await deps.tenants.require(tenantId);
  await deps.tenants.setStatus(tenantId, 'failed', deps.actor, { failure, leftovers: null });
  // Status, not the log, says whether this run recorded it already: a retry of this task finds it failed.
  if (tenant.status !== 'failed') {
    await deps.audit.add(tenantId, 'TENANT_PROVISIONING_FAILED', deps.actor, { ...failure });
  }
  await announce(deps, DETAIL_TYPES.failed, { tenantId, slug: tenant.slug, plan: tenant.plan, failure });
  return { status: 'failed' };
}

export interface ScanDeps {
  readonly cluster: DataApi;
  readonly secrets: SecretsManagerClient;
  readonly s3: S3Client;
  readonly bucket: string;
  readonly cloudWatch: CloudWatchClient;
  readonly stage: string;
}

/**
 * What of the tenant still exists, found by the names its id gives: database, roles, secrets (those scheduled for
 * deletion too), objects, alarms. A check that itself fails is listed as unknown rather than taken for "nothing".
 */
export async function scanLeftovers(deps: ScanDeps, tenantId: string): Promise<string[]> {
  const checks: [string, () => Promise<string[]>][] = [
    [
      'database',
      async () => {
        const name = databaseName(tenantId);
        return (await databaseExists(deps.cluster, name)) ? [`database ${name}`] : [];
      },
    ],
    ['roles', async () => (await existingTenantRoles(deps.cluster, tenantId)).map((role) => `role ${role}`)],
    [
      'secrets',
      async () =>
        (await listSecretsUnder(deps.secrets, secretPrefix(deps.stage, tenantId))).map(
          (secret) => `secret ${secret.arn}${secret.deletedDate ? ' (scheduled for deletion)' : ''}`,
        ),
    ],
    [
      'objects',
      async () => {
        let count = 0;
        for await (const keys of tenantObjectPages(deps, tenantId)) count += keys.length;
        return count > 0 ? [`objects s3://${deps.bucket}/${storagePrefix(tenantId)} (${count})`] : [];
      },
    ],
    [
      'alarms',
      async () => (await existingTenantAlarms(deps.cloudWatch, tenantId)).map((name) => `alarm ${name}`),
    ],
  ];
  const found = await Promise.all(
    checks.map(async ([what, check]) => {
      try {
        return await check();
      } catch (error) {
        return [`unknown: ${what} (${describeError(error).error})`];
      }
    }),
  );
  return found.flat();
}

/**
 * An undo step kept failing: the tenant is `rollback_failed` with its original failure and what is left (scanned,
 * not assumed), audited, and `Tenant Rollback Failed` is announced for a person to finish the job.
 */
export async function markTenantRollbackFailed(
  deps: ScanDeps & MarkDeps,
  tenantId: string,
  failure: StepFailure | undefined,
  rollbackFailure: StepFailure,
): Promise<{ status: 'rollback_failed'; leftovers: string[] }> {
  const tenant = await deps.tenants.require(tenantId);
  const leftovers = await scanLeftovers(deps, tenantId);
  const recorded = failure ?? rollbackFailure;
  await deps.tenants.setStatus(tenantId, 'rollback_failed', deps.actor, { failure: recorded, leftovers });
  if (tenant.status !== 'rollback_failed') {
    await deps.audit.add(tenantId, 'TENANT_ROLLBACK_FAILED', deps.actor, {
      failure: recorded,
      rollbackFailure,
      leftovers,
    });
  }
  await announce(deps, DETAIL_TYPES.rollbackFailed, {
    tenantId,
    slug: tenant.slug,
    plan: tenant.plan,
    failure: recorded,
    rollbackFailure,
    leftovers,
  });
  return { status: 'rollback_failed', leftovers };
}
