import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  CopyObjectCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteBucketLifecycleCommand,
  DeleteBucketTaggingCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  DeleteObjectTaggingCommand,
  GetBucketLifecycleConfigurationCommand,
  GetBucketTaggingCommand,
  GetBucketVersioningCommand,
  GetObjectCommand,
  GetObjectTaggingCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  type LifecycleRule,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  PutBucketLifecycleConfigurationCommand,
  PutBucketTaggingCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  PutObjectTaggingCommand,
  paginateListObjectsV2,
  S3Client,
} from '@aws-sdk/client-s3';
import { beforeAll, describe, expect, it } from 'vitest';
import { STORAGE_KEY_ARN } from '../../local/constants.ts';
import { addFaults, clientConfig, removeFaults, sandbox, uniqueName } from '../support/sandbox.ts';

const s3 = new S3Client(clientConfig);

async function newBucket(): Promise<string> {
  const Bucket = uniqueName('s3-test');
  await s3.send(new CreateBucketCommand({ Bucket }));
  return Bucket;
}

async function getBytes(Bucket: string, Key: string, Range?: string): Promise<Buffer> {
  const { Body } = await s3.send(new GetObjectCommand({ Bucket, Key, Range }));
  return Buffer.from((await Body?.transformToByteArray()) ?? []);
}

async function listAll(Bucket: string, options: { Prefix?: string; Delimiter?: string; PageSize?: number }) {
  const keys: string[] = [];
  const prefixes: string[] = [];
  let pages = 0;
  const { PageSize, ...input } = options;
  for await (const page of paginateListObjectsV2({ client: s3, pageSize: PageSize }, { Bucket, ...input })) {
    pages += 1;
    keys.push(...(page.Contents ?? []).map((object) => object.Key ?? ''));
    prefixes.push(...(page.CommonPrefixes ?? []).map((prefix) => prefix.Prefix ?? ''));
  }
  return { keys, prefixes, pages };
}

/** The error a call fails with; the test fails if the call succeeds. */
async function failure(call: Promise<unknown>): Promise<unknown> {
  try {
    await call;
  } catch (error) {
    return error;
  }
  throw new Error('The call succeeded');
}

/** Runs the tasks with at most `limit` at a time. */
async function bounded<T>(limit: number, tasks: readonly (() => Promise<T>)[]): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) await tasks[next++]?.();
  };
  await Promise.all(Array.from({ length: limit }, worker));
}

