import { cloudWatchClient } from '../shared/clients.ts';
import * as z from '../shared/zod.ts';
import { type AlarmDeps, configureTenantAlarms, removeTenantAlarms } from './alarms.ts';
import { ACTOR, PROVISIONING, provisioningStep, stepSetup } from './step.ts';

/** ConfigureAlarms and RemoveAlarms: the tenant's CloudWatch alarms. */
const { env, registry } = stepSetup({ ALARM_TOPIC_ARN: z.string().check(z.startsWith('arn:')) });
const deps: AlarmDeps = { cloudWatch: cloudWatchClient(), topicArn: env.ALARM_TOPIC_ARN, stage: env.STAGE };

export const configureAlarms = /* @__PURE__ */ provisioningStep(
  'ConfigureAlarms',
  registry,
  async (tenant, step) => {
    const alarms = await configureTenantAlarms(deps, tenant.id, tenant.plan, tenant.limits);
    step.record({ resources: { alarms } });
    return { alarms };
  },
  { statuses: PROVISIONING },
);

export const removeAlarms = /* @__PURE__ */ provisioningStep('RemoveAlarms', registry, async (tenant) => {
  const removed = await removeTenantAlarms(deps.cloudWatch, tenant.id);
  await registry.removeResources(tenant.id, ['alarms'], ACTOR);
  return { alarms: removed.length };
});
