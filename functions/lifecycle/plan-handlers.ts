import { stepSetup } from '../provision/step.ts';
import { cloudWatchClient, s3Client } from '../shared/clients.ts';
import * as z from '../shared/zod.ts';
import { LifecycleStore } from './operations.ts';
import { applyTenantLimits as applyLimits, PlanState, applyPlanAlarms as putAlarms } from './plan.ts';
import { LifecycleInput, lifecycleStep } from './step.ts';
import { assertPlanFits } from './usage.ts';

/** CheckPlanUsage, ApplyTenantLimits, ApplyPlanAlarms, RecordPlan: the change-plan run. */
const { env, cluster, registry } = stepSetup({
  STORAGE_BUCKET: z.string().check(z.minLength(3)),
  ALARM_TOPIC_ARN: z.string().check(z.startsWith('arn:')),
});
const store = new LifecycleStore(cluster);

/** A plan change's state input: the plan and limits to apply (the target, or the previous ones when undoing). */
const PlanInput = z.object({ ...LifecycleInput.shape, ...PlanState.shape });
const PLAN_STATUSES = ['active', 'suspended'] as const;

export const checkPlanUsage = /* @__PURE__ */ lifecycleStep(
  'CheckUsage',
  registry,
  PlanInput,
  async (tenant, input) => {
    return assertPlanFits({ cluster, s3: s3Client(), bucket: env.STORAGE_BUCKET }, tenant, input);
  },
  { statuses: PLAN_STATUSES },
);

export const applyTenantLimits = /* @__PURE__ */ lifecycleStep(
  'ApplyLimits',
  registry,
  PlanInput,
  (tenant, input) => applyLimits(cluster, tenant.id, input.limits),
  { statuses: PLAN_STATUSES },
);

export const applyPlanAlarms = /* @__PURE__ */ lifecycleStep(
  'ApplyAlarmThresholds',
  registry,
  PlanInput,
  async (tenant, input) => {
    const alarms = await putAlarms(
      { cloudWatch: cloudWatchClient(), topicArn: env.ALARM_TOPIC_ARN, stage: env.STAGE },
      tenant.id,
      input.plan,
      input.limits,
      tenant.status === 'active',
    );
    await registry.mergeResources(tenant.id, { alarms });
    return { alarms };
  },
  { statuses: PLAN_STATUSES },
);

export const recordPlan = /* @__PURE__ */ lifecycleStep(
  'RecordPlan',
  registry,
  PlanInput,
  async (tenant, input) => {
    const operation = await store.get(input.operationId);
    await store.setPlan(tenant.id, input.plan, input.limits, operation?.requestedBy ?? 'tenant-lifecycle');
    return { plan: input.plan, limits: input.limits, from: tenant.plan };
  },
  { statuses: PLAN_STATUSES },
);
