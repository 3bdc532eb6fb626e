import { type CloudWatchClient, DescribeAlarmsCommand } from '@aws-sdk/client-cloudwatch';
import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { DATABASE_ROLES, databaseName, roleName, roleSecretName } from '../../schema/names.ts';
import { PLANS } from '../../schema/plans.ts';
import * as z from '../../schema/zod.ts';
import { type AlarmDeps, configureTenantAlarms, tenantAlarms } from '../provision/alarms.ts';
import { listSecretsUnder } from '../provision/secrets.ts';
import { configureTenantStorage, type StorageDeps } from '../provision/storage.ts';
import { type DataApi, isoText } from '../shared/data-api.ts';
import type { Tenant, TenantStatus, TenantStore } from '../shared/tenants.ts';

/**
 * Everything in the cluster, Secrets Manager, the bucket and CloudWatch that is named like a tenant's resource,
 * grouped by the tenant id its name carries. Names are derived from the id (schema/names.ts), so the
 * id is read back from the name; a name under a tenant prefix that carries no valid id is grouped under
 * {@link UNRECOGNISED}.
 */
export type Inventory = Map<string, string[]>;

const CAN_LOG_IN = ' can log in';

/** A tenant role that can log in carries this label beside `role <name>`. */
export const canLogIn = (role: string): string => `role ${role}${CAN_LOG_IN}`;

/** Whether the label qualifies a resource listed beside it rather than naming one. */
const qualifies = (label: string): boolean => label.endsWith(CAN_LOG_IN);

/** The inventory and when it began, by the database's clock. */
export interface FleetInventory {
  readonly resources: Inventory;
  /**
   * Milliseconds since the epoch, as `now()` said before the first list call: a tenant whose record changed since
   * may have been caught half-made (or half-removed) by the lists, so it is not judged on them.
   */
  readonly startedAt: number;
}

export const UNRECOGNISED = '(unrecognised)';

const ID = 't[a-z0-9]{15}';

export interface InventoryDeps {
  /** The provisioner on the registry database (the catalogs it reads are cluster-wide). */
  readonly cluster: DataApi;
  readonly secrets: SecretsManagerClient;
  readonly s3: S3Client;
  readonly bucket: string;
  readonly cloudWatch: CloudWatchClient;
  readonly stage: string;
}

