import { createHash, randomBytes } from 'node:crypto';
import { z } from 'zod';
import { AwsError, type HttpRequest, type HttpResponse, type ServiceHandler } from '../protocol.ts';
import { json as jsonResponse } from '../server.ts';
import type { Collection } from '../store.ts';
import { KeyedLock, randomAlphanumeric, type ServiceDeps } from './deps.ts';
import {
  type LifecycleRule,
  lifecycleXml,
  parseLifecycle,
  parseTagging,
  parseTaggingHeader,
  parseVersioning,
  type Tag,
  taggingXml,
  type VersioningStatus,
} from './s3-config.ts';
import { type Encryption, encryptionHeaders, type KmsKeys, requestedEncryption } from './s3-encryption.ts';
import { type LifecycleBucket, type LifecycleVersion, runLifecycle } from './s3-lifecycle.ts';
import {
  type Checksum,
  elementsOf,
  errorResponse,
  escapeXml,
  header,
  invalidArgument,
  leaf,
  malformedXml,
  newRequestId,
  node,
  noSuchBucket,
  noSuchKey,
  parseXml,
  readPayload,
  S3Error,
  textOf,
  xmlResponse,
} from './s3-wire.ts';

interface BucketDoc {
  readonly name: string;
  readonly createdAt: string;
  readonly region: string;
}

/** What S3 keeps about an object besides its bytes. */
interface ObjectDoc {
  readonly size: number;
  /** Quoted MD5 hex, as in the `ETag` header. */
  readonly etag: string;
  /** ISO 8601 in whole seconds, S3's precision. */
  readonly lastModified: string;
  readonly contentType: string;
  /** Stored representation headers: `cache-control`, `content-disposition`, … */
  readonly headers: Readonly<Record<string, string>>;
  /** User metadata, names without the `x-amz-meta-` prefix. */
  readonly metadata: Readonly<Record<string, string>>;
  readonly tags: readonly Tag[];
  readonly checksum?: Checksum;
  /** Absent on objects written before the sandbox kept encryption: SSE-S3, S3's default. */
  readonly encryption?: Encryption;
  /** Absent for STANDARD, the class S3 stores an object in unless asked for another (or a lifecycle rule moves it). */
  readonly storageClass?: StorageClass;
}

/** The current version of an object, as ListObjectsV2, HeadObject and GetObject see it. */
interface CurrentDoc extends ObjectDoc {
  /** `null` for the null version (a bucket never versioned, or versioning suspended). */
  readonly versionId?: string;
  /** The item in the versions collection holding this version and its bytes; absent before versions were kept. */
  readonly version?: string;
}

/**
 * One version of an object, or a delete marker ("Using versioning in S3 buckets"; "Working with delete
 * markers"). Kept under `<bucket>/<hex of the key's UTF-8>/<sort id>`: hex keeps S3's byte order of keys and puts
 * every version of a key together, before the keys it is a prefix of; the sort id puts the newest version first.
 */
interface VersionDoc {
  readonly key: string;
  readonly versionId: string;
  /**
   * When the version was created, which S3's lifecycle counts an object's age from; the version after it in time
   * (its successor) was created when it became noncurrent ("Lifecycle configuration elements": how S3 calculates
   * how long an object has been noncurrent), so that time is read from the successor, not kept twice.
   */
  readonly lastModified: string;
  /** Absent for a delete marker, which has no data. */
  readonly object?: ObjectDoc;
}

/** One API call: named and parsed before `run` does the work, so that chaos and the call log see it first. */
interface Call {
  readonly operation: string;
  /** What a chaos rule's `match` is tested against: the object key, or the bucket name. */
  readonly subject: string;
  run(): Promise<HttpResponse>;
}

function call(operation: string, subject: string, run: () => Promise<HttpResponse>): Call {
  return { operation, subject, run };
}

const STORED_HEADERS = ['cache-control', 'content-disposition', 'content-language', 'expires'];
const LIST_PAGE = 1000;
/** The highest code point: `prefix + MAX_CHAR` sorts after the keys under the prefix, bar those going on with it. */
const MAX_CHAR = '\u{10FFFF}';

/**
 * `POST /_sandbox/s3/lifecycle/run`: the bucket's lifecycle rules applied as S3 would at `now`; `prefix` (sandbox
 * only) limits the run to the keys under it, so that a test on the shared stage bucket leaves other tests' objects
 * alone.
 */
const LifecycleRun = z.object({
  bucket: z.string().min(1),
  now: z.iso.datetime({ offset: true }),
  prefix: z.string().optional(),
});

function controlBody(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
}

/**
 * The S3 subset the product uses, in REST-XML with path-style addressing (`/bucket/key`), which the SDK
 * uses for an IP endpoint. Buckets and their tagging, lifecycle and versioning; objects with metadata, tags,
 * ranges, copies, server-side encryption headers, ListObjectsV2, and versions with delete markers and
 * ListObjectVersions, storage classes. `kms` names the customer managed KMS keys that exist. No multipart uploads,
 * ACLs or policies; lifecycle rules are kept, and run when asked (s3-lifecycle.ts).
 */
export function createS3(deps: ServiceDeps, kms: KmsKeys = { keyArns: [] }): ServiceHandler {
  const s3 = new S3(deps, kms);
  return {
    service: 's3',
    signingName: 's3',
    routes: {
      'POST /_sandbox/s3/lifecycle/run': async (request) => {
        const parsed = LifecycleRun.safeParse(controlBody(request.body));
        if (!parsed.success) return jsonResponse(400, { error: z.prettifyError(parsed.error) });
        const { bucket, now, prefix } = parsed.data;
        try {
          await s3.ready();
          return jsonResponse(200, await runLifecycle(s3.lifecycleBucket(), bucket, now, prefix));
        } catch (error) {
          const { code, message, statusCode } = asAwsError(error);
          return jsonResponse(statusCode, { error: `${code}: ${message}` });
        }
      },
    },
    async handle(request, context) {
      const requestId = newRequestId();
      let response: HttpResponse;
      try {
        await s3.ready();
        const apiCall = s3.route(request);
        context.admit({ service: 's3', operation: apiCall.operation, subject: apiCall.subject });
        response = await apiCall.run();
      } catch (error) {
        response = errorResponse(asAwsError(error), request, requestId);
      }
      const ids = { 'x-amz-request-id': requestId, 'x-amz-id-2': randomBytes(24).toString('base64') };
      return { ...response, headers: { ...response.headers, ...ids } };
    },
  };
}

class S3 {
  readonly #region: string;
  readonly #accountId: string;
  readonly #kms: KmsKeys;
  readonly #owner: string;
  readonly #buckets: Collection<BucketDoc>;
  /**
   * The current version of each object that has one (not a delete marker), keyed `<bucket>/<key>`: a bucket's
   * objects are the items under its name and a slash, in key order. Its bytes are with the version.
   */
  readonly #objects: Collection<CurrentDoc>;
  /** Every version and delete marker, with its bytes (see {@link VersionDoc}). */
  readonly #versions: Collection<VersionDoc>;
  /** Objects stored before versions were kept are moved into the versions collection once, on first use. */
  #upgraded: Promise<void> | undefined;
  // Each bucket sub-resource is its own item, so that setting one never overwrites another.
  readonly #tagging: Collection<Tag[]>;
  readonly #lifecycle: Collection<LifecycleRule[]>;
  readonly #versioning: Collection<VersioningStatus>;
  /** Writes of one object, one at a time: tagging rewrites the object, and must not undo a put or delete. */
  readonly #writes = new KeyedLock();

