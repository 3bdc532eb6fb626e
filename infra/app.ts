import { type App, type Environment, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { StageConfig } from './config.ts';
import { ControlPlaneStack } from './stack.ts';

export interface StageStackOptions {
  /** Account and region; absent, the stack is environment-agnostic (what offline synth uses). */
  readonly env?: Required<Pick<Environment, 'account' | 'region'>>;
  /** For an environment-specific stack; default `<region>a` and `<region>b`, so that synth needs no lookup. */
  readonly availabilityZones?: readonly string[];
}

/** The stage's stack in `app`, as `cdk deploy -c stage=<stage>` deploys it: `TenantProvisioner-<stage>`. */
export function addStageStack(
  app: App,
  config: StageConfig,
  options: StageStackOptions = {},
): ControlPlaneStack {
  const { env } = options;
  return new ControlPlaneStack(app, `TenantProvisioner-${config.stage}`, {
    stackName: config.prefix,
    description: `Tenant Provisioner control plane (${config.stage})`,
    config,
    ...(env
      ? {
          env,
          availabilityZones:
            options.availabilityZones && options.availabilityZones.length > 0
              ? options.availabilityZones
              : [`${env.region}a`, `${env.region}b`],
        }
      : {}),
    terminationProtection: config.stage === 'prod',
  });
}

/** AwsSolutions checks (cdk-nag) on every synth: any finding the constructs do not acknowledge fails it. */
export function checkAwsSolutions(app: App): void {
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
}
