import { ArnFormat, CfnOutput, Stack, type StackProps, Tags } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { OUTCOMES } from '../functions/lifecycle/outcome.ts';
import { DETAIL_TYPES } from '../functions/provision/outcome.ts';
import { DRIFT_DETAIL_TYPE } from '../functions/reconcile/reconcile.ts';
import {
  type EnvName,
  type FunctionDefinition,
  functions as registry,
  STATE_MACHINE_SCHEDULES,
  stateMachineVariables,
} from '../functions/registry.ts';
import { EVENT_SOURCE } from '../functions/shared/events.ts';
import {
  MEASURES,
  QUOTA_EXCEEDED,
  TENANT_METRICS_NAMESPACE,
  THRESHOLD_CROSSED,
} from '../functions/usage/quotas.ts';
import { ALL_SCOPES, routes as apiRoutes } from '../schema/api/routes.ts';
import { PLAN_NAMES } from '../schema/plans.ts';
import type { StageConfig } from './config.ts';
import { Api, type ApiRoute } from './constructs/api.ts';
import { CONTROL_PLANE_DATABASE, Database } from './constructs/database.ts';
import { Events } from './constructs/events.ts';
import { RegistryFunctions } from './constructs/function.ts';
import { Monitoring } from './constructs/monitoring.ts';
import { Provisioning, type StateMachineFile, stateMachineFiles } from './constructs/provisioning.ts';
import { Schedules } from './constructs/schedules.ts';
import { Storage } from './constructs/storage.ts';
import type { PermissionTargets } from './permissions.ts';

/** The registry function behind every API route. */
export const API_FUNCTION_ID = 'Api';
/** The registry function CloudFormation runs on deploy to set the database up. */
export const SETUP_FUNCTION_ID = 'SetupControlPlane';
/** The state machine of `PROVISION_STATE_MACHINE_ARN`. */
export const PROVISION_STATE_MACHINE = 'provision-tenant';
/** CloudWatch namespace of the product's own metrics (the `metrics` permission is limited to it). */
export const METRICS_NAMESPACE = TENANT_METRICS_NAMESPACE;
/**
 * The events an operator must hear about (on the alarm topic): every failed operation the product announces, the
 * drift the reconciler finds, and the usage collector's crossings (a quota exceeded; a threshold crossed, which is
 * the alarm of the plans without alarms of their own). A failed rollback is one too, with a rule and an alarm of its
 * own beside the provisioning state machine.
 */
export const FAILURE_DETAIL_TYPES: readonly string[] = [
  DETAIL_TYPES.failed,
  ...Object.values(OUTCOMES).map((outcome) => outcome.failedEvent),
  DRIFT_DETAIL_TYPE,
  QUOTA_EXCEEDED,
  THRESHOLD_CROSSED,
];

export interface ControlPlaneStackProps extends StackProps {
  readonly config: StageConfig;
  /** @default the functions of `functions/registry.ts` */
  readonly functions?: readonly FunctionDefinition[];
  /** @default the route table of `schema/api/routes.ts` */
  readonly routes?: readonly ApiRoute[];
  /** @default the files of `statemachines/` */
  readonly stateMachineFiles?: readonly StateMachineFile[];
  /** Availability zones of the database VPC; given, synth needs no lookup. @default two of the region's */
  readonly availabilityZones?: readonly string[];
}

/**
 * The control plane of one stage: events, storage, monitoring, database, the registry's functions, the state
 * machines and the API, wired so that a new function or state machine needs no edit here, only its registry
 * entry or ASL file.
 */
export class ControlPlaneStack extends Stack {
  readonly config: StageConfig;
  readonly events: Events;
  readonly storage: Storage;
  readonly monitoring: Monitoring;
  readonly database: Database;
  readonly functions: RegistryFunctions;
  readonly provisioning: Provisioning;
  /** The EventBridge Scheduler schedules of the registry's functions with a `schedule`. */
  readonly schedules: Schedules;
  readonly api: Api;
  /** What the registry's `ResourceRef`s name in this stack. */
  readonly permissionTargets: PermissionTargets;
  readonly #zones: readonly string[] | undefined;