  constructor(deps: ServiceDeps, kms: KmsKeys) {
    this.#region = deps.region;
    this.#accountId = deps.accountId;
    this.#kms = kms;
    this.#owner = createHash('sha256').update(deps.accountId).digest('hex');
    this.#buckets = deps.store.collection('s3', 'bucket');
    this.#objects = deps.store.collection('s3', 'object');
    this.#versions = deps.store.collection('s3', 'object-version');
    this.#tagging = deps.store.collection('s3', 'bucket-tagging');
    this.#lifecycle = deps.store.collection('s3', 'bucket-lifecycle');
    this.#versioning = deps.store.collection('s3', 'bucket-versioning');
  }

  /** Resolves once objects stored before versions were kept have been moved to the versions collection. */
  ready(): Promise<void> {
    this.#upgraded ??= this.#upgrade().catch((error: unknown) => {
      this.#upgraded = undefined;
      throw error;
    });
    return this.#upgraded;
  }

  async #upgrade(): Promise<void> {
    let after = '';
    for (;;) {
      const items = await this.#objects.list({ after, limit: LIST_PAGE });
      for (const { key: id, doc } of items) {
        if (doc.version !== undefined) continue;
        const bucket = id.slice(0, id.indexOf('/'));
        const key = id.slice(bucket.length + 1);
        const bytes = (await this.#objects.getBody(id)) ?? Buffer.alloc(0);
        const item = `${versionPrefix(bucket, key)}${newSortId()}`;
        await this.#versions.put(
          item,
          { key, versionId: 'null', lastModified: doc.lastModified, object: doc },
          bytes,
        );
        await this.#objects.put(id, { ...doc, versionId: 'null', version: item });
      }
      const last = items.at(-1);
      if (!last || items.length < LIST_PAGE) return;
      after = last.key;
    }
  }

  route(request: HttpRequest): Call {
    const { bucket, key } = splitPath(request.path);
    const { method, query } = request;
    if (bucket === undefined) {
      if (method !== 'GET') throw methodNotAllowed(method);
      return this.#listBuckets(query);
    }
    if (key === undefined) {
      const subresource = ['tagging', 'lifecycle', 'versioning', 'versions', 'location', 'delete'].find(
        (name) => query.has(name),
      );
      switch (`${method} ${subresource ?? ''}`) {
        case 'PUT ':
          rejectUnsupported(query, []);
          return this.#createBucket(bucket, request);
        case 'HEAD ':
          return call('HeadBucket', bucket, async () => {
            await this.#bucket(bucket);
            return { statusCode: 200, headers: { 'x-amz-bucket-region': this.#region } };
          });
        case 'DELETE ':
          rejectUnsupported(query, []);
          return this.#deleteBucket(bucket);
        case 'GET ':
          if (query.get('list-type') !== '2') {
            rejectUnsupported(query, []);
            throw notImplemented('ListObjects (v1)');
          }
          return this.#listObjectsV2(bucket, query);
        case 'GET versions':
          return this.#listObjectVersions(bucket, query);
        case 'POST delete':
          return this.#deleteObjects(bucket, request);
        case 'PUT tagging': {
          const tags = parseTagging(readPayload(request).bytes, 'bucket');
          return this.#putConfig('PutBucketTagging', this.#tagging, bucket, tags, { statusCode: 204 });
        }
        case 'GET tagging':
          return this.#getConfig('GetBucketTagging', this.#tagging, bucket, (tags) =>
            tags === undefined
              ? missing('NoSuchTagSet', 'The TagSet does not exist', bucket)
              : xmlResponse('Tagging', taggingXml(tags)),
          );
        case 'DELETE tagging':
          return this.#deleteConfig('DeleteBucketTagging', this.#tagging, bucket);
        case 'PUT lifecycle': {
          const rules = parseLifecycle(readPayload(request).bytes);
          return this.#putConfig('PutBucketLifecycleConfiguration', this.#lifecycle, bucket, rules, {
            statusCode: 200,
            headers: transitionDefault(request),
          });
        }
        case 'GET lifecycle':
          return this.#getConfig('GetBucketLifecycleConfiguration', this.#lifecycle, bucket, (rules) => {
            if (rules === undefined) {
              return missing(
                'NoSuchLifecycleConfiguration',
                'The lifecycle configuration does not exist',
                bucket,
              );
            }
            const response = xmlResponse('LifecycleConfiguration', lifecycleXml(rules));
            return { ...response, headers: { ...response.headers, ...transitionDefault(request) } };
          });
        case 'DELETE lifecycle':
          return this.#deleteConfig('DeleteBucketLifecycle', this.#lifecycle, bucket);
        case 'PUT versioning': {
          const status = parseVersioning(readPayload(request).bytes);
          return this.#putConfig('PutBucketVersioning', this.#versioning, bucket, status, {
            statusCode: 200,
          });
        }
        case 'GET versioning':
          return this.#getConfig('GetBucketVersioning', this.#versioning, bucket, (status) =>
            xmlResponse('VersioningConfiguration', leaf('Status', status)),
          );
        case 'GET location':
          return call('GetBucketLocation', bucket, async () => {
            const { region } = await this.#bucket(bucket);
            // us-east-1 is S3's original region, named by an empty constraint.
            return xmlResponse('LocationConstraint', escapeXml(region === 'us-east-1' ? '' : region));
          });
        default:
          throw methodNotAllowed(method);
      }
    }
    rejectUnsupported(query, ['tagging', 'versionId', ...RESPONSE_OVERRIDES.map(([name]) => name)]);
    const versionId = versionIdParam(query);
    switch (`${method} ${query.has('tagging') ? 'tagging' : ''}`) {
      case 'PUT ':
        return header(request, 'x-amz-copy-source') === undefined
          ? this.#putObject(bucket, key, request)
          : this.#copyObject(bucket, key, request);
      case 'GET ':
        return this.#getObject(bucket, key, versionId, request, 'GetObject');
      case 'HEAD ':
        return this.#getObject(bucket, key, versionId, request, 'HeadObject');
      case 'DELETE ':
        return call('DeleteObject', key, async () => {
          await this.#bucket(bucket);
          const outcome = await this.#delete(bucket, key, versionId);
          return { statusCode: 204, headers: deleteHeaders(outcome) };
        });
      case 'PUT tagging': {
        const tags = parseTagging(readPayload(request).bytes, 'object');
        return call('PutObjectTagging', key, async () => {
          const tagged = await this.#retag(bucket, key, versionId, tags);
          return { statusCode: 200, headers: versionHeader(tagged) };
        });
      }
      case 'GET tagging':
        return call('GetObjectTagging', key, async () => {
          const { versionId: id, object } = await this.#version(bucket, key, versionId, 'GET');
          return {
            ...xmlResponse('Tagging', taggingXml(object.tags)),
            headers: { 'content-type': 'application/xml', ...versionHeader(id) },
          };
        });
      case 'DELETE tagging':
        return call('DeleteObjectTagging', key, async () => {
          const tagged = await this.#retag(bucket, key, versionId, []);
          return { statusCode: 204, headers: versionHeader(tagged) };
        });
      default:
        throw methodNotAllowed(method);
    }
  }

  // ---- Buckets

  #listBuckets(query: URLSearchParams): Call {
    const prefix = query.get('prefix') ?? '';
    const max = query.has('max-buckets') ? integerParam(query, 'max-buckets', 1, 10_000) : undefined;
    const after = query.get('continuation-token') ?? '';
    return call('ListBuckets', prefix, async () => {
      const found = await this.#buckets.list({
        prefix,
        after,
        limit: max === undefined ? undefined : max + 1,
      });
      const page = found.slice(0, max);
      const truncated = max !== undefined && found.length > max;
      return xmlResponse(
        'ListAllMyBucketsResult',
        node(
          'Buckets',
          ...page.map(({ doc }) =>
            node(
              'Bucket',
              leaf('Name', doc.name),
              leaf('CreationDate', doc.createdAt),
              leaf('BucketRegion', doc.region),
            ),
          ),
        ),
        this.#ownerXml(),
        leaf('ContinuationToken', truncated ? page.at(-1)?.key : undefined),
        leaf('Prefix', query.get('prefix') ?? undefined),
      );
    });
  }

  #createBucket(bucket: string, request: HttpRequest): Call {
    validateBucketName(bucket);
    const body = readPayload(request).bytes;
    const constraint =
      body.length > 0 ? textOf(parseXml(body, 'CreateBucketConfiguration'), 'LocationConstraint') : undefined;
    if (constraint && constraint !== this.#region) {
      throw new S3Error(
        'IllegalLocationConstraintException',
        `The ${constraint} location constraint is incompatible for the region specific endpoint this request was sent to.`,
      );
    }
    return call('CreateBucket', bucket, async () => {
      const doc = { name: bucket, createdAt: now(), region: this.#region };
      // For legacy compatibility us-east-1 answers a repeated create of one's own bucket with 200.
      if (!(await this.#buckets.insert(bucket, doc)) && this.#region !== 'us-east-1') {
        throw new S3Error(
          'BucketAlreadyOwnedByYou',
          'Your previous request to create the named bucket succeeded and you already own it.',
          409,
          { BucketName: bucket },
        );
      }
      return { statusCode: 200, headers: { location: `/${bucket}` } };
    });
  }

  #deleteBucket(bucket: string): Call {
    return call('DeleteBucket', bucket, async () => {
      await this.#bucket(bucket);
      // Noncurrent versions and delete markers count: a versioned bucket is empty only when no version is left.
      const [objects, versions] = await Promise.all([
        this.#objects.list({ prefix: `${bucket}/`, limit: 1 }),
        this.#versions.list({ prefix: `${bucket}/`, limit: 1 }),
      ]);
      if (objects.length > 0 || versions.length > 0) {
        throw new S3Error('BucketNotEmpty', 'The bucket you tried to delete is not empty', 409, {
          BucketName: bucket,
        });
      }
      await Promise.all([
        this.#tagging.delete(bucket),
        this.#lifecycle.delete(bucket),
        this.#versioning.delete(bucket),
      ]);
      await this.#buckets.delete(bucket);
      return { statusCode: 204 };
    });
  }

  #putConfig<T>(
    operation: string,
    configs: Collection<T>,
    bucket: string,
    config: T,
    response: HttpResponse,
  ): Call {
    return call(operation, bucket, async () => {
      await this.#bucket(bucket);
      await configs.put(bucket, config);
      return response;
    });
  }

  #getConfig<T>(
    operation: string,
    configs: Collection<T>,
    bucket: string,
    answer: (config: T | undefined) => HttpResponse,
  ): Call {
    return call(operation, bucket, async () => {
      await this.#bucket(bucket);
      return answer(await configs.get(bucket));
    });
  }

  #deleteConfig<T>(operation: string, configs: Collection<T>, bucket: string): Call {
    return call(operation, bucket, async () => {
      await this.#bucket(bucket);
      await configs.delete(bucket);
      return { statusCode: 204 };
    });
  }

  async #bucket(bucket: string): Promise<BucketDoc> {
    const doc = await this.#buckets.get(bucket);
    if (!doc) throw noSuchBucket(bucket);
    return doc;
  }

  #ownerXml(): string {
    return node('Owner', leaf('ID', this.#owner));
  }

  // ---- Objects

  #putObject(bucket: string, key: string, request: HttpRequest): Call {
    validateKey(key);
    const { bytes, checksum } = readPayload(request);
    const tagging = header(request, 'x-amz-tagging');
    const encryption = requestedEncryption(request, this.#kms, this.#account());
    const storageClass = requestedStorageClass(request);
    const doc: ObjectDoc = {
      ...describe(request),
      size: bytes.length,
      etag: etagOf(bytes),
      lastModified: now(),
      tags: tagging === undefined ? [] : parseTaggingHeader(tagging),
      encryption,
      ...(checksum ? { checksum } : {}),
      ...(storageClass ? { storageClass } : {}),
    };
    const ifNoneMatch = header(request, 'if-none-match');
    const ifMatch = header(request, 'if-match');
    return call('PutObject', key, async () => {
      await this.#bucket(bucket);
      const id = `${bucket}/${key}`;
      const versionId = await this.#writes.run(id, async () => {
        const current = await this.#objects.get(id);
        if (ifNoneMatch === '*' && current) throw preconditionFailed('If-None-Match');
        if (ifMatch !== undefined) {
          if (!current) throw noSuchKey(key);
          if (!etagMatches(current.etag, ifMatch)) throw preconditionFailed('If-Match');
        }
        return this.#addVersion(bucket, key, doc, bytes);
      });
      return {
        statusCode: 200,
        headers: {
          etag: doc.etag,
          ...checksumHeaders(doc.checksum),
          ...encryptionHeaders(encryption, true),
          ...versionHeader(versionId),
        },
      };
    });
  }

  #getObject(
    bucket: string,
    key: string,
    versionId: string | undefined,
    request: HttpRequest,
    operation: 'GetObject' | 'HeadObject',
  ): Call {
    const range = header(request, 'range');
    const withChecksum = header(request, 'x-amz-checksum-mode') === 'ENABLED';
    return call(operation, key, async () => {
      const method = operation === 'GetObject' ? 'GET' : 'HEAD';
      const found = await this.#version(bucket, key, versionId, method);
      const doc = found.object;
      if (operation === 'GetObject' && doc.storageClass && ARCHIVED.includes(doc.storageClass)) {
        throw invalidObjectState(doc.storageClass);
      }
      const bytes = operation === 'GetObject' ? await this.#bytes(found) : Buffer.alloc(0);
      const notModified = checkPreconditions(request, doc);
      if (notModified) return notModified;
      const headers = {
        ...objectHeaders(doc, request.query),
        ...encryptionHeaders(doc.encryption),
        ...versionHeader(found.versionId),
      };
      const span = range === undefined ? undefined : parseRange(range, doc.size);
      // A checksum covers the whole object; S3 sends none with a part of it.
      if (withChecksum && !span) Object.assign(headers, checksumHeaders(doc.checksum));
      if (span) headers['content-range'] = `bytes ${span.start}-${span.end}/${doc.size}`;
      headers['content-length'] = String(span ? span.end - span.start + 1 : doc.size);
      const statusCode = span ? 206 : 200;
      if (operation === 'HeadObject') return { statusCode, headers };
      return { statusCode, headers, body: span ? bytes.subarray(span.start, span.end + 1) : bytes };
    });
  }

  #copyObject(bucket: string, key: string, request: HttpRequest): Call {
    validateKey(key);
    const source = parseCopySource(header(request, 'x-amz-copy-source') ?? '');
    const replaceMetadata = directive(request, 'x-amz-metadata-directive');
    const replaceTags = directive(request, 'x-amz-tagging-directive');
    const encryptionAsked = header(request, 'x-amz-server-side-encryption') !== undefined;
    if (
      source.bucket === bucket &&
      source.key === key &&
      source.versionId === undefined &&
      !replaceMetadata &&
      !encryptionAsked &&
      header(request, 'x-amz-storage-class') === undefined
    ) {
      throw new S3Error(
        'InvalidRequest',
        "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
      );
    }
    const description = replaceMetadata ? describe(request) : undefined;
    const tags = replaceTags ? parseTaggingHeader(header(request, 'x-amz-tagging') ?? '') : undefined;
    // A copy is encrypted as the request asks, or by the destination bucket's default: never the source's key.
    const encryption = requestedEncryption(request, this.#kms, this.#account());
    // CopyObject's reference: without x-amz-storage-class the copy is STANDARD, whatever the source's class.
    const storageClass = requestedStorageClass(request);
    return call('CopyObject', key, async () => {
      await this.#bucket(bucket);
      const found = await this.#version(source.bucket, source.key, source.versionId, 'COPY');
      // An archived source must be restored before it can be copied (CopyObject's reference).
      if (found.object.storageClass && ARCHIVED.includes(found.object.storageClass)) {
        throw invalidObjectState(found.object.storageClass);
      }
      const bytes = await this.#bytes(found);
      const { storageClass: _sourceClass, ...unclassed } = found.object;
      const copy: ObjectDoc = {
        ...unclassed,
        ...description,
        tags: tags ?? found.object.tags,
        lastModified: now(),
        encryption,
        ...(storageClass ? { storageClass } : {}),
      };
      const id = `${bucket}/${key}`;
      const versionId = await this.#writes.run(id, () => this.#addVersion(bucket, key, copy, bytes));
      const response = xmlResponse(
        'CopyObjectResult',
        leaf('ETag', copy.etag),
        leaf('LastModified', copy.lastModified),
        copy.checksum ? leaf(`Checksum${copy.checksum.algorithm}`, copy.checksum.value) : '',
      );
      return {
        ...response,
        headers: {
          ...response.headers,
          ...encryptionHeaders(encryption),
          ...versionHeader(versionId),
          ...(found.versionId !== 'null' ? { 'x-amz-copy-source-version-id': found.versionId } : {}),
        },
      };
    });
  }

  #deleteObjects(bucket: string, request: HttpRequest): Call {
    const document = parseXml(readPayload(request).bytes, 'Delete');
    const objects = elementsOf(document, 'Object').map((object) => {
      const key = textOf(object, 'Key');
      if (key === undefined) throw malformedXml();
      return { key, versionId: textOf(object, 'VersionId') };
    });
    if (objects.length === 0 || objects.length > 1000) throw malformedXml();
    const quiet = textOf(document, 'Quiet')?.trim() === 'true';
    return call('DeleteObjects', objects.map((object) => object.key).join(','), async () => {
      await this.#bucket(bucket);
      const results = await Promise.all(
        objects.map(async ({ key, versionId }) => {
          try {
            validateKey(key);
            // In a batch, a version id S3 cannot have made is reported as a version that does not exist.
            if (versionId !== undefined && !isVersionId(versionId)) throw noSuchVersion(key, versionId);
            const outcome = await this.#delete(bucket, key, versionId);
            if (quiet) return '';
            return node(
              'Deleted',
              leaf('Key', key),
              leaf('VersionId', versionId),
              outcome.deleteMarker ? leaf('DeleteMarker', true) : '',
              outcome.deleteMarker ? leaf('DeleteMarkerVersionId', outcome.versionId) : '',
            );
          } catch (error) {
            const { code, message } = asAwsError(error);
            return node(
              'Error',
              leaf('Key', key),
              leaf('VersionId', versionId),
              leaf('Code', code),
              leaf('Message', message),
            );
          }
        }),
      );
      return xmlResponse('DeleteResult', ...results);
    });
  }

  /**
   * DeleteObject, as "Deleting object versions from a versioning-enabled bucket" describes it. With a version id:
   * that version (or delete marker) is gone for good, and the next newest becomes current. Without: in a bucket
   * never versioned the object is gone; with versioning enabled a delete marker with a new version id becomes
   * current and every version stays; with versioning suspended the null version is replaced by a delete marker
   * whose version id is `null`. Deleting what does not exist succeeds.
   */
  async #delete(
    bucket: string,
    key: string,
    versionId: string | undefined,
    markerAt?: string,
  ): Promise<{ versionId?: string; deleteMarker: boolean }> {
    const id = `${bucket}/${key}`;
    return this.#writes.run(id, async () => {
      if (versionId !== undefined) {
        const found = await this.#findVersion(bucket, key, versionId);
        if (!found) return { versionId, deleteMarker: false };
        await this.#versions.delete(found.item);
        await this.#settle(bucket, key);
        return { versionId, deleteMarker: found.doc.object === undefined };
      }
      const status = await this.#versioning.get(bucket);
      if (status === undefined) {
        await this.#removeNullVersion(bucket, key);
        await this.#settle(bucket, key);
        return { deleteMarker: false };
      }
      const marker = await this.#addVersion(bucket, key, undefined, undefined, status, markerAt);
      return { versionId: marker, deleteMarker: true };
    });
  }

  /**
   * Writes a new version (an object, or a delete marker when `object` is absent) and makes it current; returns its
   * version id. Versioning enabled: a new id, every older version kept. Otherwise the version is the null version,
   * replacing the one there was ("Adding objects to versioning-suspended buckets"). A delete marker is dated now, or
   * `markerAt` (one a lifecycle run adds). Call it holding the key's lock.
   */
  async #addVersion(
    bucket: string,
    key: string,
    object: ObjectDoc | undefined,
    bytes?: Buffer,
    status?: VersioningStatus,
    markerAt?: string,
  ): Promise<string> {
    const versioning = status ?? (await this.#versioning.get(bucket));
    if (versioning !== 'Enabled') await this.#removeNullVersion(bucket, key);
    const sortId = newSortId();
    const versionId = versioning === 'Enabled' ? newVersionId(sortId) : 'null';
    const lastModified = object?.lastModified ?? markerAt ?? now();
    await this.#versions.put(
      `${versionPrefix(bucket, key)}${sortId}`,
      { key, versionId, lastModified, ...(object ? { object } : {}) },
      bytes,
    );
    await this.#settle(bucket, key);
    return versionId;
  }

  async #removeNullVersion(bucket: string, key: string): Promise<void> {
    const found = await this.#findVersion(bucket, key, 'null');
    if (found) await this.#versions.delete(found.item);
  }

  /** Makes the newest version of the key its current object, or removes the object when that is a delete marker. */
  async #settle(bucket: string, key: string): Promise<void> {
    const id = `${bucket}/${key}`;
    const [newest] = await this.#versions.list({ prefix: versionPrefix(bucket, key), limit: 1 });
    if (!newest?.doc.object) {
      await this.#objects.delete(id);
      return;
    }
    await this.#objects.put(id, {
      ...newest.doc.object,
      versionId: newest.doc.versionId,
      version: newest.key,
    });
  }

  /** The version of that id, and the item holding it. Every id but `null` carries its item's sort id. */
  async #findVersion(
    bucket: string,
    key: string,
    versionId: string,
  ): Promise<{ item: string; doc: VersionDoc } | undefined> {
    const prefix = versionPrefix(bucket, key);
    if (versionId !== 'null') {
      const item = `${prefix}${versionId.slice(0, SORT_ID_LENGTH)}`;
      const doc = await this.#versions.get(item);
      return doc?.versionId === versionId ? { item, doc } : undefined;
    }
    let after = '';
    for (;;) {
      const items = await this.#versions.list({ prefix, after, limit: LIST_PAGE });
      const found = items.find((item) => item.doc.versionId === 'null');
      if (found) return { item: found.key, doc: found.doc };
      const last = items.at(-1);
      if (!last || items.length < LIST_PAGE) return undefined;
      after = last.key;
    }
  }

  /**
   * The object version a read names: the current one, or the one of `versionId`. As GetObject's reference says: no
   * such key, or a delete marker current, is 404 NoSuchKey (with `x-amz-delete-marker: true` and the marker's id
   * for the latter); an id S3 cannot have made is 400 InvalidArgument; no such version is 404 NoSuchVersion; a
   * version that is a delete marker is 405 MethodNotAllowed with `x-amz-delete-marker` and `Last-Modified`.
   */
  async #version(
    bucket: string,
    key: string,
    versionId: string | undefined,
    method: 'GET' | 'HEAD' | 'COPY',
  ): Promise<{ versionId: string; item?: string; id: string; object: ObjectDoc }> {
    const id = `${bucket}/${key}`;
    if (versionId === undefined) {
      const current = await this.#objects.get(id);
      if (current) {
        return {
          versionId: current.versionId ?? 'null',
          id,
          object: current,
          ...(current.version ? { item: current.version } : {}),
        };
      }
      await this.#bucket(bucket);
      const [newest] = await this.#versions.list({ prefix: versionPrefix(bucket, key), limit: 1 });
      const markerHeaders: Record<string, string> = newest
        ? { 'x-amz-delete-marker': 'true', ...versionHeader(newest.doc.versionId) }
        : {};
      throw new S3Error('NoSuchKey', 'The specified key does not exist.', 404, { Key: key }, markerHeaders);
    }
    const found = await this.#findVersion(bucket, key, versionId);
    if (!found) {
      await this.#bucket(bucket);
      throw noSuchVersion(key, versionId);
    }
    if (!found.doc.object) {
      if (method === 'COPY') {
        throw new S3Error(
          'InvalidRequest',
          'The source of a copy request may not specifically refer to a delete marker by version id.',
        );
      }
      throw new S3Error(
        'MethodNotAllowed',
        'The specified method is not allowed against this resource.',
        405,
        { Method: method, ResourceType: 'DeleteMarker' },
        {
          'x-amz-delete-marker': 'true',
          'last-modified': new Date(found.doc.lastModified).toUTCString(),
          ...versionHeader(found.doc.versionId),
        },
      );
    }
    return { versionId, item: found.item, id, object: found.doc.object };
  }

  /** The bytes of a version; objects stored before versions were kept hold them in the current item. */
  async #bytes(found: { item?: string; id: string; object: ObjectDoc }): Promise<Buffer> {
    const bytes =
      found.item === undefined
        ? await this.#objects.getBody(found.id)
        : await this.#versions.getBody(found.item);
    // Deleted between the two reads (a DeleteObject with its version id): as if the read came after it.
    if (!bytes && found.object.size > 0) throw noSuchKey(found.id.slice(found.id.indexOf('/') + 1));
    return bytes ?? Buffer.alloc(0);
  }

  /** Replaces a version's tags, which S3 keeps with the version: its bytes are written back unchanged. */
  #retag(bucket: string, key: string, versionId: string | undefined, tags: readonly Tag[]): Promise<string> {
    return this.#revise(bucket, key, versionId, (object) => ({ ...object, tags }));
  }

  /** Rewrites what S3 keeps about a version (tags, storage class), its bytes and dates unchanged. */
  async #revise(
    bucket: string,
    key: string,
    versionId: string | undefined,
    change: (object: ObjectDoc) => ObjectDoc,
  ): Promise<string> {
    const id = `${bucket}/${key}`;
    return this.#writes.run(id, async () => {
      const found = await this.#version(bucket, key, versionId, 'GET');
      const bytes = await this.#bytes(found);
      const object = change(found.object);
      if (found.item === undefined) {
        await this.#objects.put(id, { ...object, versionId: 'null' }, bytes);
        return found.versionId;
      }
      const doc = await this.#versions.get(found.item);
      if (!doc) throw noSuchKey(key);
      await this.#versions.put(found.item, { ...doc, object }, bytes);
      await this.#settle(bucket, key);
      return found.versionId;
    });
  }

  /** The bucket as the lifecycle runner (s3-lifecycle.ts) reads and changes it. */
  lifecycleBucket(): LifecycleBucket {
    return {
      rules: async (bucket) => {
        await this.#bucket(bucket);
        return this.#lifecycle.get(bucket);
      },
      versioning: (bucket) => this.#versioning.get(bucket),
      keys: (bucket, prefix) => this.#keyVersions(bucket, prefix),
      expire: (bucket, key, at) => this.#delete(bucket, key, undefined, at),
      deleteVersion: async (bucket, key, versionId) => {
        await this.#delete(bucket, key, versionId);
      },
      transition: async (bucket, key, versionId, storageClass) => {
        if (!isStorageClass(storageClass)) throw new Error(`Unknown storage class ${storageClass}`);
        await this.#revise(bucket, key, versionId, (object) => ({ ...object, storageClass }));
      },
    };
  }

  /** Each key under the prefix with its versions, newest first, a key at a time. */
  async *#keyVersions(bucket: string, prefix: string): AsyncGenerator<LifecycleVersion[]> {
    let after = '';
    let group: LifecycleVersion[] = [];
    for (;;) {
      const items = await this.#versions.list({
        prefix: `${bucket}/${hexOf(prefix)}`,
        after,
        limit: LIST_PAGE,
      });
      for (const { doc } of items) {
        if (group[0] && group[0].key !== doc.key) {
          yield group;
          group = [];
        }
        group.push({
          key: doc.key,
          versionId: doc.versionId,
          lastModified: doc.lastModified,
          ...(doc.object
            ? {
                object: {
                  size: doc.object.size,
                  tags: doc.object.tags,
                  ...(doc.object.storageClass ? { storageClass: doc.object.storageClass } : {}),
                },
              }
            : {}),
        });
      }
      const last = items.at(-1);
      if (!last || items.length < LIST_PAGE) break;
      after = last.key;
    }
    if (group.length > 0) yield group;
  }

  #account(): { region: string; accountId: string } {
    return { region: this.#region, accountId: this.#accountId };
  }

  // ---- ListObjectVersions

  /**
   * ListObjectVersions: every version and delete marker, keys in byte order and each key's versions newest first,
   * `max-keys` (at most 1,000) entries a page, common prefixes counted once. A page resumes after `key-marker`, or,
   * with `version-id-marker`, after that version of that key; `NextKeyMarker`/`NextVersionIdMarker` name the last
   * entry returned. A version-id marker without a key marker is 400 InvalidArgument.
   */
  #listObjectVersions(bucket: string, query: URLSearchParams): Call {
    rejectUnsupported(query, [
      'versions',
      'prefix',
      'delimiter',
      'key-marker',
      'version-id-marker',
      'max-keys',
      'encoding-type',
    ]);
    const prefix = query.get('prefix') ?? '';
    const delimiter = query.get('delimiter') ?? '';
    const maxKeys = Math.min(integerParam(query, 'max-keys', 0, Number.MAX_SAFE_INTEGER) ?? 1000, 1000);
    const encodingType = query.get('encoding-type') ?? undefined;
    if (encodingType !== undefined && encodingType !== 'url') {
      throw invalidArgument('Invalid Encoding Method specified in Request', 'encoding-type', encodingType);
    }
    const keyMarker = query.get('key-marker') ?? '';
    const versionIdMarker = query.get('version-id-marker') ?? '';
    if (versionIdMarker !== '' && keyMarker === '') {
      throw invalidArgument(
        'A version-id marker cannot be specified without a key marker.',
        'version-id-marker',
        versionIdMarker,
      );
    }
    if (versionIdMarker !== '' && !isVersionId(versionIdMarker)) {
      throw invalidArgument('Invalid version id specified', 'version-id-marker', versionIdMarker);
    }
    const encode = encodingType === 'url' ? urlEncode : (text: string) => text;
    return call('ListObjectVersions', bucket, async () => {
      await this.#bucket(bucket);
      let after = '';
      let midKey: string | undefined;
      if (keyMarker !== '') {
        const marked =
          versionIdMarker === '' ? undefined : await this.#findVersion(bucket, keyMarker, versionIdMarker);
        const rolledUp =
          delimiter !== '' &&
          keyMarker.startsWith(prefix) &&
          keyMarker.indexOf(delimiter, prefix.length) === keyMarker.length - delimiter.length;
        if (marked) {
          after = marked.item;
          midKey = keyMarker;
        } else {
          // Past every version of the key-marker ('0' sorts after its '/'), or of every key under a common prefix.
          after = `${bucket}/${hexOf(keyMarker)}${rolledUp ? 'g' : '0'}`;
        }
      }
      const entries = await this.#scanVersions(bucket, prefix, delimiter, after, maxKeys);
      const page = entries.slice(0, maxKeys);
      const truncated = entries.length > maxKeys;
      const last = page.at(-1);
      let previousKey = midKey;
      const body: string[] = [];
      for (const entry of page) {
        if ('prefix' in entry) {
          body.push(node('CommonPrefixes', leaf('Prefix', encode(entry.prefix))));
          continue;
        }
        const { doc } = entry;
        const isLatest = doc.key !== previousKey;
        previousKey = doc.key;
        const common = [
          leaf('Key', encode(doc.key)),
          leaf('VersionId', doc.versionId),
          leaf('IsLatest', isLatest),
          leaf('LastModified', doc.lastModified),
        ];
        body.push(
          doc.object
            ? node(
                'Version',
                ...common,
                leaf('ETag', doc.object.etag),
                leaf('Size', doc.object.size),
                leaf('StorageClass', doc.object.storageClass ?? 'STANDARD'),
                this.#ownerXml(),
                leaf('ChecksumAlgorithm', doc.object.checksum?.algorithm),
              )
            : node('DeleteMarker', ...common, this.#ownerXml()),
        );
      }
      return xmlResponse(
        'ListVersionsResult',
        leaf('Name', bucket),
        leaf('Prefix', encode(prefix)),
        leaf('KeyMarker', encode(keyMarker)),
        leaf('VersionIdMarker', versionIdMarker),
        leaf(
          'NextKeyMarker',
          truncated && last ? encode('prefix' in last ? last.prefix : last.doc.key) : undefined,
        ),
        leaf('NextVersionIdMarker', truncated && last && 'doc' in last ? last.doc.versionId : undefined),
        leaf('MaxKeys', maxKeys),
        leaf('Delimiter', delimiter === '' ? undefined : encode(delimiter)),
        leaf('EncodingType', encodingType),
        leaf('IsTruncated', truncated),
        ...body,
      );
    });
  }

  /** Up to `limit + 1` versions, delete markers and common prefixes after the item `after`, in listing order. */
  async #scanVersions(
    bucket: string,
    prefix: string,
    delimiter: string,
    start: string,
    limit: number,
  ): Promise<VersionEntry[]> {
    const base = `${bucket}/${hexOf(prefix)}`;
    const entries: VersionEntry[] = [];
    let after = start;
    for (;;) {
      const items = await this.#versions.list({ prefix: base, after, limit: LIST_PAGE });
      let jumped = false;
      for (const item of items) {
        const { key } = item.doc;
        const cut = delimiter === '' ? -1 : key.indexOf(delimiter, prefix.length);
        if (cut >= 0) {
          const commonPrefix = key.slice(0, cut + delimiter.length);
          entries.push({ prefix: commonPrefix });
          // Hex digits and '/' all sort before 'g': past every version of every key under the prefix.
          after = `${bucket}/${hexOf(commonPrefix)}g`;
          jumped = true;
        } else {
          entries.push({ doc: item.doc });
        }
        if (entries.length > limit) return entries;
        if (jumped) break;
      }
      if (jumped) continue;
      const last = items.at(-1);
      if (!last || items.length < LIST_PAGE) return entries;
      after = last.key;
    }
  }

  // ---- ListObjectsV2

  #listObjectsV2(bucket: string, query: URLSearchParams): Call {
    const prefix = query.get('prefix') ?? '';
    const delimiter = query.get('delimiter') ?? '';
    const maxKeys = Math.min(integerParam(query, 'max-keys', 0, Number.MAX_SAFE_INTEGER) ?? 1000, 1000);
    const encodingType = query.get('encoding-type') ?? undefined;
    if (encodingType !== undefined && encodingType !== 'url') {
      throw invalidArgument('Invalid Encoding Method specified in Request', 'encoding-type', encodingType);
    }
    const token = query.get('continuation-token') ?? undefined;
    const startAfter = query.get('start-after') ?? undefined;
    const resume = token === undefined ? { after: startAfter ?? '' } : parseToken(token);
    const encode = encodingType === 'url' ? urlEncode : (text: string) => text;
    return call('ListObjectsV2', bucket, async () => {
      await this.#bucket(bucket);
      const found = await this.#scan(bucket, prefix, delimiter, resume, maxKeys);
      const page = found.slice(0, maxKeys);
      const last = page.at(-1);
      const next =
        found.length > maxKeys && last
          ? 'prefix' in last
            ? { after: last.prefix, skip: last.prefix }
            : { after: last.key }
          : undefined;
      const contents = page.flatMap((entry) => ('doc' in entry ? [entry] : []));
      const prefixes = page.flatMap((entry) => ('prefix' in entry ? [entry.prefix] : []));
      const owner = query.get('fetch-owner') === 'true' ? this.#ownerXml() : '';
      return xmlResponse(
        'ListBucketResult',
        leaf('Name', bucket),
        leaf('Prefix', encode(prefix)),
        leaf('Delimiter', delimiter === '' ? undefined : encode(delimiter)),
        leaf('MaxKeys', maxKeys),
        leaf('EncodingType', encodingType),
        leaf('KeyCount', page.length),
        leaf('IsTruncated', next !== undefined),
        leaf('ContinuationToken', token),
        leaf('NextContinuationToken', next && Buffer.from(JSON.stringify(next)).toString('base64url')),
        leaf('StartAfter', startAfter === undefined ? undefined : encode(startAfter)),
        ...contents.map(({ key, doc }) =>
          node(
            'Contents',
            leaf('Key', encode(key)),
            leaf('LastModified', doc.lastModified),
            leaf('ETag', doc.etag),
            leaf('ChecksumAlgorithm', doc.checksum?.algorithm),
            leaf('ChecksumType', doc.checksum && 'FULL_OBJECT'),
            leaf('Size', doc.size),
            leaf('StorageClass', doc.storageClass ?? 'STANDARD'),
            owner,
          ),
        ),
        ...prefixes.map((commonPrefix) => node('CommonPrefixes', leaf('Prefix', encode(commonPrefix)))),
      );
    });
  }

  /**
   * Up to `limit + 1` entries after the resume point, in key order: keys, and with a delimiter the common
   * prefixes that roll keys up, each counted once. Keys under a prefix just returned are skipped by
   * jumping past them, so that a large "folder" costs one query, not a page per thousand keys.
   */
  async #scan(
    bucket: string,
    prefix: string,
    delimiter: string,
    resume: Resume,
    limit: number,
  ): Promise<Entry[]> {
    const base = `${bucket}/`;
    const entries: Entry[] = [];
    let skip = resume.skip;
    let after = resume.after;
    for (;;) {
      const items = await this.#objects.list({
        prefix: base + prefix,
        after: base + after,
        limit: LIST_PAGE,
      });
      for (const item of items) {
        const key = item.key.slice(base.length);
        if (skip !== undefined && key.startsWith(skip)) continue;
        const cut = delimiter === '' ? -1 : key.indexOf(delimiter, prefix.length);
        if (cut >= 0) {
          skip = key.slice(0, cut + delimiter.length);
          entries.push({ prefix: skip });
        } else {
          entries.push({ key, doc: item.doc });
        }
        if (entries.length > limit) return entries;
      }
      const last = items.at(-1);
      if (!last || items.length < LIST_PAGE) return entries;
      const lastKey = last.key.slice(base.length);
      after = skip !== undefined && lastKey.startsWith(skip) ? byteMax(skip + MAX_CHAR, lastKey) : lastKey;
    }
  }
}

