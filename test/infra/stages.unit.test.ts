import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Match } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { OUTCOMES } from '../../functions/lifecycle/outcome.ts';
import { DETAIL_TYPES } from '../../functions/provision/outcome.ts';
import { DRIFT_DETAIL_TYPE } from '../../functions/reconcile/reconcile.ts';
import {
  arnSubstitutionKey,
  DEFAULT_TIMEOUT_SECONDS,
  functionName,
  functions,
} from '../../functions/registry.ts';
import { EVENT_SOURCE } from '../../functions/shared/events.ts';
import { RETENTION_DAYS, RETENTION_TAG } from '../../functions/shared/storage.ts';
import { QUOTA_EXCEEDED, THRESHOLD_CROSSED } from '../../functions/usage/quotas.ts';
import { STAGES, stageConfig } from '../../infra/config.ts';
import { schemaHash } from '../../infra/constructs/database.ts';
import { PROJECT_ROOT } from '../../infra/constructs/function.ts';
import { stateMachineFiles } from '../../infra/constructs/provisioning.ts';
import { routeKey, routes } from '../../schema/api/routes.ts';
import { onlyResourceOf, resourceOf, resourcesOf, synthStage } from './synth.ts';

const getAtt = z.object({ 'Fn::GetAtt': z.tuple([z.string(), z.string()]) });
const ref = z.object({ Ref: z.string() });
const asList = (value: unknown): unknown[] => (Array.isArray(value) ? value : [value]);
const statementSchema = z.object({
  Effect: z.string(),
  Action: z.unknown(),
  // Absent from trust policies.
  Resource: z.unknown().optional(),
  Principal: z.unknown().optional(),
  Condition: z.unknown().optional(),
});
const alarmMetricsSchema = z.array(
  z.object({
    Id: z.string(),
    Expression: z.string().optional(),
    MetricStat: z
      .object({
        Metric: z.object({
          MetricName: z.string(),
          Namespace: z.string(),
          Dimensions: z.array(z.object({ Name: z.string(), Value: z.unknown() })).optional(),
        }),
      })
      .optional(),
  }),
);

/** Every `'Tenant … Failed'` and `'Tenant … Detected'` literal in functions/: the events a person must hear about. */
function alertingDetailTypesInSource(dir = join(PROJECT_ROOT, 'functions')): Set<string> {
  const found = new Set<string>();
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) for (const type of alertingDetailTypesInSource(path)) found.add(type);
    else if (entry.name.endsWith('.ts')) {
      for (const match of readFileSync(path, 'utf8').matchAll(
        /['"`](Tenant [A-Z][A-Za-z ]* (?:Failed|Detected|Exceeded|Crossed))['"`]/g,
      ))
        if (match[1]) found.add(match[1]);
    }
  }
  return found;
}
const environmentOf = (properties: Record<string, unknown>): Record<string, unknown> =>
  z
    .object({ Variables: z.record(z.string(), z.unknown()) })
    .parse(properties.Environment ?? { Variables: {} }).Variables;

