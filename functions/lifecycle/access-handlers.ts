import { stepSetup } from '../provision/step.ts';
import { cloudWatchClient } from '../shared/clients.ts';
import type { TenantStatus } from '../shared/tenants.ts';
import {
  disableTenantAccess as disableAccess,
  enableTenantAccess as enableAccess,
  setTenantAlarmActions,
} from './access.ts';
import { LifecycleInput, lifecycleStep } from './step.ts';

/** DisableTenantAccess, EnableTenantAccess, DisableAlarmActions, EnableAlarmActions: suspend and resume. */
const { cluster, registry } = stepSetup({});

/** Statuses in which a tenant still has access to cut or give back (suspend, resume, their undo, delete). */
const LIVE: readonly TenantStatus[] = ['active', 'suspended', 'deprovisioning'];

export const disableTenantAccess = /* @__PURE__ */ lifecycleStep(
  'DisableTenantAccess',
  registry,
  LifecycleInput,
  (tenant) => disableAccess(cluster, tenant.id),
  { statuses: LIVE },
);

export const enableTenantAccess = /* @__PURE__ */ lifecycleStep(
  'EnableTenantAccess',
  registry,
  LifecycleInput,
  (tenant) => enableAccess(cluster, tenant.id),
  { statuses: ['active', 'suspended'] },
);

export const disableAlarmActions = /* @__PURE__ */ lifecycleStep(
  'DisableAlarmActions',
  registry,
  LifecycleInput,
  async (tenant) => ({ alarms: (await setTenantAlarmActions(cloudWatchClient(), tenant.id, false)).length }),
  { statuses: LIVE },
);

export const enableAlarmActions = /* @__PURE__ */ lifecycleStep(
  'EnableAlarmActions',
  registry,
  LifecycleInput,
  async (tenant) => ({ alarms: (await setTenantAlarmActions(cloudWatchClient(), tenant.id, true)).length }),
  { statuses: ['active', 'suspended'] },
);