type Entry = { readonly key: string; readonly doc: ObjectDoc } | { readonly prefix: string };
type VersionEntry = { readonly doc: VersionDoc } | { readonly prefix: string };

// ---- Versions

/** The item prefix of a key's versions: the key's UTF-8 in hex keeps S3's byte order and groups its versions. */
function versionPrefix(bucket: string, key: string): string {
  return `${bucket}/${hexOf(key)}/`;
}

function hexOf(text: string): string {
  return Buffer.from(text, 'utf8').toString('hex');
}

const SORT_ID_LENGTH = 17;
const SORT_ID_SPAN = 10n ** 17n;
let lastSequence = 0n;

/** A sort id: later versions get smaller ones, so that a key's newest version comes first in key order. */
function newSortId(): string {
  const clock = BigInt(Date.now()) * 1000n;
  lastSequence = clock > lastSequence ? clock : lastSequence + 1n;
  return (SORT_ID_SPAN - 1n - lastSequence).toString().padStart(SORT_ID_LENGTH, '0');
}

/**
 * A version id: opaque to clients, 32 URL-safe characters as S3's are; it starts with the version's sort id, so
 * that the sandbox finds a version from its id in one read.
 */
function newVersionId(sortId: string): string {
  return `${sortId}${randomAlphanumeric(32 - SORT_ID_LENGTH)}`;
}