/** Lists every tenant-named resource: a few paged list calls, not one per tenant. */
export async function takeInventory(deps: InventoryDeps): Promise<FleetInventory> {
  const [clock] = await deps.cluster.query(
    `SELECT ${isoText('now()')} AS at`,
    {},
    z.object({ at: z.string() }),
  );
  const startedAt = Date.parse(clock?.at ?? '');
  if (Number.isNaN(startedAt)) throw new Error('The database gave no time');
  const inventory: Inventory = new Map();
  const add = (pattern: RegExp, name: string, label: string) => {
    const id = pattern.exec(name)?.[1] ?? UNRECOGNISED;
    inventory.set(id, [...(inventory.get(id) ?? []), label]);
  };
  const databases = await deps.cluster.query(
    "SELECT datname AS name FROM pg_database WHERE datname LIKE 'tenant\\_%' ORDER BY datname",
    {},
    z.object({ name: z.string() }),
  );
  for (const { name } of databases) add(new RegExp(`^tenant_(${ID})$`), name, `database ${name}`);
  const roles = await deps.cluster.query(
    "SELECT rolname AS name, rolcanlogin AS login FROM pg_roles WHERE rolname LIKE 'tenant\\_%' ORDER BY rolname",
    {},
    z.object({ name: z.string(), login: z.boolean() }),
  );
  const rolePattern = new RegExp(`^tenant_(${ID})_[a-z]+$`);
  for (const { name, login } of roles) {
    add(rolePattern, name, `role ${name}`);
    if (login) add(rolePattern, name, canLogIn(name));
  }
  const secretPattern = new RegExp(`^tenants/[^/]+/(${ID})/`);
  for (const secret of await listSecretsUnder(deps.secrets, `tenants/${deps.stage}/`)) {
    add(
      secretPattern,
      secret.name,
      `secret ${secret.name}${secret.deletedDate ? ' (scheduled for deletion)' : ''}`,
    );
  }
  let token: string | undefined;
  do {
    const page = await deps.s3.send(
      new ListObjectsV2Command({
        Bucket: deps.bucket,
        Prefix: 'tenants/',
        Delimiter: '/',
        ContinuationToken: token,
      }),
    );
    for (const { Prefix } of page.CommonPrefixes ?? []) {
      if (Prefix) add(new RegExp(`^tenants/(${ID})/$`), Prefix, `objects s3://${deps.bucket}/${Prefix}`);
    }
    for (const { Key } of page.Contents ?? []) if (Key) add(/^$/, Key, `object s3://${deps.bucket}/${Key}`);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  let next: string | undefined;
  do {
    const page = await deps.cloudWatch.send(
      new DescribeAlarmsCommand({
        AlarmNamePrefix: 'tenant-',
        AlarmTypes: ['MetricAlarm', 'CompositeAlarm'],
        NextToken: next,
      }),
    );
    for (const alarm of [...(page.MetricAlarms ?? []), ...(page.CompositeAlarms ?? [])]) {
      if (alarm.AlarmName) add(new RegExp(`^tenant-(${ID})-`), alarm.AlarmName, `alarm ${alarm.AlarmName}`);
    }
    next = page.NextToken;
  } while (next);
  return { resources: inventory, startedAt };
}

/** Every tenant of the registry, a page at a time. */
export async function allTenants(tenants: TenantStore): Promise<Tenant[]> {
  const all: Tenant[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await tenants.list({ limit: 500, ...(after !== undefined ? { after } : {}) });
    all.push(...page.tenants);
    after = page.tenants.at(-1)?.id;
    if (!page.more || after === undefined) return all;
  }
}

/** Statuses whose resources are expected to be gone (failed: undone; deleted: removed). */
const GONE: readonly TenantStatus[] = ['failed', 'deleted'];

/**
 * What a deleted tenant keeps on purpose (functions/lifecycle/retire.ts): its objects, expired by the bucket's
 * retention rules, and its secrets within their recovery window.
 */
function retained(tenant: Tenant, label: string): boolean {
  return (
    tenant.status === 'deleted' &&
    (label.startsWith('objects ') || label.endsWith('(scheduled for deletion)'))
  );
}

/** Resources that exist without a tenant that should have them. */
export interface Orphans {
  readonly tenantId: string;
  /** `unknown` when no tenant has the id. */
  readonly status: TenantStatus | 'unknown';
  readonly resources: readonly string[];
}

/** What an active tenant lacks, and what of it the reconciler made again. */
export interface Missing {
  readonly tenantId: string;
  readonly resources: readonly string[];
  readonly repaired: readonly string[];
}

/**
 * The resources an active tenant must have, as the inventory labels them (alarms from its plan): its four roles, and
 * for each role with credentials (standing on its plan, or issued and recorded) the role able to log in and its secret.
 * A role without credentials is NOLOGIN by design, not missing anything.
 */
export function expectedResources(tenant: Tenant, stage: string, bucket: string): string[] {
  const id = tenant.id;
  const credentialed = DATABASE_ROLES.filter(
    (role) =>
      PLANS[tenant.plan].standingRoles.includes(role) || tenant.resources.secrets?.[role] !== undefined,
  );
  return [
    `database ${databaseName(id)}`,
    ...DATABASE_ROLES.map((role) => `role ${roleName(id, role)}`),
    ...credentialed.flatMap((role) => [
      canLogIn(roleName(id, role)),
      `secret ${roleSecretName(stage, id, role)}`,
    ]),
    ...(tenant.config.features.storage ? [`objects s3://${bucket}/tenants/${id}/`] : []),
    ...tenantAlarms(id, tenant.plan, tenant.limits).map((alarm) => `alarm ${alarm.AlarmName}`),
  ];
}

/**
 * Compares the registry with the inventory: resources of no tenant, or of a tenant whose resources should be
 * gone (orphans), and resources an active tenant lacks (missing). Resources of tenants in other statuses
 * (provisioning, suspended, rollback_failed with its leftovers listed…) are neither. The tenants of `unsettled`
 * are not judged: their record changed since the inventory began, or an operation on them runs, so the inventory
 * may have caught them between two states (a tenant turning active while its alarms were being listed).
 */
export function compare(
  tenants: readonly Tenant[],
  inventory: Inventory,
  stage: string,
  bucket: string,
  unsettled: ReadonlySet<string> = new Set(),
): { orphans: Orphans[]; missing: { tenant: Tenant; resources: string[] }[] } {
  const byId = new Map(tenants.map((tenant) => [tenant.id, tenant]));
  const orphans: Orphans[] = [];
  for (const [tenantId, resources] of inventory) {
    if (unsettled.has(tenantId)) continue;
    const tenant = byId.get(tenantId);
    if (!tenant) {
      // Labels that only qualify a resource listed beside them are not resources of their own.
      const listed = resources.filter((label) => !qualifies(label));
      orphans.push({ tenantId, status: 'unknown', resources: listed });
    } else if (GONE.includes(tenant.status)) {
      const left = resources.filter((label) => !retained(tenant, label) && !qualifies(label));
      if (left.length > 0) orphans.push({ tenantId, status: tenant.status, resources: left });
    }
  }
  const missing: { tenant: Tenant; resources: string[] }[] = [];
  for (const tenant of tenants) {
    // Only an active tenant is held to the full set: a suspended or changing one may lack some on purpose.
    if (tenant.status !== 'active' || unsettled.has(tenant.id)) continue;
    const present = new Set(inventory.get(tenant.id) ?? []);
    const lacking = expectedResources(tenant, stage, bucket).filter((label) => !present.has(label));
    if (lacking.length > 0) missing.push({ tenant, resources: lacking });
  }
  return { orphans, missing };
}

export interface RepairDeps {
  readonly alarms: AlarmDeps;
  readonly storage: StorageDeps;
}

/**
 * Makes again what is safe to make again: alarms (PutMetricAlarm from the plan, idempotent) and the storage
 * marker (the same object, the same tags). A missing database, role or secret is only reported: making them
 * again would hide a loss of data or credentials that a person must look at. Returns the labels repaired.
 */
export async function repairMissing(
  deps: RepairDeps,
  tenant: Tenant,
  lacking: readonly string[],
): Promise<string[]> {
  const repaired: string[] = [];
  const alarms = lacking.filter((label) => label.startsWith('alarm '));
  if (alarms.length > 0) {
    // Only the missing ones: a plan change may be putting the others with new thresholds right now.
    const names = new Set(alarms.map((label) => label.slice('alarm '.length)));
    await configureTenantAlarms(deps.alarms, tenant.id, tenant.plan, tenant.limits, names);
    repaired.push(...alarms);
  }
  const storage = lacking.filter((label) => label.startsWith('objects '));
  if (storage.length > 0) {
    await configureTenantStorage(deps.storage, {
      tenantId: tenant.id,
      createdAt: tenant.createdAt,
      encryptionLevel: tenant.config.compliance.encryptionLevel,
    });
    repaired.push(...storage);
  }
  return repaired;
}