  constructor(scope: Construct, id: string, props: ControlPlaneStackProps) {
    super(scope, id, props);
    this.#zones = props.availabilityZones;
    const { config } = props;
    this.config = config;
    const { prefix } = config;
    Tags.of(this).add('Stage', config.stage);
    Tags.of(this).add('Product', 'tenant-provisioner');

    this.events = new Events(this, 'Events', { eventBusName: prefix });
    this.storage = new Storage(this, 'Storage', {
      versioned: config.storage.versioned,
      noncurrentVersionExpiration: config.storage.noncurrentVersionExpiration,
      removalPolicy: config.removalPolicy,
    });
    this.monitoring = new Monitoring(this, 'Monitoring', { prefix, alarmEmails: config.alarmEmails });
    this.database = new Database(this, 'Database', {
      prefix,
      minCapacity: config.database.minCapacity,
      maxCapacity: config.database.maxCapacity,
      autoPauseAfter: config.database.autoPauseAfter,
      readers: config.database.readers,
      backupRetention: config.database.backupRetention,
      deletionProtection: config.database.deletionProtection,
      removalPolicy: config.database.removalPolicy,
      resourcesRemovalPolicy: config.removalPolicy,
      logRetention: config.logRetention,
      ...(props.availabilityZones ? { availabilityZones: props.availabilityZones } : {}),
    });

    // Built from the name, not a reference: functions may start a state machine that invokes them.
    const stateMachineArn = (name: string) =>
      this.formatArn({
        service: 'states',
        resource: 'stateMachine',
        resourceName: `${prefix}-${name}`,
        arnFormat: ArnFormat.COLON_RESOURCE_NAME,
      });
    const environment: Record<Exclude<EnvName, 'SCHEMA_DIR'>, string> = {
      STAGE: config.stage,
      CLUSTER_ARN: this.database.cluster.clusterArn,
      PROVISIONER_SECRET_ARN: this.database.provisionerSecret.secretArn,
      CONTROL_PLANE_DATABASE,
      STORAGE_BUCKET: this.storage.bucket.bucketName,
      STORAGE_KEY_ARN: this.storage.key.keyArn,
      ALARM_TOPIC_ARN: this.monitoring.topic.topicArn,
      EVENT_BUS_NAME: this.events.bus.eventBusName,
      ...stateMachineVariables(stateMachineArn),
      SECRET_RECOVERY_DAYS: String(config.secretRecoveryWindow.toDays()),
    };
    const targets: PermissionTargets = {
      stage: config.stage,
      prefix,
      clusterArn: this.database.cluster.clusterArn,
      masterSecretArn: this.database.masterSecret.secretArn,
      provisionerSecretArn: this.database.provisionerSecret.secretArn,
      bucketArn: this.storage.bucket.bucketArn,
      storageKeyArn: this.storage.key.keyArn,
      alarmTopicArn: this.monitoring.topic.topicArn,
      eventBusArn: this.events.bus.eventBusArn,
      metricsNamespace: METRICS_NAMESPACE,
    };
    this.permissionTargets = targets;
    this.functions = new RegistryFunctions(this, 'Functions', {
      definitions: props.functions ?? registry,
      prefix,
      environment,
      targets,
      logRetention: config.logRetention,
      logRemovalPolicy: config.removalPolicy,
    });

    // The key policy names the roles whose registry entry declares the key, with the actions they declare.
    const keyUsers = [...this.functions.byId.values()].flatMap((fn) =>
      (fn.definition.permissions ?? [])
        .filter((permission) => permission.resource === 'storageKey')
        .map((permission) => ({ role: fn.role, actions: permission.actions })),
    );
    for (const actions of new Set(keyUsers.map((user) => user.actions.join(',')))) {
      this.storage.allowKeyUse(
        keyUsers.filter((user) => user.actions.join(',') === actions).map((user) => user.role),
        actions.split(','),
      );
    }

    this.provisioning = new Provisioning(this, 'Provisioning', {
      prefix,
      functionsBySubstitution: this.functions.bySubstitutionKey(),
      files: props.stateMachineFiles ?? stateMachineFiles(),
      logRetention: config.logRetention,
      logRemovalPolicy: config.removalPolicy,
    });

    this.database.addSetup(this.functions.get(SETUP_FUNCTION_ID), { logRetention: config.logRetention });

    const usage = STATE_MACHINE_SCHEDULES.usageCollection;
    const collector = this.provisioning.stateMachines.get(usage.stateMachine);
    this.schedules = new Schedules(this, 'Schedules', {
      prefix,
      functions: [...this.functions.byId.values()],
      stateMachines: collector
        ? [
            {
              id: 'UsageCollection',
              stateMachine: collector,
              expression: `rate(${config.usageCollectionPeriod.toMinutes()} minute${config.usageCollectionPeriod.toMinutes() === 1 ? '' : 's'})`,
              description: usage.description,
              input: usage.input,
            },
          ]
        : [],
    });

    this.api = new Api(this, 'Api', {
      prefix,
      handler: this.functions.get(API_FUNCTION_ID).function,
      routes: props.routes ?? apiRoutes,
      scopes: ALL_SCOPES,
      ...(config.jwt ? { jwt: config.jwt } : {}),
      throttling: config.throttling,
      logRetention: config.logRetention,
      removalPolicy: config.removalPolicy,
    });

    const provision = this.provisioning.stateMachines.get(PROVISION_STATE_MACHINE);
    if (provision) {
      this.monitoring.watchProvisioning({
        stateMachine: provision,
        bus: this.events.bus,
        rollbackFailedPattern: { source: [EVENT_SOURCE], detailType: [DETAIL_TYPES.rollbackFailed] },
        functions: new Map([...this.functions.byId].map(([fnId, fn]) => [fnId, fn.function])),
        httpApiId: this.api.httpApi.apiId,
      });
    }
    this.monitoring.watchStateMachines({ stateMachines: this.provisioning.stateMachines });
    this.monitoring.forwardFailureEvents({
      bus: this.events.bus,
      source: EVENT_SOURCE,
      // Without the provisioning machine's own rollback rule, a failed rollback goes with the other failures.
      detailTypes: provision ? FAILURE_DETAIL_TYPES : [...FAILURE_DETAIL_TYPES, DETAIL_TYPES.rollbackFailed],
    });
    this.monitoring.watchUsage({
      namespace: METRICS_NAMESPACE,
      plans: PLAN_NAMES,
      tenantMetrics: Object.values(MEASURES).map((measure) => ({
        metric: measure.metric,
        label: measure.metric,
      })),
      period: config.usageCollectionPeriod,
    });
    this.monitoring.watchScheduledFunctions({
      functions: new Map(
        [...this.functions.byId]
          .filter(([, fn]) => fn.definition.schedule !== undefined)
          .map(([fnId, fn]) => [fnId, fn.function]),
      ),
    });

    new CfnOutput(this, 'ApiUrl', {
      value: this.api.httpApi.apiEndpoint,
      description: 'Base URL of the API',
    });
    new CfnOutput(this, 'JwtIssuer', { value: this.api.issuer });
    if (this.api.tokenUrl && this.api.client) {
      new CfnOutput(this, 'TokenUrl', {
        value: this.api.tokenUrl,
        description: 'OAuth client credentials token endpoint (scopes tenants/admin, tenants/read)',
      });
      if (this.api.userPool) new CfnOutput(this, 'UserPoolId', { value: this.api.userPool.userPoolId });
      new CfnOutput(this, 'AdminClientId', {
        value: this.api.client.userPoolClientId,
        description: 'App client; its secret: aws cognito-idp describe-user-pool-client',
      });
    }
    new CfnOutput(this, 'ClusterArn', { value: this.database.cluster.clusterArn });
    new CfnOutput(this, 'ProvisionerSecretArn', { value: this.database.provisionerSecret.secretArn });
    new CfnOutput(this, 'StorageBucket', { value: this.storage.bucket.bucketName });
    new CfnOutput(this, 'AlarmTopicArn', { value: this.monitoring.topic.topicArn });
    new CfnOutput(this, 'EventBusName', { value: this.events.bus.eventBusName });
    new CfnOutput(this, 'ProvisionStateMachineArn', { value: environment.PROVISION_STATE_MACHINE_ARN });
  }

  /** The zones given in the props, so that an environment-specific synth looks nothing up in the account. */
  override get availabilityZones(): string[] {
    return this.#zones ? [...this.#zones] : super.availabilityZones;
  }
}