const VERSION_ID = new RegExp(`^\\d{${SORT_ID_LENGTH}}[A-Za-z0-9]{${32 - SORT_ID_LENGTH}}$`);

/** Whether S3 could have made this version id: `null`, or one of the sandbox's. */
function isVersionId(value: string): boolean {
  return value === 'null' || VERSION_ID.test(value);
}

/**
 * The `versionId` query parameter: empty is 400 "Version id cannot be the empty string", an id S3 cannot have made
 * 400 "Invalid version id specified" (both InvalidArgument).
 */
function versionIdParam(query: URLSearchParams): string | undefined {
  const value = query.get('versionId');
  if (value === null) return undefined;
  if (value === '') throw invalidArgument('Version id cannot be the empty string', 'versionId', value);
  if (!isVersionId(value)) throw invalidArgument('Invalid version id specified', 'versionId', value);
  return value;
}

/** `x-amz-version-id`, sent for versions a versioned bucket made; the null version goes without. */
function versionHeader(versionId: string | undefined): Record<string, string> {
  return versionId === undefined || versionId === 'null' ? {} : { 'x-amz-version-id': versionId };
}

/** DeleteObject's answer: the version deleted or the marker made, and whether it is a delete marker. */
function deleteHeaders(outcome: { versionId?: string; deleteMarker: boolean }): Record<string, string> {
  return {
    ...(outcome.versionId === undefined ? {} : { 'x-amz-version-id': outcome.versionId }),
    ...(outcome.deleteMarker ? { 'x-amz-delete-marker': 'true' } : {}),
  };
}

