import middy from '@middy/core';
import * as z from '../../schema/zod.ts';
import { rdsDataClient, secretsManagerClient } from '../shared/clients.ts';
import { DataApi } from '../shared/data-api.ts';
import { readEnv } from '../shared/env.ts';
import { setupControlPlane } from './control-plane.ts';
import { ensureProvisionerRole, lockDownSystemDatabases } from './provisioner-role.ts';

const env = readEnv(['CLUSTER_ARN', 'PROVISIONER_SECRET_ARN', 'CONTROL_PLANE_DATABASE', 'SCHEMA_DIR']);

/** What the CDK provider framework hands on from CloudFormation (the properties are `infra/constructs/database.ts`'s). */
const eventSchema = z.object({
  RequestType: z.enum(['Create', 'Update', 'Delete']),
  PhysicalResourceId: z.optional(z.string()),
  ResourceProperties: z.object({ MasterSecretArn: z.string().check(z.minLength(1)) }),
});

const PHYSICAL_ID = 'control-plane-setup';

/**
 * The deploy-time database setup (a CloudFormation custom resource): the master user creates the provisioner
 * role, then the provisioner creates the registry database and applies its migrations. Throwing fails the
 * deploy, and CloudFormation rolls back. Delete does nothing: the cluster's removal policy decides what stays.
 */
export async function setup(
  event: unknown,
): Promise<{ PhysicalResourceId: string; Data: Record<string, string> }> {
  const request = eventSchema.parse(event);
  if (request.RequestType === 'Delete')
    return { PhysicalResourceId: request.PhysicalResourceId ?? PHYSICAL_ID, Data: {} };

  const rdsData = rdsDataClient();
  const master = new DataApi(rdsData, {
    resourceArn: env.CLUSTER_ARN,
    secretArn: request.ResourceProperties.MasterSecretArn,
    database: 'postgres',
  });
  const { role } = await whileResuming(() =>
    ensureProvisionerRole(master, secretsManagerClient(), env.PROVISIONER_SECRET_ARN),
  );
  await lockDownSystemDatabases(master, env.CONTROL_PLANE_DATABASE);
  const { version } = await setupControlPlane(master.as(env.PROVISIONER_SECRET_ARN), {
    database: env.CONTROL_PLANE_DATABASE,
    schemaDir: env.SCHEMA_DIR,
  });
  return { PhysicalResourceId: PHYSICAL_ID, Data: { Role: role, SchemaVersion: String(version) } };
}

/**
 * An auto-paused Serverless v2 writer answers `DatabaseResumingException` while it wakes (about 15 s);
 * the first call waits for it, the rest find it awake.
 */
async function whileResuming<T>(work: () => Promise<T>, attempts = 12): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (error) {
      if (!(error instanceof Error && error.name === 'DatabaseResumingException') || attempt >= attempts)
        throw error;
      await new Promise((resolve) => setTimeout(resolve, 5_000));
    }
  }
}

export const handler = middy(setup);
