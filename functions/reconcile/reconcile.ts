import { createHash } from 'node:crypto';
import { announce } from '../provision/outcome.ts';
import type { TenantRegistry } from '../shared/tenants.ts';
import {
  allTenants,
  compare,
  type InventoryDeps,
  type Missing,
  type Orphans,
  type RepairDeps,
  repairMissing,
  takeInventory,
} from './drift.ts';
import { type StuckDeps, type StuckOutcome, type StuckPolicy, settleStuckTenant } from './stuck.ts';

/** The event the reconciler announces when it finds drift that is new since it last reported it. */
export const DRIFT_DETAIL_TYPE = 'Tenant Drift Detected';

export interface ReconcileDeps extends StuckDeps, InventoryDeps {
  readonly registry: TenantRegistry;
  readonly repair: RepairDeps;
  readonly log: (message: string, details: Record<string, unknown>) => void;
}

/** One pass of the reconciler: what it did and what it found. Names and ARNs only. */
export interface ReconcileReport {
  readonly stuck: readonly StuckOutcome[];
  readonly orphans: readonly Orphans[];
  readonly missing: readonly Missing[];
  /** Tenants whose drift was reported (audited and announced) for the first time in this pass. */
  readonly newlyReported: readonly string[];
}

/**
 * One pass of the drift reconciler, on a schedule (and at sandbox start): first every tenant in `provisioning`
 * whose run died is resumed or rolled back ({@link settleStuckTenant}); then the registry is compared with what
 * exists, and resources of no tenant (or of a failed or deleted one) are reported, never deleted: a person
 * decides about data whose owner is unknown. What an active tenant lacks is reported, and alarms and the
 * storage marker are made again. A tenant's drift is audited (`TENANT_DRIFT_DETECTED`) and announced
 * (`Tenant Drift Detected`) when it is new, not on every pass.
 */
export async function reconcile(
  deps: ReconcileDeps,
  policy: StuckPolicy,
  now = Date.now(),
): Promise<ReconcileReport> {
  const stuck: StuckOutcome[] = [];
  for (const tenant of await allTenants(deps.registry)) {
    if (tenant.status !== 'provisioning') continue;
    try {
      const outcome = await settleStuckTenant(deps, policy, tenant, now);
      if (outcome) stuck.push(outcome);
    } catch (error) {
      // One tenant's trouble must not keep the others stuck; the next pass tries again.
      deps.log('Could not settle a stuck tenant', { tenantId: tenant.id, error: errorName(error) });
    }
  }

  // The inventory before the registry: a tenant reserved in between has nothing in the inventory yet, whereas
  // the other order would take its first resources for orphans.
  const inventory = await takeInventory(deps);
  const tenants = await allTenants(deps.registry);
  const found = compare(tenants, inventory, deps.stage, deps.bucket);
  const missing: Missing[] = [];
  for (const { tenant, resources } of found.missing) {
    let repaired: string[] = [];
    try {
      repaired = await repairMissing(deps.repair, tenant, resources);
    } catch (error) {
      deps.log('Could not repair a tenant', { tenantId: tenant.id, error: errorName(error) });
    }
    if (repaired.length > 0) {
      await deps.registry.audit(tenant.id, 'TENANT_RECONCILED', deps.actor, {
        action: 'repaired',
        reason: 'resources of an active tenant were missing',
        repaired,
      });
    }
    missing.push({ tenantId: tenant.id, resources, repaired });
  }

  const newlyReported: string[] = [];
  const drift = [
    ...found.orphans.map((orphan) => ({
      tenantId: orphan.tenantId,
      details: { kind: 'orphans', ...orphan },
    })),
    ...missing.map((item) => ({ tenantId: item.tenantId, details: { kind: 'missing', ...item } })),
  ];
  for (const { tenantId, details } of drift) {
    const fingerprint = createHash('sha256').update(JSON.stringify(details)).digest('hex').slice(0, 16);
    const log = await deps.registry.auditLog(tenantId);
    const last = log.filter((entry) => entry.action === 'TENANT_DRIFT_DETECTED').at(-1);
    if (last?.details.fingerprint === fingerprint) continue;
    await deps.registry.audit(tenantId, 'TENANT_DRIFT_DETECTED', deps.actor, { ...details, fingerprint });
    newlyReported.push(tenantId);
  }
  const report: ReconcileReport = { stuck, orphans: found.orphans, missing, newlyReported };
  if (newlyReported.length > 0) {
    await announce(deps, DRIFT_DETAIL_TYPE, {
      orphans: found.orphans.filter((orphan) => newlyReported.includes(orphan.tenantId)),
      missing: missing.filter((item) => newlyReported.includes(item.tenantId)),
    });
  }
  return report;
}

const errorName = (error: unknown): string =>
  error instanceof Error ? `${error.name}: ${error.message}` : String(error);
