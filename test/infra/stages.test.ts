import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Match } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { routeKey, routes } from '../../functions/api/routes.ts';
import { DETAIL_TYPES, EVENT_SOURCE } from '../../functions/provision/outcome.ts';
import {
  arnSubstitutionKey,
  DEFAULT_TIMEOUT_SECONDS,
  functionName,
  functions,
} from '../../functions/registry.ts';
import { RETENTION_DAYS, RETENTION_TAG } from '../../functions/shared/storage.ts';
import { STAGES, stageConfig } from '../../infra/config.ts';
import { schemaHash } from '../../infra/constructs/database.ts';
import { PROJECT_ROOT } from '../../infra/constructs/function.ts';
import { stateMachineFiles } from '../../infra/constructs/provisioning.ts';
import { onlyResourceOf, resourceOf, resourcesOf, synthStage } from './synth.ts';

const getAtt = z.object({ 'Fn::GetAtt': z.tuple([z.string(), z.string()]) });
const ref = z.object({ Ref: z.string() });
const asList = (value: unknown): unknown[] => (Array.isArray(value) ? value : [value]);
const environmentOf = (properties: Record<string, unknown>): Record<string, unknown> =>
  z
    .object({ Variables: z.record(z.string(), z.unknown()) })
    .parse(properties.Environment ?? { Variables: {} }).Variables;

describe.each(STAGES)('the %s stack', (stage) => {
  const { template, stack } = synthStage(stage);
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
        expect(String(properties.Handler)).toBe(`index.${definition.handler ?? 'handler'}`);
        const variables = environmentOf(properties);
        expect(Object.keys(variables).sort()).toEqual(
          [...(definition.environment ?? []), 'NODE_OPTIONS'].sort(),
        );
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
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        AlarmName: `${prefix}-rollback-failed`,
        AlarmActions: [{ Ref: topicId }],
        Metrics: [
          Match.objectLike({
            MetricStat: Match.objectLike({
              Metric: Match.objectLike({
                Dimensions: [{ Name: 'RuleName', Value: `${prefix}-rollback-failed` }],
              }),
            }),
          }),
        ],
      });
      template.hasResourceProperties('AWS::Events::Rule', {
        Name: `${prefix}-rollback-failed`,
        EventPattern: { source: [EVENT_SOURCE], 'detail-type': [DETAIL_TYPES.rollbackFailed] },
        Targets: [Match.objectLike({ Arn: { Ref: topicId } })],
      });
      template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
    });

    it('gives the functions the topic, the bus and the bucket the stack made', () => {
      const [busId] = onlyResourceOf(template, 'AWS::Events::EventBus');
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

describe('bundles', () => {
  it('ships schema/ in the bundle of every function that reads SCHEMA_DIR', () => {
    const { template, outdir } = synthStage('dev');
    const prefix = stageConfig('dev').prefix;
    const readers = functions.filter((fn) => fn.environment?.includes('SCHEMA_DIR'));
    expect(readers.map((fn) => fn.id)).toContain('SetupControlPlane');
    for (const fn of readers) {
      const [, lambda] = Object.entries(resourcesOf(template, 'AWS::Lambda::Function')).find(
        ([, resource]) => resource.Properties?.FunctionName === functionName(prefix, fn),
      ) ?? ['', undefined];
      const key = z.object({ S3Key: z.string() }).parse(lambda?.Properties?.Code).S3Key;
      const bundle = join(outdir, `asset.${key.replace(/\.zip$/, '')}`);
      expect(existsSync(join(bundle, 'index.mjs')), `${fn.id} bundle`).toBe(true);
      for (const folder of readdirSync(join(PROJECT_ROOT, 'schema'), { withFileTypes: true })) {
        if (!folder.isDirectory()) continue;
        const sql = readdirSync(join(PROJECT_ROOT, 'schema', folder.name)).filter((file) =>
          file.endsWith('.sql'),
        );
        for (const file of sql)
          expect(existsSync(join(bundle, 'schema', folder.name, file)), `${fn.id}: ${file}`).toBe(true);
      }
    }
  });
});
