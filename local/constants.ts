import { join } from 'node:path';
import type { PostgresConnection } from './postgres.ts';

/** The sandbox's fixed names: one region, one account, one stage, as a deployed stack has. */
export const PROJECT_ROOT = join(import.meta.dirname, '..');
export const REGION = 'us-east-1';
/** LocalStack's account id, so that ARNs read as local at a glance. */
export const ACCOUNT_ID = '000000000000';
export const STAGE = 'local';
export const STACK_PREFIX = `tenant-provisioner-${STAGE}`;
export const CLUSTER_ARN = `arn:aws:rds:${REGION}:${ACCOUNT_ID}:cluster:${STACK_PREFIX}`;
/** The database role the provisioning functions use through the Data API: CREATEDB and CREATEROLE, not superuser. */
export const PROVISIONER_ROLE = 'provisioner';
export const PROVISIONER_SECRET_NAME = `${STACK_PREFIX}/${PROVISIONER_ROLE}`;
export const CONTROL_PLANE_DATABASE = 'control_plane';
export const STORAGE_BUCKET = `${STACK_PREFIX}-storage`;
/**
 * The stage's KMS key for `encryptionLevel: "enhanced"` (SSE-KMS), as the stack's `Storage` construct makes it. The
 * sandbox has no KMS: its S3 knows this key, and answers any other as S3 does (`KMS.NotFoundException`).
 */
export const STORAGE_KEY_ARN = `arn:aws:kms:${REGION}:${ACCOUNT_ID}:key/0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9`;
/**
 * The sandbox's bucket is versioned, as staging's and prod's are (infra/config.ts): what the product promises
 * about deleted data must hold where deleting leaves noncurrent versions behind, so it is tested there.
 */
export const STORAGE_VERSIONED = true;
export const EVENT_BUS_NAME = STACK_PREFIX;
/** The stage's alarm topic, which the bootstrap creates in the sandbox's SNS: alarm actions publish to it. */
export const ALARM_TOPIC_ARN = `arn:aws:sns:${REGION}:${ACCOUNT_ID}:${STACK_PREFIX}-alarms`;
export const stateMachineArn = (name: string): string =>
  `arn:aws:states:${REGION}:${ACCOUNT_ID}:stateMachine:${STACK_PREFIX}-${name}`;

/** What a test or a person needs to reach the sandbox; written to `<dir>/sandbox.json`, readable by its owner only. */
export interface SandboxInfo {
  /** The sandbox's process (`node local/main.ts`), which wrote the file. */
  readonly pid: number;
  readonly region: string;
  readonly accountId: string;
  readonly awsEndpoint: string;
  readonly postgres: PostgresConnection;
  readonly clusterArn: string;
  readonly provisionerSecretArn: string;
  /** The local API Gateway. */
  readonly apiUrl: string;
  /** A development token with every scope (`npm run token` mints others). */
  readonly token: string;
}

export const sandboxFile = (dir: string): string => join(dir, 'sandbox.json');
