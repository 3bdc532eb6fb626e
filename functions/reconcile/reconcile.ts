import { createHash } from 'node:crypto';
import { DATABASE_ROLES, roleName, roleSecretName } from '../../schema/names.ts';
import type { BatchStore } from '../bulk/store.ts';
import type { LifecycleStore } from '../lifecycle/operations.ts';
import type { AuditStore } from '../shared/audit.ts';
import { announce } from '../shared/events.ts';
import type { Tenant, TenantStore } from '../shared/tenants.ts';
import { type BatchOutcome, settleBatches } from './batches.ts';
import {
  type CredentialDeps,
  type CredentialDrift,
  type CredentialPolicy,
  checkTenantCredentials,
  markCredentialsChecked,
  tenantsDueForCredentialCheck,
} from './credentials.ts';
import {
  allTenants,
  canLogIn,
  compare,
  type InventoryDeps,
  type Missing,
  type Orphans,
  type RepairDeps,
  repairMissing,
  takeInventory,
} from './drift.ts';
import { type RevokedCredentials, revokeExpiredCredentials } from './expired-credentials.ts';
import { type InvitationOutcome, type InvitationPolicy, settleInvitations } from './invitations.ts';
import { type OperationDeps, type OperationOutcome, settleOperation } from './operations.ts';
import {
  DEFAULT_STUCK_POLICY,
  type StuckDeps,
  type StuckOutcome,
  type StuckPolicy,
  settleStuckTenant,
} from './stuck.ts';

/** The event the reconciler announces when it finds drift that is new since it last reported it. */
export const DRIFT_DETAIL_TYPE = 'Tenant Drift Detected';

/** How patient and how thorough one pass is. */
export interface ReconcilePolicy extends StuckPolicy, CredentialPolicy, InvitationPolicy {}

export const DEFAULT_RECONCILE_POLICY: ReconcilePolicy = {
  ...DEFAULT_STUCK_POLICY,
  // Each tenant's role secrets about once an hour: on a 15-minute schedule, 250 tenants a pass cover 1,000.
  credentialCheckSeconds: 3600,
  credentialChecksPerPass: 250,
  // A new tenant's invitation is asked about within a pass or two of its acceptance while fewer than 100 wait.
  invitationChecksPerPass: 100,
};

/** Tenants whose role secrets are tried at once (each try is a login to the tenant's database). */
const CREDENTIAL_CONCURRENCY = 8;

export interface ReconcileDeps
  extends StuckDeps,
    InventoryDeps,
    CredentialDeps,
    Omit<OperationDeps, keyof StuckDeps | keyof InventoryDeps> {
  readonly tenants: TenantStore;
  readonly audit: AuditStore;
  readonly store: LifecycleStore;
  readonly batches: BatchStore;
  readonly repair: RepairDeps;
  readonly log: (message: string, details: Record<string, unknown>) => void;
}

/** One pass of the reconciler: what it did and what it found. Names and ARNs only. */
export interface ReconcileReport {
  readonly stuck: readonly StuckOutcome[];
  /** Lifecycle operations whose run had died. */
  readonly operations: readonly OperationOutcome[];
  /** Bulk batches whose run had died. */
  readonly batches: readonly BatchOutcome[];
  readonly orphans: readonly Orphans[];
  readonly missing: readonly Missing[];
  /** Active tenants with a role secret that no longer logged in. */
  readonly credentials: readonly CredentialDrift[];
  /** Issued credentials taken back because they had expired. */
  readonly revoked: readonly RevokedCredentials[];
  /** Invitation secrets deleted because nobody will need them again. */
  readonly invitations: readonly { readonly tenantId: string; readonly outcome: InvitationOutcome }[];
  /** Tenants whose drift was reported (audited and announced) for the first time in this pass. */
  readonly newlyReported: readonly string[];
}

/**
 * One pass of the drift reconciler, on a schedule (and at sandbox start). First what died half-way is settled:
 * every lifecycle operation whose run ended without closing it is done again or given up on
 * ({@link settleOperation}), every tenant in `provisioning` whose run died is resumed or rolled back
 * ({@link settleStuckTenant}), and every bulk batch whose run died takes its status from its rows' tenants
 * ({@link settleBatches}). Then the registry is compared with what exists: resources of no tenant (or of a failed or
 * deleted one) are reported, never deleted: a person decides about data whose owner is unknown. What an active tenant
 * lacks (a role that cannot log in included) is reported, and alarms and the storage marker are made again; a role
 * secret of an active tenant that no longer logs in gets its password back. Issued credentials that expired are taken
 * back, and the invitation secrets nobody will need again are deleted ({@link settleInvitations}). A tenant's drift is audited
 * (`TENANT_DRIFT_DETECTED`) and announced (`Tenant Drift Detected`) when it is new, not on every pass.
 */
