import { App } from 'aws-cdk-lib';
import { addStageStack, checkAwsSolutions } from '../app.ts';
import { isStageName, type JwtConfig, STAGES, stageConfig } from '../config.ts';

/**
 * The CDK app: one stack per `cdk deploy -c stage=<dev|staging|prod>`. Context is read here only and turned
 * into a typed stage config. Account and region come from `-c account=… -c region=…` or the CLI's defaults
 * (CDK_DEFAULT_ACCOUNT/REGION, from the current credentials); without either the stack is environment-agnostic,
 * so that `cdk synth` works offline.
 *
 * Optional context: `jwtIssuer` and `jwtAudience` (comma-separated) to trust an existing identity provider
 * instead of creating a Cognito user pool; `alarmEmails` (comma-separated); `availabilityZones`
 * (comma-separated, for an environment-specific stack; default `<region>a,<region>b`).
 */
const app = new App();

const context = (key: string): string | undefined => {
  const value: unknown = app.node.tryGetContext(key);
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') throw new Error(`Context ${key} must be a string`);
  return value;
};
const list = (value: string | undefined): string[] =>
  (value ?? '')
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean);

const stage = context('stage');
if (!isStageName(stage)) throw new Error(`Pass -c stage=<${STAGES.join('|')}> (got ${stage ?? 'nothing'})`);

const issuer = context('jwtIssuer');
const audience = list(context('jwtAudience'));
if (issuer && audience.length === 0) throw new Error('-c jwtIssuer needs -c jwtAudience too');
const jwt: JwtConfig | undefined = issuer ? { issuer, audience } : undefined;

const account = context('account') ?? process.env.CDK_DEFAULT_ACCOUNT;
const region = context('region') ?? process.env.CDK_DEFAULT_REGION;

addStageStack(
  app,
  stageConfig(stage, { ...(jwt ? { jwt } : {}), alarmEmails: list(context('alarmEmails')) }),
  {
    ...(account && region ? { env: { account, region } } : {}),
    availabilityZones: list(context('availabilityZones')),
  },
);
checkAwsSolutions(app);
