import { createHash, createHmac, pbkdf2 } from 'node:crypto';
import { createRequire } from 'node:module';
import { promisify } from 'node:util';

/** The functions of `pg`'s crypto module that its SCRAM-SHA-256 client calls (pg/lib/crypto/sasl.js). */
interface PgCrypto {
  deriveKey(password: string, salt: Uint8Array, iterations: number): Promise<ArrayBuffer | Buffer>;
  hmacSha256(key: ArrayBuffer | Buffer, message: string): Promise<ArrayBuffer | Buffer>;
  sha256(data: ArrayBuffer | Buffer): Promise<ArrayBuffer | Buffer>;
}

const derive = promisify(pbkdf2);
const bytes = (data: ArrayBuffer | Buffer): Buffer =>
  Buffer.isBuffer(data) ? data : Buffer.from(new Uint8Array(data));
/** Salted passwords kept: one per (role, password, salt) in use; a benchmark's thousands of roles come and go. */
const MAX_SALTED = 2_000;
let installed = false;

/**
 * Makes `pg`'s SCRAM-SHA-256 login cheap for the sandbox's Data API, which opens a connection for every tenant
 * database it is asked about (a fleet migration: one per tenant). `pg` computes the proof with WebCrypto: four HMACs
 * through WebCrypto's job machinery and the PBKDF2 of the password, about 6 ms of the one event loop that serves
 * every AWS call of the sandbox (measured in a CPU profile of a fleet migration). Here the same values come from
 * node:crypto's one-shot functions, and the salted password, the same for every login of a role until its password
 * changes (which changes the salt), is derived once. The proof is the same bytes; PostgreSQL still checks it.
 * `pg` resolves these functions on its module object at each login, so replacing them there is enough.
 */
export function fastScram(): void {
  if (installed) return;
  installed = true;
  const crypto = createRequire(import.meta.url)('pg/lib/crypto/utils') as PgCrypto;
  const salted = new Map<string, Promise<Buffer>>();
  crypto.hmacSha256 = async (key, message) => createHmac('sha256', bytes(key)).update(message).digest();
  crypto.sha256 = async (data) => createHash('sha256').update(bytes(data)).digest();
  crypto.deriveKey = (password, salt, iterations) => {
    // Keyed by a digest: the map holds no password.
    const key = createHash('sha256')
      .update(`${iterations}\0${Buffer.from(salt).toString('base64')}\0`)
      .update(password)
      .digest('base64');
    let found = salted.get(key);
    if (!found) {
      found = derive(password, salt, iterations, 32, 'sha256');
      // A failed derivation is not remembered.
      found.catch(() => salted.delete(key));
      salted.set(key, found);
      if (salted.size > MAX_SALTED) salted.delete(salted.keys().next().value ?? key);
    }
    return found;
  };
}
