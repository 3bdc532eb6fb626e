import { createHash, createHmac, pbkdf2, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

/** 32 random bytes as base64url: 43 URL-safe characters, 256 bits. */
export function generatePassword(): string {
  return randomBytes(32).toString('base64url');
}

/** A one-time token (invitations): 32 random bytes, base64url. */
export const generateToken = generatePassword;

/** SHA-256, hex: what the database keeps of a token. */
export function sha256Hex(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('hex');
}

const SCRAM_ITERATIONS = 4096;
const derive = promisify(pbkdf2);
// Printable ASCII without spaces: SASLprep leaves it as it is, so no normalisation library is needed.
/** Passwords SASLprep leaves as they are (RFC 4013), so that the verifier is the one PostgreSQL would compute. */
const PRINTABLE_ASCII = /^[\x20-\x7e]+$/;

/**
 * The SCRAM-SHA-256 verifier PostgreSQL stores for a password (RFC 5802/7677, PostgreSQL's `SCRAM-SHA-256$…`
 * format). CREATE/ALTER ROLE … PASSWORD takes it as given, so the password itself never travels in SQL text,
 * where a statement log or a Data API trace could keep it.
 */
export async function scramVerifier(password: string, salt: Buffer = randomBytes(16)): Promise<string> {
  if (!PRINTABLE_ASCII.test(password)) throw new Error('scramVerifier takes printable ASCII passwords only');
  // Off the event loop: the 4,096 rounds are the CPU-heaviest thing a step does, and four run at once.
  const salted = await derive(password, salt, SCRAM_ITERATIONS, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${SCRAM_ITERATIONS}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}
