import { createHash, randomBytes } from 'node:crypto';
import { AwsError, type HttpRequest, type HttpResponse, type ServiceHandler } from '../protocol.ts';
import type { Collection } from '../store.ts';
import { KeyedLock, type ServiceDeps } from './deps.ts';
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
 * The S3 subset the product uses, in REST-XML with path-style addressing (`/bucket/key`), which the SDK
 * uses for an IP endpoint. Buckets and their tagging, lifecycle and versioning status; objects with
 * metadata, tags, ranges, copies and ListObjectsV2. No versions, multipart uploads, ACLs or policies.
 */
export function createS3(deps: ServiceDeps): ServiceHandler {
  const s3 = new S3(deps);
  return {
    service: 's3',
    signingName: 's3',
    async handle(request, context) {
      const requestId = newRequestId();
      let response: HttpResponse;
      try {
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
  readonly #owner: string;
  readonly #buckets: Collection<BucketDoc>;
  /** Keyed `<bucket>/<key>`: a bucket's objects are the items under its name and a slash, in key order. */
  readonly #objects: Collection<ObjectDoc>;
  // Each bucket sub-resource is its own item, so that setting one never overwrites another.
  readonly #tagging: Collection<Tag[]>;
  readonly #lifecycle: Collection<LifecycleRule[]>;
  readonly #versioning: Collection<VersioningStatus>;
  /** Writes of one object, one at a time: tagging rewrites the object, and must not undo a put or delete. */
  readonly #writes = new KeyedLock();

  constructor(deps: ServiceDeps) {
    this.#region = deps.region;
    this.#owner = createHash('sha256').update(deps.accountId).digest('hex');
    this.#buckets = deps.store.collection('s3', 'bucket');
    this.#objects = deps.store.collection('s3', 'object');
    this.#tagging = deps.store.collection('s3', 'bucket-tagging');
    this.#lifecycle = deps.store.collection('s3', 'bucket-lifecycle');
    this.#versioning = deps.store.collection('s3', 'bucket-versioning');
  }

  route(request: HttpRequest): Call {
    const { bucket, key } = splitPath(request.path);
    const { method, query } = request;
    if (bucket === undefined) {
      if (method !== 'GET') throw methodNotAllowed(method);
      return this.#listBuckets(query);
    }
    if (key === undefined) {
      const subresource = ['tagging', 'lifecycle', 'versioning', 'location', 'delete'].find((name) =>
        query.has(name),
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
    switch (`${method} ${query.has('tagging') ? 'tagging' : ''}`) {
      case 'PUT ':
        return header(request, 'x-amz-copy-source') === undefined
          ? this.#putObject(bucket, key, request)
          : this.#copyObject(bucket, key, request);
      case 'GET ':
        return this.#getObject(bucket, key, request, 'GetObject');
      case 'HEAD ':
        return this.#getObject(bucket, key, request, 'HeadObject');
      case 'DELETE ':
        return call('DeleteObject', key, async () => {
          const id = `${bucket}/${key}`;
          if (!(await this.#writes.run(id, () => this.#objects.delete(id)))) await this.#bucket(bucket);
          return { statusCode: 204 };
        });
      case 'PUT tagging': {
        const tags = parseTagging(readPayload(request).bytes, 'object');
        return call('PutObjectTagging', key, async () => {
          await this.#retag(bucket, key, tags);
          return { statusCode: 200 };
        });
      }
      case 'GET tagging':
        return call('GetObjectTagging', key, async () => {
          const { tags } = await this.#objectDoc(bucket, key);
          return xmlResponse('Tagging', taggingXml(tags));
        });
      case 'DELETE tagging':
        return call('DeleteObjectTagging', key, async () => {
          await this.#retag(bucket, key, []);
          return { statusCode: 204 };
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
      if ((await this.#objects.list({ prefix: `${bucket}/`, limit: 1 })).length > 0) {
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
    const doc: ObjectDoc = {
      ...describe(request),
      size: bytes.length,
      etag: etagOf(bytes),
      lastModified: now(),
      tags: tagging === undefined ? [] : parseTaggingHeader(tagging),
      ...(checksum ? { checksum } : {}),
    };
    const ifNoneMatch = header(request, 'if-none-match');
    const ifMatch = header(request, 'if-match');
    return call('PutObject', key, async () => {
      await this.#bucket(bucket);
      const id = `${bucket}/${key}`;
      await this.#writes.run(id, async () => {
        if (ifNoneMatch === '*') {
          if (!(await this.#objects.insert(id, doc, bytes))) throw preconditionFailed('If-None-Match');
          return;
        }
        if (ifMatch !== undefined) {
          const current = await this.#objects.get(id);
          if (!current) throw noSuchKey(key);
          if (!etagMatches(current.etag, ifMatch)) throw preconditionFailed('If-Match');
        }
        await this.#objects.put(id, doc, bytes);
      });
      return { statusCode: 200, headers: { etag: doc.etag, ...checksumHeaders(doc.checksum) } };
    });
  }

  #getObject(bucket: string, key: string, request: HttpRequest, operation: 'GetObject' | 'HeadObject'): Call {
    const range = header(request, 'range');
    const withChecksum = header(request, 'x-amz-checksum-mode') === 'ENABLED';
    return call(operation, key, async () => {
      const [doc, bytes] =
        operation === 'GetObject'
          ? await this.#read(bucket, key)
          : [await this.#objectDoc(bucket, key), Buffer.alloc(0)];
      const notModified = checkPreconditions(request, doc);
      if (notModified) return notModified;
      const headers = objectHeaders(doc, request.query);
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
    if (
      source.bucket === bucket &&
      source.key === key &&
      !replaceMetadata &&
      header(request, 'x-amz-storage-class') === undefined
    ) {
      throw new S3Error(
        'InvalidRequest',
        "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
      );
    }
    const description = replaceMetadata ? describe(request) : undefined;
    const tags = replaceTags ? parseTaggingHeader(header(request, 'x-amz-tagging') ?? '') : undefined;
    return call('CopyObject', key, async () => {
      await this.#bucket(bucket);
      const [original, bytes] = await this.#read(source.bucket, source.key);
      const copy: ObjectDoc = {
        ...original,
        ...description,
        tags: tags ?? original.tags,
        lastModified: now(),
      };
      const id = `${bucket}/${key}`;
      await this.#writes.run(id, () => this.#objects.put(id, copy, bytes));
      return xmlResponse(
        'CopyObjectResult',
        leaf('ETag', copy.etag),
        leaf('LastModified', copy.lastModified),
        copy.checksum ? leaf(`Checksum${copy.checksum.algorithm}`, copy.checksum.value) : '',
      );
    });
  }

  #deleteObjects(bucket: string, request: HttpRequest): Call {
    const document = parseXml(readPayload(request).bytes, 'Delete');
    const keys = elementsOf(document, 'Object').map((object) => {
      const key = textOf(object, 'Key');
      if (key === undefined) throw malformedXml();
      return key;
    });
    if (keys.length === 0 || keys.length > 1000) throw malformedXml();
    const quiet = textOf(document, 'Quiet')?.trim() === 'true';
    return call('DeleteObjects', keys.join(','), async () => {
      await this.#bucket(bucket);
      const results = await Promise.all(
        keys.map(async (key) => {
          try {
            validateKey(key);
            const id = `${bucket}/${key}`;
            await this.#writes.run(id, () => this.#objects.delete(id));
            return quiet ? '' : node('Deleted', leaf('Key', key));
          } catch (error) {
            const { code, message } = asAwsError(error);
            return node('Error', leaf('Key', key), leaf('Code', code), leaf('Message', message));
          }
        }),
      );
      return xmlResponse('DeleteResult', ...results);
    });
  }

  /** Replaces an object's tags, which S3 keeps with the object: the bytes are written back unchanged. */
  async #retag(bucket: string, key: string, tags: readonly Tag[]): Promise<void> {
    const id = `${bucket}/${key}`;
    await this.#writes.run(id, async () => {
      const [doc, bytes] = await this.#read(bucket, key);
      await this.#objects.put(id, { ...doc, tags }, bytes);
    });
  }

  async #objectDoc(bucket: string, key: string): Promise<ObjectDoc> {
    const doc = await this.#objects.get(`${bucket}/${key}`);
    if (doc) return doc;
    await this.#bucket(bucket);
    throw noSuchKey(key);
  }

  /** An object and its bytes, from one version: a write between the two reads is caught by the ETag. */
  async #read(bucket: string, key: string): Promise<[ObjectDoc, Buffer]> {
    const id = `${bucket}/${key}`;
    for (let attempt = 1; ; attempt++) {
      const [doc, bytes] = await Promise.all([this.#objects.get(id), this.#objects.getBody(id)]);
      if (!doc || !bytes) {
        await this.#bucket(bucket);
        throw noSuchKey(key);
      }
      if (etagOf(bytes) === doc.etag || attempt === 5) return [doc, bytes];
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
            leaf('StorageClass', 'STANDARD'),
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

/** `x-amz-metadata-directive` / `x-amz-tagging-directive`: whether to REPLACE rather than COPY. */
function directive(request: HttpRequest, name: string): boolean {
  const value = header(request, name) ?? 'COPY';
  if (value !== 'COPY' && value !== 'REPLACE') throw invalidArgument(`Unknown ${name}.`, name, value);
  return value === 'REPLACE';
}

function parseCopySource(value: string): { bucket: string; key: string } {
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
  return { bucket: source.slice(0, slash), key: source.slice(slash + 1) };
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
