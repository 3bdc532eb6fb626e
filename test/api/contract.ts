import { join } from 'node:path';
import { z } from 'zod';
import { stateMachineVariables } from '../../functions/registry.ts';
import { STORAGE_BUCKET, stateMachineArn } from '../../local/constants.ts';

// What the api tests share that needs no sandbox, so that unit tests (*.unit.test.ts) can use it too.

/** Where the api function's AWS calls go: a sandbox's endpoint and ARNs (`sandbox.json`), or `NO_AWS`. */
export interface AwsTarget {
  readonly awsEndpoint: string;
  readonly region: string;
  readonly clusterArn: string;
  readonly provisionerSecretArn: string;
}

/**
 * For unit tests: an endpoint on which nothing listens (the discard port on loopback), so that a call the test
 * did not expect fails at once with a refused connection instead of reaching some sandbox.
 */
export const NO_AWS: AwsTarget = {
  awsEndpoint: 'http://127.0.0.1:9',
  region: 'us-east-1',
  clusterArn: 'arn:aws:rds:us-east-1:000000000000:cluster:no-aws',
  provisionerSecretArn: 'arn:aws:secretsmanager:us-east-1:000000000000:secret:no-aws-AbCdEf',
};

/** Sets the environment the api function reads, as the sandbox sets it, with its AWS calls going to `target`. */
export function setApiEnvironment(target: AwsTarget, overrides: Record<string, string> = {}): void {
  Object.assign(process.env, {
    AWS_ENDPOINT_URL: target.awsEndpoint,
    AWS_REGION: target.region,
    AWS_ACCESS_KEY_ID: 'sandbox',
    AWS_SECRET_ACCESS_KEY: 'sandbox',
    STAGE: 'local',
    CLUSTER_ARN: target.clusterArn,
    PROVISIONER_SECRET_ARN: target.provisionerSecretArn,
    CONTROL_PLANE_DATABASE: 'control_plane',
    ...stateMachineVariables(stateMachineArn),
    STORAGE_BUCKET,
    SCHEMA_DIR: join(import.meta.dirname, '../../schema'),
    POWERTOOLS_LOG_LEVEL: 'CRITICAL',
    ...overrides,
  });
}

/** The body of every error answer (docs/api.md). */
export const ErrorBody = z.strictObject({
  error: z.strictObject({
    code: z.string(),
    message: z.string(),
    details: z.array(z.strictObject({ path: z.string(), message: z.string() })),
    suggestions: z.array(z.string()).optional(),
  }),
});