export async function reconcile(
  deps: ReconcileDeps,
  policy: ReconcilePolicy,
  now = Date.now(),
): Promise<ReconcileReport> {
  const operations: OperationOutcome[] = [];
  for (const operation of await deps.store.allRunning()) {
    try {
      const outcome = await settleOperation(deps, policy, operation, now);
      if (outcome) operations.push(outcome);
    } catch (error) {
      deps.log('Could not settle an operation', {
        tenantId: operation.tenantId,
        operationId: operation.id,
        error: errorName(error),
      });
    }
  }

  // A tenant with an operation running (a restore's, into a tenant in provisioning) is its operation's to settle.
  const operating = new Set((await deps.store.allRunning()).map((operation) => operation.tenantId));
  const stuck: StuckOutcome[] = [];
  for (const tenant of await allTenants(deps.tenants)) {
    if (tenant.status !== 'provisioning' || operating.has(tenant.id)) continue;
    try {
      const outcome = await settleStuckTenant(deps, policy, tenant, now);
      if (outcome) stuck.push(outcome);
    } catch (error) {
      // One tenant's trouble must not keep the others stuck; the next pass tries again.
      deps.log('Could not settle a stuck tenant', { tenantId: tenant.id, error: errorName(error) });
    }
  }

  let batches: BatchOutcome[] = [];
  try {
    batches = await settleBatches(deps, policy, now);
  } catch (error) {
    deps.log('Could not settle the batches', { error: errorName(error) });
  }

  // The inventory before the registry: a tenant reserved in between has nothing in the inventory yet, whereas
  // the other order would take its first resources for orphans. A tenant whose record changed after the inventory
  // began (it turned active, was deleted, changed plan) or that an operation is changing may have been listed
  // between two states; it is judged on the next pass instead.
  const inventory = await takeInventory(deps);
  const tenants = await allTenants(deps.tenants);
  const unsettled = new Set([
    ...(await deps.store.allRunning()).map((operation) => operation.tenantId),
    ...tenants
      .filter((tenant) => Date.parse(tenant.updatedAt) >= inventory.startedAt)
      .map((tenant) => tenant.id),
  ]);
  const found = compare(tenants, inventory.resources, deps.stage, deps.bucket, unsettled);
  const missing: Missing[] = [];
  for (const { tenant, resources } of found.missing) {
    let repaired: string[] = [];
    try {
      repaired = await repairMissing(deps.repair, tenant, resources);
    } catch (error) {
      deps.log('Could not repair a tenant', { tenantId: tenant.id, error: errorName(error) });
    }
    if (repaired.length > 0) {
      await deps.audit.add(tenant.id, 'TENANT_RECONCILED', deps.actor, {
        action: 'repaired',
        reason: 'resources of an active tenant were missing',
        repaired,
      });
    }
    missing.push({ tenantId: tenant.id, resources, repaired });
  }

  // Expired credentials before the check, which must not try a secret this pass deletes.
  const revoked = await revokeExpiredCredentials(deps, tenants, unsettled, deps.actor, now, deps.log);
  for (const { tenantId, roles } of revoked) {
    await deps.audit.add(tenantId, 'TENANT_RECONCILED', deps.actor, {
      action: 'credentials_revoked',
      reason: 'issued credentials of a role not standing on the plan expired',
      roles,
    });
  }
  const credentials = await checkCredentials(
    deps,
    policy,
    tenants,
    inventory.resources,
    new Set([...unsettled, ...revoked.map((item) => item.tenantId)]),
  );
  const invitations = await settleInvitations(deps, policy, deps.actor, now, deps.log);
  for (const { tenantId, outcome } of invitations) {
    await deps.audit.add(tenantId, 'TENANT_RECONCILED', deps.actor, {
      action: 'invitation_secret_deleted',
      reason: `the admin's invitation is no longer open (${outcome})`,
    });
  }

  const newlyReported: string[] = [];
  const drift = new Map<string, Record<string, unknown>>();
  for (const orphan of found.orphans) drift.set(orphan.tenantId, { kind: 'orphans', ...orphan });
  for (const item of missing) drift.set(item.tenantId, { kind: 'missing', ...item });
  for (const { tenantId, roles, restored } of credentials) {
    const other = drift.get(tenantId) ?? { kind: 'credentials', tenantId };
    drift.set(tenantId, { ...other, credentials: { roles, restored } });
  }
  for (const [tenantId, details] of drift) {
    const fingerprint = createHash('sha256').update(JSON.stringify(details)).digest('hex').slice(0, 16);
    const log = await deps.audit.entries(tenantId);
    const last = log.filter((entry) => entry.action === 'TENANT_DRIFT_DETECTED').at(-1);
    if (last?.details.fingerprint === fingerprint) continue;
    await deps.audit.add(tenantId, 'TENANT_DRIFT_DETECTED', deps.actor, { ...details, fingerprint });
    newlyReported.push(tenantId);
  }
  const report: ReconcileReport = {
    stuck,
    operations,
    batches,
    orphans: found.orphans,
    missing,
    credentials,
    revoked,
    invitations,
    newlyReported,
  };
  if (newlyReported.length > 0) {
    await announce(deps, DRIFT_DETAIL_TYPE, {
      orphans: found.orphans.filter((orphan) => newlyReported.includes(orphan.tenantId)),
      missing: missing.filter((item) => newlyReported.includes(item.tenantId)),
      credentials: credentials.filter((item) => newlyReported.includes(item.tenantId)),
    });
  }
  return report;
}