describe('S3 buckets', () => {
  it('creates, heads and deletes a bucket, refusing to delete one that holds objects', async () => {
    // Prepare
    const Bucket = await newBucket();
    await s3.send(new PutObjectCommand({ Bucket, Key: 'keep', Body: 'x' }));

    // Act
    const head = await s3.send(new HeadBucketCommand({ Bucket }));
    const notEmpty = await failure(s3.send(new DeleteBucketCommand({ Bucket })));

    // Assess
    expect(head.BucketRegion).toBe(sandbox.region);
    expect(notEmpty).toMatchObject({ name: 'BucketNotEmpty' });
    await s3.send(new DeleteObjectCommand({ Bucket, Key: 'keep' }));
    await s3.send(new DeleteBucketCommand({ Bucket }));
    await expect(s3.send(new HeadBucketCommand({ Bucket }))).rejects.toMatchObject({ name: 'NotFound' });
    await expect(s3.send(new DeleteBucketCommand({ Bucket }))).rejects.toMatchObject({
      name: 'NoSuchBucket',
    });
  });

  it('answers a repeated create of an own bucket as S3 does in the region, and refuses invalid names', async () => {
    // Prepare
    const Bucket = await newBucket();

    // Act
    const again = await s3.send(new CreateBucketCommand({ Bucket })).catch((error: unknown) => error);
    const invalid = await failure(s3.send(new CreateBucketCommand({ Bucket: 'Not_A_Bucket' })));

    // Assess
    if (sandbox.region === 'us-east-1') expect(again).toMatchObject({ $metadata: { httpStatusCode: 200 } });
    else expect(again).toMatchObject({ name: 'BucketAlreadyOwnedByYou' });
    expect(invalid).toMatchObject({ name: 'InvalidBucketName' });
  });

  it('keeps, returns and deletes bucket tags, and limits them to 50', async () => {
    // Prepare
    const Bucket = await newBucket();
    const TagSet = [
      { Key: 'TenantId', Value: 't-123' },
      { Key: 'Stage', Value: 'dev' },
    ];
    const tooMany = Array.from({ length: 51 }, (_, i) => ({ Key: `k${i}`, Value: 'v' }));

    // Act
    const before = await failure(s3.send(new GetBucketTaggingCommand({ Bucket })));
    await s3.send(new PutBucketTaggingCommand({ Bucket, Tagging: { TagSet } }));
    const tagged = await s3.send(new GetBucketTaggingCommand({ Bucket }));
    await s3.send(new DeleteBucketTaggingCommand({ Bucket }));

    // Assess
    expect(before).toMatchObject({ name: 'NoSuchTagSet' });
    expect(tagged.TagSet).toEqual(TagSet);
    await expect(s3.send(new GetBucketTaggingCommand({ Bucket }))).rejects.toMatchObject({
      name: 'NoSuchTagSet',
    });
    await expect(
      s3.send(new PutBucketTaggingCommand({ Bucket, Tagging: { TagSet: tooMany } })),
    ).rejects.toMatchObject({ name: 'InvalidTag' });
  });

  it('keeps and returns a lifecycle configuration as given, and validates it', async () => {
    // Prepare
    const Bucket = await newBucket();
    const Rules: LifecycleRule[] = [
      { ID: 'expire-tmp', Status: 'Enabled', Filter: { Prefix: 'tmp/' }, Expiration: { Days: 7 } },
      {
        ID: 'tenant-archive',
        Status: 'Disabled',
        Filter: { And: { Prefix: 'tenants/', Tags: [{ Key: 'archived', Value: 'true' }] } },
        Transitions: [{ Days: 30, StorageClass: 'GLACIER' }],
        NoncurrentVersionExpiration: { NoncurrentDays: 10 },
      },
      {
        ID: 'cleanup',
        Status: 'Enabled',
        Filter: { Tag: { Key: 'temporary', Value: 'yes' } },
        Expiration: { Date: new Date('2030-01-01T00:00:00.000Z') },
        AbortIncompleteMultipartUpload: { DaysAfterInitiation: 2 },
      },
    ];

    // Act
    const before = await failure(s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket })));
    await s3.send(new PutBucketLifecycleConfigurationCommand({ Bucket, LifecycleConfiguration: { Rules } }));
    const stored = await s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket }));
    const zeroDays = await failure(
      s3.send(
        new PutBucketLifecycleConfigurationCommand({
          Bucket,
          LifecycleConfiguration: {
            Rules: [{ ID: 'bad', Status: 'Enabled', Filter: {}, Expiration: { Days: 0 } }],
          },
        }),
      ),
    );
    await s3.send(new DeleteBucketLifecycleCommand({ Bucket }));

    // Assess
    expect(before).toMatchObject({ name: 'NoSuchLifecycleConfiguration' });
    expect(stored.Rules).toEqual(Rules);
    expect(zeroDays).toMatchObject({ name: 'InvalidArgument' });
    await expect(s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket }))).rejects.toMatchObject({
      name: 'NoSuchLifecycleConfiguration',
    });
  });

  it('keeps the versioning status', async () => {
    // Prepare
    const Bucket = await newBucket();

    // Act
    const before = await s3.send(new GetBucketVersioningCommand({ Bucket }));
    await s3.send(new PutBucketVersioningCommand({ Bucket, VersioningConfiguration: { Status: 'Enabled' } }));
    const after = await s3.send(new GetBucketVersioningCommand({ Bucket }));

    // Assess
    expect(before.Status).toBeUndefined();
    expect(after.Status).toBe('Enabled');
  });
});

