/**
 * The lifecycle steps' own constants; the steps themselves are made by `step` (functions/shared/step.ts), like
 * every state machine task.
 */

import { TENANT_ID_PATTERN } from '../../schema/names.ts';
import * as z from '../../schema/zod.ts';

/** Who the lifecycle steps write to the registry as, when no requester is known. */
export const LIFECYCLE_ACTOR = 'tenant-lifecycle';

/** What every lifecycle state passes its Lambda: the tenant and the operation (`tenant_operations.id`). */
export const LifecycleInput = z.object({
  tenantId: z.string().check(z.regex(TENANT_ID_PATTERN)),
  operationId: z.string().check(z.regex(/^\d+$/)),
});
export type LifecycleInput = z.infer<typeof LifecycleInput>;
