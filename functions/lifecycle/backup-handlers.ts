import { BackupId } from '../../schema/api/lifecycle.ts';
import { POLICY_RETENTION_DAYS } from '../../schema/plans.ts';
import * as z from '../../schema/zod.ts';
import { s3Client } from '../shared/clients.ts';
import { TenantStateError } from '../shared/errors.ts';
import { step, stepSetup } from '../shared/step.ts';
import { backupRetentionDays } from '../shared/storage.ts';
import { backupPrefix, backupTenantDatabase, deleteObjectsUnder, hasDatabase } from './backup.ts';
import { LifecycleStore } from './operations.ts';
import { LIFECYCLE_ACTOR, LifecycleInput } from './step.ts';

/** BackupDatabase and DiscardBackup: the backup-tenant run and the delete-tenant run's final backup. */
const { env, cluster, registry } = stepSetup(['STORAGE_BUCKET', 'STORAGE_KEY_ARN']);
const progress = { store: registry.progress, actor: LIFECYCLE_ACTOR };
const store = new LifecycleStore(cluster);
const deps = {
  cluster,
  s3: s3Client(),
  bucket: env.STORAGE_BUCKET,
  stage: env.STAGE,
  keyArn: env.STORAGE_KEY_ARN,
};

const BackupInput = z.object({
  ...LifecycleInput.shape,
  backupId: BackupId,
  kind: z.enum(['on_demand', 'final']),
});

/** What the backup scheduler keeps with a scheduled backup's operation (functions/lifecycle/scheduled-backups.ts). */
const ScheduledRequest = z.object({
  kind: z.literal('scheduled'),
  retentionDays: z.union(POLICY_RETENTION_DAYS.map((days) => z.literal(days))),
});

/**
 * Takes the backup and records it in the registry. A final backup (a deletion's) runs on a tenant being deleted,
 * and is skipped when an earlier attempt of the deletion took one (the tenant has been closed to its roles since)
 * or when there is no database left to back up (a failed tenant).
 */
export const backupDatabase = /* @__PURE__ */ step(
  'BackupDatabase',
  { input: BackupInput, progress, statuses: ['active', 'suspended', 'deprovisioning'] },
  async ({ tenant, input }) => {
    const final = input.kind === 'final';
    if (final !== (tenant.status === 'deprovisioning')) {
      throw new TenantStateError(`Tenant ${tenant.id} is ${tenant.status}: no ${input.kind} backup of it`);
    }
    if (final) {
      const taken = (await store.backups(tenant.id)).find((backup) => backup.kind === 'final');
      if (taken) return { skipped: 'taken by an earlier attempt', backupId: taken.backupId };
      if (!(await hasDatabase(cluster, tenant.id))) return { skipped: 'no database' };
    }
    const operation = await store.get(input.operationId);
    // A scheduled backup runs the same state machine as an on-demand one; its operation says it is the policy's.
    const scheduled = ScheduledRequest.safeParse(operation?.request);
    const kind = input.kind === 'on_demand' && scheduled.success ? 'scheduled' : input.kind;
    const result = await backupTenantDatabase(deps, {
      tenantId: tenant.id,
      backupId: input.backupId,
      kind,
      encryptionLevel: tenant.config.compliance.encryptionLevel,
      retentionDays:
        kind === 'scheduled' && scheduled.success
          ? scheduled.data.retentionDays
          : backupRetentionDays(input.kind, tenant.config.compliance.retentionDays),
    });
    await store.recordBackup({
      ...result,
      tenantId: tenant.id,
      kind,
      by: operation?.requestedBy ?? LIFECYCLE_ACTOR,
    });
    return {
      backupId: result.backupId,
      manifest: `s3://${result.bucket}/${result.manifestKey}`,
      schemaVersion: result.schemaVersion,
      tables: result.tables,
      rows: result.rows,
      bytes: result.bytes,
    };
  },
);

/**
 * Undo of a failed backup: deletes what it wrote under its folder. A backup the registry records as complete is
 * never deleted here (a retried run whose earlier attempt completed it).
 */
export const discardBackup = /* @__PURE__ */ step(
  'DiscardBackup',
  { input: z.object({ ...LifecycleInput.shape, backupId: BackupId }), progress },
  async ({ tenant, input }) => {
    if (await store.backup(tenant.id, input.backupId)) return { deleted: 0, kept: 'complete' };
    return deleteObjectsUnder(deps, backupPrefix(tenant.id, input.backupId));
  },
);