describe('S3 objects', () => {
  let Bucket: string;
  beforeAll(async () => {
    Bucket = await newBucket();
  });

  it('returns exactly the bytes put, whether sent whole or streamed in aws-chunked framing', async () => {
    // Prepare
    const everyByte = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const large = randomBytes(3 * 1024 * 1024 + 17);

    // Act
    const put = await s3.send(new PutObjectCommand({ Bucket, Key: 'bytes/every', Body: everyByte }));
    await s3.send(
      new PutObjectCommand({
        Bucket,
        Key: 'bytes/streamed',
        Body: Readable.from([large.subarray(0, 1000), large.subarray(1000)]),
        ContentLength: large.length,
      }),
    );
    const got = await s3.send(new GetObjectCommand({ Bucket, Key: 'bytes/every' }));
    const gotBytes = Buffer.from((await got.Body?.transformToByteArray()) ?? []);

    // Assess
    expect(gotBytes.equals(everyByte)).toBe(true);
    expect(got.ETag).toBe(`"${createHash('md5').update(everyByte).digest('hex')}"`);
    expect(got.ETag).toBe(put.ETag);
    expect(got.ChecksumCRC32).toBe(put.ChecksumCRC32);
    expect((await getBytes(Bucket, 'bytes/streamed')).equals(large)).toBe(true);
  });

  it('returns content type and user metadata on head', async () => {
    // Prepare
    const Key = 'meta/report.json';
    const Body = JSON.stringify({ tenant: 't-1' });

    // Act
    await s3.send(
      new PutObjectCommand({
        Bucket,
        Key,
        Body,
        ContentType: 'application/json',
        Metadata: { 'tenant-id': 't-1' },
      }),
    );
    const head = await s3.send(new HeadObjectCommand({ Bucket, Key }));

    // Assess
    expect(head).toMatchObject({
      ContentType: 'application/json',
      ContentLength: Body.length,
      Metadata: { 'tenant-id': 't-1' },
      ETag: `"${createHash('md5').update(Body).digest('hex')}"`,
    });
    expect(head.LastModified?.getTime()).toBeGreaterThan(Date.now() - 60_000);
  });

  it('serves byte ranges and refuses one past the end', async () => {
    // Prepare
    const Key = 'range/digits';
    await s3.send(new PutObjectCommand({ Bucket, Key, Body: '0123456789' }));

    // Act
    const middle = await s3.send(new GetObjectCommand({ Bucket, Key, Range: 'bytes=2-5' }));
    const suffix = await getBytes(Bucket, Key, 'bytes=-3');
    const beyond = await failure(s3.send(new GetObjectCommand({ Bucket, Key, Range: 'bytes=10-20' })));

    // Assess
    expect(await middle.Body?.transformToString()).toBe('2345');
    expect(middle.ContentRange).toBe('bytes 2-5/10');
    expect(suffix.toString()).toBe('789');
    expect(beyond).toMatchObject({ name: 'InvalidRange', $metadata: { httpStatusCode: 416 } });
  });

  it('copies an object with its metadata and tags, or with those given', async () => {
    // Prepare
    const source = 'copy/source name+1.txt';
    await s3.send(
      new PutObjectCommand({
        Bucket,
        Key: source,
        Body: 'payload',
        ContentType: 'text/plain',
        Metadata: { origin: 'source' },
        Tagging: 'TenantId=t-1&Stage=dev',
      }),
    );
    const CopySource = `${Bucket}/${encodeURIComponent(source)}`;

    // Act
    await s3.send(new CopyObjectCommand({ Bucket, Key: 'copy/kept', CopySource }));
    await s3.send(
      new CopyObjectCommand({
        Bucket,
        Key: 'copy/replaced',
        CopySource,
        MetadataDirective: 'REPLACE',
        ContentType: 'text/csv',
        Metadata: { origin: 'replaced' },
        TaggingDirective: 'REPLACE',
        Tagging: 'Stage=prod',
      }),
    );
    const missing = await failure(
      s3.send(new CopyObjectCommand({ Bucket, Key: 'copy/x', CopySource: `${Bucket}/copy/none` })),
    );

    // Assess
    const kept = await s3.send(new HeadObjectCommand({ Bucket, Key: 'copy/kept' }));
    const replaced = await s3.send(new HeadObjectCommand({ Bucket, Key: 'copy/replaced' }));
    expect(kept).toMatchObject({ ContentType: 'text/plain', Metadata: { origin: 'source' } });
    expect(replaced).toMatchObject({ ContentType: 'text/csv', Metadata: { origin: 'replaced' } });
    expect((await getBytes(Bucket, 'copy/replaced')).toString()).toBe('payload');
    expect((await s3.send(new GetObjectTaggingCommand({ Bucket, Key: 'copy/kept' }))).TagSet).toEqual([
      { Key: 'TenantId', Value: 't-1' },
      { Key: 'Stage', Value: 'dev' },
    ]);
    expect((await s3.send(new GetObjectTaggingCommand({ Bucket, Key: 'copy/replaced' }))).TagSet).toEqual([
      { Key: 'Stage', Value: 'prod' },
    ]);
    expect(missing).toMatchObject({ name: 'NoSuchKey' });
  });

  it('deletes an object, after which get and head find nothing', async () => {
    // Prepare
    const Key = 'delete/one';
    await s3.send(new PutObjectCommand({ Bucket, Key, Body: 'x' }));

    // Act
    await s3.send(new DeleteObjectCommand({ Bucket, Key }));

    // Assess
    await expect(s3.send(new GetObjectCommand({ Bucket, Key }))).rejects.toMatchObject({ name: 'NoSuchKey' });
    await expect(s3.send(new HeadObjectCommand({ Bucket, Key }))).rejects.toMatchObject({ name: 'NotFound' });
  });

  it('deletes many objects, reporting each unless asked to be quiet', async () => {
    // Prepare
    const keys = ['many/a', 'many/b', 'many/c', 'many/d'];
    await Promise.all(keys.map((Key) => s3.send(new PutObjectCommand({ Bucket, Key, Body: Key }))));

    // Act
    const verbose = await s3.send(
      new DeleteObjectsCommand({ Bucket, Delete: { Objects: [{ Key: 'many/a' }, { Key: 'many/b' }] } }),
    );
    const quiet = await s3.send(
      new DeleteObjectsCommand({
        Bucket,
        Delete: { Objects: [{ Key: 'many/c' }, { Key: 'many/d' }], Quiet: true },
      }),
    );

    // Assess
    expect(verbose.Deleted?.map((deleted) => deleted.Key)).toEqual(['many/a', 'many/b']);
    expect(quiet.Deleted ?? []).toEqual([]);
    expect(quiet.Errors ?? []).toEqual([]);
    expect((await listAll(Bucket, { Prefix: 'many/' })).keys).toEqual([]);
  });

  it('keeps object tags given on put, replaces and deletes them, and limits them to 10', async () => {
    // Prepare
    const Key = 'tags/object';
    await s3.send(new PutObjectCommand({ Bucket, Key, Body: 'tagged', Tagging: 'TenantId=t-9' }));

    // Act
    const initial = await s3.send(new GetObjectTaggingCommand({ Bucket, Key }));
    await s3.send(
      new PutObjectTaggingCommand({ Bucket, Key, Tagging: { TagSet: [{ Key: 'Stage', Value: 'prod' }] } }),
    );
    const replaced = await s3.send(new GetObjectTaggingCommand({ Bucket, Key }));
    await s3.send(new DeleteObjectTaggingCommand({ Bucket, Key }));
    const deleted = await s3.send(new GetObjectTaggingCommand({ Bucket, Key }));
    const tooMany = await failure(
      s3.send(
        new PutObjectTaggingCommand({
          Bucket,
          Key,
          Tagging: { TagSet: Array.from({ length: 11 }, (_, i) => ({ Key: `k${i}`, Value: 'v' })) },
        }),
      ),
    );

    // Assess
    expect(initial.TagSet).toEqual([{ Key: 'TenantId', Value: 't-9' }]);
    expect(replaced.TagSet).toEqual([{ Key: 'Stage', Value: 'prod' }]);
    expect(deleted.TagSet ?? []).toEqual([]);
    expect(tooMany).toMatchObject({ name: 'BadRequest' });
    expect((await getBytes(Bucket, Key)).toString()).toBe('tagged');
  });

  it('names missing keys and buckets as S3 does', async () => {
    // Prepare
    const absentBucket = uniqueName('s3-absent');

    // Act
    const noKey = await failure(s3.send(new GetObjectCommand({ Bucket, Key: 'absent' })));
    const noBucket = await failure(s3.send(new GetObjectCommand({ Bucket: absentBucket, Key: 'absent' })));
    const putNoBucket = await failure(
      s3.send(new PutObjectCommand({ Bucket: absentBucket, Key: 'k', Body: 'x' })),
    );

    // Assess
    expect(noKey).toMatchObject({ name: 'NoSuchKey', $metadata: { httpStatusCode: 404 } });
    expect(noBucket).toMatchObject({ name: 'NoSuchBucket' });
    expect(putNoBucket).toMatchObject({ name: 'NoSuchBucket' });
  });

  it('fails exactly the PutObject a chaos rule matches', async () => {
    // Prepare
    const doomed = uniqueName('chaos/doomed');
    const rule = {
      service: 's3' as const,
      operation: 'PutObject',
      match: doomed,
      error: { code: 'AccessDenied', statusCode: 403, message: 'Denied by chaos' },
    };
    await addFaults([rule]);
    try {
      // Act
      const failed = await failure(s3.send(new PutObjectCommand({ Bucket, Key: doomed, Body: 'x' })));
      const spared = await s3.send(
        new PutObjectCommand({ Bucket, Key: `${doomed.replace('doomed', 'spared')}`, Body: 'y' }),
      );

      // Assess
      expect(failed).toMatchObject({ name: 'AccessDenied', message: 'Denied by chaos' });
      expect(spared.ETag).toBeDefined();
      await expect(s3.send(new HeadObjectCommand({ Bucket, Key: doomed }))).rejects.toMatchObject({
        name: 'NotFound',
      });
    } finally {
      await removeFaults([rule]);
    }
  });
});

