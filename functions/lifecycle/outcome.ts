import type { LifecycleOperation } from '../../schema/api/lifecycle.ts';
import { type ScanDeps, scanLeftovers } from '../provision/outcome.ts';
import type { AuditStore } from '../shared/audit.ts';
import { type Announcer, announce } from '../shared/events.ts';
import type { FinalBackup, StepFailure, TenantStatus, TenantStore } from '../shared/tenants.ts';
import type { LifecycleStore } from './operations.ts';

/** What each operation's outcome is called in the audit log and on the event bus. */
export const OUTCOMES: Readonly<
  Record<LifecycleOperation, { done: string; doneEvent: string; failed: string; failedEvent: string }>
> = {
  suspend: {
    done: 'TENANT_SUSPENDED',
    doneEvent: 'Tenant Suspended',
    failed: 'TENANT_SUSPEND_FAILED',
    failedEvent: 'Tenant Suspension Failed',
  },
  resume: {
    done: 'TENANT_RESUMED',
    doneEvent: 'Tenant Resumed',
    failed: 'TENANT_RESUME_FAILED',
    failedEvent: 'Tenant Resumption Failed',
  },
  change_plan: {
    done: 'TENANT_PLAN_CHANGED',
    doneEvent: 'Tenant Plan Changed',
    failed: 'TENANT_PLAN_CHANGE_FAILED',
    failedEvent: 'Tenant Plan Change Failed',
  },
  delete: {
    done: 'TENANT_DELETED',
    doneEvent: 'Tenant Deleted',
    failed: 'TENANT_DELETE_FAILED',
    failedEvent: 'Tenant Deletion Failed',
  },
  backup: {
    done: 'TENANT_BACKED_UP',
    doneEvent: 'Tenant Backed Up',
    failed: 'TENANT_BACKUP_FAILED',
    failedEvent: 'Tenant Backup Failed',
  },
  restore: {
    done: 'TENANT_RESTORED',
    doneEvent: 'Tenant Restored',
    failed: 'TENANT_RESTORE_FAILED',
    failedEvent: 'Tenant Restore Failed',
  },
};

/** The status a successful operation leaves; undefined: the status it had. */
const DONE_STATUS: Readonly<Partial<Record<LifecycleOperation, TenantStatus>>> = {
  suspend: 'suspended',
  resume: 'active',
  delete: 'deleted',
};

/**
 * Where a failed operation without an explicit status leaves the tenant: the status it started from, except that a
 * deletion of a live tenant leaves it suspended (its access was cut first, and it was meant to go away).
 */
export function undoneStatus(operation: LifecycleOperation, from: TenantStatus): TenantStatus {
  if (operation === 'delete' && (from === 'active' || from === 'suspended')) return 'suspended';
  return from;
}

export interface OutcomeDeps extends Announcer {
  readonly tenants: TenantStore;
  readonly audit: AuditStore;
  readonly store: LifecycleStore;
}

/** The request the operation was accepted with, as far as the outcome reports it (never a secret). */
function requestSummary(request: Record<string, unknown>): Record<string, unknown> {
  const { claimedAt: _claimedAt, ...rest } = request;
  return rest;
}

/**
 * The end of a successful run: the tenant takes the operation's status (suspended, active, deleted) with any earlier
 * failure cleared, the operation is closed, the audit log gets the outcome (as the requester, once: a retried task
 * finds the operation closed) and the event is announced. A deletion also prunes the resources that are gone and
 * records where the final backup is.
 */
export async function completeOperation(
  deps: OutcomeDeps,
  tenantId: string,
  operationId: string,
  result: { finalBackup?: FinalBackup | undefined } = {},
): Promise<{ status: TenantStatus }> {
  const operation = await deps.store.get(operationId);
  if (!operation || operation.tenantId !== tenantId)
    throw new Error(`No operation ${operationId} of ${tenantId}`);
  const tenant = await deps.tenants.require(tenantId);
  const status = DONE_STATUS[operation.operation] ?? tenant.status;
  if (operation.operation === 'delete') {
    await deps.tenants.removeResources(
      tenantId,
      ['database', 'secrets', 'credentialExpiries', 'invitationSecretArn', 'alarms'],
      operation.requestedBy,
    );
    if (result.finalBackup) {
      await deps.tenants.mergeResources(tenantId, { finalBackup: result.finalBackup }, operation.requestedBy);
    }
  }
  await deps.tenants.setStatus(tenantId, status, operation.requestedBy, { failure: null, leftovers: null });
  const outcome = OUTCOMES[operation.operation];
  const details = {
    operationId,
    ...requestSummary(operation.request),
    ...(result.finalBackup ? { finalBackup: result.finalBackup } : {}),
  };
  if (await deps.store.finish(operationId, 'succeeded')) {
    await deps.audit.add(tenantId, outcome.done, operation.requestedBy, details);
  }
  await announce(deps, outcome.doneEvent, {
    tenantId,
    slug: tenant.slug,
    operation: operation.operation,
    status,
    ...details,
  });
  return { status };
}

export interface FailureRequest {
  /** The failure the run caught (the step and why). */
  readonly failure: StepFailure;
  /** When an undo step failed as well. */
  readonly rollbackFailure?: StepFailure | undefined;
  /** The status the tenant is left in; undefined: {@link undoneStatus}. */
  readonly status?: TenantStatus | undefined;
  /** Scan what of the tenant still exists (a deletion halted half-way, an undone restore). */
  readonly scan?: boolean | undefined;
}

/**
 * The end of a failed run: the tenant is left in the stated status with the failure (and, when asked, what of it is
 * left, scanned), the operation is closed failed, the audit log gets it (once) and the failure is announced for a
 * person.
 */
export async function failOperation(
  deps: OutcomeDeps & { readonly scan?: ScanDeps },
  tenantId: string,
  operationId: string,
  request: FailureRequest,
): Promise<{ status: TenantStatus; leftovers: string[] | null }> {
  const operation = await deps.store.get(operationId);
  if (!operation || operation.tenantId !== tenantId)
    throw new Error(`No operation ${operationId} of ${tenantId}`);
  const tenant = await deps.tenants.require(tenantId);
  const status = request.status ?? undoneStatus(operation.operation, operation.fromStatus);
  const leftovers = request.scan && deps.scan ? await scanLeftovers(deps.scan, tenantId) : null;
  const failure: StepFailure = request.rollbackFailure
    ? {
        ...request.failure,
        cause:
          `${request.failure.cause} (undoing it failed too, at ${request.rollbackFailure.step}: ${request.rollbackFailure.cause})`.slice(
            0,
            2000,
          ),
      }
    : request.failure;
  await deps.tenants.setStatus(tenantId, status, operation.requestedBy, { failure, leftovers });
  const outcome = OUTCOMES[operation.operation];
  const details = {
    operationId,
    ...requestSummary(operation.request),
    failure: request.failure,
    ...(request.rollbackFailure ? { rollbackFailure: request.rollbackFailure } : {}),
    ...(leftovers ? { leftovers } : {}),
  };
  if (await deps.store.finish(operationId, 'failed', failure)) {
    await deps.audit.add(tenantId, outcome.failed, operation.requestedBy, details);
  }
  await announce(deps, outcome.failedEvent, {
    tenantId,
    slug: tenant.slug,
    operation: operation.operation,
    status,
    ...details,
  });
  return { status, leftovers };
}
