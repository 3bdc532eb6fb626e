import type { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import type { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import type { RDSDataClient } from '@aws-sdk/client-rds-data';
import type { S3Client } from '@aws-sdk/client-s3';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { SFNClient } from '@aws-sdk/client-sfn';
import { BatchStore } from '../functions/bulk/store.ts';
import { LifecycleStore } from '../functions/lifecycle/operations.ts';
import {
  DEFAULT_RECONCILE_POLICY,
  type ReconcileDeps,
  type ReconcilePolicy,
  type ReconcileReport,
  reconcile,
} from '../functions/reconcile/reconcile.ts';
import { DataApi } from '../functions/shared/data-api.ts';
import { Registry } from '../functions/shared/registry.ts';
import {
  ALARM_TOPIC_ARN,
  CONTROL_PLANE_DATABASE,
  EVENT_BUS_NAME,
  STAGE,
  STORAGE_BUCKET,
  STORAGE_KEY_ARN,
  stateMachineArn,
} from '../local/constants.ts';
import type { SandboxUnderTest } from './sandbox.ts';

/** The SDK clients the reconciler calls, on a sandbox. */
export interface ReconcilerClients {
  readonly rdsData: RDSDataClient;
  readonly sfn: SFNClient;
  readonly secrets: SecretsManagerClient;
  readonly s3: S3Client;
  readonly cloudWatch: CloudWatchClient;
  readonly events: EventBridgeClient;
}

/** What the Reconcile function is given (functions/reconcile/handler.ts), on a sandbox's endpoint and cluster. */
export function reconcilerDeps(
  clients: ReconcilerClients,
  info: { readonly clusterArn: string; readonly provisionerSecretArn: string },
): ReconcileDeps {
  const cluster = new DataApi(clients.rdsData, {
    resourceArn: info.clusterArn,
    secretArn: info.provisionerSecretArn,
    database: CONTROL_PLANE_DATABASE,
  });
  const registry = new Registry(cluster);
  return {
    cluster,
    tenants: registry.tenants,
    audit: registry.audit,
    store: new LifecycleStore(cluster),
    batches: new BatchStore(cluster),
    actor: 'reconciler',
    sfn: clients.sfn,
    provisionStateMachineArn: stateMachineArn('provision-tenant'),
    rollbackStateMachineArn: stateMachineArn('rollback-tenant'),
    lifecycleStateMachines: {
      suspend: stateMachineArn('suspend-tenant'),
      resume: stateMachineArn('resume-tenant'),
      change_plan: stateMachineArn('change-plan'),
      delete: stateMachineArn('delete-tenant'),
      backup: stateMachineArn('backup-tenant'),
      restore: stateMachineArn('restore-tenant'),
    },
    secrets: clients.secrets,
    s3: clients.s3,
    bucket: STORAGE_BUCKET,
    cloudWatch: clients.cloudWatch,
    stage: STAGE,
    events: clients.events,
    busName: EVENT_BUS_NAME,
    repair: {
      alarms: { cloudWatch: clients.cloudWatch, topicArn: ALARM_TOPIC_ARN, stage: STAGE },
      storage: { s3: clients.s3, bucket: STORAGE_BUCKET, stage: STAGE, keyArn: STORAGE_KEY_ARN },
    },
    log: () => {},
  };
}

/**
 * One pass of the drift reconciler against the sandbox, run from the suite's process with the product's own
 * module and the sandbox's provisioner credentials: what the schedule does, at a moment the suite chooses.
 */
export function runReconciler(
  sut: SandboxUnderTest,
  policy: Partial<ReconcilePolicy> = {},
): Promise<ReconcileReport> {
  return reconcile(reconcilerDeps(sut.clients, sut.info), { ...DEFAULT_RECONCILE_POLICY, ...policy });
}