describe.each(STAGES)('the %s stack', (stage) => {
  // Without esbuild (the template is the same but for asset hashes): bundles.test.ts reads the bundles.
  const { template, stack } = synthStage(stage, { bundle: false });
  const config = stageConfig(stage);
  const prefix = config.prefix;
  const lambdaIdByName = new Map(
    Object.entries(resourcesOf(template, 'AWS::Lambda::Function')).map(([id, resource]) => [
      String(resource.Properties?.FunctionName),
      id,
    ]),
  );
  const storageId = Object.keys(resourcesOf(template, 'AWS::S3::Bucket')).find((id) =>
    id.startsWith('StorageBucket'),
  );
  const lambdaIdOf = (id: string): string => {
    const logicalId = lambdaIdByName.get(functionName(prefix, { id }));
    if (!logicalId) throw new Error(`no function ${id}`);
    return logicalId;
  };
  /** Allow statements of the policies attached to a role. */
  const statementsOfRole = (roleId: string) =>
    Object.values(resourcesOf(template, 'AWS::IAM::Policy'))
      .filter((policy) =>
        asList(policy.Properties?.Roles).some((role) => ref.safeParse(role).data?.Ref === roleId),
      )
      .flatMap(
        (policy) =>
          z
            .object({ Statement: z.array(z.object({ Action: z.unknown(), Resource: z.unknown() })) })
            .parse(policy.Properties?.PolicyDocument).Statement,
      );

  describe('database', () => {
    const [clusterId, cluster] = onlyResourceOf(template, 'AWS::RDS::DBCluster');
    const properties = cluster.Properties ?? {};

    it('is Aurora PostgreSQL Serverless v2 with the Data API on and storage encrypted', () => {
      expect(properties.Engine).toBe('aurora-postgresql');
      expect(String(properties.EngineVersion)).toMatch(/^1[67]\./);
      expect(properties.EnableHttpEndpoint).toBe(true);
      expect(properties.StorageEncrypted).toBe(true);
      const instances = Object.values(resourcesOf(template, 'AWS::RDS::DBInstance'));
      for (const instance of instances) expect(instance.Properties?.DBInstanceClass).toBe('db.serverless');
    });

    it("scales, keeps backups and guards deletion as the stage's config says", () => {
      const scaling = z
        .object({
          MinCapacity: z.number(),
          MaxCapacity: z.number(),
          SecondsUntilAutoPause: z.number().optional(),
        })
        .parse(properties.ServerlessV2ScalingConfiguration);
      expect(scaling.MinCapacity).toBe(config.database.minCapacity);
      expect(properties.BackupRetentionPeriod).toBe(config.database.backupRetention.toDays());
      expect(properties.DeletionProtection).toBe(config.database.deletionProtection);
      const instances = Object.values(resourcesOf(template, 'AWS::RDS::DBInstance'));
      expect(instances).toHaveLength(1 + config.database.readers);
      if (stage === 'dev') {
        // Auto-pause: 0 ACU after 5 idle minutes.
        expect(scaling.MinCapacity).toBe(0);
        expect(scaling.SecondsUntilAutoPause).toBe(300);
        expect(cluster.DeletionPolicy).toBe('Delete');
      }
      if (stage === 'prod') {
        expect(scaling.MinCapacity).toBeGreaterThan(0);
        expect(scaling.SecondsUntilAutoPause).toBeUndefined();
        expect(instances.length).toBeGreaterThanOrEqual(2);
        expect(properties.DeletionProtection).toBe(true);
        expect(properties.BackupRetentionPeriod).toBeGreaterThanOrEqual(30);
        expect(cluster.DeletionPolicy).toBe('Retain');
        expect(cluster.UpdateReplacePolicy).toBe('Retain');
        for (const type of ['AWS::S3::Bucket', 'AWS::SecretsManager::Secret', 'AWS::Cognito::UserPool']) {
          for (const [id, resource] of Object.entries(resourcesOf(template, type))) {
            expect(resource.DeletionPolicy, `${type} ${id}`).toBe('Retain');
          }
        }
      }
    });

    it('is reached through the Data API only: no ingress, isolated subnets, no NAT', () => {
      const groups = Object.values(resourcesOf(template, 'AWS::EC2::SecurityGroup'));
      for (const group of groups) expect(group.Properties?.SecurityGroupIngress).toBeUndefined();
      expect(Object.keys(resourcesOf(template, 'AWS::EC2::NatGateway'))).toEqual([]);
      expect(Object.keys(resourcesOf(template, 'AWS::EC2::InternetGateway'))).toEqual([]);
    });

    it('creates the provisioner and applies the control-plane migrations on deploy, after the instances are up', () => {
      const [setupId, setup] = onlyResourceOf(template, 'Custom::ControlPlaneSetup');
      expect(setup.Properties?.SchemaHash).toBe(schemaHash());
      expect(setup.Properties?.ProvisionerRole).toBe('provisioner');
      expect(setup.Properties?.Database).toBe('control_plane');
      const dependsOn = asList(resourceOf(template, setupId).DependsOn);
      expect(dependsOn).toContain(clusterId);
      for (const instanceId of Object.keys(resourcesOf(template, 'AWS::RDS::DBInstance'))) {
        expect(dependsOn).toContain(instanceId);
      }
      const provider = getAtt.parse(setup.Properties?.ServiceToken)['Fn::GetAtt'][0];
      const providerEnv = z
        .object({ Variables: z.record(z.string(), z.unknown()) })
        .parse(resourceOf(template, provider).Properties?.Environment);
      expect(providerEnv.Variables.USER_ON_EVENT_FUNCTION_ARN).toEqual({
        'Fn::GetAtt': [lambdaIdOf('SetupControlPlane'), 'Arn'],
      });
    });
  });

  describe('functions', () => {
    it.each(functions.map((fn) => [fn.id, fn] as const))(
      '%s runs Node.js 24 on arm64 with X-Ray, its timeout, exactly its environment and retained logs',
      (id, definition) => {
        const properties = resourceOf(template, lambdaIdOf(id)).Properties ?? {};
        expect(properties.Runtime).toBe('nodejs24.x');
        expect(properties.Architectures).toEqual(['arm64']);
        expect(properties.TracingConfig).toEqual({ Mode: 'Active' });
        expect(properties.Timeout).toBe(definition.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS);
        // Each function is bundled from an entry of its own that exports its handler as `handler`.
        expect(String(properties.Handler)).toBe('index.handler');
        const variables = environmentOf(properties);
        // Exactly the declared variables: no NODE_OPTIONS (--enable-source-maps costs every cold start).
        expect(Object.keys(variables).sort()).toEqual([...(definition.environment ?? [])].sort());
        if (definition.environment?.includes('SCHEMA_DIR'))
          expect(variables.SCHEMA_DIR).toBe('/var/task/schema');
        if (definition.environment?.includes('STAGE')) expect(variables.STAGE).toBe(stage);
        const logGroupId = ref.parse(
          z.object({ LogGroup: z.unknown() }).parse(properties.LoggingConfig).LogGroup,
        ).Ref;
        const logGroup = resourceOf(template, logGroupId).Properties ?? {};
        expect(logGroup.LogGroupName).toBe(`/aws/lambda/${functionName(prefix, definition)}`);
        expect(logGroup.RetentionInDays).toBe(config.logRetention);
      },
    );
  });

  describe('state machines', () => {
    const files = stateMachineFiles();

    it('are every ASL file of statemachines/', () => {
      expect(files.length).toBeGreaterThan(0);
      const names = Object.values(resourcesOf(template, 'AWS::StepFunctions::StateMachine')).map((machine) =>
        String(machine.Properties?.StateMachineName),
      );
      expect(names.sort()).toEqual(files.map((file) => `${prefix}-${file.name}`).sort());
    });

    it.each(files.map((file) => [file.name, file] as const))(
      '%s: every substitution is the ARN of a registry function, and the role invokes exactly those',
      (name, file) => {
        const [, machine] = Object.entries(resourcesOf(template, 'AWS::StepFunctions::StateMachine')).find(
          ([, resource]) => resource.Properties?.StateMachineName === `${prefix}-${name}`,
        ) ?? ['', undefined];
        const properties = machine?.Properties ?? {};
        const substitutions = z
          .record(z.string(), z.unknown())
          .parse(properties.DefinitionSubstitutions ?? {});
        expect(Object.keys(substitutions).sort()).toEqual([...file.substitutionKeys].sort());
        const invoked: unknown[] = [];
        for (const key of file.substitutionKeys) {
          const fn = functions.find((candidate) => arnSubstitutionKey(candidate) === key);
          expect(fn, `\${${key}} names a registry function`).toBeDefined();
          const arn = { 'Fn::GetAtt': [lambdaIdOf(fn?.id ?? ''), 'Arn'] };
          expect(substitutions[key]).toEqual(arn);
          invoked.push(arn);
        }
        const roleId = getAtt.parse(properties.RoleArn)['Fn::GetAtt'][0];
        const lambdaStatements = statementsOfRole(roleId).filter((statement) =>
          asList(statement.Action).some((action) => String(action).startsWith('lambda:')),
        );
        expect(lambdaStatements).toHaveLength(1);
        expect(asList(lambdaStatements[0]?.Action)).toEqual(['lambda:InvokeFunction']);
        expect(new Set(asList(lambdaStatements[0]?.Resource).map((r) => JSON.stringify(r)))).toEqual(
          new Set(invoked.map((r) => JSON.stringify(r))),
        );
      },
    );

    it.each(files.map((file) => [file.name, file] as const))(
      '%s calls functions only, each by its substitution, so that its role needs lambda:InvokeFunction alone',
      (_, file) => {
        const resources: unknown[] = [];
        const visit = (node: unknown): void => {
          if (Array.isArray(node)) for (const item of node) visit(item);
          else if (typeof node === 'object' && node !== null) {
            for (const [key, value] of Object.entries(node)) {
              if (key === 'Resource') resources.push(value);
              else visit(value);
            }
          }
        };
        visit(JSON.parse(readFileSync(file.path, 'utf8')));
        expect(resources.length).toBeGreaterThan(0);
        for (const resource of resources) expect(resource).toMatch(/^\$\{[A-Za-z0-9]+FunctionArn\}$/);
      },
    );

    it.each(files.map((file) => [file.name, file] as const))(
      '%s is Standard, logs every event, traces with X-Ray and bounds a run',
      (name, file) => {
        template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
          StateMachineName: `${prefix}-${name}`,
          StateMachineType: 'STANDARD',
          DefinitionS3Location: Match.objectLike({ Key: Match.stringLikeRegexp('\\.json$') }),
          LoggingConfiguration: Match.objectLike({ Level: 'ALL', IncludeExecutionData: true }),
          TracingConfiguration: { Enabled: true },
        });
        expect(file.timeoutSeconds, `${name}.asl.json needs a top-level TimeoutSeconds`).toBeGreaterThan(0);
      },
    );
  });

  describe('schedules', () => {
    const schedules = Object.entries(resourcesOf(template, 'AWS::Scheduler::Schedule'));
    const scheduled = functions.filter((fn) => fn.schedule !== undefined);

    it('exist for exactly the registry functions with a schedule', () => {
      expect(scheduled.map((fn) => fn.id)).toContain('Reconcile');
      expect(schedules.map(([, schedule]) => String(schedule.Properties?.Name)).sort()).toEqual(
        [...scheduled.map((fn) => `${prefix}-${fn.id}`), `${prefix}-UsageCollection`].sort(),
      );
    });

    it('start the usage collector on the stage period with the scheduled time, through a role that may start only it', () => {
      const [, schedule] = schedules.find(
        ([, resource]) => resource.Properties?.Name === `${prefix}-UsageCollection`,
      ) ?? ['', undefined];
      const properties = schedule?.Properties ?? {};
      expect(properties.ScheduleExpression).toBe(`rate(${config.usageCollectionPeriod.toMinutes()} minutes)`);
      const target = z
        .object({ Arn: z.unknown(), Input: z.string(), RoleArn: z.unknown() })
        .parse(properties.Target);
      const [machineId] = Object.entries(resourcesOf(template, 'AWS::StepFunctions::StateMachine')).find(
        ([, resource]) => resource.Properties?.StateMachineName === `${prefix}-collect-usage`,
      ) ?? [''];
      const machine = { Ref: machineId };
      expect(target.Arn).toEqual(machine);
      expect(JSON.parse(target.Input)).toEqual({ scheduledTime: '<aws.scheduler.scheduled-time>' });
      const roleId = getAtt.parse(target.RoleArn)['Fn::GetAtt'][0];
      expect(statementsOfRole(roleId)).toEqual([{ Action: 'states:StartExecution', Resource: machine }]);
    });

    it.each(scheduled.map((fn) => [fn.id, fn] as const))(
      '%s is invoked with {} on its expression, through a role that may invoke it and nothing else',
      (id, definition) => {
        const [, schedule] = schedules.find(
          ([, resource]) => resource.Properties?.Name === `${prefix}-${id}`,
        ) ?? ['', undefined];
        const properties = schedule?.Properties ?? {};
        expect(properties.ScheduleExpression).toBe(definition.schedule?.expression);
        expect(properties.State).toBe('ENABLED');
        const target = z
          .object({ Arn: z.unknown(), Input: z.string(), RoleArn: z.unknown() })
          .parse(properties.Target);
        const fnArn = { 'Fn::GetAtt': [lambdaIdOf(id), 'Arn'] };
        expect(target.Arn).toEqual(fnArn);
        expect(JSON.parse(target.Input)).toEqual({});

        const roleId = getAtt.parse(target.RoleArn)['Fn::GetAtt'][0];
        const role = resourceOf(template, roleId).Properties ?? {};
        expect(role.ManagedPolicyArns).toBeUndefined();
        expect(role.Policies).toBeUndefined();
        const trust = z.object({ Statement: z.array(statementSchema) }).parse(role.AssumeRolePolicyDocument);
        expect(trust.Statement).toHaveLength(1);
        expect(trust.Statement[0]?.Principal).toEqual({ Service: 'scheduler.amazonaws.com' });
        expect(JSON.stringify(trust.Statement[0]?.Condition)).toContain('aws:SourceAccount');
        const statements = statementsOfRole(roleId);
        expect(statements).toEqual([{ Action: 'lambda:InvokeFunction', Resource: fnArn }]);
        // Nothing else may invoke it: no resource policy on the function.
        const permissions = Object.values(resourcesOf(template, 'AWS::Lambda::Permission')).filter(
          (permission) => JSON.stringify(permission.Properties?.FunctionName).includes(lambdaIdOf(id)),
        );
        expect(permissions).toEqual([]);
      },
    );
  });

  describe('api', () => {
    const [authorizerId, authorizer] = onlyResourceOf(template, 'AWS::ApiGatewayV2::Authorizer');

    it.each(routes.map((route) => [routeKey(route), route] as const))(
      '%s is routed with the scopes of the route table',
      (key, route) => {
        const matching = Object.values(resourcesOf(template, 'AWS::ApiGatewayV2::Route')).filter(
          (resource) => resource.Properties?.RouteKey === key,
        );
        expect(matching).toHaveLength(1);
        const properties = matching[0]?.Properties ?? {};
        if (route.scopes) {
          expect(properties.AuthorizationType).toBe('JWT');
          expect(properties.AuthorizerId).toEqual({ Ref: authorizerId });
          expect(properties.AuthorizationScopes).toEqual([...route.scopes]);
        } else {
          expect(properties.AuthorizationType).toBe('NONE');
          expect(properties.AuthorizationScopes).toBeUndefined();
        }
      },
    );

    it('has no route outside the route table', () => {
      const keys = Object.values(resourcesOf(template, 'AWS::ApiGatewayV2::Route')).map((resource) =>
        String(resource.Properties?.RouteKey),
      );
      expect(keys.sort()).toEqual(routes.map(routeKey).sort());
    });

    it('trusts the stage user pool, whose resource server defines the scopes, for its one app client', () => {
      const jwt = z
        .object({ Issuer: z.unknown(), Audience: z.array(z.unknown()) })
        .parse(authorizer.Properties?.JwtConfiguration);
      const [poolId] = onlyResourceOf(template, 'AWS::Cognito::UserPool');
      const [clientId, client] = onlyResourceOf(template, 'AWS::Cognito::UserPoolClient');
      expect(JSON.stringify(stack.resolve(jwt.Issuer))).toContain('https://cognito-idp.');
      expect(JSON.stringify(jwt.Issuer)).toContain(poolId);
      expect(jwt.Audience).toEqual([{ Ref: clientId }]);
      const [, server] = onlyResourceOf(template, 'AWS::Cognito::UserPoolResourceServer');
      const scopes = z.array(z.object({ ScopeName: z.string() })).parse(server.Properties?.Scopes);
      const routeScopes = new Set(routes.flatMap((route) => route.scopes ?? []));
      expect(new Set(scopes.map((scope) => `${server.Properties?.Identifier}/${scope.ScopeName}`))).toEqual(
        routeScopes,
      );
      expect(client.Properties?.AllowedOAuthFlows).toEqual(['client_credentials']);
    });

    it('logs access and throttles the stage', () => {
      const [, apiStage] = onlyResourceOf(template, 'AWS::ApiGatewayV2::Stage');
      const settings = z
        .object({ DestinationArn: z.unknown(), Format: z.string() })
        .parse(apiStage.Properties?.AccessLogSettings);
      expect(JSON.parse(settings.Format)).toMatchObject({
        requestId: '$context.requestId',
        status: '$context.status',
      });
      expect(apiStage.Properties?.DefaultRouteSettings).toEqual({
        ThrottlingBurstLimit: config.throttling.burstLimit,
        ThrottlingRateLimit: config.throttling.rateLimit,
      });
    });
  });

  describe('storage', () => {
    const buckets = resourcesOf(template, 'AWS::S3::Bucket');

    it('blocks public access, encrypts, and refuses plain HTTP on every bucket', () => {
      expect(Object.keys(buckets)).toHaveLength(2);
      for (const [id, bucket] of Object.entries(buckets)) {
        expect(bucket.Properties?.PublicAccessBlockConfiguration, id).toEqual({
          BlockPublicAcls: true,
          BlockPublicPolicy: true,
          IgnorePublicAcls: true,
          RestrictPublicBuckets: true,
        });
        expect(bucket.Properties?.BucketEncryption).toBeDefined();
        template.hasResourceProperties('AWS::S3::BucketPolicy', {
          Bucket: { Ref: id },
          PolicyDocument: Match.objectLike({
            Statement: Match.arrayWith([
              Match.objectLike({
                Effect: 'Deny',
                Action: 's3:*',
                Principal: { AWS: '*' },
                Condition: { Bool: { 'aws:SecureTransport': 'false' } },
                Resource: [{ 'Fn::GetAtt': [id, 'Arn'] }, Match.anyValue()],
              }),
            ]),
          }),
        });
      }
    });

    it('versions and expires objects as the stage config and the retention tags say', () => {
      const storage = buckets[storageId ?? '']?.Properties ?? {};
      if (config.storage.versioned) expect(storage.VersioningConfiguration).toEqual({ Status: 'Enabled' });
      else expect(storage.VersioningConfiguration).toBeUndefined();
      const rules = z
        .object({
          Rules: z.array(
            z.object({
              Id: z.string().optional(),
              ExpirationInDays: z.number().optional(),
              TagFilters: z.unknown().optional(),
            }),
          ),
        })
        .parse(storage.LifecycleConfiguration).Rules;
      for (const days of RETENTION_DAYS) {
        expect(rules).toContainEqual(
          expect.objectContaining({
            ExpirationInDays: days,
            TagFilters: [{ Key: RETENTION_TAG, Value: String(days) }],
          }),
        );
      }
      expect(storage.LoggingConfiguration).toBeDefined();
    });
  });

  describe('monitoring and events', () => {
    const [topicId] = onlyResourceOf(template, 'AWS::SNS::Topic');
    const [busId] = onlyResourceOf(template, 'AWS::Events::EventBus');
    const alarms = Object.entries(resourcesOf(template, 'AWS::CloudWatch::Alarm'));
    const machineIdByName = new Map(
      Object.entries(resourcesOf(template, 'AWS::StepFunctions::StateMachine')).map(([id, resource]) => [
        String(resource.Properties?.StateMachineName),
        id,
      ]),
    );
    /** The alarms with a metric of that name on that dimension value. */
    const alarmsOn = (metricName: string, dimension: string, value: unknown) =>
      alarms.filter(([, alarm]) =>
        alarmMetricsSchema
          .parse(alarm.Properties?.Metrics ?? [])
          .some(
            (metric) =>
              metric.MetricStat?.Metric.MetricName === metricName &&
              (metric.MetricStat.Metric.Dimensions ?? []).some(
                (dim) => dim.Name === dimension && JSON.stringify(dim.Value) === JSON.stringify(value),
              ),
          ),
      );
    const rulesToTopic = Object.entries(resourcesOf(template, 'AWS::Events::Rule')).filter(([, rule]) =>
      z
        .array(z.object({ Arn: z.unknown() }))
        .parse(rule.Properties?.Targets ?? [])
        .some((target) => JSON.stringify(target.Arn) === JSON.stringify({ Ref: topicId })),
    );
    const topicStatements = Object.values(resourcesOf(template, 'AWS::SNS::TopicPolicy'))
      .filter((policy) =>
        asList(policy.Properties?.Topics).some((topic) => ref.safeParse(topic).data?.Ref === topicId),
      )
      .flatMap(
        (policy) =>
          z.object({ Statement: z.array(statementSchema) }).parse(policy.Properties?.PolicyDocument)
            .Statement,
      );

    it('alarms on failed and rollback_failed provisionings into the alarm topic', () => {
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        AlarmName: `${prefix}-provisioning-failed`,
        AlarmActions: [{ Ref: topicId }],
        Metrics: Match.arrayWith([
          Match.objectLike({
            MetricStat: Match.objectLike({ Metric: Match.objectLike({ MetricName: 'ExecutionsFailed' }) }),
          }),
        ]),
      });
      // A custom bus's rule metrics carry EventBusName beside RuleName; without it the alarm would never fire.
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        AlarmName: `${prefix}-rollback-failed`,
        AlarmActions: [{ Ref: topicId }],
        Metrics: [
          Match.objectLike({
            MetricStat: Match.objectLike({
              Metric: Match.objectLike({
                Namespace: 'AWS/Events',
                MetricName: 'TriggeredRules',
                Dimensions: Match.arrayEquals([
                  { Name: 'EventBusName', Value: { Ref: busId } },
                  { Name: 'RuleName', Value: `${prefix}-rollback-failed` },
                ]),
              }),
            }),
          }),
        ],
      });
      template.hasResourceProperties('AWS::Events::Rule', {
        Name: `${prefix}-rollback-failed`,
        EventBusName: { Ref: busId },
        EventPattern: { source: [EVENT_SOURCE], 'detail-type': [DETAIL_TYPES.rollbackFailed] },
        Targets: [Match.objectLike({ Arn: { Ref: topicId } })],
      });
      // The provisioning dashboard and the tenants dashboard (watchUsage).
      template.resourceCountIs('AWS::CloudWatch::Dashboard', 2);
    });

    it('has one tenants dashboard whose TenantId variable picks the tenant its per-tenant graphs show', () => {
      const [, dashboard] = Object.entries(resourcesOf(template, 'AWS::CloudWatch::Dashboard')).find(
        ([, resource]) => resource.Properties?.DashboardName === `${prefix}-tenants`,
      ) ?? ['', undefined];
      const body = z
        .object({ 'Fn::Join': z.tuple([z.string(), z.array(z.unknown())]) })
        .parse(dashboard?.Properties?.DashboardBody)
        ['Fn::Join'][1].map((part) => (typeof part === 'string' ? part : 'ref'))
        .join('');
      const parsed = z
        .object({
          variables: z.array(z.object({ property: z.string(), inputType: z.string() })),
          widgets: z.array(
            z.object({ properties: z.object({ metrics: z.array(z.array(z.unknown())).optional() }) }),
          ),
        })
        .parse(JSON.parse(body));
      expect(parsed.variables).toEqual([
        expect.objectContaining({ property: 'TenantId', inputType: 'select' }),
      ]);
      const metrics = parsed.widgets.flatMap((widget) => widget.properties.metrics ?? []);
      for (const metric of [
        'StorageBytes',
        'DatabaseConnections',
        'Users',
        'ApiKeys',
        '5xxErrors',
        'Latency',
      ])
        expect(metrics.some((m) => m.includes(metric) && m.includes('TenantId'))).toBe(true);
      expect(metrics.some((m) => m.includes('Plan'))).toBe(true);
    });

    it.each(stateMachineFiles().map((file) => [file.name] as const))(
      '%s: one alarm on its failed, timed-out and aborted runs, into the alarm topic',
      (name) => {
        const machine = { Ref: machineIdByName.get(`${prefix}-${name}`) };
        const failed = alarmsOn('ExecutionsFailed', 'StateMachineArn', machine);
        expect(failed, `one alarm on ${name}'s failed runs`).toHaveLength(1);
        const [alarmId, alarm] = failed[0] ?? ['', undefined];
        expect(alarmsOn('ExecutionsTimedOut', 'StateMachineArn', machine).map(([id]) => id)).toEqual([
          alarmId,
        ]);
        expect(alarmsOn('ExecutionsAborted', 'StateMachineArn', machine).map(([id]) => id)).toEqual([
          alarmId,
        ]);
        const properties = alarm?.Properties ?? {};
        expect(properties.AlarmName).toBe(
          name === 'provision-tenant' ? `${prefix}-provisioning-failed` : `${prefix}-${name}-failed`,
        );
        expect(properties.AlarmActions).toEqual([{ Ref: topicId }]);
        expect(properties.Threshold).toBe(1);
        expect(properties.ComparisonOperator).toBe('GreaterThanOrEqualToThreshold');
        expect(properties.TreatMissingData).toBe('notBreaching');
        const expression = alarmMetricsSchema.parse(properties.Metrics).find((metric) => metric.Expression);
        expect(expression?.Expression?.replace(/\s/g, '').split('+').sort()).toEqual(
          alarmMetricsSchema
            .parse(properties.Metrics)
            .filter((metric) => metric.MetricStat)
            .map((metric) => metric.Id)
            .sort(),
        );
      },
    );

    it('sends every failure and drift event the product announces to the alarm topic, and no success', () => {
      // Prepare: what the code announces, found in the source so that a new failure event cannot be forgotten here.
      const alerting = alertingDetailTypesInSource();
      const expected = [
        DETAIL_TYPES.failed,
        DETAIL_TYPES.rollbackFailed,
        DRIFT_DETAIL_TYPE,
        QUOTA_EXCEEDED,
        THRESHOLD_CROSSED,
        ...Object.values(OUTCOMES).map((outcome) => outcome.failedEvent),
      ];
      for (const type of expected) expect(alerting, 'the source scan finds the known events').toContain(type);
      const successes = [
        DETAIL_TYPES.provisioned,
        ...Object.values(OUTCOMES).map((outcome) => outcome.doneEvent),
      ];

      // Act
      const routed = rulesToTopic.flatMap(([, rule]) => {
        const pattern = z
          .object({ source: z.array(z.string()), 'detail-type': z.array(z.string()) })
          .parse(rule.Properties?.EventPattern);
        expect(pattern.source).toEqual([EVENT_SOURCE]);
        expect(rule.Properties?.EventBusName).toEqual({ Ref: busId });
        return pattern['detail-type'];
      });

      // Assess: each exactly once (one mail per event), successes never.
      expect([...routed].sort()).toEqual([...alerting].sort());
      for (const type of successes) expect(routed).not.toContain(type);
    });

    it('lets EventBridge publish to the topic for its own rules only', () => {
      const publishers = topicStatements.filter(
        (statement) =>
          JSON.stringify(statement.Principal) === JSON.stringify({ Service: 'events.amazonaws.com' }),
      );
      expect(rulesToTopic.length).toBeGreaterThanOrEqual(2);
      expect(publishers).toHaveLength(rulesToTopic.length);
      for (const statement of publishers) {
        expect(statement.Effect).toBe('Allow');
        expect(asList(statement.Action)).toEqual(['sns:Publish']);
        expect(statement.Resource).toEqual({ Ref: topicId });
      }
      expect(new Set(publishers.map((statement) => JSON.stringify(statement.Condition)))).toEqual(
        new Set(
          rulesToTopic.map(([ruleId]) =>
            JSON.stringify({ ArnEquals: { 'aws:SourceArn': { 'Fn::GetAtt': [ruleId, 'Arn'] } } }),
          ),
        ),
      );
    });

    it.each(functions.filter((fn) => fn.schedule).map((fn) => [fn.id] as const))(
      'alarms on errors of the scheduled %s',
      (id) => {
        const errors = alarmsOn('Errors', 'FunctionName', { Ref: lambdaIdOf(id) });
        expect(errors).toHaveLength(1);
        expect(errors[0]?.[1].Properties?.AlarmActions).toEqual([{ Ref: topicId }]);
      },
    );

    it('shows every alarm, every state machine and the failure events on the dashboard', () => {
      const [, dashboard] = Object.entries(resourcesOf(template, 'AWS::CloudWatch::Dashboard')).find(
        ([, resource]) => resource.Properties?.DashboardName === `${prefix}-provisioning`,
      ) ?? ['', undefined];
      const body = JSON.stringify(dashboard?.Properties?.DashboardBody);
      expect(alarms.length).toBeGreaterThan(stateMachineFiles().length);
      for (const [alarmId] of alarms)
        expect(body).toContain(JSON.stringify({ 'Fn::GetAtt': [alarmId, 'Arn'] }));
      for (const machineId of machineIdByName.values())
        expect(body).toContain(JSON.stringify({ Ref: machineId }));
      expect(body).toContain(`${prefix}-failure-events`);
    });

    it('gives the functions the topic, the bus and the bucket the stack made', () => {
      for (const fn of functions) {
        const variables = environmentOf(resourceOf(template, lambdaIdOf(fn.id)).Properties ?? {});
        if (fn.environment?.includes('ALARM_TOPIC_ARN'))
          expect(variables.ALARM_TOPIC_ARN).toEqual({ Ref: topicId });
        if (fn.environment?.includes('EVENT_BUS_NAME'))
          expect(variables.EVENT_BUS_NAME).toEqual({ Ref: busId });
        if (fn.environment?.includes('STORAGE_BUCKET'))
          expect(variables.STORAGE_BUCKET).toEqual({ Ref: storageId });
      }
    });
  });
});