function noSuchVersion(key: string, versionId: string): S3Error {
  return new S3Error('NoSuchVersion', 'The specified version does not exist.', 404, {
    Key: key,
    VersionId: versionId,
  });
}

/** Where a listing resumes: after a key, skipping the keys under the common prefix returned last. */
interface Resume {
  readonly after: string;
  readonly skip?: string;
}

function parseToken(token: string): Resume {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (
      typeof parsed === 'object' &&
      parsed !== null &&
      'after' in parsed &&
      typeof parsed.after === 'string'
    ) {
      const skip = 'skip' in parsed && typeof parsed.skip === 'string' ? parsed.skip : undefined;
      return skip === undefined ? { after: parsed.after } : { after: parsed.after, skip };
    }
  } catch {}
  throw invalidArgument('The continuation token provided is incorrect', 'continuation-token', token);
}

/** The later of two keys in byte order (the store's), which JavaScript's UTF-16 comparison is not. */
function byteMax(a: string, b: string): string {
  return Buffer.compare(Buffer.from(a), Buffer.from(b)) >= 0 ? a : b;
}

/** S3's `encoding-type=url`: percent-encoding with `+` for spaces, slashes kept. */
function urlEncode(text: string): string {
  return encodeURIComponent(text).replaceAll('%2F', '/').replaceAll('%20', '+');
}

