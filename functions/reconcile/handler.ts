import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import * as z from '../../schema/zod.ts';
import { BatchStore } from '../bulk/store.ts';
import { LifecycleStore } from '../lifecycle/operations.ts';
import {
  cloudWatchClient,
  eventBridgeClient,
  s3Client,
  secretsManagerClient,
  sfnClient,
} from '../shared/clients.ts';
import { logger, stepSetup } from '../shared/step.ts';
import {
  DEFAULT_RECONCILE_POLICY,
  type ReconcileDeps,
  type ReconcileReport,
  reconcile,
} from './reconcile.ts';
import { siblingStateMachineArn } from './stuck.ts';

/** The Reconcile function: one pass of the drift reconciler per scheduled invocation. */
const { env, cluster, registry } = stepSetup([
  'STORAGE_BUCKET',
  'STORAGE_KEY_ARN',
  'ALARM_TOPIC_ARN',
  'EVENT_BUS_NAME',
  'PROVISION_STATE_MACHINE_ARN',
  'SUSPEND_STATE_MACHINE_ARN',
  'RESUME_STATE_MACHINE_ARN',
  'CHANGE_PLAN_STATE_MACHINE_ARN',
  'DELETE_STATE_MACHINE_ARN',
  'BACKUP_STATE_MACHINE_ARN',
  'RESTORE_STATE_MACHINE_ARN',
]);

/** Who the reconciler writes to the registry as. */
export const RECONCILER = 'reconciler';

const deps: ReconcileDeps = {
  cluster,
  tenants: registry.tenants,
  audit: registry.audit,
  actor: RECONCILER,
  sfn: sfnClient(),
  provisionStateMachineArn: env.PROVISION_STATE_MACHINE_ARN,
  // Both state machines are `<stack prefix>-<file name>`, in CDK and in the sandbox.
  rollbackStateMachineArn: siblingStateMachineArn(
    env.PROVISION_STATE_MACHINE_ARN,
    'provision-tenant',
    'rollback-tenant',
  ),
  lifecycleStateMachines: {
    suspend: env.SUSPEND_STATE_MACHINE_ARN,
    resume: env.RESUME_STATE_MACHINE_ARN,
    change_plan: env.CHANGE_PLAN_STATE_MACHINE_ARN,
    delete: env.DELETE_STATE_MACHINE_ARN,
    backup: env.BACKUP_STATE_MACHINE_ARN,
    restore: env.RESTORE_STATE_MACHINE_ARN,
  },
  store: new LifecycleStore(cluster),
  batches: new BatchStore(cluster),
  secrets: secretsManagerClient(),
  s3: s3Client(),
  bucket: env.STORAGE_BUCKET,
  cloudWatch: cloudWatchClient(),
  stage: env.STAGE,
  events: eventBridgeClient(),
  busName: env.EVENT_BUS_NAME,
  repair: {
    alarms: { cloudWatch: cloudWatchClient(), topicArn: env.ALARM_TOPIC_ARN, stage: env.STAGE },
    storage: { s3: s3Client(), bucket: env.STORAGE_BUCKET, stage: env.STAGE, keyArn: env.STORAGE_KEY_ARN },
  },
  log: (message, details) => logger.warn(message, details),
};

/**
 * The scheduled event may override the policy (an operator's manual run, a test); a scheduler's own fields
 * are ignored.
 */
const ReconcileEvent = z.partial(
  z.object({
    graceSeconds: z.number().check(z.minimum(0)),
    maxResumes: z.int().check(z.minimum(0)),
    maxRollbacks: z.int().check(z.minimum(0)),
    settleSeconds: z.number().check(z.minimum(0)),
    credentialCheckSeconds: z.number().check(z.minimum(0)),
    credentialChecksPerPass: z.int().check(z.minimum(0)),
    invitationChecksPerPass: z.int().check(z.minimum(0)),
  }),
);

export const handler = middy(async (event: unknown): Promise<ReconcileReport> => {
  const overrides = ReconcileEvent.safeParse(event);
  const policy = { ...DEFAULT_RECONCILE_POLICY, ...(overrides.success ? overrides.data : {}) };
  const report = await reconcile(deps, policy);
  const acted = [...report.stuck, ...report.operations].filter((outcome) => outcome.action !== 'waiting');
  if (
    acted.length > 0 ||
    report.newlyReported.length > 0 ||
    report.credentials.length > 0 ||
    report.revoked.length > 0 ||
    report.invitations.length > 0 ||
    report.batches.some((batch) => batch.status !== 'running')
  ) {
    logger.info('Reconciled', {
      stuck: report.stuck,
      operations: report.operations,
      batches: report.batches,
      credentials: report.credentials,
      revoked: report.revoked,
      invitations: report.invitations,
      orphans: report.orphans.length,
      missing: report.missing.length,
      newlyReported: report.newlyReported,
    });
  }
  return report;
}).use(injectLambdaContext(logger, { resetKeys: true }));
