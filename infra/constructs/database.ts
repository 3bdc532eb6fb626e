import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { CustomResource, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import {
  FlowLogDestination,
  FlowLogTrafficType,
  type IVpc,
  SecurityGroup,
  SubnetType,
  Vpc,
} from 'aws-cdk-lib/aws-ec2';
import { Effect, PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { CfnFunction } from 'aws-cdk-lib/aws-lambda';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import {
  AuroraPostgresEngineVersion,
  ClusterInstance,
  Credentials,
  DatabaseCluster,
  DatabaseClusterEngine,
  DatabaseSecret,
} from 'aws-cdk-lib/aws-rds';
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import { Provider } from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import type { ControlPlaneFunction } from './function.ts';
import { PROJECT_ROOT } from './function.ts';

/** The database role the provisioning functions use: CREATEDB and CREATEROLE, not the master user. */
export const PROVISIONER_ROLE = 'provisioner';
/** The registry database on the stage's cluster. */
export const CONTROL_PLANE_DATABASE = 'control_plane';

export interface DatabaseProps {
  /** Prefix of physical names: the cluster is `<prefix>`, its secrets `<prefix>/master` and `<prefix>/provisioner`. */
  readonly prefix: string;
  /**
   * Aurora Serverless v2 capacity range in ACU. A minimum of 0 makes the writer pause when idle.
   * @default 0 to 2
   */
  readonly minCapacity?: number;
  readonly maxCapacity?: number;
  /**
   * Idle time before a min-0 writer pauses (5 minutes to 24 hours).
   * @default 5 minutes
   */
  readonly autoPauseAfter?: Duration;
  /**
   * Serverless v2 readers that scale with the writer and take over when it fails.
   * @default 0
   */
  readonly readers?: number;
  /** @default 1 day */
  readonly backupRetention?: Duration;
  /** @default false */
  readonly deletionProtection?: boolean;
  /** Applies to the cluster. @default RemovalPolicy.SNAPSHOT */
  readonly removalPolicy?: RemovalPolicy;
  /** Applies to the secrets and log groups. @default RemovalPolicy.RETAIN */
  readonly resourcesRemovalPolicy?: RemovalPolicy;
  /** @default RetentionDays.ONE_MONTH */
  readonly logRetention?: RetentionDays;
  /**
   * The engine; any Aurora PostgreSQL version with Serverless v2 auto-pause (16.3+, 17.x).
   * @default AuroraPostgresEngineVersion.VER_17_9
   */
  readonly engineVersion?: AuroraPostgresEngineVersion;
  /**
   * Availability zones for the VPC; given, synth needs no account lookup for them.
   * @default two zones of the stack's region (`Fn::GetAZs` in an environment-agnostic stack)
   */
  readonly availabilityZones?: readonly string[];
}

/**
 * The stage's Aurora PostgreSQL Serverless v2 cluster, reached only through the RDS Data API: its VPC has
 * isolated subnets only and its security group admits nothing, so no NAT gateway or ingress exists to pay for
 * or to guard. Storage is encrypted. `provisionerSecret` is the secret of the `provisioner` role (CREATEDB
 * CREATEROLE), which `addSetup` creates on deploy with the master user before it applies the control-plane
 * migrations as the provisioner.
 */
export class Database extends Construct {
  readonly vpc: IVpc;
  readonly cluster: DatabaseCluster;
  readonly masterSecret: ISecret;
  readonly provisionerSecret: ISecret;
  readonly #props: DatabaseProps;

  constructor(scope: Construct, id: string, props: DatabaseProps) {
    super(scope, id);
    this.#props = props;
    const logRetention = props.logRetention ?? RetentionDays.ONE_MONTH;
    const resourcesRemovalPolicy = props.resourcesRemovalPolicy ?? RemovalPolicy.RETAIN;

    const vpc = new Vpc(this, 'Vpc', {
      ...(props.availabilityZones ? { availabilityZones: [...props.availabilityZones] } : { maxAzs: 2 }),
      natGateways: 0,
      subnetConfiguration: [{ name: 'database', subnetType: SubnetType.PRIVATE_ISOLATED, cidrMask: 24 }],
      restrictDefaultSecurityGroup: false,
    });
    vpc.addFlowLog('FlowLog', {
      destination: FlowLogDestination.toCloudWatchLogs(
        new LogGroup(this, 'FlowLogs', { retention: logRetention, removalPolicy: resourcesRemovalPolicy }),
      ),
      trafficType: FlowLogTrafficType.REJECT,
    });
    this.vpc = vpc;
    const securityGroup = new SecurityGroup(this, 'SecurityGroup', {
      vpc,
      description: `${props.prefix}: Aurora, reached through the Data API only`,
      allowAllOutbound: false,
    });

    const minCapacity = props.minCapacity ?? 0;
    const postgresLogs = new LogGroup(this, 'PostgresLogs', {
      logGroupName: `/aws/rds/cluster/${props.prefix}/postgresql`,
      retention: logRetention,
      removalPolicy: resourcesRemovalPolicy,
    });
    this.cluster = new DatabaseCluster(this, 'Cluster', {
      clusterIdentifier: props.prefix,
      engine: DatabaseClusterEngine.auroraPostgres({
        version: props.engineVersion ?? AuroraPostgresEngineVersion.VER_17_9,
      }),
      credentials: Credentials.fromGeneratedSecret('postgres', { secretName: `${props.prefix}/master` }),
      writer: ClusterInstance.serverlessV2('Writer'),
      readers: Array.from({ length: props.readers ?? 0 }, (_, index) =>
        ClusterInstance.serverlessV2(`Reader${index + 1}`, { scaleWithWriter: true }),
      ),
      serverlessV2MinCapacity: minCapacity,
      serverlessV2MaxCapacity: props.maxCapacity ?? 2,
      ...(minCapacity === 0
        ? { serverlessV2AutoPauseDuration: props.autoPauseAfter ?? Duration.minutes(5) }
        : {}),
      enableDataApi: true,
      storageEncrypted: true,
      vpc,
      vpcSubnets: { subnetType: SubnetType.PRIVATE_ISOLATED },
      securityGroups: [securityGroup],
      backup: { retention: props.backupRetention ?? Duration.days(1) },
      deletionProtection: props.deletionProtection ?? false,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.SNAPSHOT,
      copyTagsToSnapshot: true,
      // Exported to the log group above, which carries the stage's retention.
      cloudwatchLogsExports: ['postgresql'],
    });
    this.cluster.node.addDependency(postgresLogs);
    if (!this.cluster.secret) throw new Error('The cluster has no master secret');
    this.masterSecret = this.cluster.secret;

    const provisionerSecret = new DatabaseSecret(this, 'ProvisionerSecret', {
      username: PROVISIONER_ROLE,
      dbname: 'postgres',
      secretName: `${props.prefix}/${PROVISIONER_ROLE}`,
    });
    provisionerSecret.applyRemovalPolicy(resourcesRemovalPolicy);
    // Attached, the secret holds host, port and engine too: the standard RDS secret format.
    this.provisionerSecret = provisionerSecret.attach(this.cluster);

    const masterSecretResource = this.cluster.node.tryFindChild('Secret');
    if (!(masterSecretResource instanceof DatabaseSecret))
      throw new Error('The cluster has no generated master secret');
    masterSecretResource.applyRemovalPolicy(resourcesRemovalPolicy);
    for (const secret of [masterSecretResource, provisionerSecret]) {
      Validations.of(secret).acknowledge({
        id: 'AwsSolutions-SMG4',
        reason:
          'Rotation needs a rotation function inside the VPC with a route to Secrets Manager (NAT or an interface endpoint), a standing cost the Data-API-only design avoids; rotate by redeploying with a new secret until rotation is added.',
      });
    }
    Validations.of(this.cluster).acknowledge({
      id: 'AwsSolutions-RDS6',
      reason:
        'Nothing connects to the cluster directly: every caller goes through the RDS Data API, which authenticates with IAM and a Secrets Manager secret; IAM database authentication would add no caller.',
    });
    if (!(props.deletionProtection ?? false)) {
      Validations.of(this.cluster).acknowledge({
        id: 'AwsSolutions-RDS10',
        reason: 'Deletion protection is on in prod; dev and staging stacks are meant to be torn down.',
      });
    }
  }

  /**
   * Runs `setup` on every deploy that changes the schema: it creates the provisioner role (with the master
   * secret) and applies the control-plane migrations as the provisioner. `setup` must declare
   * `rds-data:ExecuteStatement` (and the transaction actions) on `cluster` and `secretsmanager:GetSecretValue`
   * on `masterSecret` and `provisionerSecret`.
   */
  addSetup(
    setup: ControlPlaneFunction,
    options: { readonly logRetention?: RetentionDays } = {},
  ): CustomResource {
    const logs = new LogGroup(this, 'SetupProviderLogs', {
      retention: options.logRetention ?? this.#props.logRetention ?? RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // The provider framework's function only invokes `setup`; its own role says so and writes its own logs.
    const frameworkRole = new Role(this, 'SetupProviderRole', {
      assumedBy: new ServicePrincipal('lambda.amazonaws.com'),
      description: `${this.#props.prefix}: the custom resource provider that runs the database setup`,
    });
    frameworkRole.addToPrincipalPolicy(
      new PolicyStatement({
        effect: Effect.ALLOW,
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [logs.logGroupArn],
      }),
    );
    const provider = new Provider(this, 'SetupProvider', {
      onEventHandler: setup.function,
      logGroup: logs,
      frameworkOnEventRole: frameworkRole,
    });
    const setupResource = setup.function.node.defaultChild;
    if (!(setupResource instanceof CfnFunction)) throw new Error('The setup function has no CfnFunction');
    Validations.of(frameworkRole).acknowledge({
      id: `AwsSolutions-IAM5[Resource::<${Stack.of(this).getLogicalId(setupResource)}.Arn>:*]`,
      reason:
        "The CDK provider framework grants lambda:InvokeFunction on the setup function's versions and aliases too (`<arn>:*`); it invokes that one function only.",
    });
    const resource = new CustomResource(this, 'Setup', {
      serviceToken: provider.serviceToken,
      resourceType: 'Custom::ControlPlaneSetup',
      properties: {
        ClusterArn: this.cluster.clusterArn,
        MasterSecretArn: this.masterSecret.secretArn,
        ProvisionerSecretArn: this.provisionerSecret.secretArn,
        ProvisionerRole: PROVISIONER_ROLE,
        Database: CONTROL_PLANE_DATABASE,
        // A changed migration changes this, and CloudFormation sends an Update that applies it.
        SchemaHash: schemaHash(),
      },
    });
    // The writer (and readers) must be up before the Data API answers.
    resource.node.addDependency(this.cluster);
    return resource;
  }
}

/**
 * A digest of every migration under `schema/` (its `.sql` files), so that a deploy re-runs the setup exactly when one
 * changes; the TypeScript contract beside them (routes, plans, names) is not what the setup applies.
 */
export function schemaHash(root = join(PROJECT_ROOT, 'schema')): string {
  const hash = createHash('sha256');
  const files = readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.sql'))
    .map((entry) => join(entry.parentPath, entry.name))
    .sort();
  for (const file of files)
    hash.update(relative(root, file)).update('\0').update(readFileSync(file)).update('\0');
  return hash.digest('hex').slice(0, 16);
}
