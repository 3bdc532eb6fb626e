import { BackupPolicySchema } from '../../schema/api/tenants.ts';
import * as z from '../../schema/zod.ts';
import { applyStandingRoles } from '../provision/role-credentials.ts';
import { cloudWatchClient, s3Client, secretsManagerClient } from '../shared/clients.ts';
import { step, stepSetup } from '../shared/step.ts';
import { LifecycleStore } from './operations.ts';
import { applyTenantLimits as applyLimits, PlanState, applyPlanAlarms as putAlarms } from './plan.ts';
import { LIFECYCLE_ACTOR, LifecycleInput } from './step.ts';
import { assertPlanFits } from './usage.ts';

/** CheckPlanUsage, ApplyTenantLimits (with the plan's standing roles), ApplyPlanAlarms, RecordPlan: the change-plan run. */
const { env, cluster, registry } = stepSetup(['STORAGE_BUCKET', 'ALARM_TOPIC_ARN']);
const progress = { store: registry.progress, actor: LIFECYCLE_ACTOR };
const store = new LifecycleStore(cluster);

/** A plan change's state input: the plan and limits to apply (the target, or the previous ones when undoing). */
const PlanInput = z.object({ ...LifecycleInput.shape, ...PlanState.shape });
const PLAN_STATUSES = ['active', 'suspended'] as const;

export const checkPlanUsage = /* @__PURE__ */ step(
  'CheckUsage',
  { input: PlanInput, progress, statuses: PLAN_STATUSES },
  ({ tenant, input }) =>
    assertPlanFits({ cluster, s3: s3Client(), bucket: env.STORAGE_BUCKET }, tenant, input),
);

/**
 * The limits in the tenant's database, then the credentials the plan's standing roles need (see
 * `applyStandingRoles`): in one step, because both are what the plan grants inside the cluster and the undo puts both
 * back by applying the previous plan. A suspended tenant's new credentials wait for the resume to log in.
 */
export const applyTenantLimits = /* @__PURE__ */ step(
  'ApplyLimits',
  { input: PlanInput, progress, statuses: PLAN_STATUSES },
  async ({ tenant, input }) => {
    const limits = await applyLimits(cluster, tenant.id, input.limits);
    const roles = await applyStandingRoles(
      {
        cluster,
        secrets: secretsManagerClient(),
        stage: env.STAGE,
        clusterArn: env.CLUSTER_ARN,
        provisionerSecretArn: env.PROVISIONER_SECRET_ARN,
        tenants: registry.tenants,
      },
      { ...tenant, limits: input.limits },
      input.plan,
      { login: tenant.status === 'active', by: LIFECYCLE_ACTOR },
    );
    return { ...limits, ...roles };
  },
);

export const applyPlanAlarms = /* @__PURE__ */ step(
  'ApplyAlarmThresholds',
  { input: PlanInput, progress, statuses: PLAN_STATUSES },
  async ({ tenant, input, record }) => {
    const alarms = await putAlarms(
      { cloudWatch: cloudWatchClient(), topicArn: env.ALARM_TOPIC_ARN, stage: env.STAGE },
      tenant.id,
      input.plan,
      input.limits,
      tenant.status === 'active',
    );
    record({ resources: { alarms } });
    return { alarms };
  },
);

export const recordPlan = /* @__PURE__ */ step(
  'RecordPlan',
  { input: PlanInput, progress, statuses: PLAN_STATUSES },
  async ({ tenant, input }) => {
    const operation = await store.get(input.operationId);
    // The policy the API resolved and kept with the operation; an operation from before policies keeps none.
    const policy = z.optional(BackupPolicySchema).safeParse(operation?.request.backupPolicy);
    const backupPolicy = policy.success ? policy.data : undefined;
    await store.setPlan(
      tenant.id,
      input.plan,
      input.limits,
      operation?.requestedBy ?? LIFECYCLE_ACTOR,
      backupPolicy,
    );
    return {
      plan: input.plan,
      limits: input.limits,
      from: tenant.plan,
      ...(backupPolicy ? { backupPolicy } : {}),
    };
  },
);
