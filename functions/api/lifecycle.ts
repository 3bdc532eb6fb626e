import type { LifecycleOperationId } from '../../schema/api/lifecycle.ts';
import {
  type BackupListResponse,
  ChangePlanRequest,
  CreateBackupRequest,
  DeleteTenantQuery,
  type LifecycleOperation,
  type OperationAccepted,
  RestoreTenantRequest,
  type RestoreTenantResponse,
  ResumeTenantRequest,
  SuspendTenantRequest,
} from '../../schema/api/lifecycle.ts';
import { SLUG_MAX_LENGTH, slugProblem, truncateSlug } from '../../schema/api/slug.ts';
import { newTenantId, TENANT_ID_PATTERN } from '../../schema/names.ts';
import { ALLOWED_FROM, type StartDeps, startOperation } from '../lifecycle/start.ts';
import { assertPlanFits, resolvePlanTarget, type UsageDeps } from '../lifecycle/usage.ts';
import type { AuditStore } from '../shared/audit.ts';
import { NotFoundError, SlugTakenError, ValidationError } from '../shared/errors.ts';
import type { IdempotencyStore } from '../shared/idempotency-keys.ts';
import type { Tenant, TenantStore } from '../shared/tenants.ts';
import { actorOf, suggestSlugs } from './create-tenant.ts';
import { callerOf, type HttpEvent, type HttpResult, jsonBody, jsonResult, parseWith } from './http.ts';
import { idempotencyKeyOf, idempotent, requestHash } from './idempotency.ts';

export interface LifecycleDeps extends StartDeps {
  /** The ARN of each operation's state machine: the API starts them all. */
  readonly stateMachines: Readonly<Record<LifecycleOperation, string>>;
  readonly tenants: TenantStore;
  readonly audit: AuditStore;
  /** The first answers to requests with an `Idempotency-Key`. */
  readonly idempotency: IdempotencyStore;
  /** For the plan change's usage check. */
  readonly usage: UsageDeps;
  /** The time a backup starts; its id. */
  readonly now?: () => Date;
}

const tenantIdOf = (event: HttpEvent): string => {
  const id = event.pathParameters?.tenantId ?? '';
  // Malformed ids are answered like unknown ones, without a query (as GET /tenants/{id} does).
  if (!TENANT_ID_PATTERN.test(id)) throw new NotFoundError(`No tenant ${id}`);
  return id;
};

/** `POST /tenants/{id}/suspend`: an active tenant only. */
export function suspendTenant(
  deps: LifecycleDeps,
  tenantId: string,
  body: SuspendTenantRequest,
  caller: string,
) {
  return startOperation(deps, {
    tenantId,
    operation: 'suspend',
    input: { reason: body.reason },
    actor: actorOf(caller),
  });
}

/** `POST /tenants/{id}/resume`: a suspended tenant only. */
export function resumeTenant(
  deps: LifecycleDeps,
  tenantId: string,
  body: ResumeTenantRequest,
  caller: string,
) {
  return startOperation(deps, {
    tenantId,
    operation: 'resume',
    input: { reason: body.reason },
    actor: actorOf(caller),
  });
}

/**
 * `PATCH /tenants/{id}`: resolves the target plan and limits (400 for a limit above the plan's maximum), measures
 * the tenant's usage and refuses (409 `plan_change_refused`, one detail per problem) a change it would exceed or a
 * plan lacking a feature it uses; otherwise starts the change-plan run, which checks the usage again before it
 * changes anything.
 */
export async function changePlan(
  deps: LifecycleDeps,
  tenantId: string,
  body: ChangePlanRequest,
  caller: string,
): Promise<OperationAccepted> {
  const tenant = await deps.tenants.require(tenantId);
  const { target, backupPolicy, problems } = resolvePlanTarget(tenant, body);
  if (problems.length > 0)
    throw new ValidationError('The limits or the backup policy exceed the plan', problems);
  if (ALLOWED_FROM.change_plan.includes(tenant.status)) await assertPlanFits(deps.usage, tenant, target);
  return startOperation(deps, {
    tenantId,
    operation: 'change_plan',
    input: {
      plan: target.plan,
      limits: target.limits,
      // Recorded with the plan at the run's end (RecordPlan); nothing in AWS changes with it.
      backupPolicy,
      previous: { plan: tenant.plan, limits: tenant.limits },
      ...(body.reason !== undefined ? { reason: body.reason } : {}),
    },
    actor: actorOf(caller),
  });
}

