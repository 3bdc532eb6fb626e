import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import { sfnClient } from '../shared/clients.ts';
import { logger, stepSetup } from '../shared/step.ts';
import { LifecycleStore } from './operations.ts';
import { type ScheduleResult, scheduleBackups } from './scheduled-backups.ts';

/** The ScheduleBackups function: one pass of the backup scheduler per scheduled invocation (hourly). */
const { env, cluster } = stepSetup(['BACKUP_STATE_MACHINE_ARN']);

const deps = {
  registry: cluster,
  store: new LifecycleStore(cluster),
  sfn: sfnClient(),
  stateMachines: { backup: env.BACKUP_STATE_MACHINE_ARN },
  log: (message: string, details: Record<string, unknown>) => logger.warn(message, details),
};

export const handler = middy(async (): Promise<ScheduleResult> => {
  const result = await scheduleBackups(deps, { now: new Date() });
  if (result.started.length > 0 || result.deferred > 0) logger.info('Scheduled backups', { ...result });
  return result;
}).use(injectLambdaContext(logger, { resetKeys: true }));
