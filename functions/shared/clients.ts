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

// `@__PURE__`: a bundle drops the clients its function never calls, and with them their SDK packages
// (an S3 client alone is ~120 KB minified), which every function's cold start would otherwise load.
export const rdsDataClient = /* @__PURE__ */ once(() => new RDSDataClient({}));
export const secretsManagerClient = /* @__PURE__ */ once(() => new SecretsManagerClient({}));
// Path-style keeps object URLs valid for any endpoint; the SDK computes checksums only where S3 requires them.
export const s3Client = /* @__PURE__ */ once(
  () => new S3Client({ forcePathStyle: true, requestChecksumCalculation: 'WHEN_REQUIRED' }),
);
export const cloudWatchClient = /* @__PURE__ */ once(() => new CloudWatchClient({}));
export const sfnClient = /* @__PURE__ */ once(() => new SFNClient({}));
export const eventBridgeClient = /* @__PURE__ */ once(() => new EventBridgeClient({}));
