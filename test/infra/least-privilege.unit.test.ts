import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type FunctionDefinition, functionName, functions } from '../../functions/registry.ts';
import { STAGES, stageConfig } from '../../infra/config.ts';
import { grantsOf } from '../../infra/permissions.ts';
import { ControlPlaneStack } from '../../infra/stack.ts';
import { resourcesOf, synthStage } from './synth.ts';

const statementSchema = z.object({
  Effect: z.enum(['Allow', 'Deny']),
  Action: z.union([z.string(), z.array(z.string())]),
  Resource: z.unknown(),
  Condition: z.unknown().optional(),
});
const policyDocumentSchema = z.object({ Statement: z.array(statementSchema) });
const refSchema = z.object({ Ref: z.string() });
const getAttSchema = z.object({ 'Fn::GetAtt': z.tuple([z.string(), z.string()]) });

/** JSON with sorted keys, so that equal intrinsics compare equal. */
function stable(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stable).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    return `{${Object.entries(value)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([key, item]) => `${JSON.stringify(key)}:${stable(item)}`)
      .join(',')}}`;
  }
  return JSON.stringify(value) ?? 'undefined';
}

const asList = (value: unknown): unknown[] => (Array.isArray(value) ? value : [value]);

/** `action on resource [if condition]`, one per action and resource of an Allow statement. */
function pairsOf(actions: unknown, resources: unknown, condition: unknown): string[] {
  const pairs: string[] = [];
  for (const action of asList(actions)) {
    for (const resource of asList(resources)) {
      pairs.push(
        `${String(action)} on ${stable(resource)}${condition === undefined ? '' : ` if ${stable(condition)}`}`,
      );
    }
  }
  return pairs;
}

interface Comparison {
  /** Granted to the function's role, declared nowhere. */
  readonly undeclared: string[];
  /** Declared in the registry, not granted. */
  readonly ungranted: string[];
  readonly granted: string[];
}

/**
 * What the synthesized template grants a function's role, against what the registry declares for it (plus the
 * baseline: its own log group and X-Ray), resource by resource.
 */
function compare(stack: ControlPlaneStack, template: Template, definition: FunctionDefinition): Comparison {
  const name = functionName(stack.config.prefix, definition);
  const lambdas = Object.values(resourcesOf(template, 'AWS::Lambda::Function')).filter(
    (resource) => resource.Properties?.FunctionName === name,
  );
  expect(lambdas, `one function named ${name}`).toHaveLength(1);
  const properties = lambdas[0]?.Properties ?? {};
  const roleId = getAttSchema.parse(properties.Role)['Fn::GetAtt'][0];
  const logGroupId = refSchema.parse(
    z.object({ LogGroup: z.unknown() }).parse(properties.LoggingConfig).LogGroup,
  ).Ref;

  const role = resourcesOf(template, 'AWS::IAM::Role')[roleId];
  expect(role?.Properties?.ManagedPolicyArns ?? [], `${name}: no managed policies`).toEqual([]);
  const documents = [
    ...z
      .array(z.object({ PolicyDocument: policyDocumentSchema }))
      .parse(role?.Properties?.Policies ?? [])
      .map((policy) => policy.PolicyDocument),
    ...Object.values(resourcesOf(template, 'AWS::IAM::Policy'))
      .filter((policy) =>
        asList(policy.Properties?.Roles).some((ref) => stable(ref) === stable({ Ref: roleId })),
      )
      .map((policy) => policyDocumentSchema.parse(policy.Properties?.PolicyDocument)),
  ];
  const granted = new Set<string>();
  for (const statement of documents.flatMap((document) => document.Statement)) {
    expect(statement.Effect, `${name}: Allow statements only`).toBe('Allow');
    for (const pair of pairsOf(statement.Action, statement.Resource, statement.Condition)) granted.add(pair);
  }

  const declared = new Set<string>([
    ...pairsOf(
      ['logs:CreateLogStream', 'logs:PutLogEvents'],
      { 'Fn::GetAtt': [logGroupId, 'Arn'] },
      undefined,
    ),
    ...pairsOf(['xray:PutTraceSegments', 'xray:PutTelemetryRecords'], '*', undefined),
  ]);
  for (const grant of grantsOf(stack, definition.permissions ?? [], stack.permissionTargets)) {
    const condition = grant.conditions === undefined ? undefined : stack.resolve(grant.conditions);
    for (const pair of pairsOf(grant.actions, stack.resolve(grant.resources), condition)) declared.add(pair);
  }
  return {
    undeclared: [...granted].filter((pair) => !declared.has(pair)).sort(),
    ungranted: [...declared].filter((pair) => !granted.has(pair)).sort(),
    granted: [...granted].sort(),
  };
}