describe('S3 ListObjectsV2', () => {
  it('pages through more than 1,000 keys, each exactly once and in order', async () => {
    // Prepare
    const Bucket = await newBucket();
    const keys = Array.from({ length: 1050 }, (_, i) => `item/${String(i).padStart(5, '0')}`);
    await bounded(
      25,
      keys.map((Key) => () => s3.send(new PutObjectCommand({ Bucket, Key, Body: Key }))),
    );

    // Act
    const listed = await listAll(Bucket, {});
    const first = await s3.send(new ListObjectsV2Command({ Bucket }));

    // Assess
    expect(listed.keys).toEqual(keys);
    expect(listed.pages).toBe(2);
    expect(first).toMatchObject({ KeyCount: 1000, MaxKeys: 1000, IsTruncated: true });
    expect(first.NextContinuationToken).toBeTruthy();
  });

  it('rolls keys up into common prefixes, counted once across pages', async () => {
    // Prepare
    const Bucket = await newBucket();
    const keys = ['a/1', 'a/2', 'a/3/x', 'b/1', 'c', 'd/x/y', 'd/z', 'e', 'f/1'];
    await Promise.all(keys.map((Key) => s3.send(new PutObjectCommand({ Bucket, Key, Body: Key }))));

    // Act
    const whole = await s3.send(new ListObjectsV2Command({ Bucket, Delimiter: '/' }));
    const paged = await listAll(Bucket, { Delimiter: '/', PageSize: 2 });
    const nested = await listAll(Bucket, { Prefix: 'a/', Delimiter: '/', PageSize: 1 });

    // Assess
    expect(whole.Contents?.map((object) => object.Key)).toEqual(['c', 'e']);
    expect(whole.CommonPrefixes?.map((prefix) => prefix.Prefix)).toEqual(['a/', 'b/', 'd/', 'f/']);
    expect(whole.KeyCount).toBe(6);
    expect(paged).toEqual({ keys: ['c', 'e'], prefixes: ['a/', 'b/', 'd/', 'f/'], pages: 3 });
    expect(nested).toEqual({ keys: ['a/1', 'a/2'], prefixes: ['a/3/'], pages: 3 });
  });
});