/**
 * `DELETE /tenants/{id}?confirm=<slug>`: refused (400) unless `confirm` repeats the tenant's slug. The tenant is
 * `deprovisioning` at once; the run suspends it, takes the final backup, then removes its resources.
 */
export async function deleteTenant(
  deps: LifecycleDeps,
  tenantId: string,
  query: DeleteTenantQuery,
  caller: string,
): Promise<OperationAccepted & { backupId: string }> {
  const confirmation = (tenant: Tenant) => {
    if (query.confirm === undefined) {
      throw new ValidationError('Deleting a tenant needs ?confirm=<its slug>', [
        { path: 'confirm', message: "Required: the tenant's slug" },
      ]);
    }
    if (query.confirm !== tenant.slug) {
      throw new ValidationError("confirm does not match the tenant's slug; nothing was deleted", [
        { path: 'confirm', message: "Must repeat the tenant's slug" },
      ]);
    }
  };
  // Checked before the claim too, so that a wrong slug is a 400 whatever the tenant's status.
  confirmation(await deps.tenants.require(tenantId));
  const backupId = (deps.now?.() ?? new Date()).toISOString();
  const accepted = await startOperation(deps, {
    tenantId,
    operation: 'delete',
    input: { backupId, ...(query.reason !== undefined ? { reason: query.reason } : {}) },
    actor: actorOf(caller),
    setStatus: 'deprovisioning',
    check: confirmation,
  });
  return { ...accepted, backupId };
}

/** `POST /tenants/{id}/backups`: an active or suspended tenant. */
export async function createBackup(
  deps: LifecycleDeps,
  tenantId: string,
  body: CreateBackupRequest,
  caller: string,
): Promise<OperationAccepted & { backupId: string }> {
  const backupId = (deps.now?.() ?? new Date()).toISOString();
  const accepted = await startOperation(deps, {
    tenantId,
    operation: 'backup',
    input: { backupId, ...(body.reason !== undefined ? { reason: body.reason } : {}) },
    actor: actorOf(caller),
  });
  return { ...accepted, backupId };
}

/** `GET /tenants/{id}/backups`: completed backups, newest first; a deleted tenant's included. */
export async function listBackups(deps: LifecycleDeps, tenantId: string): Promise<BackupListResponse> {
  await deps.tenants.require(tenantId);
  return { items: await deps.store.backups(tenantId) };
}

const RESTORED_SUFFIX = ' (restored)';

/**
 * `POST /tenants/{id}/restore`: a new tenant from one of the tenant's backups, with the source's plan, limits and
 * configuration. Its slug is the one asked for (409 `slug_taken` with suggestions when another tenant has it) or,
 * by default, `<source slug>-restored` or a free variant of it. The restore-tenant run provisions it from the
 * backup and checks it against the manifest.
 */
