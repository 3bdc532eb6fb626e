import * as z from '../../schema/zod.ts';
import { CaughtFailure, stepFailure } from '../provision/outcome.ts';
import { cloudWatchClient, eventBridgeClient, s3Client, secretsManagerClient } from '../shared/clients.ts';
import { step, stepSetup } from '../shared/step.ts';
import { TENANT_STATUSES } from '../shared/tenants.ts';
import { LifecycleStore } from './operations.ts';
import { completeOperation as complete, failOperation as fail } from './outcome.ts';
import { LifecycleInput } from './step.ts';

/** CompleteOperation and FailOperation: the end of every lifecycle run, in the registry and on the event bus. */
const { env, cluster, registry } = stepSetup(['EVENT_BUS_NAME', 'STORAGE_BUCKET']);
const store = new LifecycleStore(cluster);
const deps = {
  tenants: registry.tenants,
  audit: registry.audit,
  store,
  events: eventBridgeClient(),
  busName: env.EVENT_BUS_NAME,
};
// Only FailOperation scans what is left, with these: made when it runs, so that the bundle of
// CompleteOperation (each function has its own) carries no Secrets Manager, S3 or CloudWatch client.
const scan = () => ({
  cluster,
  secrets: secretsManagerClient(),
  s3: s3Client(),
  bucket: env.STORAGE_BUCKET,
  cloudWatch: cloudWatchClient(),
  stage: env.STAGE,
});

// CompleteOperation and FailOperation record no progress: they end the operation, they are not steps of it.
export const completeOperation = /* @__PURE__ */ step(
  'CompleteOperation',
  { input: LifecycleInput },
  async ({ input }) => {
    const operation = await store.get(input.operationId);
    // A deletion records where its final backup is: the one this run took, or an earlier attempt's.
    const finalBackup =
      operation?.operation === 'delete'
        ? (await store.backups(input.tenantId)).find((backup) => backup.kind === 'final')
        : undefined;
    return complete(deps, input.tenantId, input.operationId, {
      ...(finalBackup
        ? {
            finalBackup: {
              backupId: finalBackup.backupId,
              bucket: finalBackup.location.bucket,
              prefix: finalBackup.location.prefix,
              manifest: finalBackup.location.manifest,
            },
          }
        : {}),
    });
  },
);

const FailInput = z.object({
  ...LifecycleInput.shape,
  failure: CaughtFailure,
  rollbackFailure: z.optional(CaughtFailure),
  status: z.optional(z.enum(TENANT_STATUSES)),
  scan: z._default(z.boolean(), false),
});

export const failOperation = /* @__PURE__ */ step('FailOperation', { input: FailInput }, ({ input }) =>
  fail({ ...deps, scan: scan() }, input.tenantId, input.operationId, {
    failure: stepFailure(input.failure),
    rollbackFailure: input.rollbackFailure ? stepFailure(input.rollbackFailure) : undefined,
    status: input.status,
    scan: input.scan,
  }),
);
