import { DATABASE_ROLES } from '../../schema/names.ts';
import { cloudWatchClient } from '../shared/clients.ts';
import { step, stepSetup } from '../shared/step.ts';
import type { TenantStatus } from '../shared/tenants.ts';
import {
  disableTenantAccess as disableAccess,
  enableTenantAccess as enableAccess,
  setTenantAlarmActions,
} from './access.ts';
import { LIFECYCLE_ACTOR, LifecycleInput } from './step.ts';

/** DisableTenantAccess, EnableTenantAccess, DisableAlarmActions, EnableAlarmActions: suspend and resume. */
const { cluster, registry } = stepSetup([]);
const progress = { store: registry.progress, actor: LIFECYCLE_ACTOR };

/** Statuses in which a tenant still has access to cut or give back (suspend, resume, their undo, delete). */
const LIVE: readonly TenantStatus[] = ['active', 'suspended', 'deprovisioning'];

export const disableTenantAccess = /* @__PURE__ */ step(
  'DisableTenantAccess',
  { input: LifecycleInput, progress, statuses: LIVE },
  ({ tenant }) => disableAccess(cluster, tenant.id),
);

export const enableTenantAccess = /* @__PURE__ */ step(
  'EnableTenantAccess',
  { input: LifecycleInput, progress, statuses: ['active', 'suspended'] },
  ({ tenant }) => {
    // The roles with credentials, but not those whose issued credentials expired meanwhile (the reconciler takes
    // them back).
    const now = Date.now();
    const credentialed = DATABASE_ROLES.filter((role) => {
      const expiry = tenant.resources.credentialExpiries?.[role];
      return (
        tenant.resources.secrets?.[role] !== undefined && (expiry === undefined || Date.parse(expiry) > now)
      );
    });
    return enableAccess(cluster, tenant.id, credentialed);
  },
);

export const disableAlarmActions = /* @__PURE__ */ step(
  'DisableAlarmActions',
  { input: LifecycleInput, progress, statuses: LIVE },
  async ({ tenant }) => ({
    alarms: (await setTenantAlarmActions(cloudWatchClient(), tenant.id, false)).length,
  }),
);

export const enableAlarmActions = /* @__PURE__ */ step(
  'EnableAlarmActions',
  { input: LifecycleInput, progress, statuses: ['active', 'suspended'] },
  async ({ tenant }) => ({
    alarms: (await setTenantAlarmActions(cloudWatchClient(), tenant.id, true)).length,
  }),
);
