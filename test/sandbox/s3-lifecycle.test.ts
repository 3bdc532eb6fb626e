import {
  CopyObjectCommand,
  CreateBucketCommand,
  GetObjectCommand,
  HeadObjectCommand,
  type LifecycleRule,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  PutBucketLifecycleConfigurationCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { clientConfig, daysAfter, runS3Lifecycle, sandbox, uniqueName } from '../support/sandbox.ts';

const s3 = new S3Client(clientConfig);
const DAY = 86_400_000;
/** 128 KB: the smallest object S3 Lifecycle transitions by default. */
const TRANSITIONABLE = Buffer.alloc(128 * 1024, 1);

async function bucketWith(Rules: LifecycleRule[], versioned = false): Promise<string> {
  const Bucket = uniqueName('s3-lifecycle');
  await s3.send(new CreateBucketCommand({ Bucket }));
  if (versioned) {
    await s3.send(new PutBucketVersioningCommand({ Bucket, VersioningConfiguration: { Status: 'Enabled' } }));
  }
  await s3.send(new PutBucketLifecycleConfigurationCommand({ Bucket, LifecycleConfiguration: { Rules } }));
  return Bucket;
}

async function put(Bucket: string, Key: string, Body: string | Buffer = 'data', Tagging?: string) {
  await s3.send(new PutObjectCommand({ Bucket, Key, Body, Tagging }));
  const head = await s3.send(new HeadObjectCommand({ Bucket, Key }));
  return head.LastModified ?? new Date();
}

async function keys(Bucket: string): Promise<string[]> {
  const { Contents } = await s3.send(new ListObjectsV2Command({ Bucket }));
  return (Contents ?? []).map((object) => object.Key ?? '').sort();
}

async function versions(Bucket: string) {
  const page = await s3.send(new ListObjectVersionsCommand({ Bucket }));
  return {
    versions: (page.Versions ?? []).map((v) => ({ key: v.Key, latest: v.IsLatest })),
    markers: (page.DeleteMarkers ?? []).map((m) => ({ key: m.Key, latest: m.IsLatest })),
  };
}

/** The next midnight UTC at or after the time (S3's rounding of a lifecycle due time). */
const midnightAfter = (time: Date) => new Date(Math.ceil(time.getTime() / DAY) * DAY);

async function failure(call: Promise<unknown>): Promise<{ name?: string; message?: string }> {
  try {
    await call;
  } catch (error) {
    return error instanceof Error ? error : {};
  }
  throw new Error('The call succeeded');
}

describe('S3 lifecycle, run by the sandbox', () => {
  it('expires by Days counted from creation, rounded up to the next midnight UTC', async () => {
    // Prepare
    const Bucket = await bucketWith([
      { ID: 'three-days', Status: 'Enabled', Filter: { Prefix: 'tmp/' }, Expiration: { Days: 3 } },
    ]);
    const created = await put(Bucket, 'tmp/a.txt');
    await put(Bucket, 'keep/b.txt');
    const due = midnightAfter(daysAfter(created, 3));

    // Act
    const before = await runS3Lifecycle(Bucket, new Date(due.getTime() - 1));
    const at = await runS3Lifecycle(Bucket, due);

    // Assess
    expect(due.getTime() - created.getTime()).toBeGreaterThan(3 * DAY);
    expect(before.expired).toEqual([]);
    expect(at.expired).toEqual([expect.objectContaining({ key: 'tmp/a.txt', rule: 'three-days' })]);
    expect(await keys(Bucket)).toEqual(['keep/b.txt']);
  });

  it('selects by Tag and by And of prefix, tags and sizes; an Expiration Date expires what it selects', async () => {
    // Prepare
    const Bucket = await bucketWith([
      {
        ID: 'tagged',
        Status: 'Enabled',
        Filter: { Tag: { Key: 'temporary', Value: 'yes' } },
        Expiration: { Days: 1 },
      },
      {
        ID: 'mid-sized-logs',
        Status: 'Enabled',
        Filter: {
          And: {
            Prefix: 'logs/',
            Tags: [{ Key: 'kind', Value: 'log' }],
            ObjectSizeGreaterThan: 3,
            ObjectSizeLessThan: 10,
          },
        },
        Expiration: { Date: new Date('2031-01-01T00:00:00.000Z') },
      },
    ]);
    await put(Bucket, 'a', 'x', 'temporary=yes');
    await put(Bucket, 'b', 'x', 'temporary=no');
    await put(Bucket, 'logs/fits', '12345', 'kind=log');
    await put(Bucket, 'logs/small', '123', 'kind=log');
    await put(Bucket, 'logs/large', '1234567890', 'kind=log');
    await put(Bucket, 'logs/untagged', '12345');
    await put(Bucket, 'other/fits', '12345', 'kind=log');

    // Act
    const early = await runS3Lifecycle(Bucket, new Date('2030-12-31T23:59:59.000Z'));
    const late = await runS3Lifecycle(Bucket, new Date('2031-01-01T00:00:00.000Z'));

    // Assess
    expect(early.expired.map((entry) => entry.key)).toEqual(['a']);
    expect(late.expired.map((entry) => entry.key)).toEqual(['logs/fits']);
    expect(await keys(Bucket)).toEqual(['b', 'logs/large', 'logs/small', 'logs/untagged', 'other/fits']);
  });

  it('does nothing for a disabled rule', async () => {
    // Prepare
    const Bucket = await bucketWith([
      { ID: 'off', Status: 'Disabled', Filter: { Prefix: '' }, Expiration: { Days: 1 } },
    ]);
    const created = await put(Bucket, 'a');

    // Act
    const report = await runS3Lifecycle(Bucket, daysAfter(created, 1000));

    // Assess
    expect(report.expired).toEqual([]);
    expect(await keys(Bucket)).toEqual(['a']);
  });

  it('on a versioned bucket: a delete marker, the noncurrent version after NoncurrentDays, then the lone marker', async () => {
    // Prepare
    const Bucket = await bucketWith(
      [
        {
          ID: 'expire',
          Status: 'Enabled',
          Filter: { Prefix: 'f/' },
          Expiration: { Days: 10 },
          NoncurrentVersionExpiration: { NoncurrentDays: 5 },
        },
        {
          ID: 'markers',
          Status: 'Enabled',
          Filter: { Prefix: 'f/' },
          Expiration: { ExpiredObjectDeleteMarker: true },
        },
      ],
      true,
    );
    const created = await put(Bucket, 'f/a');
    const expiry = midnightAfter(daysAfter(created, 10));

    // Act
    const first = await runS3Lifecycle(Bucket, expiry);
    const afterFirst = await versions(Bucket);
    const tooSoon = await runS3Lifecycle(Bucket, new Date(midnightAfter(daysAfter(expiry, 5)).getTime() - 1));
    const noncurrentDue = await runS3Lifecycle(Bucket, midnightAfter(daysAfter(expiry, 5)));

    // Assess
    expect(first.expired).toEqual([
      expect.objectContaining({ key: 'f/a', deleteMarkerVersionId: expect.any(String) }),
    ]);
    expect(afterFirst).toEqual({
      versions: [{ key: 'f/a', latest: false }],
      markers: [{ key: 'f/a', latest: true }],
    });
    expect(tooSoon.noncurrentDeleted).toEqual([]);
    expect(noncurrentDue.noncurrentDeleted).toEqual([
      expect.objectContaining({ key: 'f/a', rule: 'expire' }),
    ]);
    expect(noncurrentDue.deleteMarkersRemoved).toEqual([
      expect.objectContaining({ key: 'f/a', rule: 'markers' }),
    ]);
    expect(await versions(Bucket)).toEqual({ versions: [], markers: [] });
  });

  it('counts noncurrent days from the successor and keeps NewerNoncurrentVersions', async () => {
    // Prepare
    const Bucket = await bucketWith(
      [
        {
          ID: 'keep-two',
          Status: 'Enabled',
          Filter: { Prefix: '' },
          NoncurrentVersionExpiration: { NoncurrentDays: 1, NewerNoncurrentVersions: 2 },
        },
      ],
      true,
    );
    for (const body of ['v1', 'v2', 'v3', 'v4']) await put(Bucket, 'k', body);

    // Act
    const report = await runS3Lifecycle(Bucket, daysAfter(new Date(), 3));

    // Assess: v4 current, v3 and v2 the two newest noncurrent, v1 goes.
    expect(report.noncurrentDeleted).toHaveLength(1);
    expect((await versions(Bucket)).versions).toHaveLength(3);
    const { Body } = await s3.send(new GetObjectCommand({ Bucket, Key: 'k' }));
    expect(await Body?.transformToString()).toBe('v4');
  });

  it('transitions to STANDARD_IA from 128 KB, which HeadObject and ListObjectsV2 then report', async () => {
    // Prepare
    const Bucket = await bucketWith([
      {
        ID: 'ia',
        Status: 'Enabled',
        Filter: { Prefix: 'big/' },
        Transitions: [{ Days: 30, StorageClass: 'STANDARD_IA' }],
      },
      {
        ID: 'ia-small-too',
        Status: 'Enabled',
        Filter: { And: { Prefix: 'tiny/', ObjectSizeGreaterThan: 0 } },
        Transitions: [{ Days: 30, StorageClass: 'STANDARD_IA' }],
      },
    ]);
    const created = await put(Bucket, 'big/a', TRANSITIONABLE);
    await put(Bucket, 'big/small', 'x');
    await put(Bucket, 'tiny/b', 'x');
    const due = midnightAfter(daysAfter(created, 30));

    // Act
    const before = await runS3Lifecycle(Bucket, new Date(due.getTime() - 1));
    const at = await runS3Lifecycle(Bucket, due);
    const again = await runS3Lifecycle(Bucket, daysAfter(due, 1));

    // Assess
    expect(before.transitioned).toEqual([]);
    expect(at.transitioned.map((entry) => [entry.key, entry.storageClass]).sort()).toEqual([
      ['big/a', 'STANDARD_IA'],
      ['tiny/b', 'STANDARD_IA'],
    ]);
    expect(again.transitioned).toEqual([]);
    expect((await s3.send(new HeadObjectCommand({ Bucket, Key: 'big/a' }))).StorageClass).toBe('STANDARD_IA');
    expect((await s3.send(new HeadObjectCommand({ Bucket, Key: 'big/small' }))).StorageClass).toBeUndefined();
    const { Contents } = await s3.send(new ListObjectsV2Command({ Bucket }));
    expect(Contents?.map((object) => [object.Key, object.StorageClass])).toEqual([
      ['big/a', 'STANDARD_IA'],
      ['big/small', 'STANDARD'],
      ['tiny/b', 'STANDARD_IA'],
    ]);
    const { Body } = await s3.send(new GetObjectCommand({ Bucket, Key: 'big/a' }));
    expect(Buffer.from((await Body?.transformToByteArray()) ?? []).equals(TRANSITIONABLE)).toBe(true);
  });

  it('refuses a transition to STANDARD_IA or ONEZONE_IA before day 30', async () => {
    // Prepare
    const Bucket = uniqueName('s3-lifecycle');
    await s3.send(new CreateBucketCommand({ Bucket }));
    const rules = (StorageClass: 'STANDARD_IA' | 'ONEZONE_IA', Days: number): LifecycleRule[] => [
      { ID: 'ia', Status: 'Enabled', Filter: { Prefix: '' }, Transitions: [{ Days, StorageClass }] },
    ];
    const putRules = (Rules: LifecycleRule[]) =>
      s3.send(new PutBucketLifecycleConfigurationCommand({ Bucket, LifecycleConfiguration: { Rules } }));

    // Act
    const ia = await failure(putRules(rules('STANDARD_IA', 29)));
    const oneZone = await failure(putRules(rules('ONEZONE_IA', 1)));
    const noncurrent = await failure(
      putRules([
        {
          ID: 'nc',
          Status: 'Enabled',
          Filter: { Prefix: '' },
          NoncurrentVersionTransitions: [{ NoncurrentDays: 7, StorageClass: 'STANDARD_IA' }],
        },
      ]),
    );
    await putRules(rules('STANDARD_IA', 30));

    // Assess
    expect(ia).toMatchObject({
      name: 'InvalidArgument',
      message:
        "'Days' in Transition action must be greater than or equal to 30 for storageClass 'STANDARD_IA'",
    });
    expect(oneZone).toMatchObject({ name: 'InvalidArgument' });
    expect(noncurrent).toMatchObject({
      name: 'InvalidArgument',
      message:
        "'NoncurrentDays' in NoncurrentVersionTransition action must be greater than or equal to 30 for storageClass 'STANDARD_IA'",
    });
  });

  it('keeps the storage class PutObject asks for; a copy is STANDARD unless it asks too', async () => {
    // Prepare
    const Bucket = uniqueName('s3-lifecycle');
    await s3.send(new CreateBucketCommand({ Bucket }));

    // Act
    await s3.send(new PutObjectCommand({ Bucket, Key: 'ia', Body: 'x', StorageClass: 'STANDARD_IA' }));
    await s3.send(new CopyObjectCommand({ Bucket, Key: 'copy', CopySource: `${Bucket}/ia` }));
    await s3.send(
      new CopyObjectCommand({
        Bucket,
        Key: 'copy-ia',
        CopySource: `${Bucket}/ia`,
        StorageClass: 'ONEZONE_IA',
      }),
    );
    const invalid = await failure(
      s3.send(
        new PutObjectCommand({
          Bucket,
          Key: 'bad',
          Body: 'x',
          // A class a general purpose bucket does not have.
          StorageClass: 'EXPRESS_ONEZONE',
        }),
      ),
    );

    // Assess
    const get = await s3.send(new GetObjectCommand({ Bucket, Key: 'ia' }));
    expect(get.StorageClass).toBe('STANDARD_IA');
    expect(await get.Body?.transformToString()).toBe('x');
    expect((await s3.send(new HeadObjectCommand({ Bucket, Key: 'copy' }))).StorageClass).toBeUndefined();
    expect((await s3.send(new HeadObjectCommand({ Bucket, Key: 'copy-ia' }))).StorageClass).toBe(
      'ONEZONE_IA',
    );
    const { Contents } = await s3.send(new ListObjectsV2Command({ Bucket }));
    expect(Contents?.map((object) => [object.Key, object.StorageClass])).toEqual([
      ['copy', 'STANDARD'],
      ['copy-ia', 'ONEZONE_IA'],
      ['ia', 'STANDARD_IA'],
    ]);
    expect(invalid).toMatchObject({ name: 'InvalidStorageClass' });
  });

  it('answers 400 for a body it cannot read and 404 for a bucket that does not exist', async () => {
    // Act
    const url = `${sandbox.awsEndpoint}/_sandbox/s3/lifecycle/run`;
    const bad = await fetch(url, { method: 'POST', body: JSON.stringify({ bucket: 'b', now: 'tomorrow' }) });
    const missing = await fetch(url, {
      method: 'POST',
      body: JSON.stringify({ bucket: uniqueName('nope'), now: new Date().toISOString() }),
    });

    // Assess
    expect(bad.status).toBe(400);
    expect(missing.status).toBe(404);
    expect(await missing.text()).toContain('NoSuchBucket');
  });
});
