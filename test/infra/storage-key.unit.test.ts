import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { functionName, functions } from '../../functions/registry.ts';
import { standardIaBreakEvenBytes } from '../../functions/shared/storage.ts';
import { STAGES } from '../../infra/config.ts';
import { onlyResourceOf, resourcesOf, synthStage } from './synth.ts';

const statementSchema = z.object({
  Sid: z.string().optional(),
  Effect: z.literal('Allow'),
  Principal: z.object({ AWS: z.unknown() }),
  Action: z.union([z.string(), z.array(z.string())]),
  Resource: z.literal('*'),
  Condition: z.unknown().optional(),
});
const keySchema = z.object({
  EnableKeyRotation: z.literal(true),
  KeyPolicy: z.object({ Statement: z.array(statementSchema) }),
});
const getAtt = z.object({ 'Fn::GetAtt': z.tuple([z.string(), z.literal('Arn')]) });

const asList = (value: unknown): unknown[] => (Array.isArray(value) ? value : [value]);

/** The registry's functions that declare the stage key, with the actions they declare on it. */
const keyUsers = functions.flatMap((definition) =>
  (definition.permissions ?? [])
    .filter((permission) => permission.resource === 'storageKey')
    .map((permission) => ({ definition, actions: permission.actions })),
);

describe.each(STAGES)('the %s stage key for enhanced encryption', (stage) => {
  it('rotates, lets the account administer it without using it, and lets only the declared roles use it through S3 for a tenant', () => {
    // Prepare
    const { stack, template } = synthStage(stage, { bundle: false });
    const lambdas = resourcesOf(template, 'AWS::Lambda::Function');
    const roleOf = (name: string) => {
      const found = Object.values(lambdas).find((resource) => resource.Properties?.FunctionName === name);
      return getAtt.parse(found?.Properties?.Role)['Fn::GetAtt'][0];
    };

    // Act
    const [, key] = onlyResourceOf(template, 'AWS::KMS::Key');
    const { KeyPolicy } = keySchema.parse(key.Properties);
    const [admin, ...uses] = KeyPolicy.Statement;

    // Assess
    expect(admin?.Sid).toBe('KeyAdministration');
    const adminActions = asList(admin?.Action).map(String);
    for (const action of ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey', 'kms:ReEncrypt*', 'kms:*']) {
      expect(adminActions).not.toContain(action);
    }
    expect(
      adminActions.every((action) => !/^kms:(Decrypt|Encrypt|GenerateDataKey|ReEncrypt)/.test(action)),
    ).toBe(true);
    const granted = uses.flatMap((statement) =>
      asList(statement.Principal.AWS).flatMap((principal) =>
        asList(statement.Action).map(
          (action) => `${getAtt.parse(principal)['Fn::GetAtt'][0]} ${String(action)}`,
        ),
      ),
    );
    const declared = keyUsers.flatMap(({ definition, actions }) =>
      actions.map((action) => `${roleOf(functionName(stack.config.prefix, definition))} ${action}`),
    );
    expect(granted.sort()).toEqual(declared.sort());
    expect(keyUsers.map(({ definition }) => definition.id).sort()).toEqual(
      [
        'BackupDatabase',
        'ConfigureStorage',
        'LoadBackup',
        'Reconcile',
        'RestoreSchema',
        'RetainStorage',
      ].sort(),
    );
    for (const statement of uses) {
      expect(statement.Condition).toEqual(
        stack.resolve({
          StringEquals: { 'kms:ViaService': `s3.${stack.region}.amazonaws.com` },
          Null: { 'kms:EncryptionContext:tenantId': 'false' },
        }),
      );
    }
  });

  it("passes the key's ARN to the functions that write tenant objects", () => {
    // Prepare
    const { stack, template } = synthStage(stage, { bundle: false });
    const [keyId] = onlyResourceOf(template, 'AWS::KMS::Key');
    const writers = keyUsers.filter(({ actions }) => actions.includes('kms:GenerateDataKey'));

    // Act
    const variables = writers.map(({ definition }) => {
      const name = functionName(stack.config.prefix, definition);
      const found = Object.values(resourcesOf(template, 'AWS::Lambda::Function')).find(
        (resource) => resource.Properties?.FunctionName === name,
      );
      return z
        .object({ Environment: z.object({ Variables: z.record(z.string(), z.unknown()) }) })
        .parse(found?.Properties).Environment.Variables.STORAGE_KEY_ARN;
    });

    // Assess
    expect(writers.length).toBeGreaterThan(0);
    for (const variable of variables) expect(variable).toEqual({ 'Fn::GetAtt': [keyId, 'Arn'] });
  });
});

describe.each(STAGES)('the %s stage bucket', (stage) => {
  it('removes the delete markers retention leaves and expires noncurrent versions when versioned', () => {
    // Prepare
    const { stack, template } = synthStage(stage, { bundle: false });
    const buckets = Object.values(resourcesOf(template, 'AWS::S3::Bucket'));
    const storage = buckets.find(
      (bucket) =>
        bucket.Properties?.VersioningConfiguration !== undefined ||
        (buckets.length === 2 && bucket.Properties?.LoggingConfiguration !== undefined),
    );

    // Act
    const rules = z
      .object({ LifecycleConfiguration: z.object({ Rules: z.array(z.looseObject({ Id: z.string() })) }) })
      .parse(storage?.Properties).LifecycleConfiguration.Rules;
    const byId = new Map(rules.map((rule) => [rule.Id, rule]));

    // Assess
    expect(byId.get('tenant-retention-30-days')).toMatchObject({
      ExpirationInDays: 30,
      NoncurrentVersionExpiration: { NoncurrentDays: 1 },
      TagFilters: [{ Key: 'RetentionDays', Value: '30' }],
    });
    expect(byId.get('backup-retention-90-days')).toMatchObject({
      ExpirationInDays: 90,
      Prefix: 'backups/',
      TagFilters: [{ Key: 'RetentionDays', Value: '90' }],
    });
    expect(byId.get('backup-infrequent-access-90-days')).toMatchObject({
      Prefix: 'backups/',
      TagFilters: [{ Key: 'RetentionDays', Value: '90' }],
      ObjectSizeGreaterThan: String(standardIaBreakEvenBytes(90)),
      Transitions: [{ StorageClass: 'STANDARD_IA', TransitionInDays: 30 }],
    });
    // Kept under 47 days, no object gains from STANDARD_IA's 30-day minimum.
    expect(byId.has('backup-infrequent-access-35-days')).toBe(false);
    if (stack.config.storage.versioned) {
      expect(byId.get('backup-expired-delete-markers')).toMatchObject({
        ExpiredObjectDeleteMarker: true,
        Prefix: 'backups/',
      });
      expect(byId.get('tenant-expired-delete-markers')).toMatchObject({
        ExpiredObjectDeleteMarker: true,
        Prefix: 'tenants/',
      });
      expect(byId.get('expire-noncurrent-versions')).toMatchObject({
        NoncurrentVersionExpiration: {
          NoncurrentDays: stack.config.storage.noncurrentVersionExpiration.toDays(),
        },
      });
    } else {
      expect(byId.has('tenant-expired-delete-markers')).toBe(false);
    }
  });
});
