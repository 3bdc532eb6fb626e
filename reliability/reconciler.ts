import { type ReconcileReport, reconcile } from '../functions/reconcile/reconcile.ts';
import { DEFAULT_STUCK_POLICY, type StuckPolicy } from '../functions/reconcile/stuck.ts';
import { DataApi } from '../functions/shared/data-api.ts';
import { TenantRegistry } from '../functions/shared/tenants.ts';
import {
  ALARM_TOPIC_ARN,
  CONTROL_PLANE_DATABASE,
  EVENT_BUS_NAME,
  STAGE,
  STORAGE_BUCKET,
  stateMachineArn,
} from '../local/constants.ts';
import type { SandboxUnderTest } from './sandbox.ts';

/**
 * One pass of the drift reconciler against the sandbox, run from the suite's process with the product's own
 * module and the sandbox's provisioner credentials: what the schedule does, at a moment the suite chooses.
 */
export function runReconciler(
  sut: SandboxUnderTest,
  policy: Partial<StuckPolicy> = {},
): Promise<ReconcileReport> {
  const { clients, info } = sut;
  const cluster = new DataApi(clients.rdsData, {
    resourceArn: info.clusterArn,
    secretArn: info.provisionerSecretArn,
    database: CONTROL_PLANE_DATABASE,
  });
  return reconcile(
    {
      cluster,
      registry: new TenantRegistry(cluster),
      actor: 'reconciler',
      sfn: clients.sfn,
      provisionStateMachineArn: stateMachineArn('provision-tenant'),
      rollbackStateMachineArn: stateMachineArn('rollback-tenant'),
      secrets: clients.secrets,
      s3: clients.s3,
      bucket: STORAGE_BUCKET,
      cloudWatch: clients.cloudWatch,
      stage: STAGE,
      events: clients.events,
      busName: EVENT_BUS_NAME,
      repair: {
        alarms: { cloudWatch: clients.cloudWatch, topicArn: ALARM_TOPIC_ARN, stage: STAGE },
        storage: { s3: clients.s3, bucket: STORAGE_BUCKET, stage: STAGE },
      },
      log: () => {},
    },
    { ...DEFAULT_STUCK_POLICY, ...policy },
  );
}
