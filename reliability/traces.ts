import { DescribeAlarmsCommand } from '@aws-sdk/client-cloudwatch';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { ListSecretsCommand } from '@aws-sdk/client-secrets-manager';
import { z } from 'zod';
import { STAGE, STORAGE_BUCKET } from '../local/constants.ts';
import type { SandboxUnderTest } from './sandbox.ts';

/**
 * What exists of tenants (of one, when `tenantId` is given), looked up independently of the product's code:
 * databases and roles through the superuser, secrets (those scheduled for deletion too), objects and alarms
 * through the SDK; grouped by the tenant id their names carry. Each resource is a label such as
 * `database tenant_t…`, `secret tenants/local/t…/db/app` or `object tenants/t…/.tenant`.
 */
export async function allTraces(sut: SandboxUnderTest, tenantId?: string): Promise<Map<string, string[]>> {
  const traces = new Map<string, string[]>();
  const add = (id: string | undefined, label: string) => {
    const key = id ?? '(unrecognised)';
    traces.set(key, [...(traces.get(key) ?? []), label]);
  };
  const admin = sut.superuser();
  const like = tenantId ? `tenant_${tenantId}%` : 'tenant\\_%';
  const databases = await admin.query<{ datname: string }>(
    'SELECT datname FROM pg_database WHERE datname LIKE $1',
    [like],
  );
  for (const { datname } of databases.rows)
    add(/^tenant_(t[a-z0-9]{15})$/.exec(datname)?.[1], `database ${datname}`);
  const roles = await admin.query<{ rolname: string }>('SELECT rolname FROM pg_roles WHERE rolname LIKE $1', [
    like,
  ]);
  for (const { rolname } of roles.rows) add(/^tenant_(t[a-z0-9]{15})_/.exec(rolname)?.[1], `role ${rolname}`);
  const secretPrefix = tenantId ? `tenants/${STAGE}/${tenantId}/` : 'tenants/';
  let nextToken: string | undefined;
  do {
    const page = await sut.clients.secrets.send(
      new ListSecretsCommand({
        IncludePlannedDeletion: true,
        MaxResults: 100,
        NextToken: nextToken,
        Filters: [{ Key: 'name', Values: [secretPrefix] }],
      }),
    );
    for (const secret of page.SecretList ?? []) {
      const name = secret.Name ?? '';
      if (!name.startsWith(secretPrefix)) continue;
      add(
        /^tenants\/[^/]+\/(t[a-z0-9]{15})\//.exec(name)?.[1],
        `secret ${name}${secret.DeletedDate ? ' (scheduled for deletion)' : ''}`,
      );
    }
    nextToken = page.NextToken;
  } while (nextToken);
  let token: string | undefined;
  do {
    const page = await sut.clients.s3.send(
      new ListObjectsV2Command({
        Bucket: STORAGE_BUCKET,
        Prefix: tenantId ? `tenants/${tenantId}/` : 'tenants/',
        ContinuationToken: token,
      }),
    );
    for (const { Key } of page.Contents ?? []) {
      if (Key) add(/^tenants\/(t[a-z0-9]{15})\//.exec(Key)?.[1], `object ${Key}`);
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  let next: string | undefined;
  do {
    const page = await sut.clients.cloudWatch.send(
      new DescribeAlarmsCommand({
        AlarmNamePrefix: tenantId ? `tenant-${tenantId}-` : 'tenant-',
        NextToken: next,
      }),
    );
    for (const alarm of page.MetricAlarms ?? []) {
      const name = alarm.AlarmName ?? '';
      add(/^tenant-(t[a-z0-9]{15})-/.exec(name)?.[1], `alarm ${name}`);
    }
    next = page.NextToken;
  } while (next);
  return traces;
}

const RegistryRow = z.object({
  id: z.string(),
  slug: z.string(),
  status: z.string(),
  leftovers: z.array(z.string()).nullable(),
  failure: z.object({ step: z.string(), error: z.string(), cause: z.string() }).nullable(),
  execution_arn: z.string().nullable(),
});
export type RegistryRow = z.infer<typeof RegistryRow>;

/** The registry's tenants, read as the superuser. */
export async function registryRows(
  sut: SandboxUnderTest,
  where = 'true',
  params: unknown[] = [],
): Promise<RegistryRow[]> {
  const { rows } = await sut
    .superuser('control_plane')
    .query(
      `SELECT id, slug, status, leftovers, failure, execution_arn FROM tenants WHERE ${where} ORDER BY created_at`,
      params,
    );
  return z.array(RegistryRow).parse(rows);
}

/** A resource left behind: it exists, and its tenant is not one that should have it, nor lists it as left. */
export interface Orphan {
  readonly tenantId: string;
  readonly status: string;
  readonly resource: string;
}

/**
 * Every orphan in the sandbox: a resource of no tenant, or of a tenant that is `failed` or `deleted`, or of a
 * `rollback_failed` tenant that does not list it among its leftovers (a silent leftover). Resources of active
 * tenants and of tenants still provisioning are not orphans.
 */
export async function findOrphans(sut: SandboxUnderTest, tenantId?: string): Promise<Orphan[]> {
  const traces = await allTraces(sut, tenantId);
  const tenants = new Map((await registryRows(sut)).map((row) => [row.id, row]));
  const orphans: Orphan[] = [];
  for (const [tenantId, resources] of traces) {
    const tenant = tenants.get(tenantId);
    for (const resource of resources) {
      // A deleted tenant keeps its objects for their retention and its secrets for their recovery window.
      const retained =
        tenant?.status === 'deleted' &&
        (resource.startsWith('object ') || resource.endsWith('(scheduled for deletion)'));
      const owned =
        tenant &&
        (tenant.status === 'active' ||
          tenant.status === 'provisioning' ||
          retained ||
          (tenant.status === 'rollback_failed' && listedAsLeft(resource, tenantId, tenant.leftovers ?? [])));
      if (!owned) orphans.push({ tenantId, status: tenant?.status ?? 'unknown', resource });
    }
  }
  return orphans;
}

const UNKNOWN_KIND: Record<string, string> = {
  database: 'database',
  role: 'roles',
  secret: 'secrets',
  object: 'objects',
  alarm: 'alarms',
};

/**
 * Whether a rollback_failed tenant's leftovers name the resource, or say that whether such resources are left
 * is unknown (the scan of that kind failed: a person must look).
 */
export function listedAsLeft(trace: string, tenantId: string, leftovers: readonly string[]): boolean {
  const kind = trace.split(' ')[0] ?? '';
  const name = trace.replace(/^\w+ /, '').replace(/ \(scheduled for deletion\)$/, '');
  return leftovers.some(
    (left) =>
      left.includes(name) ||
      (kind === 'object' && left.includes(`tenants/${tenantId}/`)) ||
      left.startsWith(`unknown: ${UNKNOWN_KIND[kind] ?? kind}`),
  );
}

/** What one tenant has, by kind: to check that exactly one of each exists. */
export async function tenantTraces(sut: SandboxUnderTest, tenantId: string): Promise<string[]> {
  return [...((await allTraces(sut, tenantId)).get(tenantId) ?? [])].sort();
}

/** The expected resources of an active tenant of the suite's usual request (professional, storage on). */
export function expectedActiveTraces(tenantId: string, alarms: readonly string[]): string[] {
  const db = `tenant_${tenantId}`;
  return [
    `database ${db}`,
    ...['admin', 'app', 'auditor', 'readonly'].map((role) => `role ${db}_${role}`),
    ...['admin', 'app', 'auditor', 'readonly'].map(
      (role) => `secret tenants/${STAGE}/${tenantId}/db/${role}`,
    ),
    `secret tenants/${STAGE}/${tenantId}/invitation/admin`,
    `object tenants/${tenantId}/.tenant`,
    ...alarms.map((what) => `alarm tenant-${tenantId}-${what}`),
  ].sort();
}
