import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomUUID,
  sign,
  verify,
} from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { ALL_SCOPES, API_AUDIENCE } from '../../schema/api/routes.ts';

/**
 * The sandbox's stand-in for Cognito: an RS256 signing key kept in the sandbox directory (made once, so that
 * tokens outlive a restart on the same port), tokens shaped like Cognito access tokens (`scope` space-separated,
 * `client_id`, `token_use: access`, plus `aud`), a JWKS for `/.well-known/jwks.json`, and the checks API
 * Gateway's JWT authorizer makes.
 */

/** Where the key and the issuer description live, under the sandbox directory. */
export const jwtDir = (sandboxDir: string): string => join(sandboxDir, 'api');
const keyFile = (sandboxDir: string) => join(jwtDir(sandboxDir), 'jwt-signing-key.pem');
const issuerFile = (sandboxDir: string) => join(jwtDir(sandboxDir), 'issuer.json');

const IssuerFile = z.object({ issuer: z.string(), audience: z.string() });

const b64url = (data: string | Buffer): string => Buffer.from(data).toString('base64url');

export interface MintOptions {
  /** The caller's id; `sandbox-dev` by default. */
  readonly sub?: string;
  /** Scopes in the token; every scope of the API by default. */
  readonly scopes?: readonly string[];
  readonly expiresInSeconds?: number;
}

/** The claims a verified token carries, as the authorizer hands them on. */
export type Claims = Record<string, string | number | boolean | string[]>;

export type Verification =
  | { readonly ok: true; readonly claims: Claims; readonly scopes: string[] }
  | { readonly ok: false; readonly reason: string };

const Header = z.object({ alg: z.string(), kid: z.string().optional(), typ: z.string().optional() });
const Payload = z
  .object({
    iss: z.string(),
    sub: z.string().optional(),
    aud: z.union([z.string(), z.array(z.string())]).optional(),
    client_id: z.string().optional(),
    exp: z.number(),
    nbf: z.number().optional(),
    iat: z.number().optional(),
    scope: z.string().optional(),
  })
  .catchall(z.union([z.string(), z.number(), z.boolean(), z.array(z.string())]));

export const DEFAULT_TOKEN_SECONDS = 3600;

export class LocalIssuer {
  readonly issuer: string;
  readonly audience: string;
  readonly kid: string;
  readonly #privateKey: KeyObject;
  readonly #publicKey: KeyObject;

  constructor(issuer: string, audience: string, privateKey: KeyObject) {
    this.issuer = issuer;
    this.audience = audience;
    this.#privateKey = privateKey;
    this.#publicKey = createPublicKey(privateKey);
    const jwk = this.#publicKey.export({ format: 'jwk' });
    // RFC 7638 thumbprint: the key id changes exactly when the key does.
    this.kid = b64url(
      createHash('sha256')
        .update(JSON.stringify({ e: jwk.e, kty: jwk.kty, n: jwk.n }))
        .digest(),
    ).slice(0, 22);
  }

  /** The issuer's keys as `/.well-known/jwks.json` serves them. */
  jwks(): { keys: Record<string, unknown>[] } {
    return {
      keys: [{ ...this.#publicKey.export({ format: 'jwk' }), kid: this.kid, alg: 'RS256', use: 'sig' }],
    };
  }

  mint(options: MintOptions = {}): string {
    const now = Math.floor(Date.now() / 1000);
    const sub = options.sub ?? 'sandbox-dev';
    const payload = {
      iss: this.issuer,
      sub,
      aud: this.audience,
      client_id: sub,
      token_use: 'access',
      scope: (options.scopes ?? ALL_SCOPES).join(' '),
      iat: now,
      nbf: now,
      exp: now + (options.expiresInSeconds ?? DEFAULT_TOKEN_SECONDS),
      jti: randomUUID(),
    };
    const input = `${b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid: this.kid }))}.${b64url(JSON.stringify(payload))}`;
    return `${input}.${b64url(sign('sha256', Buffer.from(input), this.#privateKey))}`;
  }

  /**
   * API Gateway's JWT authorizer checks: an RS256 signature by a key of the issuer, `iss`, `aud` or `client_id`
   * among the audiences, `exp` in the future and `nbf` in the past. `scopes` are the `scope` claim's words.
   */
  verify(token: string): Verification {
    const parts = token.split('.');
    if (parts.length !== 3) return { ok: false, reason: 'not a JWS' };
    const [headerText = '', payloadText = '', signature = ''] = parts;
    const header = Header.safeParse(parseJson(headerText));
    if (!header.success || header.data.alg !== 'RS256') return { ok: false, reason: 'not RS256' };
    if (header.data.kid !== undefined && header.data.kid !== this.kid)
      return { ok: false, reason: 'unknown kid' };
    const signed = verify(
      'sha256',
      Buffer.from(`${headerText}.${payloadText}`),
      this.#publicKey,
      Buffer.from(signature, 'base64url'),
    );
    if (!signed) return { ok: false, reason: 'bad signature' };
    const payload = Payload.safeParse(parseJson(payloadText));
    if (!payload.success) return { ok: false, reason: 'malformed claims' };
    const claims = payload.data;
    const now = Math.floor(Date.now() / 1000);
    if (claims.iss !== this.issuer) return { ok: false, reason: 'wrong issuer' };
    const audiences = [claims.aud ?? [], claims.client_id ?? []].flat();
    if (!audiences.includes(this.audience)) return { ok: false, reason: 'wrong audience' };
    if (claims.exp <= now) return { ok: false, reason: 'expired' };
    if (claims.nbf !== undefined && claims.nbf > now) return { ok: false, reason: 'not yet valid' };
    const scopes = (claims.scope ?? '').split(' ').filter((scope) => scope !== '');
    return { ok: true, claims, scopes };
  }
}

function parseJson(segment: string): unknown {
  try {
    return JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
}

/** The sandbox's signing key: read from its directory, or made and kept there (owner-only) on first use. */
async function signingKey(sandboxDir: string): Promise<KeyObject> {
  const file = keyFile(sandboxDir);
  if (existsSync(file)) return createPrivateKey(await readFile(file, 'utf8'));
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  await mkdir(jwtDir(sandboxDir), { recursive: true });
  await writeFile(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), {
    mode: 0o600,
    flag: 'wx',
  }).catch((error: unknown) => {
    // Another process made it first: theirs is the key.
    if (!(error instanceof Error && 'code' in error && error.code === 'EEXIST')) throw error;
  });
  return createPrivateKey(await readFile(file, 'utf8'));
}

/** The issuer of a sandbox whose API answers at `issuer`; writes `issuer.json` for the token script. */
export async function startIssuer(sandboxDir: string, issuer: string): Promise<LocalIssuer> {
  const local = new LocalIssuer(issuer, API_AUDIENCE, await signingKey(sandboxDir));
  await writeFile(issuerFile(sandboxDir), `${JSON.stringify({ issuer, audience: API_AUDIENCE }, null, 2)}\n`);
  return local;
}

/** The issuer of a sandbox that ran (or runs) in `sandboxDir`, to mint tokens from outside it. */
export async function openIssuer(sandboxDir: string): Promise<LocalIssuer> {
  const file = issuerFile(sandboxDir);
  if (!existsSync(file)) throw new Error(`${file} does not exist: start the sandbox (npm start) first`);
  const { issuer, audience } = IssuerFile.parse(JSON.parse(await readFile(file, 'utf8')));
  return new LocalIssuer(issuer, audience, createPrivateKey(await readFile(keyFile(sandboxDir), 'utf8')));
}
