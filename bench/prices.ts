/**
 * AWS list prices the cost figures use: US East (N. Virginia), on-demand, without free tiers. Taken from AWS's
 * public pricing pages (URLs below) on PRICES_DATE; the benchmark's tooling could not fetch those pages, so each
 * figure is the published rate as last read, and worth checking against the page before quoting it.
 */
export const PRICES_DATE = '2026-11-23';

export interface Price {
  readonly usd: number;
  readonly per: string;
  readonly source: string;
}

export const PRICES = {
  stepFunctionsTransition: {
    usd: 0.025 / 1000,
    per: 'state transition (Standard workflow; $0.025 per 1,000)',
    source: 'https://aws.amazon.com/step-functions/pricing/',
  },
  lambdaArmGbSecond: {
    usd: 0.0000133334,
    per: 'GB-second, arm64 (first 6 billion GB-s a month)',
    source: 'https://aws.amazon.com/lambda/pricing/',
  },
  lambdaRequest: {
    usd: 0.2 / 1_000_000,
    per: 'request ($0.20 per million)',
    source: 'https://aws.amazon.com/lambda/pricing/',
  },
  dataApiRequest: {
    usd: 0.35 / 1_000_000,
    per: 'RDS Data API request ($0.35 per million, first billion a month)',
    source: 'https://aws.amazon.com/rds/aurora/pricing/ (Data API)',
  },
  secretsManagerApiCall: {
    usd: 0.05 / 10_000,
    per: 'Secrets Manager API call ($0.05 per 10,000)',
    source: 'https://aws.amazon.com/secrets-manager/pricing/',
  },
  secretMonth: {
    usd: 0.4,
    per: 'secret per month',
    source: 'https://aws.amazon.com/secrets-manager/pricing/',
  },
  cloudWatchApiRequest: {
    usd: 0.01 / 1000,
    per: 'CloudWatch API request, e.g. PutMetricAlarm ($0.01 per 1,000)',
    source: 'https://aws.amazon.com/cloudwatch/pricing/',
  },
  alarmMetricMonth: {
    usd: 0.1,
    per: 'standard-resolution alarm metric per month (a metric-math alarm pays per metric it reads)',
    source: 'https://aws.amazon.com/cloudwatch/pricing/',
  },
  customMetricMonth: {
    usd: 0.3,
    per: 'custom metric per month (first 10,000 metrics; each name and dimension set is one metric)',
    source: 'https://aws.amazon.com/cloudwatch/pricing/',
  },
  s3PutRequest: {
    usd: 0.005 / 1000,
    per: 'S3 Standard PUT/COPY/POST/LIST request ($0.005 per 1,000)',
    source: 'https://aws.amazon.com/s3/pricing/',
  },
  eventBridgeEvent: {
    usd: 1 / 1_000_000,
    per: 'EventBridge custom event published ($1.00 per million)',
    source: 'https://aws.amazon.com/eventbridge/pricing/',
  },
  httpApiRequest: {
    usd: 1 / 1_000_000,
    per: 'API Gateway HTTP API request ($1.00 per million, first 300 million)',
    source: 'https://aws.amazon.com/api-gateway/pricing/',
  },
  codeBuildArmSmallMinute: {
    usd: 0.0034,
    per: 'CodeBuild build minute, arm1.small (on-demand, EC2 compute)',
    source: 'https://aws.amazon.com/codebuild/pricing/',
  },
} as const satisfies Record<string, Price>;

/** Memory of the product's functions (infra/constructs/function.ts: 512 MB unless a definition says otherwise). */
export const LAMBDA_MEMORY_GB = 0.5;

/** The comparison: a per-tenant job that starts a build container and runs infrastructure code, 5 minutes. */
export const BUILD_JOB_MINUTES = 5;