// ---- Requests

function splitPath(path: string): { bucket?: string; key?: string } {
  const slash = path.indexOf('/', 1);
  const bucket = decode(slash < 0 ? path.slice(1) : path.slice(1, slash));
  const key = slash < 0 ? '' : decode(path.slice(slash + 1));
  return { ...(bucket ? { bucket } : {}), ...(key ? { key } : {}) };
}

function decode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new S3Error('InvalidURI', "Couldn't parse the specified URI.");
  }
}

/** Query parameters S3 would act on but the sandbox does not (`acl`, `uploads`, `policy`, …). */
function rejectUnsupported(query: URLSearchParams, allowed: readonly string[]): void {
  for (const name of query.keys()) {
    if (name === 'x-id' || name.startsWith('X-Amz-') || allowed.includes(name)) continue;
    throw notImplemented(`The query parameter ${name}`);
  }
}

function integerParam(query: URLSearchParams, name: string, min: number, max: number): number | undefined {
  const value = query.get(name);
  if (value === null) return undefined;
  const number = Number(value);
  if (!/^\d+$/.test(value) || number < min || number > max) {
    throw invalidArgument(`Provided ${name} not an integer or within integer range`, name, value);
  }
  return number;
}

function validateBucketName(name: string): void {
  const valid =
    /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(name) &&
    !name.includes('..') &&
    !/^\d+\.\d+\.\d+\.\d+$/.test(name) &&
    !/^(xn--|sthree-|amzn-s3-demo-)/.test(name) &&
    !/(-s3alias|--ol-s3|\.mrap|--x-s3|--table-s3)$/.test(name);
  if (!valid)
    throw new S3Error('InvalidBucketName', 'The specified bucket is not valid.', 400, { BucketName: name });
}