/**
 * Tries the role secrets of the active tenants due for it ({@link tenantsDueForCredentialCheck}), a few tenants at
 * a time, and puts back the password of a role that changed its own. Only roles that can log in are tried (an
 * active tenant's role that cannot is reported missing as such), and only secrets the inventory found (a lost one is
 * reported missing); tenants being changed wait for a later pass. A tenant is recorded checked once each of its
 * secrets tried logged in or got its password back.
 */
async function checkCredentials(
  deps: ReconcileDeps,
  policy: ReconcilePolicy,
  tenants: readonly Tenant[],
  inventory: ReadonlyMap<string, readonly string[]>,
  unsettled: ReadonlySet<string>,
): Promise<CredentialDrift[]> {
  const byId = new Map(tenants.map((tenant) => [tenant.id, tenant]));
  const due = (await tenantsDueForCredentialCheck(deps.cluster, policy))
    .map((id) => byId.get(id))
    .filter((tenant) => tenant?.status === 'active' && !unsettled.has(tenant.id))
    .filter((tenant) => tenant !== undefined);
  const drift: CredentialDrift[] = [];
  const checked: string[] = [];
  const queue = [...due];
  const worker = async () => {
    for (let tenant = queue.shift(); tenant; tenant = queue.shift()) {
      const present = new Set(inventory.get(tenant.id) ?? []);
      const roles = DATABASE_ROLES.filter(
        (role) =>
          present.has(canLogIn(roleName(tenant.id, role))) &&
          present.has(`secret ${roleSecretName(deps.stage, tenant.id, role)}`),
      );
      try {
        const { drift: found, untried } = await checkTenantCredentials(deps, tenant, roles, deps.log);
        if (found) {
          drift.push(found);
          await deps.audit.add(tenant.id, 'TENANT_RECONCILED', deps.actor, {
            action: 'password_restored',
            reason: "a role's secret no longer logged in (the role changed its own password)",
            roles: found.roles,
            restored: found.restored,
          });
        }
        const settled = untried.length === 0 && (!found || found.restored.length === found.roles.length);
        if (settled) checked.push(tenant.id);
      } catch (error) {
        deps.log('Could not check the credentials of a tenant', {
          tenantId: tenant.id,
          error: errorName(error),
        });
      }
    }
  };
  await Promise.all(Array.from({ length: CREDENTIAL_CONCURRENCY }, worker));
  await markCredentialsChecked(deps.cluster, checked);
  return drift.sort((a, b) => a.tenantId.localeCompare(b.tenantId));
}

const errorName = (error: unknown): string =>
  error instanceof Error ? `${error.name}: ${error.message}` : String(error);