async function versionedBucket(): Promise<string> {
  const Bucket = await newBucket();
  await s3.send(new PutBucketVersioningCommand({ Bucket, VersioningConfiguration: { Status: 'Enabled' } }));
  return Bucket;
}

/** Every version and delete marker under the prefix, page by page, as `key@versionId` (`!` for a marker). */
async function allVersions(Bucket: string, Prefix: string, pageSize?: number) {
  const entries: string[] = [];
  let pages = 0;
  let KeyMarker: string | undefined;
  let VersionIdMarker: string | undefined;
  do {
    const page = await s3.send(
      new ListObjectVersionsCommand({ Bucket, Prefix, KeyMarker, VersionIdMarker, MaxKeys: pageSize }),
    );
    KeyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
    VersionIdMarker = page.IsTruncated ? page.NextVersionIdMarker : undefined;
    pages += 1;
    const versions = (page.Versions ?? []).map((v) => ({
      at: v.Key ?? '',
      id: v.VersionId ?? '',
      marker: false,
      latest: v.IsLatest,
    }));
    const markers = (page.DeleteMarkers ?? []).map((m) => ({
      at: m.Key ?? '',
      id: m.VersionId ?? '',
      marker: true,
      latest: m.IsLatest,
    }));
    entries.push(
      ...[...versions, ...markers].map((e) => `${e.at}@${e.id}${e.marker ? '!' : ''}${e.latest ? '*' : ''}`),
    );
  } while (KeyMarker);
  return { entries, pages };
}

