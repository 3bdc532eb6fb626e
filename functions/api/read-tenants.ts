import type {
  ListTenantsQuery,
  TenantListResponse,
  TenantResponse,
  TenantSummary,
} from '../../schema/api/tenants.ts';
import { DATABASE_ROLES, type DatabaseRole, TENANT_ID_PATTERN } from '../../schema/names.ts';
import { backupPolicyOf } from '../../schema/plans.ts';
import * as z from '../../schema/zod.ts';
import { NotFoundError, ValidationError } from '../shared/errors.ts';
import type { ProgressStore, StepRecord } from '../shared/progress.ts';
import type { Tenant, TenantResources, TenantStore } from '../shared/tenants.ts';

const selfLink = (id: string) => ({ self: `/tenants/${id}` });

/**
 * A tenant with its provisioning progress. A malformed id is answered 404 like an unknown one, without a
 * query: no tenant has it, and the answer does not teach callers the id format.
 */
export async function getTenant(
  stores: { readonly tenants: TenantStore; readonly progress: ProgressStore },
  tenantId: string,
): Promise<TenantResponse> {
  const tenant = TENANT_ID_PATTERN.test(tenantId) ? await stores.tenants.get(tenantId) : undefined;
  if (!tenant) throw new NotFoundError(`No tenant ${tenantId}`);
  return tenantResponse(tenant, await stores.progress.steps(tenant.id));
}

/** Only the names and ARNs the API shows: a field a step might add is not answered before it is reviewed. */
/** A by-role record with only the roles it holds (the response schema is strict: no `undefined` values). */
function byRole(values: Partial<Record<DatabaseRole, string>>): Partial<Record<DatabaseRole, string>> {
  return Object.fromEntries(
    DATABASE_ROLES.flatMap((role) => (values[role] !== undefined ? [[role, values[role]]] : [])),
  );
}

function resourcesResponse(resources: TenantResources): TenantResponse['resources'] {
  const { database, secrets, credentialExpiries, invitationSecretArn, storage, alarms, finalBackup } =
    resources;
  return {
    ...(database !== undefined ? { database } : {}),
    ...(secrets !== undefined
      ? {
          secrets: byRole(secrets),
        }
      : {}),
    ...(credentialExpiries !== undefined ? { credentialExpiries: byRole(credentialExpiries) } : {}),
    ...(invitationSecretArn !== undefined ? { invitationSecretArn } : {}),
    ...(storage !== undefined ? { storage: { bucket: storage.bucket, prefix: storage.prefix } } : {}),
    ...(alarms !== undefined ? { alarms: [...alarms] } : {}),
    ...(finalBackup !== undefined
      ? {
          finalBackup: {
            backupId: finalBackup.backupId,
            bucket: finalBackup.bucket,
            prefix: finalBackup.prefix,
            manifest: finalBackup.manifest,
          },
        }
      : {}),
  };
}

export function tenantResponse(tenant: Tenant, steps: readonly StepRecord[]): TenantResponse {
  return {
    id: tenant.id,
    slug: tenant.slug,
    name: tenant.name,
    plan: tenant.plan,
    status: tenant.status,
    limits: tenant.limits,
    adminUser: tenant.config.adminUser,
    features: tenant.config.features,
    securityPolicy: tenant.config.securityPolicy,
    compliance: tenant.config.compliance,
    settings: tenant.config.settings,
    backupPolicy: backupPolicyOf(tenant.plan, tenant.config.backupPolicy),
    resources: resourcesResponse(tenant.resources),
    failure: tenant.failure,
    leftovers: tenant.leftovers,
    executionArn: tenant.executionArn,
    schemaVersion: tenant.schemaVersion,
    progress: steps.map((step) => ({ ...step })),
    createdAt: tenant.createdAt,
    createdBy: tenant.createdBy,
    updatedAt: tenant.updatedAt,
    updatedBy: tenant.updatedBy,
    links: selfLink(tenant.id),
  };
}

const Cursor = z.strictObject({ after: z.string().check(z.regex(TENANT_ID_PATTERN)) });

/** An opaque cursor: the last id of a page, base64url JSON so that its shape can change. */
export const encodeCursor = (after: string): string =>
  Buffer.from(JSON.stringify({ after }), 'utf8').toString('base64url');

export function decodeCursor(cursor: string): string {
  const invalid = new ValidationError('Invalid cursor', [
    { path: 'cursor', message: 'Not a cursor this API gave; pass nextCursor as it came' },
  ]);
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw invalid;
  }
  const parsed = Cursor.safeParse(value);
  if (!parsed.success) throw invalid;
  return parsed.data.after;
}

function summary(tenant: Tenant): TenantSummary {
  return {
    id: tenant.id,
    slug: tenant.slug,
    name: tenant.name,
    plan: tenant.plan,
    status: tenant.status,
    createdAt: tenant.createdAt,
    updatedAt: tenant.updatedAt,
    links: selfLink(tenant.id),
  };
}

/** A page of tenants in id order (stable under inserts: keyset pagination), filtered by status and plan. */
export async function listTenants(store: TenantStore, query: ListTenantsQuery): Promise<TenantListResponse> {
  const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
  const { tenants, more } = await store.list({
    limit: query.limit,
    ...(query.status !== undefined ? { status: query.status } : {}),
    ...(query.plan !== undefined ? { plan: query.plan } : {}),
    ...(after !== undefined ? { after } : {}),
  });
  const last = tenants.at(-1);
  return { items: tenants.map(summary), nextCursor: more && last ? encodeCursor(last.id) : null };
}