function validateKey(key: string): void {
  const size = Buffer.byteLength(key);
  if (size > 1024) {
    throw new S3Error('KeyTooLongError', 'Your key is too long', 400, {
      Size: String(size),
      MaxSizeAllowed: '1024',
    });
  }
}

/** Content type, stored representation headers and user metadata of a PutObject or replacing CopyObject. */
function describe(request: HttpRequest): Pick<ObjectDoc, 'contentType' | 'headers' | 'metadata'> {
  const headers: Record<string, string> = {};
  const metadata: Record<string, string> = {};
  for (const name of STORED_HEADERS) {
    const value = header(request, name);
    if (value !== undefined) headers[name] = value;
  }
  const encoding = (header(request, 'content-encoding') ?? '')
    .split(',')
    .map((coding) => coding.trim())
    .filter((coding) => coding !== '' && coding !== 'aws-chunked');
  if (encoding.length > 0) headers['content-encoding'] = encoding.join(',');
  for (const name of Object.keys(request.headers)) {
    const value = header(request, name);
    if (name.startsWith('x-amz-meta-') && value !== undefined)
      metadata[name.slice('x-amz-meta-'.length)] = value;
  }
  return { contentType: header(request, 'content-type') ?? 'binary/octet-stream', headers, metadata };
}

/** The storage classes a general purpose bucket stores objects in (PutObject's `x-amz-storage-class`). */
const STORAGE_CLASSES = [
  'STANDARD',
  'REDUCED_REDUNDANCY',
  'STANDARD_IA',
  'ONEZONE_IA',
  'INTELLIGENT_TIERING',
  'GLACIER',
  'DEEP_ARCHIVE',
  'GLACIER_IR',
] as const;
export type StorageClass = (typeof STORAGE_CLASSES)[number];
/** The classes whose objects must be restored before GetObject or CopyObject reads them. */
const ARCHIVED: readonly StorageClass[] = ['GLACIER', 'DEEP_ARCHIVE'];

function isStorageClass(value: string): value is StorageClass {
  return (STORAGE_CLASSES as readonly string[]).includes(value);
}

