import { randomBytes, webcrypto } from 'node:crypto';
import { createRequire } from 'node:module';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fastScram } from '../../local/aws/pg-scram.ts';
import { superuserPool, uniqueName } from '../support/sandbox.ts';

/**
 * The sandbox's faster SCRAM (local/aws/pg-scram.ts) gives the bytes WebCrypto gives, and PostgreSQL still decides
 * every login: a wrong password, or an old one after the role's password changed, is refused.
 */
const crypto = createRequire(import.meta.url)('pg/lib/crypto/utils') as {
  deriveKey(password: string, salt: Uint8Array, iterations: number): Promise<ArrayBuffer | Buffer>;
  hmacSha256(key: ArrayBuffer | Buffer, message: string): Promise<ArrayBuffer | Buffer>;
  sha256(data: ArrayBuffer | Buffer): Promise<ArrayBuffer | Buffer>;
};
const { subtle } = webcrypto;
const hex = (data: ArrayBuffer | Buffer) => Buffer.from(data as ArrayBuffer).toString('hex');

const admin = superuserPool();
const role = uniqueName('scram').replaceAll('-', '_');
const server = admin.options;

const login = async (password: string): Promise<string> => {
  const client = new pg.Client({
    host: server.host,
    port: server.port,
    database: 'postgres',
    user: role,
    password,
  });
  try {
    await client.connect();
    return 'in';
  } catch (error) {
    return error instanceof pg.DatabaseError ? (error.code ?? 'no code') : String(error);
  } finally {
    await client.end().catch(() => {});
  }
};

beforeAll(async () => {
  fastScram();
  await admin.query(`CREATE ROLE ${role} LOGIN PASSWORD 'first-password'`);
  await admin.query(`GRANT CONNECT ON DATABASE postgres TO ${role}`);
});

afterAll(async () => {
  await admin.query(`REVOKE CONNECT ON DATABASE postgres FROM ${role}`);
  await admin.query(`DROP ROLE IF EXISTS ${role}`);
});

describe('the sandbox SCRAM client', () => {
  it('derives, signs and digests as WebCrypto does', async () => {
    // Prepare
    const salt = randomBytes(16);
    const password = `pässword-${randomBytes(4).toString('hex')}`;
    const key = await subtle.importKey('raw', new TextEncoder().encode(password), 'PBKDF2', false, [
      'deriveBits',
    ]);
    const expectedSalted = await subtle.deriveBits(
      { name: 'PBKDF2', hash: 'SHA-256', salt, iterations: 4096 },
      key,
      256,
    );
    const hmacKey = await subtle.importKey('raw', expectedSalted, { name: 'HMAC', hash: 'SHA-256' }, false, [
      'sign',
    ]);
    const expectedHmac = await subtle.sign('HMAC', hmacKey, new TextEncoder().encode('Client Key'));

    // Act
    const salted = await crypto.deriveKey(password, salt, 4096);
    const again = await crypto.deriveKey(password, salt, 4096);
    const otherSalt = await crypto.deriveKey(password, randomBytes(16), 4096);
    const hmac = await crypto.hmacSha256(salted, 'Client Key');
    const digest = await crypto.sha256(hmac);

    // Assess
    expect(hex(salted)).toBe(hex(expectedSalted));
    expect(hex(again)).toBe(hex(expectedSalted));
    expect(hex(otherSalt)).not.toBe(hex(expectedSalted));
    expect(hex(hmac)).toBe(hex(expectedHmac));
    expect(hex(digest)).toBe(hex(await subtle.digest('SHA-256', expectedHmac)));
  });

  it('logs in with the password, and only with the current one', async () => {
    // Act
    const first = [
      await login('first-password'),
      await login('first-password'),
      await login('wrong-password'),
    ];
    await admin.query(`ALTER ROLE ${role} PASSWORD 'second-password'`);
    const second = [await login('first-password'), await login('second-password')];

    // Assess: 28P01 is invalid_password.
    expect(first).toEqual(['in', 'in', '28P01']);
    expect(second).toEqual(['28P01', 'in']);
  });
});
