import { DeleteAlarmsCommand, PutMetricAlarmCommand } from '@aws-sdk/client-cloudwatch';
import { Limits } from '../../schema/api/tenants.ts';
import { DATABASE_ROLES, databaseName, ident, roleName } from '../../schema/names.ts';
import { PLAN_NAMES, type PlanLimits, type PlanName } from '../../schema/plans.ts';
import * as z from '../../schema/zod.ts';
import { type AlarmDeps, existingTenantAlarms, tenantAlarms } from '../provision/alarms.ts';
import { databaseExists } from '../provision/database.ts';
import { existingTenantRoles, roleConnectionLimits } from '../provision/roles.ts';
import { type DataApi, json } from '../shared/data-api.ts';
import { doBlock, TenantDatabase } from '../shared/tenant-db.ts';

/** A plan and its effective limits, as the change-plan run passes them between its states. */
export const PlanState = z.object({
  plan: z.enum(PLAN_NAMES),
  limits: Limits,
});
export type PlanState = z.infer<typeof PlanState>;

/**
 * Applies the limits that live in the tenant's database: its CONNECTION LIMIT, each role's share of it
 * (`roleConnectionLimits`, as provisioning set them), and the `apiAccess` feature flag's quotas, which the application
 * reads. Idempotent; sessions already open above a lowered limit are not ended (the usage check refused a limit
 * below the sessions open when the change was asked).
 */
export async function applyTenantLimits(
  cluster: DataApi,
  tenantId: string,
  limits: PlanLimits,
): Promise<{ maxConnections: number }> {
  const name = databaseName(tenantId);
  const maxConnections = z.int().check(z.minimum(1)).parse(limits.maxConnections);
  if (!(await databaseExists(cluster, name))) throw new Error(`The tenant database ${name} does not exist`);
  const shares = roleConnectionLimits(maxConnections);
  const existing = new Set(await existingTenantRoles(cluster, tenantId));
  const statements = [
    `ALTER DATABASE ${ident(name)} CONNECTION LIMIT ${maxConnections}`,
    ...DATABASE_ROLES.filter((role) => existing.has(roleName(tenantId, role))).map(
      (role) =>
        `ALTER ROLE ${ident(roleName(tenantId, role))} CONNECTION LIMIT ${z.int().parse(shares[role])}`,
    ),
  ];
  await cluster.execute(doBlock('limits', statements));
  await TenantDatabase.of(cluster, tenantId).execute(
    `UPDATE public.feature_flags SET config = config || CAST(:quotas AS jsonb), updated_at = pg_catalog.now()
     WHERE key = 'apiAccess'`,
    { quotas: json({ maxApiKeys: limits.maxApiKeys, requestsPerMinute: limits.apiRequestsPerMinute }) },
  );
  return { maxConnections };
}

/**
 * Puts the tenant's alarms as `tenantAlarms()` defines them for the plan and limits (the thresholds follow), with
 * their actions on or off as the tenant's status wants (a suspended tenant's stay off), and deletes the tenant's
 * alarms the plan no longer has (e.g. latency, when leaving enterprise). Idempotent. Returns the alarm names.
 */
export async function applyPlanAlarms(
  deps: AlarmDeps,
  tenantId: string,
  plan: PlanName,
  limits: PlanLimits,
  actionsEnabled: boolean,
): Promise<string[]> {
  const alarms = tenantAlarms(tenantId, plan, limits);
  for (const alarm of alarms) {
    await deps.cloudWatch.send(
      new PutMetricAlarmCommand({
        ...alarm,
        ActionsEnabled: actionsEnabled,
        AlarmActions: [deps.topicArn],
        OKActions: [deps.topicArn],
        Tags: [
          { Key: 'TenantId', Value: tenantId },
          { Key: 'Stage', Value: deps.stage },
        ],
      }),
    );
  }
  const wanted = new Set(alarms.map((alarm) => alarm.AlarmName));
  const extra = (await existingTenantAlarms(deps.cloudWatch, tenantId)).filter((name) => !wanted.has(name));
  if (extra.length > 0) await deps.cloudWatch.send(new DeleteAlarmsCommand({ AlarmNames: extra }));
  return [...wanted];
}
