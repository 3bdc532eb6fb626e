import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import { logger, stepSetup } from '../provision/step.ts';
import {
  cloudWatchClient,
  eventBridgeClient,
  s3Client,
  secretsManagerClient,
  sfnClient,
} from '../shared/clients.ts';
import * as z from '../shared/zod.ts';
import { type ReconcileDeps, type ReconcileReport, reconcile } from './reconcile.ts';
import { DEFAULT_STUCK_POLICY, siblingStateMachineArn } from './stuck.ts';

/** The Reconcile function: one pass of the drift reconciler per scheduled invocation. */
const { env, cluster, registry } = stepSetup({
  STORAGE_BUCKET: z.string().check(z.minLength(3)),
  ALARM_TOPIC_ARN: z.string().check(z.startsWith('arn:')),
  EVENT_BUS_NAME: z.string().check(z.minLength(1)),
  PROVISION_STATE_MACHINE_ARN: z.string().check(z.startsWith('arn:')),
});

/** Who the reconciler writes to the registry as. */
export const RECONCILER = 'reconciler';

const deps: ReconcileDeps = {
  cluster,
  registry,
  actor: RECONCILER,
  sfn: sfnClient(),
  provisionStateMachineArn: env.PROVISION_STATE_MACHINE_ARN,
  // Both state machines are `<stack prefix>-<file name>`, in CDK and in the sandbox.
  rollbackStateMachineArn: siblingStateMachineArn(
    env.PROVISION_STATE_MACHINE_ARN,
    'provision-tenant',
    'rollback-tenant',
  ),
  secrets: secretsManagerClient(),
  s3: s3Client(),
  bucket: env.STORAGE_BUCKET,
  cloudWatch: cloudWatchClient(),
  stage: env.STAGE,
  events: eventBridgeClient(),
  busName: env.EVENT_BUS_NAME,
  repair: {
    alarms: { cloudWatch: cloudWatchClient(), topicArn: env.ALARM_TOPIC_ARN, stage: env.STAGE },
    storage: { s3: s3Client(), bucket: env.STORAGE_BUCKET, stage: env.STAGE },
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
  }),
);

export const handler = middy(async (event: unknown): Promise<ReconcileReport> => {
  const overrides = ReconcileEvent.safeParse(event);
  const policy = { ...DEFAULT_STUCK_POLICY, ...(overrides.success ? overrides.data : {}) };
  const report = await reconcile(deps, policy);
  const acted = report.stuck.filter((outcome) => outcome.action !== 'waiting');
  if (acted.length > 0 || report.newlyReported.length > 0) {
    logger.info('Reconciled', {
      stuck: report.stuck,
      orphans: report.orphans.length,
      missing: report.missing.length,
      newlyReported: report.newlyReported,
    });
  }
  return report;
}).use(injectLambdaContext(logger, { resetKeys: true }));
