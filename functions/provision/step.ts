/**
 * The provisioning steps' own constants; the steps themselves are made by `step` (functions/shared/step.ts), like
 * every state machine task.
 */

import type { TenantStatus } from '../shared/tenants.ts';

/** Who the provisioning steps write to the registry and the tenant database as. */
export const ACTOR = 'provision-tenant';

/** The forward steps of provision-tenant, in the order they run (test/provision/happy-path holds them to it). */
export const PROVISIONING_STEPS: readonly string[] = [
  'CreateDatabase',
  'ApplyMigrations',
  'CreateRoles',
  'ConfigureStorage',
  'ConfigureAlarms',
  'SeedDefaults',
  'Activate',
];

/** Forward steps run only while the tenant is being provisioned. */
export const PROVISIONING: readonly TenantStatus[] = ['provisioning'];
