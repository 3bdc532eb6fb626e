import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { afterAll } from 'vitest';
import {
  DEFAULT_RECONCILE_POLICY,
  type ReconcileDeps,
  type ReconcilePolicy,
  type ReconcileReport,
  reconcile,
} from '../../functions/reconcile/reconcile.ts';
import { reconcilerDeps } from '../../reliability/reconciler.ts';
import { clients } from '../provision/helpers.ts';
import { sandbox } from '../support/sandbox.ts';

const events = new EventBridgeClient({
  endpoint: sandbox.awsEndpoint,
  region: sandbox.region,
  credentials: { accessKeyId: 'sandbox', secretAccessKey: 'sandbox' },
});
afterAll(() => events.destroy());

/** What the Reconcile function is given, on the test sandbox; `overrides` replace some of it. */
export function deps(overrides: Partial<ReconcileDeps> = {}): ReconcileDeps {
  return { ...reconcilerDeps({ ...clients, events }, sandbox), ...overrides };
}

/**
 * One pass of the drift reconciler over the test sandbox, from the test's process: what its schedule does, at a
 * moment the test chooses. The sandbox holds other files' tenants too; tests look at their own tenants only.
 */
export function runReconciler(
  policy: Partial<ReconcilePolicy> = {},
  overrides: Partial<ReconcileDeps> = {},
): Promise<ReconcileReport> {
  return reconcile(deps(overrides), { ...DEFAULT_RECONCILE_POLICY, ...policy });
}
