// S3's server-side encryption headers: what a write asks for, checked as S3 checks it, and what S3 echoes back.
import { createHash } from 'node:crypto';
import type { HttpRequest } from '../protocol.ts';
import { header, invalidArgument, S3Error } from './s3-wire.ts';

/** How an object version is encrypted at rest. */
export interface Encryption {
  readonly algorithm: 'AES256' | 'aws:kms' | 'aws:kms:dsse';
  /** The KMS key's ARN (SSE-KMS, DSSE-KMS): S3 reports the ARN whichever form of the key the request named. */
  readonly keyArn?: string;
  /** The additional encryption context as the request sent it: base64 of a JSON string-to-string map. */
  readonly context?: string;
}

/** What the sandbox's S3 knows of KMS: the customer managed keys that exist, by ARN. */
export interface KmsKeys {
  readonly keyArns: readonly string[];
}

const ALGORITHMS: readonly string[] = ['AES256', 'aws:kms', 'aws:kms:dsse'];
const KEY_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const KEY_ARN = /^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[0-9a-f-]+$/;

/** The objects S3 encrypts without being asked: since January 2023 every new object gets SSE-S3 at least. */
export const DEFAULT_ENCRYPTION: Encryption = { algorithm: 'AES256' };

/**
 * The encryption a PutObject or CopyObject asks for (`x-amz-server-side-encryption`, `-aws-kms-key-id`,
 * `-context`), or the bucket's default, SSE-S3. As S3 answers (API reference, PutObject; "Specifying server-side
 * encryption with AWS KMS (SSE-KMS)"): an algorithm other than AES256, aws:kms and aws:kms:dsse is 400
 * InvalidArgument "The encryption method specified is not supported"; a key id or context without aws:kms is 400
 * InvalidArgument; a context that is not base64 of a JSON string map is 400 InvalidArgument; aws:kms without a key
 * id uses the account's AWS managed key `aws/s3`; a key S3 cannot find in KMS is 400 `KMS.NotFoundException`.
 */
export function requestedEncryption(
  request: HttpRequest,
  kms: KmsKeys,
  account: { readonly region: string; readonly accountId: string },
): Encryption {
  const algorithm = header(request, 'x-amz-server-side-encryption');
  const keyId = header(request, 'x-amz-server-side-encryption-aws-kms-key-id');
  const context = header(request, 'x-amz-server-side-encryption-context');
  if (algorithm === undefined && keyId === undefined && context === undefined) return DEFAULT_ENCRYPTION;
  if (algorithm !== undefined && !ALGORITHMS.includes(algorithm)) {
    throw invalidArgument(
      'The encryption method specified is not supported',
      'x-amz-server-side-encryption',
      algorithm,
    );
  }
  if (algorithm === 'AES256' && keyId === undefined && context === undefined) return { algorithm };
  if (algorithm !== 'aws:kms' && algorithm !== 'aws:kms:dsse') {
    throw invalidArgument(
      'Server Side Encryption with AWS KMS managed key requires HTTP header x-amz-server-side-encryption : aws:kms',
      'x-amz-server-side-encryption',
      algorithm ?? 'null',
    );
  }
  if (context !== undefined) checkContext(context);
  const keyArn =
    keyId === undefined || keyId === '' ? awsManagedKeyArn(account) : resolveKey(keyId, kms, account);
  return { algorithm, keyArn, ...(context === undefined ? {} : { context }) };
}

/** The response headers that say how a version is encrypted (PutObject, GetObject, HeadObject, CopyObject). */
export function encryptionHeaders(
  encryption: Encryption | undefined,
  withContext = false,
): Record<string, string> {
  const { algorithm, keyArn, context } = encryption ?? DEFAULT_ENCRYPTION;
  return {
    'x-amz-server-side-encryption': algorithm,
    ...(keyArn ? { 'x-amz-server-side-encryption-aws-kms-key-id': keyArn } : {}),
    ...(withContext && context ? { 'x-amz-server-side-encryption-context': context } : {}),
  };
}

function checkContext(context: string): void {
  const refuse = () =>
    invalidArgument(
      "The header 'x-amz-server-side-encryption-context' shall be Base64-encoded UTF-8 string holding JSON which represents a string-string map",
      'x-amz-server-side-encryption-context',
      context,
    );
  let parsed: unknown;
  try {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(context) || context.length % 4 !== 0) throw refuse();
    parsed = JSON.parse(Buffer.from(context, 'base64').toString('utf8'));
  } catch {
    throw refuse();
  }
  if (
    typeof parsed !== 'object' ||
    parsed === null ||
    Array.isArray(parsed) ||
    !Object.values(parsed).every((value) => typeof value === 'string')
  ) {
    throw refuse();
  }
}

/** The key a request names, by key ARN or key id, as its ARN; an unknown key is what S3 gets back from KMS. */
function resolveKey(keyId: string, kms: KmsKeys, account: { region: string; accountId: string }): string {
  const arn = KEY_ID.test(keyId)
    ? `arn:aws:kms:${account.region}:${account.accountId}:key/${keyId}`
    : KEY_ARN.test(keyId)
      ? keyId
      : undefined;
  if (arn !== undefined && kms.keyArns.includes(arn)) return arn;
  // S3 passes the key to KMS, whose NotFoundException it returns as a 400 of its own, prefixed `KMS.`.
  throw new S3Error(
    'KMS.NotFoundException',
    arn === undefined ? `Invalid keyId ${keyId}` : `Key '${arn}' does not exist`,
  );
}

/** The account's AWS managed key for S3 (`alias/aws/s3`): one per account and region, made on first use. */
function awsManagedKeyArn(account: { region: string; accountId: string }): string {
  const hex = createHash('sha256').update(`aws/s3:${account.accountId}:${account.region}`).digest('hex');
  const id = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
  return `arn:aws:kms:${account.region}:${account.accountId}:key/${id}`;
}