describe('S3 versioning', () => {
  it('keeps every version of an object, each readable by its id, the newest current', async () => {
    // Prepare
    const Bucket = await versionedBucket();
    const Key = 'doc.txt';

    // Act
    const first = await s3.send(new PutObjectCommand({ Bucket, Key, Body: 'one' }));
    const second = await s3.send(new PutObjectCommand({ Bucket, Key, Body: 'two' }));
    const old = await s3.send(new GetObjectCommand({ Bucket, Key, VersionId: first.VersionId }));
    const current = await s3.send(new HeadObjectCommand({ Bucket, Key }));

    // Assess
    expect(first.VersionId).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(second.VersionId).not.toBe(first.VersionId);
    expect(await old.Body?.transformToString()).toBe('one');
    expect(old.VersionId).toBe(first.VersionId);
    expect(current.VersionId).toBe(second.VersionId);
    expect(await getBytes(Bucket, Key)).toEqual(Buffer.from('two'));
    const { entries } = await allVersions(Bucket, '');
    expect(entries).toEqual([`doc.txt@${second.VersionId}*`, `doc.txt@${first.VersionId}`]);
  });

  it('answers a delete without a version id with a delete marker, behind which the data stays', async () => {
    // Prepare
    const Bucket = await versionedBucket();
    const Key = 'tenants/t1/report.csv';
    const put = await s3.send(new PutObjectCommand({ Bucket, Key, Body: 'secret' }));

    // Act
    const deleted = await s3.send(new DeleteObjectCommand({ Bucket, Key }));
    const gone = await failure(s3.send(new GetObjectCommand({ Bucket, Key })));
    const marker = await failure(
      s3.send(new GetObjectCommand({ Bucket, Key, VersionId: deleted.VersionId })),
    );
    const listed = await s3.send(new ListObjectsV2Command({ Bucket, Prefix: 'tenants/' }));

    // Assess
    expect(deleted).toMatchObject({
      DeleteMarker: true,
      VersionId: expect.stringMatching(/^[A-Za-z0-9]{32}$/),
    });
    expect(gone).toMatchObject({ name: 'NoSuchKey', $metadata: { httpStatusCode: 404 } });
    expect(gone).toMatchObject({ $response: { headers: { 'x-amz-delete-marker': 'true' } } });
    expect(marker).toMatchObject({ $metadata: { httpStatusCode: 405 }, name: 'MethodNotAllowed' });
    expect(listed.KeyCount).toBe(0);
    const old = await s3.send(new GetObjectCommand({ Bucket, Key, VersionId: put.VersionId }));
    expect(await old.Body?.transformToString()).toBe('secret');
    // The SDK parses versions and delete markers into two lists, so their interleaving is not compared.
    expect((await allVersions(Bucket, 'tenants/')).entries.sort()).toEqual(
      [`${Key}@${deleted.VersionId}!*`, `${Key}@${put.VersionId}`].sort(),
    );
    await expect(s3.send(new DeleteBucketCommand({ Bucket }))).rejects.toMatchObject({
      name: 'BucketNotEmpty',
    });
  });

  it('deletes versions and delete markers for good by version id, one or many, the previous becoming current', async () => {
    // Prepare
    const Bucket = await versionedBucket();
    const Key = 'k';
    const v1 = await s3.send(new PutObjectCommand({ Bucket, Key, Body: '1' }));
    const v2 = await s3.send(new PutObjectCommand({ Bucket, Key, Body: '2' }));
    const dm = await s3.send(new DeleteObjectCommand({ Bucket, Key }));

    // Act
    const unmarked = await s3.send(new DeleteObjectCommand({ Bucket, Key, VersionId: dm.VersionId }));
    const back = await getBytes(Bucket, Key);
    const batch = await s3.send(
      new DeleteObjectsCommand({
        Bucket,
        Delete: {
          Objects: [
            { Key, VersionId: v2.VersionId },
            { Key, VersionId: v1.VersionId },
            { Key, VersionId: 'not-a-version' },
          ],
        },
      }),
    );

    // Assess
    expect(unmarked).toMatchObject({ DeleteMarker: true, VersionId: dm.VersionId });
    expect(back).toEqual(Buffer.from('2'));
    expect(batch.Deleted?.map((d) => d.VersionId).sort()).toEqual([v1.VersionId, v2.VersionId].sort());
    expect(batch.Errors).toEqual([
      expect.objectContaining({ Key, VersionId: 'not-a-version', Code: 'NoSuchVersion' }),
    ]);
    expect((await allVersions(Bucket, '')).entries).toEqual([]);
    await s3.send(new DeleteBucketCommand({ Bucket }));
  });

  it('names a missing or malformed version as S3 does', async () => {
    // Prepare
    const Bucket = await versionedBucket();
    const put = await s3.send(new PutObjectCommand({ Bucket, Key: 'k', Body: 'x' }));
    const other = `${put.VersionId?.slice(0, 17)}${'Z'.repeat(15)}`;

    // Act
    const malformed = await failure(s3.send(new GetObjectCommand({ Bucket, Key: 'k', VersionId: 'bogus' })));
    const missing = await failure(s3.send(new GetObjectCommand({ Bucket, Key: 'k', VersionId: other })));
    const markerOnly = await failure(
      s3.send(new ListObjectVersionsCommand({ Bucket, VersionIdMarker: put.VersionId })),
    );

    // Assess
    expect(malformed).toMatchObject({ name: 'InvalidArgument', message: 'Invalid version id specified' });
    expect(missing).toMatchObject({ name: 'NoSuchVersion', $metadata: { httpStatusCode: 404 } });
    expect(markerOnly).toMatchObject({
      name: 'InvalidArgument',
      message: 'A version-id marker cannot be specified without a key marker.',
    });
  });

  it('pages ListObjectVersions by key and version markers, every version exactly once, newest first per key', async () => {
    // Prepare
    const Bucket = await versionedBucket();
    const expected: string[] = [];
    for (const key of ['p/a', 'p/b', 'p/b/c', 'q/x']) {
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) {
        ids.push(
          (await s3.send(new PutObjectCommand({ Bucket, Key: key, Body: `${key}${i}` }))).VersionId ?? '',
        );
      }
      if (key.startsWith('p/'))
        expected.push(...ids.reverse().map((id, i) => `${key}@${id}${i === 0 ? '*' : ''}`));
    }

    // Act
    const paged = await allVersions(Bucket, 'p/', 2);
    const whole = await allVersions(Bucket, 'p/');
    const rolled = await s3.send(new ListObjectVersionsCommand({ Bucket, Delimiter: '/', MaxKeys: 1 }));

    // Assess
    expect(paged.entries).toEqual(expected);
    expect(paged.pages).toBe(5);
    expect(whole).toEqual({ entries: expected, pages: 1 });
    expect(rolled).toMatchObject({
      IsTruncated: true,
      NextKeyMarker: 'p/',
      CommonPrefixes: [{ Prefix: 'p/' }],
    });
    const next = await s3.send(
      new ListObjectVersionsCommand({ Bucket, Delimiter: '/', KeyMarker: rolled.NextKeyMarker }),
    );
    expect(next.CommonPrefixes).toEqual([{ Prefix: 'q/' }]);
  });

  it('keeps one null version while versioning is suspended, and lists an unversioned bucket with null ids', async () => {
    // Prepare
    const Bucket = await newBucket();
    await s3.send(new PutObjectCommand({ Bucket, Key: 'k', Body: 'plain' }));
    const plain = await allVersions(Bucket, '');
    await s3.send(new PutBucketVersioningCommand({ Bucket, VersioningConfiguration: { Status: 'Enabled' } }));
    const kept = await s3.send(new PutObjectCommand({ Bucket, Key: 'k', Body: 'versioned' }));
    await s3.send(
      new PutBucketVersioningCommand({ Bucket, VersioningConfiguration: { Status: 'Suspended' } }),
    );

    // Act
    await s3.send(new PutObjectCommand({ Bucket, Key: 'k', Body: 'null 1' }));
    await s3.send(new PutObjectCommand({ Bucket, Key: 'k', Body: 'null 2' }));
    const suspendedDelete = await s3.send(new DeleteObjectCommand({ Bucket, Key: 'k' }));

    // Assess
    expect(plain.entries).toEqual(['k@null*']);
    expect(suspendedDelete).toMatchObject({ DeleteMarker: true, VersionId: 'null' });
    expect((await allVersions(Bucket, '')).entries.sort()).toEqual(
      ['k@null!*', `k@${kept.VersionId}`].sort(),
    );
  });
});

