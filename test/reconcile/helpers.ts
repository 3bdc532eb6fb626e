import { setTimeout as sleep } from 'node:timers/promises';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { afterAll } from 'vitest';
import { z } from 'zod';
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

/** Polls until `check` holds, or the time is up; returns whether it held. */
export async function eventually(check: () => Promise<boolean>, timeoutMs = 30_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await sleep(100);
  }
  return check();
}

const Calls = z.array(
  z.object({ operation: z.string(), subject: z.string().optional(), latencyMs: z.number().optional() }),
);

/** Whether a call of that operation whose subject has `needle` is being held by a chaos latency rule. */
export async function held(operation: string, needle: string): Promise<boolean> {
  return eventually(async () => {
    const response = await fetch(`${sandbox.awsEndpoint}/_sandbox/calls`);
    const calls = Calls.parse(await response.json());
    return calls.some(
      (call) =>
        call.operation === operation && (call.subject ?? '').includes(needle) && call.latencyMs !== undefined,
    );
  });
}
