import { ArnFormat, type Stack } from 'aws-cdk-lib';
import { Effect, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { Permission, ResourceRef } from '../functions/registry.ts';
import { keyUseConditions } from './constructs/storage.ts';

/** The stack resources a `ResourceRef` can name, as ARNs and names (tokens at synth time). */
export interface PermissionTargets {
  /** The stage name: tenant secrets live under `tenants/<stage>/`. */
  readonly stage: string;
  /** Prefix of the stack's physical names; state machines are named `<prefix>-<file name>`. */
  readonly prefix: string;
  readonly clusterArn: string;
  readonly masterSecretArn: string;
  readonly provisionerSecretArn: string;
  readonly bucketArn: string;
  /** The stage's KMS key for SSE-KMS tenant objects. */
  readonly storageKeyArn: string;
  readonly alarmTopicArn: string;
  readonly eventBusArn: string;
  /** CloudWatch namespace of the product's own metrics. */
  readonly metricsNamespace: string;
}

/** What a `ResourceRef` resolves to in a policy statement. */
export interface ResourceBinding {
  readonly resources: readonly string[];
  readonly conditions?: Readonly<Record<string, Readonly<Record<string, string | readonly string[]>>>>;
  /**
   * Why the grant needs a wildcard: required whenever a resource contains `*`, and written into the cdk-nag
   * acknowledgement of exactly that resource.
   */
  readonly wildcardReason?: string;
}

/**
 * Why `metrics` is granted on `*`: CloudWatch has no metric ARNs, so `PutMetricData` cannot name a resource;
 * the `cloudwatch:namespace` condition keeps the function to the product's own namespace.
 */
export const METRICS_WILDCARD_REASON =
  'cloudwatch:PutMetricData supports no resource-level permissions (metrics have no ARN); the grant is limited by a cloudwatch:namespace condition to the product namespace.';

/** The ARNs (and conditions) a `ResourceRef` grants on, in `scope`'s stack. */
export function bindResource(scope: Stack, ref: ResourceRef, targets: PermissionTargets): ResourceBinding {
  const arn = (service: string, resource: string, resourceName: string) =>
    scope.formatArn({ service, resource, resourceName, arnFormat: ArnFormat.COLON_RESOURCE_NAME });
  if (ref.startsWith('stateMachine:')) {
    return { resources: [arn('states', 'stateMachine', `${targets.prefix}-${stateMachineOf(ref)}`)] };
  }
  if (ref.startsWith('executions:')) {
    return {
      resources: [arn('states', 'execution', `${targets.prefix}-${stateMachineOf(ref)}:*`)],
      wildcardReason:
        'Executions are named by tenant id at run time; the grant is limited to the one state machine.',
    };
  }
  switch (ref) {
    case 'cluster':
      return { resources: [targets.clusterArn] };
    case 'masterSecret':
      return { resources: [targets.masterSecretArn] };
    case 'provisionerSecret':
      return { resources: [targets.provisionerSecretArn] };
    case 'tenantSecrets':
      // Secret ARNs end in a random suffix after the name: `tenants/<stage>/<tenant>/db/app-AbCdEf`.
      return {
        resources: [arn('secretsmanager', 'secret', `tenants/${targets.stage}/*`)],
        wildcardReason:
          "Tenant secrets are created at run time, one per tenant role (tenants/<stage>/<tenantId>/...), and Secrets Manager appends a random suffix; the stage's prefix is the narrowest name known at deploy.",
      };
    case 'tenantAlarms':
      return {
        resources: [arn('cloudwatch', 'alarm', 'tenant-*')],
        wildcardReason:
          'Tenant alarms are created at run time, named tenant-<tenantId>-<what>; the tenant- prefix is the narrowest name known at deploy.',
      };
    case 'storageBucket':
      return { resources: [targets.bucketArn] };
    case 'storageObjects':
      return {
        resources: [`${targets.bucketArn}/tenants/*`, `${targets.bucketArn}/backups/*`],
        wildcardReason:
          "A tenant's objects are under tenants/<tenantId>/ (and backups/<tenantId>/), ids made at run time; the two prefixes are the narrowest known at deploy.",
      };
    case 'storageKey':
      // The key policy (infra/constructs/storage.ts) holds the same conditions: S3 in this region, a tenant's object.
      return { resources: [targets.storageKeyArn], conditions: keyUseConditions(scope.region) };
    case 'alarmTopic':
      return { resources: [targets.alarmTopicArn] };
    case 'eventBus':
      return { resources: [targets.eventBusArn] };
    case 'metrics':
      // cloudwatch:PutMetricData supports no resource-level permissions: `*`, narrowed to the stage's namespace.
      return {
        resources: ['*'],
        conditions: { StringEquals: { 'cloudwatch:namespace': targets.metricsNamespace } },
        wildcardReason: METRICS_WILDCARD_REASON,
      };
    default:
      throw new Error(`Unknown resource reference '${ref}' in functions/registry.ts`);
  }
}

function stateMachineOf(ref: string): string {
  const name = ref.slice(ref.indexOf(':') + 1);
  if (!/^[a-z0-9-]+$/.test(name)) throw new Error(`Resource reference '${ref}' names no state machine file`);
  return name;
}

/**
 * Actions IAM cannot scope to a resource, with the reason each is granted on `*` instead of on the resource its
 * declaration names. (Checked against the Service Authorization Reference: CloudWatch's DescribeAlarms and
 * DeleteAlarms do take alarm ARNs, so they stay on `tenant-*`.)
 */
export const UNSCOPED_ACTIONS: Readonly<Record<string, string>> = {
  'secretsmanager:ListSecrets':
    "secretsmanager:ListSecrets supports no resource-level permissions; it returns names and ARNs only, never values, and the caller filters on the tenant's name prefix.",
};

/** A statement a declared permission turns into, with the cdk-nag finding and reason of each wildcard resource. */
export interface Grant {
  readonly actions: readonly string[];
  readonly resources: readonly string[];
  readonly conditions?: ResourceBinding['conditions'];
  readonly wildcards: readonly { readonly finding: string; readonly reason: string }[];
}

/**
 * The statements of the declared permissions: one per permission on its resource, and the actions IAM cannot
 * scope (`UNSCOPED_ACTIONS`) on `*`. Actions must be spelled out, never wildcarded.
 */
export function grantsOf(
  scope: Stack,
  permissions: readonly Permission[],
  targets: PermissionTargets,
): Grant[] {
  const grants: Grant[] = [];
  for (const permission of permissions) {
    for (const action of permission.actions) {
      if (!/^[a-z0-9-]+:[A-Za-z0-9]+$/.test(action)) {
        throw new Error(`Permission action '${action}' must be one service:Action, without wildcards`);
      }
    }
    const scoped = permission.actions.filter((action) => !(action in UNSCOPED_ACTIONS));
    const unscoped = permission.actions.filter((action) => action in UNSCOPED_ACTIONS);
    if (scoped.length > 0) {
      const binding = bindResource(scope, permission.resource, targets);
      const wildcards = binding.resources
        .map((resource) => nagResourceFinding(scope, resource))
        .filter((finding) => finding.includes('*'))
        .map((finding) => {
          if (!binding.wildcardReason)
            throw new Error(`'${permission.resource}' grants on ${finding} without a reason`);
          return { finding, reason: binding.wildcardReason };
        });
      grants.push({
        actions: scoped,
        resources: binding.resources,
        ...(binding.conditions ? { conditions: binding.conditions } : {}),
        wildcards,
      });
    }
    if (unscoped.length > 0) {
      // These actions support no resource-level permissions, so only `*` grants them; each one's reason is its entry
      // in UNSCOPED_ACTIONS, acknowledged beside the role (infra/constructs/function.ts).
      grants.push({
        actions: unscoped,
        resources: ['*'],
        wildcards: unscoped.map((action) => ({
          finding: 'Resource::*',
          reason: UNSCOPED_ACTIONS[action] ?? '',
        })),
      });
    }
  }
  return grants;
}

/** A grant as an IAM policy statement. */
export const statementOf = (grant: Grant): PolicyStatement =>
  new PolicyStatement({
    effect: Effect.ALLOW,
    actions: [...grant.actions],
    resources: [...grant.resources],
    ...(grant.conditions ? { conditions: grant.conditions } : {}),
  });

/**
 * How cdk-nag's IAM5 names a resource in a finding, `Resource::<flattened ARN>`: references become `<Id>` and
 * `<Id.Attr>`, joins are joined. An acknowledgement names exactly one such resource.
 */
export function nagResourceFinding(scope: Stack, resource: string): string {
  const visit = (node: unknown): string => {
    if (node === undefined) return '';
    if (typeof node === 'string') return node.replace(/\$\{/g, '<').replace(/\}/g, '>');
    if (Array.isArray(node)) return JSON.stringify(node);
    if (typeof node === 'object' && node !== null) {
      if ('Fn::Join' in node && Array.isArray(node['Fn::Join'])) {
        const [delimiter, items] = node['Fn::Join'];
        return Array.isArray(items) ? items.map(visit).join(String(delimiter)) : JSON.stringify(node);
      }
      if ('Fn::Sub' in node) return visit(node['Fn::Sub']);
      if ('Fn::GetAtt' in node && Array.isArray(node['Fn::GetAtt'])) {
        const [resourceId, attribute] = node['Fn::GetAtt'];
        return `<${visit(resourceId)}.${visit(attribute)}>`;
      }
      if ('Fn::ImportValue' in node) return visit(node['Fn::ImportValue']);
      if ('Ref' in node) return `<${visit(node.Ref)}>`;
    }
    return JSON.stringify(node);
  };
  return `Resource::${visit(scope.resolve(resource))}`;
}
