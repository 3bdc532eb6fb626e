import {
  GetObjectCommand,
  GetObjectTaggingCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { retainTenantStorage } from '../../functions/lifecycle/retire.ts';
import { backupTags, taggingHeader, tenantEncryption } from '../../functions/shared/storage.ts';
import { STAGE, STORAGE_BUCKET, STORAGE_KEY_ARN } from '../../local/constants.ts';
import { storagePrefix } from '../../schema/names.ts';
import { runReconciler } from '../reconcile/helpers.ts';
import { daysAfter, runS3Lifecycle } from '../support/sandbox.ts';
import { activeTenant, clients, operate, registry } from './helpers.ts';

// Retention counts from a tenant's deletion, and S3 counts a lifecycle rule's days from each object's creation: an
// active tenant's objects carry no retention tag, and deletion rewrites each object it keeps. The lifecycle runs
// on the sandbox's bucket at a future date, on the tenant's own prefix only (other files' tenants share the bucket).

const Tombstone = z.object({ tenantId: z.string(), deletedAt: z.string(), retentionDays: z.number() });

async function versionsUnder(Prefix: string) {
  const page = await clients.s3.send(new ListObjectVersionsCommand({ Bucket: STORAGE_BUCKET, Prefix }));
  return [...(page.Versions ?? []), ...(page.DeleteMarkers ?? [])].map((entry) => entry.Key ?? '');
}

async function currentKeys(Prefix: string): Promise<string[]> {
  const { Contents } = await clients.s3.send(new ListObjectsV2Command({ Bucket: STORAGE_BUCKET, Prefix }));
  return (Contents ?? []).map((object) => object.Key ?? '').sort();
}

async function tagsOf(Key: string): Promise<Record<string, string>> {
  const { TagSet } = await clients.s3.send(new GetObjectTaggingCommand({ Bucket: STORAGE_BUCKET, Key }));
  return Object.fromEntries((TagSet ?? []).map((tag) => [tag.Key ?? '', tag.Value ?? '']));
}

async function tombstoneOf(tenantId: string) {
  const { Body } = await clients.s3.send(
    new GetObjectCommand({ Bucket: STORAGE_BUCKET, Key: `${storagePrefix(tenantId)}.tenant` }),
  );
  return Tombstone.parse(JSON.parse((await Body?.transformToString()) ?? ''));
}

const deletePath = (tenant: { id: string; slug: string }) =>
  `/tenants/${tenant.id}?confirm=${encodeURIComponent(tenant.slug)}`;

describe('retention that counts from deletion', () => {
  it("keeps an active tenant's marker through a lifecycle run 400 days on; the reconciler sees no drift", async () => {
    // Prepare
    const tenant = await activeTenant({ config: { compliance: { retentionDays: 30 } } });
    const prefix = storagePrefix(tenant.id);

    // Act
    const report = await runS3Lifecycle(STORAGE_BUCKET, daysAfter(new Date(), 400), prefix);
    const reconciled = await runReconciler();

    // Assess
    expect(report.expired).toEqual([]);
    expect(await currentKeys(prefix)).toEqual([`${prefix}.tenant`]);
    expect(await tagsOf(`${prefix}.tenant`)).toEqual({ TenantId: tenant.id, Stage: STAGE });
    expect(reconciled.missing.filter((item) => item.tenantId === tenant.id)).toEqual([]);
  });

  it("keeps a deleted tenant's objects for its retention from the deletion, then nothing is left", async () => {
    // Prepare: a file the tenant wrote (twice: an older version) before its deletion.
    const tenant = await activeTenant({ config: { compliance: { retentionDays: 30 } } });
    const prefix = storagePrefix(tenant.id);
    const file = `${prefix}files/report.txt`;
    for (const Body of ['draft', 'final']) {
      await clients.s3.send(
        new PutObjectCommand({ Bucket: STORAGE_BUCKET, Key: file, Body, ContentType: 'text/plain' }),
      );
    }
    const written = (await clients.s3.send(new HeadObjectCommand({ Bucket: STORAGE_BUCKET, Key: file })))
      .LastModified;

    // Act
    const { execution } = await operate('DELETE', deletePath(tenant));
    const { deletedAt } = await tombstoneOf(tenant.id);
    const head = await clients.s3.send(new HeadObjectCommand({ Bucket: STORAGE_BUCKET, Key: file }));
    const beforeDue = await runS3Lifecycle(STORAGE_BUCKET, daysAfter(deletedAt, 29), prefix);
    const keptThrough = await currentKeys(prefix);
    const due = await runS3Lifecycle(STORAGE_BUCKET, daysAfter(deletedAt, 31), prefix);
    const noncurrentDue = await runS3Lifecycle(STORAGE_BUCKET, daysAfter(deletedAt, 33), prefix);

    // Assess: the file was rewritten at the deletion (its creation is the deletion's, not its writing's).
    expect(execution.status).toBe('SUCCEEDED');
    expect((await registry.tenants.require(tenant.id)).status).toBe('deleted');
    expect(written?.getTime()).toBeLessThan(Date.parse(deletedAt));
    expect(head.LastModified?.getTime()).toBeGreaterThanOrEqual(
      Math.floor(Date.parse(deletedAt) / 1000) * 1000,
    );
    expect(head.ContentType).toBe('text/plain');
    expect(beforeDue.expired).toEqual([]);
    expect(keptThrough).toEqual([`${prefix}.tenant`, file]);
    expect(due.expired.map((entry) => entry.key).sort()).toEqual([`${prefix}.tenant`, file]);
    expect(await currentKeys(prefix)).toEqual([]);
    expect(noncurrentDue.noncurrentDeleted.map((entry) => entry.key).sort()).toEqual([
      `${prefix}.tenant`,
      file,
    ]);
    expect(noncurrentDue.deleteMarkersRemoved).toHaveLength(2);
    expect(await versionsUnder(prefix)).toEqual([]);
  });

  it('a retried retention step rewrites nothing again and keeps the deletion time; SSE-KMS objects stay so', async () => {
    // Prepare: an enhanced tenant, its file SSE-KMS with the stage key and its context, deleted.
    const tenant = await activeTenant({
      config: { compliance: { retentionDays: 30, encryptionLevel: 'enhanced' } },
    });
    const file = `${storagePrefix(tenant.id)}files/secret.txt`;
    await clients.s3.send(
      new PutObjectCommand({
        Bucket: STORAGE_BUCKET,
        Key: file,
        Body: 'confidential',
        ...tenantEncryption('enhanced', STORAGE_KEY_ARN, tenant.id),
      }),
    );
    await operate('DELETE', deletePath(tenant));
    const first = await tombstoneOf(tenant.id);
    const headBefore = await clients.s3.send(new HeadObjectCommand({ Bucket: STORAGE_BUCKET, Key: file }));

    // Act: the step again, later, as a retry of it would run.
    const again = await retainTenantStorage(
      { s3: clients.s3, bucket: STORAGE_BUCKET, stage: STAGE, keyArn: STORAGE_KEY_ARN },
      {
        tenantId: tenant.id,
        createdAt: (await registry.tenants.require(tenant.id)).createdAt,
        deletedAt: new Date(Date.now() + 60_000).toISOString(),
        retentionDays: 30,
        encryptionLevel: 'enhanced',
      },
    );

    // Assess
    expect(again).toMatchObject({ retained: 0, alreadyRetained: 2, deletedAt: first.deletedAt });
    const headAfter = await clients.s3.send(new HeadObjectCommand({ Bucket: STORAGE_BUCKET, Key: file }));
    expect(headAfter.VersionId).toBe(headBefore.VersionId);
    expect(headAfter).toMatchObject({ ServerSideEncryption: 'aws:kms', SSEKMSKeyId: STORAGE_KEY_ARN });
    const marker = await clients.s3.send(
      new HeadObjectCommand({ Bucket: STORAGE_BUCKET, Key: `${storagePrefix(tenant.id)}.tenant` }),
    );
    expect(marker).toMatchObject({ ServerSideEncryption: 'aws:kms', SSEKMSKeyId: STORAGE_KEY_ARN });
    expect(await tagsOf(file)).toEqual({ TenantId: tenant.id, Stage: STAGE, RetentionDays: '30' });
  });
});

describe('backups by retention', () => {
  it('tags an on-demand backup with its kind and retention, and expires it after that many days', async () => {
    // Prepare: a 30-day retention keeps an on-demand backup 30 days, not the 90 it would keep otherwise.
    const tenant = await activeTenant({ config: { compliance: { retentionDays: 30 } } });
    const { accepted } = await operate('POST', `/tenants/${tenant.id}/backups`);
    const prefix = `backups/${tenant.id}/${accepted.backupId}/`;
    const manifest = `${prefix}manifest.json`;
    const created =
      (await clients.s3.send(new HeadObjectCommand({ Bucket: STORAGE_BUCKET, Key: manifest })))
        .LastModified ?? new Date();

    // Act
    const early = await runS3Lifecycle(STORAGE_BUCKET, daysAfter(created, 29), prefix);
    const due = await runS3Lifecycle(STORAGE_BUCKET, daysAfter(created, 31), prefix);
    const gone = await runS3Lifecycle(STORAGE_BUCKET, daysAfter(created, 33), prefix);

    // Assess
    expect(await versionsUnder(prefix)).toEqual([]);
    expect(early.expired).toEqual([]);
    expect(due.expired.length).toBeGreaterThan(1);
    expect(due.expired.every((entry) => entry.rule === 'backup-retention-30-days')).toBe(true);
    expect(gone.noncurrentDeleted).toHaveLength(due.expired.length);
    expect(gone.deleteMarkersRemoved).toHaveLength(due.expired.length);
  });

  it('moves a large backup object kept 365 days to STANDARD_IA on day 30, not a small one or one kept 35', async () => {
    // Prepare: objects as a backup writes them, of a tenant that needs none of its own.
    const tenantId = `t-${Date.now().toString(36)}`;
    const put = async (name: string, bytes: number, retentionDays: 35 | 365) => {
      const Key = `backups/${tenantId}/b-${retentionDays}/${name}`;
      const tags = backupTags({
        tenantId,
        stage: STAGE,
        backupId: `b-${retentionDays}`,
        kind: 'scheduled',
        retentionDays,
      });
      await clients.s3.send(
        new PutObjectCommand({
          Bucket: STORAGE_BUCKET,
          Key,
          Body: Buffer.alloc(bytes, 7),
          Tagging: taggingHeader(tags),
        }),
      );
      return Key;
    };
    const large = await put('data/large.jsonl', 256 * 1024, 365);
    const small = await put('manifest.json', 1024, 365);
    const shortLived = await put('data/large.jsonl', 2 * 1024 * 1024, 35);

    // Act
    const report = await runS3Lifecycle(STORAGE_BUCKET, daysAfter(new Date(), 32), `backups/${tenantId}/`);

    // Assess
    expect(report.transitioned.map((entry) => [entry.key, entry.storageClass, entry.rule])).toEqual([
      [large, 'STANDARD_IA', 'backup-infrequent-access-365-days'],
    ]);
    expect(report.expired).toEqual([]);
    const head = (Key: string) => clients.s3.send(new HeadObjectCommand({ Bucket: STORAGE_BUCKET, Key }));
    expect((await head(large)).StorageClass).toBe('STANDARD_IA');
    expect((await head(small)).StorageClass).toBeUndefined();
    expect((await head(shortLived)).StorageClass).toBeUndefined();
  });
});
