import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { RDSDataClient } from '@aws-sdk/client-rds-data';
import { S3Client } from '@aws-sdk/client-s3';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SFNClient } from '@aws-sdk/client-sfn';

/**
 * The AWS clients, each made once per Lambda container on first use and handed to the modules that need it.
 * They take region, credentials and endpoint from the standard environment (`AWS_ENDPOINT_URL` in the sandbox).
 */
function once<T>(make: () => T): () => T {
  let value: T | undefined;
  return () => {
    value ??= make();
    return value;
  };
}

export const rdsDataClient = once(() => new RDSDataClient({}));
export const secretsManagerClient = once(() => new SecretsManagerClient({}));
// Path-style keeps object URLs valid for any endpoint; the SDK computes checksums only where S3 requires them.
export const s3Client = once(
  () => new S3Client({ forcePathStyle: true, requestChecksumCalculation: 'WHEN_REQUIRED' }),
);
export const cloudWatchClient = once(() => new CloudWatchClient({}));
export const sfnClient = once(() => new SFNClient({}));
export const eventBridgeClient = once(() => new EventBridgeClient({}));
