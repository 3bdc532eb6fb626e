import * as z from '../zod.ts';
import { PlanName, TenantId } from './tenants.ts';

/**
 * `GET /tenants/{tenantId}/usage`: the tenant's latest reading by the usage collector
 * (statemachines/collect-usage.asl.json), each measure against its limit. `functions/api/usage.ts` answers it and
 * `openapi.ts` documents it.
 */

const Reading = z.strictObject({
  used: z.number(),
  unit: z.enum(['Bytes', 'Count']),
  limit: z.optional(
    z.number().check(z.meta({ description: 'The limit that counts the measure, in its unit.' })),
  ),
  share: z.optional(
    z.number().check(z.meta({ description: 'used / limit: 1 is the limit, above it exceeded.' })),
  ),
});

export const UsageResponse = z.strictObject({
  tenantId: TenantId,
  plan: PlanName,
  measuredAt: z.nullable(
    z.string().check(z.meta({ description: 'When the reading was taken; null: not measured yet.' })),
  ),
  readings: z
    .strictObject({
      storageBytes: z.optional(Reading),
      connections: z.optional(Reading),
      users: z.optional(Reading),
      apiKeys: z.optional(Reading),
      databaseBytes: z.optional(Reading),
    })
    .check(
      z.meta({
        description:
          'Bytes under the storage prefix (against the storage quota), open sessions of the tenant’s roles (against the database’s connection limit), users holding a seat (maxUsers), live API keys (maxApiKeys), and the database’s size. A measure that could not be taken is absent and `problems` says why.',
      }),
    ),
  exceeded: z
    .array(z.enum(['storageBytes', 'users', 'apiKeys']))
    .check(z.meta({ description: 'Quotas the reading was beyond.' })),
  problems: z.array(z.strictObject({ measures: z.array(z.string()), reason: z.string() })),
});
export type UsageResponse = z.output<typeof UsageResponse>;