describe.each(STAGES)('least privilege (%s)', (stage) => {
  const { stack, template } = synthStage(stage, { bundle: false });

  it.each(functions.map((fn) => [fn.id, fn] as const))(
    "%s's role holds exactly its declared permissions",
    (_, definition) => {
      // Act
      const { undeclared, ungranted } = compare(stack, template, definition);

      // Assess
      expect(undeclared, 'granted but not declared in functions/registry.ts').toEqual([]);
      expect(ungranted, 'declared in functions/registry.ts but not granted').toEqual([]);
    },
  );

  it('grants every wildcard resource with a reason written beside it', () => {
    for (const definition of functions) {
      // Act
      const grants = grantsOf(stack, definition.permissions ?? [], stack.permissionTargets);

      // Assess
      for (const grant of grants) {
        const wildcardResources = grant.resources.filter((resource) => resource.includes('*'));
        expect(grant.wildcards.length >= wildcardResources.length, `${definition.id}: ${grant.actions}`).toBe(
          true,
        );
        for (const { reason } of grant.wildcards) expect(reason.length).toBeGreaterThan(40);
      }
    }
  });

  it('creates no function outside the registry but the custom resource provider, which may only invoke the setup', () => {
    // Prepare
    const registered = new Set(functions.map((fn) => functionName(stack.config.prefix, fn)));
    const lambdas = Object.entries(resourcesOf(template, 'AWS::Lambda::Function'));

    // Act
    const others = lambdas.filter(
      ([, resource]) => !registered.has(String(resource.Properties?.FunctionName)),
    );

    // Assess
    expect(others).toHaveLength(1);
    const roleId = getAttSchema.parse(others[0]?.[1].Properties?.Role)['Fn::GetAtt'][0];
    const actions = Object.values(resourcesOf(template, 'AWS::IAM::Policy'))
      .filter((policy) =>
        asList(policy.Properties?.Roles).some((ref) => stable(ref) === stable({ Ref: roleId })),
      )
      .flatMap((policy) => policyDocumentSchema.parse(policy.Properties?.PolicyDocument).Statement)
      .flatMap((statement) => asList(statement.Action));
    expect(new Set(actions)).toEqual(
      new Set(['logs:CreateLogStream', 'logs:PutLogEvents', 'lambda:InvokeFunction', 'lambda:GetFunction']),
    );
  });
});

describe('the least-privilege check', () => {
  it('fails on an undeclared grant and on an ungranted declaration', () => {
    // Prepare: a stack whose Api role gets one grant too many, checked against a declaration of one action too many.
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new ControlPlaneStack(app, 'Tampered', { config: stageConfig('dev') });
    const api = functions.find((fn) => fn.id === 'Api');
    if (!api) throw new Error('functions/registry.ts has no Api function');
    stack.functions
      .get('Api')
      .role.addToPrincipalPolicy(new PolicyStatement({ actions: ['s3:GetObject'], resources: ['*'] }));
    const declaredMore: FunctionDefinition = {
      ...api,
      permissions: [
        ...(api.permissions ?? []),
        { actions: ['states:StopExecution'], resource: 'executions:provision-tenant' },
      ],
    };

    // Act
    const { undeclared, ungranted } = compare(stack, Template.fromStack(stack), declaredMore);

    // Assess
    expect(undeclared).toEqual(['s3:GetObject on "*"']);
    expect(ungranted).toHaveLength(1);
    expect(ungranted[0]).toMatch(
      /^states:StopExecution on .*execution.*tenant-provisioner-dev-provision-tenant:\*/,
    );
  });
});