/**
 * `x-amz-storage-class` of a PutObject or CopyObject: undefined for STANDARD (S3's default, which the sandbox does
 * not store); a class S3 does not know, or one a general purpose bucket has not (OUTPOSTS, EXPRESS_ONEZONE…), is
 * 400 InvalidStorageClass.
 */
function requestedStorageClass(request: HttpRequest): StorageClass | undefined {
  const value = header(request, 'x-amz-storage-class');
  if (value === undefined || value === 'STANDARD') return undefined;
  if (!isStorageClass(value)) {
    throw new S3Error('InvalidStorageClass', 'The storage class you specified is not valid', 400, {
      StorageClassRequested: value,
    });
  }
  return value;
}

/** GetObject or CopyObject of an archived object not restored: 403 InvalidObjectState. */
function invalidObjectState(storageClass: string): S3Error {
  return new S3Error('InvalidObjectState', "The operation is not valid for the object's storage class", 403, {
    StorageClass: storageClass,
  });
}

/** `x-amz-metadata-directive` / `x-amz-tagging-directive`: whether to REPLACE rather than COPY. */
function directive(request: HttpRequest, name: string): boolean {
  const value = header(request, name) ?? 'COPY';
  if (value !== 'COPY' && value !== 'REPLACE') throw invalidArgument(`Unknown ${name}.`, name, value);
  return value === 'REPLACE';
}

function parseCopySource(value: string): { bucket: string; key: string; versionId?: string } {
  const versionAt = value.indexOf('?versionId=');
  const source = decode(versionAt < 0 ? value : value.slice(0, versionAt)).replace(/^\//, '');
  const slash = source.indexOf('/');
  if (slash <= 0 || slash === source.length - 1) {
    throw invalidArgument(
      'Copy Source must mention the source bucket and key: sourcebucket/sourcekey',
      'x-amz-copy-source',
      value,
    );
  }
  const versionId = versionAt < 0 ? undefined : value.slice(versionAt + '?versionId='.length);
  if (versionId !== undefined && !isVersionId(versionId)) {
    throw invalidArgument('Invalid version id specified', 'x-amz-copy-source', value);
  }
  return {
    bucket: source.slice(0, slash),
    key: source.slice(slash + 1),
    ...(versionId === undefined ? {} : { versionId }),
  };
}

// ---- Responses

/** GetObject's `response-*` query parameters, which override the stored headers in the response. */
const RESPONSE_OVERRIDES = [
  ['response-content-type', 'content-type'],
  ['response-content-language', 'content-language'],
  ['response-expires', 'expires'],
  ['response-cache-control', 'cache-control'],
  ['response-content-disposition', 'content-disposition'],
  ['response-content-encoding', 'content-encoding'],
] as const;

function objectHeaders(doc: ObjectDoc, query: URLSearchParams): Record<string, string> {
  const headers: Record<string, string> = {
    'content-type': doc.contentType,
    etag: doc.etag,
    'last-modified': new Date(doc.lastModified).toUTCString(),
    'accept-ranges': 'bytes',
    ...doc.headers,
  };
  for (const [name, value] of Object.entries(doc.metadata)) headers[`x-amz-meta-${name}`] = value;
  // HeadObject/GetObject: S3 sends x-amz-storage-class for every class but STANDARD.
  if (doc.storageClass) headers['x-amz-storage-class'] = doc.storageClass;
  if (doc.tags.length > 0) headers['x-amz-tagging-count'] = String(doc.tags.length);
  for (const [parameter, name] of RESPONSE_OVERRIDES) {
    const value = query.get(parameter);
    if (value !== null) headers[name] = value;
  }
  return headers;
}

function checksumHeaders(checksum: Checksum | undefined): Record<string, string> {
  if (!checksum) return {};
  return {
    [`x-amz-checksum-${checksum.algorithm.toLowerCase()}`]: checksum.value,
    'x-amz-checksum-type': 'FULL_OBJECT',
  };
}

/** `Range: bytes=a-b | a- | -n`; a range S3 cannot parse is ignored, one past the end is refused. */
function parseRange(value: string, size: number): { start: number; end: number } | undefined {
  const match = /^bytes=(\d*)-(\d*)$/.exec(value.trim());
  if (!match || (match[1] === '' && match[2] === '')) return undefined;
  const [, first = '', last = ''] = match;
  const unsatisfiable = new S3Error('InvalidRange', 'The requested range is not satisfiable', 416, {
    RangeRequested: value,
    ActualObjectSize: String(size),
  });
  if (first === '') {
    if (Number(last) === 0 || size === 0) throw unsatisfiable;
    return { start: Math.max(0, size - Number(last)), end: size - 1 };
  }
  const start = Number(first);
  if (last !== '' && Number(last) < start) return undefined;
  if (start >= size) throw unsatisfiable;
  return { start, end: last === '' ? size - 1 : Math.min(Number(last), size - 1) };
}

/** If-Match / If-Unmodified-Since fail with 412; If-None-Match / If-Modified-Since answer 304. */
function checkPreconditions(request: HttpRequest, doc: ObjectDoc): HttpResponse | undefined {
  const modifiedSince = (date: string) => Date.parse(doc.lastModified) > Date.parse(date);
  const ifMatch = header(request, 'if-match');
  const ifUnmodifiedSince = header(request, 'if-unmodified-since');
  if (
    ifMatch !== undefined
      ? !etagMatches(doc.etag, ifMatch)
      : ifUnmodifiedSince && modifiedSince(ifUnmodifiedSince)
  ) {
    throw preconditionFailed(ifMatch !== undefined ? 'If-Match' : 'If-Unmodified-Since');
  }
  const ifNoneMatch = header(request, 'if-none-match');
  const ifModifiedSince = header(request, 'if-modified-since');
  const unchanged =
    ifNoneMatch !== undefined
      ? etagMatches(doc.etag, ifNoneMatch)
      : ifModifiedSince !== undefined && !modifiedSince(ifModifiedSince);
  if (!unchanged) return undefined;
  return {
    statusCode: 304,
    headers: { etag: doc.etag, 'last-modified': new Date(doc.lastModified).toUTCString() },
  };
}

function etagMatches(etag: string, condition: string): boolean {
  return condition
    .split(',')
    .map((tag) => tag.trim().replace(/^W\//, ''))
    .some((tag) => tag === '*' || tag === etag || `"${tag}"` === etag);
}

/** Since Nov 2024 S3 also reports `x-amz-transition-default-minimum-object-size` with lifecycle calls. */
function transitionDefault(request: HttpRequest): Record<string, string> {
  return {
    'x-amz-transition-default-minimum-object-size':
      header(request, 'x-amz-transition-default-minimum-object-size') ?? 'all_storage_classes_128K',
  };
}

function etagOf(bytes: Buffer): string {
  return `"${createHash('md5').update(bytes).digest('hex')}"`;
}

function now(): string {
  return new Date(Math.floor(Date.now() / 1000) * 1000).toISOString();
}

/** A bucket sub-resource never set: `NoSuchTagSet`, `NoSuchLifecycleConfiguration`. */
function missing(code: string, message: string, bucket: string): never {
  throw new S3Error(code, message, 404, { BucketName: bucket });
}

function preconditionFailed(condition: string): S3Error {
  return new S3Error(
    'PreconditionFailed',
    'At least one of the pre-conditions you specified did not hold',
    412,
    {
      Condition: condition,
    },
  );
}

function notImplemented(what: string): S3Error {
  return new S3Error('NotImplemented', `${what} is not implemented by the sandbox's S3.`, 501);
}

function methodNotAllowed(method: string): S3Error {
  return new S3Error('MethodNotAllowed', 'The specified method is not allowed against this resource.', 405, {
    Method: method,
  });
}

function asAwsError(error: unknown): AwsError {
  if (error instanceof AwsError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new S3Error('InternalError', `Sandbox failure: ${message}`, 500);
}
