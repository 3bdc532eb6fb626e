// S3's REST-XML wire format: XML documents in and out, error documents, request payload framing and checksums.
import { createHash, randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { AwsError, type HttpRequest, type HttpResponse } from '../protocol.ts';
import { leaf, node } from '../xml.ts';

export const S3_XMLNS = 'http://s3.amazonaws.com/doc/2006-03-01/';

/** An S3 error; `details` become extra elements of the error document (`Key`, `BucketName`, …). */
export class S3Error extends AwsError {
  readonly details: Readonly<Record<string, string>>;
  /** Response headers S3 sends with this error, e.g. `x-amz-delete-marker` with a 404 on a deleted key. */
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    code: string,
    message: string,
    statusCode = 400,
    details: Record<string, string> = {},
    headers: Record<string, string> = {},
  ) {
    super(code, message, statusCode);
    this.details = details;
    this.headers = headers;
  }
}

export const noSuchBucket = (bucket: string): S3Error =>
  new S3Error('NoSuchBucket', 'The specified bucket does not exist', 404, { BucketName: bucket });
export const noSuchKey = (key: string): S3Error =>
  new S3Error('NoSuchKey', 'The specified key does not exist.', 404, { Key: key });
export const malformedXml = (): S3Error =>
  new S3Error(
    'MalformedXML',
    'The XML you provided was not well-formed or did not validate against our published schema',
  );
export const invalidArgument = (message: string, name?: string, value?: string): S3Error =>
  new S3Error(
    'InvalidArgument',
    message,
    400,
    name === undefined ? {} : { ArgumentName: name, ArgumentValue: value ?? '' },
  );

// ---- XML out

export { escapeXml, leaf, node } from '../xml.ts';

/** A parsed element written back: repeated children as repeated elements. */
export function xmlOf(name: string, value: XmlValue): string {
  if (Array.isArray(value)) return value.map((item) => xmlOf(name, item)).join('');
  if (typeof value === 'string') return leaf(name, value);
  return node(
    name,
    ...Object.entries(value).map(([child, item]) => (item === undefined ? '' : xmlOf(child, item))),
  );
}