export async function restoreTenant(
  deps: LifecycleDeps,
  sourceId: string,
  body: RestoreTenantRequest,
  caller: string,
): Promise<RestoreTenantResponse> {
  const actor = actorOf(caller);
  const source = await deps.tenants.require(sourceId);
  const backup = await deps.store.backup(source.id, body.backup);
  if (!backup) throw new NotFoundError(`Tenant ${source.id} has no completed backup ${body.backup}`);
  const name = body.name ?? `${source.name.slice(0, 200 - RESTORED_SUFFIX.length)}${RESTORED_SUFFIX}`;
  const tenantId = newTenantId();
  const reserve = (slug: string) =>
    deps.tenants.reserve(
      { id: tenantId, slug, name, plan: source.plan, limits: source.limits, config: source.config },
      actor,
    );
  let slug = body.slug ?? `${truncateSlug(source.slug, SLUG_MAX_LENGTH - '-restored'.length)}-restored`;
  if (slugProblem(slug)) slug = `restored-${tenantId.slice(1, 9)}`;
  if (!(await reserve(slug))) {
    const suggestions = await suggestSlugs(deps.tenants, slug, source.plan);
    const free = suggestions[0];
    if (body.slug !== undefined || free === undefined || !(await reserve(free))) {
      throw new SlugTakenError(slug, suggestions);
    }
    slug = free;
  }
  const restoredFrom = { tenantId: source.id, backupId: backup.backupId };
  let accepted: OperationAccepted;
  try {
    accepted = await startOperation(deps, {
      tenantId,
      operation: 'restore',
      input: { source: restoredFrom },
      actor: actorOf(caller),
      executionName: () => tenantId,
    });
  } catch (error) {
    await deps.tenants.discardReservation(tenantId);
    throw error;
  }
  await deps.audit.add(source.id, 'TENANT_RESTORE_STARTED', actor, { ...restoredFrom, into: tenantId });
  return {
    tenantId,
    slug,
    status: 'provisioning',
    executionArn: accepted.executionArn,
    links: { self: `/tenants/${tenantId}` },
    restoredFrom,
  };
}

/** The body when there is one; `{}` for none (a body-less POST). */
function optionalJsonBody(event: HttpEvent): unknown {
  if (event.body === undefined || event.body === '') return {};
  return jsonBody(event);
}

/**
 * The lifecycle routes as api-handler operations, on the clients and stores the api function's composition root
 * hands in (functions/api/handler.ts). A request with an `Idempotency-Key` is answered once per key (its hash
 * covers the path and query, so the same key on another tenant is another request).
 */
export function lifecycleRoutes(
  deps: LifecycleDeps,
): Record<LifecycleOperationId, (event: HttpEvent) => Promise<HttpResult>> {
  /** Runs `answer` once per Idempotency-Key when the request has one. */
  const once = async (event: HttpEvent, raw: unknown, answer: () => Promise<HttpResult>) => {
    const key = idempotencyKeyOf(event);
    if (key === undefined) return answer();
    const query = new URLSearchParams(event.queryStringParameters ?? {}).toString();
    const hash = requestHash(`${event.routeKey} ${event.rawPath}?${query}`, raw);
    return idempotent(deps.idempotency, { caller: callerOf(event), key, hash }, answer, { log: deps.log });
  };
  const accepted = (body: { links: { self: string } }) =>
    jsonResult(202, body, { location: body.links.self });

  return {
    async suspendTenant(event) {
      const raw = jsonBody(event);
      const body = parseWith(SuspendTenantRequest, raw);
      return once(event, raw, async () =>
        accepted(await suspendTenant(deps, tenantIdOf(event), body, callerOf(event))),
      );
    },
    async resumeTenant(event) {
      const raw = jsonBody(event);
      const body = parseWith(ResumeTenantRequest, raw);
      return once(event, raw, async () =>
        accepted(await resumeTenant(deps, tenantIdOf(event), body, callerOf(event))),
      );
    },
    async changePlan(event) {
      const raw = jsonBody(event);
      const body = parseWith(ChangePlanRequest, raw);
      return once(event, raw, async () =>
        accepted(await changePlan(deps, tenantIdOf(event), body, callerOf(event))),
      );
    },
    async deleteTenant(event) {
      const query = parseWith(
        DeleteTenantQuery,
        event.queryStringParameters ?? {},
        'Invalid query parameters',
      );
      return once(event, {}, async () =>
        accepted(await deleteTenant(deps, tenantIdOf(event), query, callerOf(event))),
      );
    },
    async createBackup(event) {
      const raw = optionalJsonBody(event);
      const body = parseWith(CreateBackupRequest, raw);
      return once(event, raw, async () =>
        accepted(await createBackup(deps, tenantIdOf(event), body, callerOf(event))),
      );
    },
    async listBackups(event) {
      return jsonResult(200, await listBackups(deps, tenantIdOf(event)));
    },
    async restoreTenant(event) {
      const raw = jsonBody(event);
      const body = parseWith(RestoreTenantRequest, raw);
      return once(event, raw, async () =>
        accepted(await restoreTenant(deps, tenantIdOf(event), body, callerOf(event))),
      );
    },
  };
}
