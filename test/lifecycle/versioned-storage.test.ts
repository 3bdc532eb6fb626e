import {
  DeleteObjectCommand,
  GetBucketVersioningCommand,
  GetObjectTaggingCommand,
  HeadObjectCommand,
  ListObjectVersionsCommand,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { STORAGE_BUCKET, STORAGE_KEY_ARN } from '../../local/constants.ts';
import { storagePrefix } from '../../schema/names.ts';
import { reserveTenant, startProvisioning, waitForExecution } from '../provision/helpers.ts';
import { addFaults, type FaultRuleInput, removeFaults } from '../support/sandbox.ts';
import { activeTenant, clients, failBackupUploadPartWay, operate, registry } from './helpers.ts';

// The sandbox's bucket is versioned, as staging's and prod's are: a delete without a version id leaves the data
// behind a delete marker, so "nothing left" is checked on every version, not on ListObjectsV2.

interface Listed {
  readonly key: string;
  readonly versionId: string;
  readonly latest: boolean;
  readonly marker: boolean;
}

/** Every version and delete marker under the prefix, through ListObjectVersions' markers. */
async function versionsUnder(Prefix: string): Promise<Listed[]> {
  const listed: Listed[] = [];
  let KeyMarker: string | undefined;
  let VersionIdMarker: string | undefined;
  do {
    const page = await clients.s3.send(
      new ListObjectVersionsCommand({ Bucket: STORAGE_BUCKET, Prefix, KeyMarker, VersionIdMarker }),
    );
    for (const [entries, marker] of [
      [page.Versions ?? [], false],
      [page.DeleteMarkers ?? [], true],
    ] as const) {
      for (const entry of entries) {
        listed.push({
          key: entry.Key ?? '',
          versionId: entry.VersionId ?? '',
          latest: entry.IsLatest ?? false,
          marker,
        });
      }
    }
    KeyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
    VersionIdMarker = page.IsTruncated ? page.NextVersionIdMarker : undefined;
  } while (KeyMarker);
  return listed;
}

/** What a tenant's application does with its area: a file written twice, one written and deleted. */
async function useStorage(tenantId: string): Promise<{ kept: string; removed: string }> {
  const kept = `${storagePrefix(tenantId)}files/report.txt`;
  const removed = `${storagePrefix(tenantId)}files/draft.txt`;
  for (const Body of ['first draft', 'final']) {
    await clients.s3.send(new PutObjectCommand({ Bucket: STORAGE_BUCKET, Key: kept, Body }));
  }
  await clients.s3.send(new PutObjectCommand({ Bucket: STORAGE_BUCKET, Key: removed, Body: 'scratch' }));
  await clients.s3.send(new DeleteObjectCommand({ Bucket: STORAGE_BUCKET, Key: removed }));
  return { kept, removed };
}

const deletePath = (tenant: { id: string; slug: string }) =>
  `/tenants/${tenant.id}?confirm=${encodeURIComponent(tenant.slug)}`;

describe('tenant storage on a versioned bucket', () => {
  it('is a versioned bucket, as staging and prod are', async () => {
    // Act
    const { Status } = await clients.s3.send(new GetBucketVersioningCommand({ Bucket: STORAGE_BUCKET }));

    // Assess
    expect(Status).toBe('Enabled');
  });

  it('a failed provisioning leaves no version and no delete marker under the tenant prefix', async () => {
    // Prepare: ConfigureAlarms fails after ConfigureStorage wrote the marker, so RemoveStorage undoes it.
    const tenant = await reserveTenant({ plan: 'professional' });
    const fault: FaultRuleInput = {
      service: 'cloudwatch',
      operation: 'PutMetricAlarm',
      match: `tenant-${tenant.id}-`,
      error: { code: 'AccessDeniedException', statusCode: 400, message: 'injected' },
      count: 1,
    };
    await addFaults([fault]);

    // Act
    let status: string | undefined;
    try {
      ({ status } = await waitForExecution(await startProvisioning(tenant.id)));
    } finally {
      await removeFaults([fault]);
    }

    // Assess
    expect(status).toBe('FAILED');
    expect((await registry.tenants.require(tenant.id)).status).toBe('failed');
    expect(await versionsUnder(storagePrefix(tenant.id))).toEqual([]);
  });

  it('deleting a tenant keeps only its current objects, tagged for retention: no older version, no delete marker', async () => {
    // Prepare
    const tenant = await activeTenant({ config: { compliance: { retentionDays: 30 } } });
    const { kept } = await useStorage(tenant.id);
    const marker = `${storagePrefix(tenant.id)}.tenant`;
    expect((await versionsUnder(storagePrefix(tenant.id))).length).toBe(5);

    // Act
    const { execution } = await operate('DELETE', deletePath(tenant));

    // Assess
    expect(execution.status).toBe('SUCCEEDED');
    const left = await versionsUnder(storagePrefix(tenant.id));
    expect(
      left
        .map(({ key, latest, marker: isMarker }) => ({ key, latest, isMarker }))
        .sort((a, b) => a.key.localeCompare(b.key)),
    ).toEqual([
      { key: marker, latest: true, isMarker: false },
      { key: kept, latest: true, isMarker: false },
    ]);
    for (const { key, versionId } of left) {
      const { TagSet } = await clients.s3.send(
        new GetObjectTaggingCommand({ Bucket: STORAGE_BUCKET, Key: key, VersionId: versionId }),
      );
      expect(TagSet).toEqual(expect.arrayContaining([{ Key: 'RetentionDays', Value: '30' }]));
    }
  });

  it('discarding a failed backup leaves no version of it', async () => {
    // Prepare: a table named after the tenant is written last, and its upload fails: the template's tables were
    // written by then, and the undo has them to delete.
    const tenant = await activeTenant();
    const fault = await failBackupUploadPartWay(tenant.id, 'zz_versions');

    // Act
    let status: string | undefined;
    try {
      ({
        execution: { status },
      } = await operate('POST', `/tenants/${tenant.id}/backups`, { reason: 'versioned discard' }));
    } finally {
      await removeFaults([fault]);
    }

    // Assess
    expect(status).toBe('FAILED');
    expect(await versionsUnder(`backups/${tenant.id}/`)).toEqual([]);
  });

  it('enhanced encryption is SSE-KMS with the stage key, for the marker and the backup', async () => {
    // Prepare
    const tenant = await activeTenant({ config: { compliance: { encryptionLevel: 'enhanced' } } });

    // Act
    const marker = await clients.s3.send(
      new HeadObjectCommand({ Bucket: STORAGE_BUCKET, Key: `${storagePrefix(tenant.id)}.tenant` }),
    );
    const { accepted } = await operate('POST', `/tenants/${tenant.id}/backups`);
    const manifest = await clients.s3.send(
      new HeadObjectCommand({
        Bucket: STORAGE_BUCKET,
        Key: `backups/${tenant.id}/${accepted.backupId}/manifest.json`,
      }),
    );

    // Assess
    for (const head of [marker, manifest]) {
      expect(head).toMatchObject({ ServerSideEncryption: 'aws:kms', SSEKMSKeyId: STORAGE_KEY_ARN });
    }
  });
});
