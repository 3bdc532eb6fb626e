import { PutObjectCommand } from '@aws-sdk/client-s3';
import { StartExecutionCommand } from '@aws-sdk/client-sfn';
import { expect } from 'vitest';
import { z } from 'zod';
import { STORAGE_BUCKET, stateMachineArn } from '../../local/constants.ts';
import { databaseName, storagePrefix } from '../../schema/names.ts';
import { request } from '../lifecycle/helpers.ts';
import { clients, waitForExecution } from '../provision/helpers.ts';
import { superuserPool } from '../support/sandbox.ts';

export const COLLECT_USAGE = stateMachineArn('collect-usage');

export const CollectionOutput = z.object({ tenants: z.number(), incomplete: z.number(), chunks: z.number() });

/** Runs the usage collector as its schedule does, for the time given; it must succeed. */
export async function collectUsage(at: Date): Promise<z.infer<typeof CollectionOutput>> {
  const { executionArn } = await clients.sfn.send(
    new StartExecutionCommand({
      stateMachineArn: COLLECT_USAGE,
      input: JSON.stringify({ scheduledTime: at.toISOString() }),
    }),
  );
  const execution = await waitForExecution(executionArn ?? '', 120_000);
  expect(execution.status, execution.cause ?? execution.error).toBe('SUCCEEDED');
  return CollectionOutput.parse(JSON.parse(execution.output ?? '{}'));
}

export const Usage = z.object({
  tenantId: z.string(),
  measuredAt: z.string().nullable(),
  readings: z.record(
    z.string(),
    z.object({
      used: z.number(),
      unit: z.string(),
      limit: z.number().optional(),
      share: z.number().optional(),
    }),
  ),
  exceeded: z.array(z.string()),
  problems: z.array(z.object({ measures: z.array(z.string()), reason: z.string() })),
});

/** GET /tenants/{id}/usage, which must answer 200. */
export async function usageOf(tenantId: string): Promise<z.infer<typeof Usage>> {
  const answer = await request('GET', `/tenants/${tenantId}/usage`);
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  return Usage.parse(answer.body);
}

/** Puts an object of `bytes` bytes under the tenant's prefix, as the SaaS's application would. */
export async function putTenantObject(tenantId: string, name: string, bytes: number): Promise<void> {
  await clients.s3.send(
    new PutObjectCommand({
      Bucket: STORAGE_BUCKET,
      Key: `${storagePrefix(tenantId)}${name}`,
      Body: Buffer.alloc(bytes, 7),
    }),
  );
}

/**
 * Lowers the tenant's storage quota in the registry below what the API accepts (whole gigabytes), so that a
 * test crosses it with a few kilobytes.
 */
export async function lowerStorageQuota(tenantId: string, gigabytes: number): Promise<void> {
  await superuserPool('control_plane').query(
    `UPDATE tenants SET limits = jsonb_set(limits, '{storageQuotaGb}', to_jsonb($2::numeric)) WHERE id = $1`,
    [tenantId, gigabytes],
  );
}

/** The tenant database's size as PostgreSQL itself says, through the superuser. */
export async function databaseSize(tenantId: string): Promise<number> {
  const { rows } = await superuserPool().query<{ bytes: string }>('SELECT pg_database_size($1) AS bytes', [
    databaseName(tenantId),
  ]);
  return Number(rows[0]?.bytes);
}