describe('S3 server-side encryption', () => {
  let Bucket: string;
  beforeAll(async () => {
    Bucket = await newBucket();
  });

  it('applies SSE-S3 by default and echoes what was applied on put, get and head', async () => {
    // Act
    const put = await s3.send(new PutObjectCommand({ Bucket, Key: 'plain', Body: 'x' }));
    const asked = await s3.send(
      new PutObjectCommand({ Bucket, Key: 'asked', Body: 'x', ServerSideEncryption: 'AES256' }),
    );
    const head = await s3.send(new HeadObjectCommand({ Bucket, Key: 'plain' }));

    // Assess
    expect(put.ServerSideEncryption).toBe('AES256');
    expect(asked.ServerSideEncryption).toBe('AES256');
    expect(head.ServerSideEncryption).toBe('AES256');
    expect(head.SSEKMSKeyId).toBeUndefined();
  });

  it('encrypts with a known KMS key by id or ARN, echoing its ARN and the encryption context', async () => {
    // Prepare
    const context = Buffer.from(JSON.stringify({ tenantId: 't123' })).toString('base64');
    const keyId = STORAGE_KEY_ARN.slice(STORAGE_KEY_ARN.indexOf('/') + 1);

    // Act
    const byArn = await s3.send(
      new PutObjectCommand({
        Bucket,
        Key: 'kms',
        Body: 'x',
        ServerSideEncryption: 'aws:kms',
        SSEKMSKeyId: STORAGE_KEY_ARN,
        SSEKMSEncryptionContext: context,
      }),
    );
    const byId = await s3.send(
      new PutObjectCommand({
        Bucket,
        Key: 'kms-id',
        Body: 'x',
        ServerSideEncryption: 'aws:kms',
        SSEKMSKeyId: keyId,
      }),
    );
    const managed = await s3.send(
      new PutObjectCommand({ Bucket, Key: 'kms-managed', Body: 'x', ServerSideEncryption: 'aws:kms' }),
    );
    const read = await s3.send(new GetObjectCommand({ Bucket, Key: 'kms' }));

    // Assess
    expect(byArn).toMatchObject({
      ServerSideEncryption: 'aws:kms',
      SSEKMSKeyId: STORAGE_KEY_ARN,
      SSEKMSEncryptionContext: context,
    });
    expect(byId.SSEKMSKeyId).toBe(STORAGE_KEY_ARN);
    expect(managed.SSEKMSKeyId).toMatch(/^arn:aws:kms:[a-z0-9-]+:\d{12}:key\//);
    expect(managed.SSEKMSKeyId).not.toBe(STORAGE_KEY_ARN);
    expect(read).toMatchObject({ ServerSideEncryption: 'aws:kms', SSEKMSKeyId: STORAGE_KEY_ARN });
  });

  it('refuses an unknown algorithm, an unknown key, a key without aws:kms and a malformed context', async () => {
    // Prepare
    const put = (input: Partial<ConstructorParameters<typeof PutObjectCommand>[0]>) =>
      failure(s3.send(new PutObjectCommand({ Bucket, Key: 'refused', Body: 'x', ...input })));
    const unknownKey = STORAGE_KEY_ARN.replace(/.{12}$/, '000000000000');

    // Act
    const bogus = await put({ ServerSideEncryption: 'bogus' as 'AES256' });
    const unknown = await put({ ServerSideEncryption: 'aws:kms', SSEKMSKeyId: unknownKey });
    const notAKey = await put({ ServerSideEncryption: 'aws:kms', SSEKMSKeyId: 'alias/nothing' });
    const withoutKms = await put({ ServerSideEncryption: 'AES256', SSEKMSKeyId: STORAGE_KEY_ARN });
    const badContext = await put({
      ServerSideEncryption: 'aws:kms',
      SSEKMSKeyId: STORAGE_KEY_ARN,
      SSEKMSEncryptionContext: Buffer.from('[1]').toString('base64'),
    });

    // Assess
    expect(bogus).toMatchObject({
      name: 'InvalidArgument',
      message: 'The encryption method specified is not supported',
      $metadata: { httpStatusCode: 400 },
    });
    expect(unknown).toMatchObject({
      name: 'KMS.NotFoundException',
      message: `Key '${unknownKey}' does not exist`,
      $metadata: { httpStatusCode: 400 },
    });
    expect(notAKey).toMatchObject({ name: 'KMS.NotFoundException', message: 'Invalid keyId alias/nothing' });
    expect(withoutKms).toMatchObject({ name: 'InvalidArgument' });
    expect(badContext).toMatchObject({ name: 'InvalidArgument' });
    await expect(s3.send(new HeadObjectCommand({ Bucket, Key: 'refused' }))).rejects.toMatchObject({
      name: 'NotFound',
    });
  });
});