export function xmlDocument(root: string, ...children: string[]): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${root} xmlns="${S3_XMLNS}">${children.join('')}</${root}>`;
}

export function xmlResponse(root: string, ...children: string[]): HttpResponse {
  return {
    statusCode: 200,
    headers: { 'content-type': 'application/xml' },
    body: xmlDocument(root, ...children),
  };
}

/** S3's error document; HEAD responses carry none, and the SDK then names the error by status (`NotFound`). */
export function errorResponse(error: AwsError, request: HttpRequest, requestId: string): HttpResponse {
  const headers: Record<string, string> = {
    ...(error instanceof S3Error ? error.headers : {}),
    'x-amz-request-id': requestId,
  };
  if (request.method === 'HEAD') return { statusCode: error.statusCode, headers };
  const details = error instanceof S3Error ? error.details : {};
  const body =
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    node(
      'Error',
      leaf('Code', error.code),
      leaf('Message', error.message),
      ...Object.entries(details).map(([name, value]) => leaf(name, value)),
      leaf('RequestId', requestId),
    );
  return { statusCode: error.statusCode, headers: { ...headers, 'content-type': 'application/xml' }, body };
}

// ---- XML in

/** A parsed XML element: text, or child elements by name (repeated ones as arrays). */
export type XmlValue = string | XmlElement | XmlValue[];
export interface XmlElement {
  readonly [name: string]: XmlValue | undefined;
}

const parser = new XMLParser({
  ignoreAttributes: true,
  ignoreDeclaration: true,
  ignorePiTags: true,
  removeNSPrefix: true,
  parseTagValue: false,
  trimValues: false,
  htmlEntities: true,
});

/** Parses a request document, checking its root element's name; anything else is `MalformedXML`. */
export function parseXml(body: Buffer, root: string): XmlElement {
  const text = body.toString('utf8');
  if (XMLValidator.validate(text) !== true) throw malformedXml();
  // The parser yields only strings, objects and arrays of them: the shape of XmlValue.
  const document = parser.parse(text) as XmlElement;
  const names = Object.keys(document);
  if (names.length !== 1 || names[0] !== root) throw malformedXml();
  return asElement(document[root]);
}

/** The child elements of that name (zero or more). */
export function elementsOf(parent: XmlElement, name: string): XmlElement[] {
  const value = parent[name];
  if (value === undefined) return [];
  return (Array.isArray(value) ? value : [value]).map(asElement);
}

/** The one child element of that name, if present. */
export function elementOf(parent: XmlElement, name: string): XmlElement | undefined {
  const value = parent[name];
  if (value === undefined) return undefined;
  if (Array.isArray(value)) throw malformedXml();
  return asElement(value);
}

/** The text of the one child element of that name, if present. */
export function textOf(parent: XmlElement, name: string): string | undefined {
  const value = parent[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw malformedXml();
  return value;
}

/** An element with children; whitespace-only text (pretty-printing) counts as no children. */
export function asElement(value: XmlValue | undefined): XmlElement {
  if (typeof value === 'string') {
    if (value.trim() !== '') throw malformedXml();
    return {};
  }
  if (value === undefined || Array.isArray(value)) throw malformedXml();
  return value;
}

// ---- Payloads: aws-chunked framing and checksums

export const CHECKSUM_ALGORITHMS = ['CRC32', 'CRC32C', 'SHA1', 'SHA256'] as const;
export type ChecksumAlgorithm = (typeof CHECKSUM_ALGORITHMS)[number];

export interface Checksum {
  readonly algorithm: ChecksumAlgorithm;
  /** Base64 of the digest, as in `x-amz-checksum-<algorithm>`. */
  readonly value: string;
}

export interface Payload {
  readonly bytes: Buffer;
  /** The checksum the client sent and the bytes matched. */
  readonly checksum?: Checksum;
}

export function header(request: HttpRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value.join(',') : value;
}

/**
 * The request body as the client meant it: aws-chunked framing (which the SDK uses for streamed bodies)
 * removed, and every checksum sent, in headers or trailers, verified against the bytes.
 */
export function readPayload(request: HttpRequest): Payload {
  const chunked =
    (header(request, 'content-encoding') ?? '')
      .split(',')
      .some((coding) => coding.trim() === 'aws-chunked') ||
    (header(request, 'x-amz-content-sha256') ?? '').startsWith('STREAMING-');
  const { bytes, trailers } = chunked
    ? decodeAwsChunked(request.body)
    : { bytes: request.body, trailers: new Map<string, string>() };
  const declared = header(request, 'x-amz-decoded-content-length');
  if (chunked && declared !== undefined && Number(declared) !== bytes.length) {
    throw new S3Error(
      'IncompleteBody',
      'You did not provide the number of bytes specified by the Content-Length',
    );
  }
  const md5 = header(request, 'content-md5');
  if (md5 !== undefined) {
    if (Buffer.from(md5, 'base64').length !== 16) {
      throw new S3Error('InvalidDigest', 'The Content-MD5 you specified was invalid.');
    }
    if (createHash('md5').update(bytes).digest('base64') !== md5) {
      throw new S3Error('BadDigest', 'The Content-MD5 you specified did not match what we received.');
    }
  }
  let checksum: Checksum | undefined;
  for (const algorithm of CHECKSUM_ALGORITHMS) {
    const name = `x-amz-checksum-${algorithm.toLowerCase()}`;
    const value = header(request, name) ?? trailers.get(name);
    if (value === undefined) continue;
    if (checksumOf(algorithm, bytes) !== value) {
      throw new S3Error('BadDigest', `The ${algorithm} you specified did not match the calculated checksum.`);
    }
    checksum ??= { algorithm, value };
  }
  return checksum ? { bytes, checksum } : { bytes };
}

/**
 * Decodes `<hex size>[;chunk-signature=…]\r\n<bytes>\r\n … 0\r\n<trailer>:<value>\r\n\r\n`.
 * Chunk and trailer signatures are not checked, as the sandbox checks no signature.
 */
function decodeAwsChunked(body: Buffer): { bytes: Buffer; trailers: Map<string, string> } {
  const incomplete = () =>
    new S3Error('IncompleteBody', 'The request body is not valid aws-chunked encoding');
  const chunks: Buffer[] = [];
  let at = 0;
  const line = (): string => {
    const end = body.indexOf('\r\n', at);
    if (end < 0) throw incomplete();
    const text = body.toString('latin1', at, end);
    at = end + 2;
    return text;
  };
  for (;;) {
    const size = /^([0-9a-fA-F]+)(;|$)/.exec(line().trim())?.[1];
    if (size === undefined) throw incomplete();
    const length = Number.parseInt(size, 16);
    if (length === 0) break;
    if (at + length + 2 > body.length || body.toString('latin1', at + length, at + length + 2) !== '\r\n') {
      throw incomplete();
    }
    chunks.push(body.subarray(at, at + length));
    at += length + 2;
  }
  const trailers = new Map<string, string>();
  while (at < body.length) {
    const text = line();
    if (text === '') break;
    const colon = text.indexOf(':');
    if (colon > 0) trailers.set(text.slice(0, colon).trim().toLowerCase(), text.slice(colon + 1).trim());
  }
  return { bytes: Buffer.concat(chunks), trailers };
}

/** Base64 of the checksum, big-endian for the CRCs, as S3 and the SDK write it. */
export function checksumOf(algorithm: ChecksumAlgorithm, bytes: Buffer): string {
  switch (algorithm) {
    case 'CRC32':
      return uint32Base64(crc32(bytes));
    case 'CRC32C':
      return uint32Base64(crc32c(bytes));
    case 'SHA1':
      return createHash('sha1').update(bytes).digest('base64');
    case 'SHA256':
      return createHash('sha256').update(bytes).digest('base64');
  }
}

function uint32Base64(value: number): string {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(value >>> 0);
  return bytes.toString('base64');
}

const CRC32C_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32c(bytes: Buffer): number {
  let crc = 0xffffffff;
  for (const byte of bytes) crc = (CRC32C_TABLE[(crc ^ byte) & 0xff] ?? 0) ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

export function newRequestId(): string {
  return randomBytes(8).toString('hex').toUpperCase();
}
