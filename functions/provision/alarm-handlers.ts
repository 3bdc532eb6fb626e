import { cloudWatchClient } from '../shared/clients.ts';
import { StepInput, step, stepSetup } from '../shared/step.ts';
import { type AlarmDeps, configureTenantAlarms, removeTenantAlarms } from './alarms.ts';
import { ACTOR, PROVISIONING } from './step.ts';

/** ConfigureAlarms and RemoveAlarms: the tenant's CloudWatch alarms. */
const { env, registry } = stepSetup(['ALARM_TOPIC_ARN']);
const progress = { store: registry.progress, actor: ACTOR };
const deps: AlarmDeps = { cloudWatch: cloudWatchClient(), topicArn: env.ALARM_TOPIC_ARN, stage: env.STAGE };

export const configureAlarms = /* @__PURE__ */ step(
  'ConfigureAlarms',
  { input: StepInput, progress, statuses: PROVISIONING },
  async ({ tenant, record }) => {
    const alarms = await configureTenantAlarms(deps, tenant.id, tenant.plan, tenant.limits);
    record({ resources: { alarms } });
    return { alarms };
  },
);

export const removeAlarms = /* @__PURE__ */ step(
  'RemoveAlarms',
  { input: StepInput, progress },
  async ({ tenant }) => {
    const removed = await removeTenantAlarms(deps.cloudWatch, tenant.id);
    await registry.tenants.removeResources(tenant.id, ['alarms'], ACTOR);
    return { alarms: removed.length };
  },
);
