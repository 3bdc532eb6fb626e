import { generateKeyPairSync } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { LocalIssuer } from '../../local/api/jwt.ts';
import { type ApiUnderTest, apiUnderTest, call, validBody } from './api.ts';

let api: ApiUnderTest;
beforeAll(async () => {
  api = await apiUnderTest();
});

const GATEWAY_UNAUTHORIZED = { message: 'Unauthorized' };
const GATEWAY_FORBIDDEN = { message: 'Forbidden' };

describe('the JWT authorizer', () => {
  it('answers 401 without a token, with a malformed one, and with one signed by another key', async () => {
    // Prepare
    const issuerJwks = await call(api, 'GET', '/.well-known/jwks.json');
    const foreign = new LocalIssuer(
      api.url,
      'tenant-provisioner',
      generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey,
    );
    const forged = foreign.mint({ scopes: ['tenants/admin'] });

    // Act
    const answers = await Promise.all([
      call(api, 'GET', '/tenants'),
      call(api, 'GET', '/tenants', { token: 'not.a.jwt' }),
      call(api, 'GET', '/tenants', { token: forged }),
      call(api, 'POST', '/tenants', { body: validBody() }),
    ]);

    // Assess
    expect(
      z.object({ keys: z.array(z.object({ kty: z.literal('RSA'), kid: z.string() })) }).parse(issuerJwks.body)
        .keys,
    ).toHaveLength(1);
    for (const answer of answers) {
      expect(answer.status).toBe(401);
      expect(answer.body).toEqual(GATEWAY_UNAUTHORIZED);
    }
  });

  it('answers 401 to an expired token and to one whose claims were altered', async () => {
    // Prepare
    const token = await api.token({ scopes: ['tenants/read'], expiresInSeconds: 4 });
    const [header = '', payload = '', signature = ''] = token.split('.');
    const before = await call(api, 'GET', '/tenants?limit=1', { token });
    const claims = z
      .record(z.string(), z.unknown())
      .parse(JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')));
    const altered = `${header}.${Buffer.from(JSON.stringify({ ...claims, scope: 'tenants/admin' })).toString('base64url')}.${signature}`;
    const exp = z.number().parse(claims.exp);

    // Act
    const forged = await call(api, 'POST', '/tenants', { token: altered, body: validBody() });
    await sleep(exp * 1000 - Date.now() + 1_100);
    const expired = await call(api, 'GET', '/tenants?limit=1', { token });

    // Assess
    expect(before.status).toBe(200);
    expect(expired).toMatchObject({ status: 401, body: GATEWAY_UNAUTHORIZED });
    expect(forged).toMatchObject({ status: 401, body: GATEWAY_UNAUTHORIZED });
  });

  it('answers 403 when the token lacks every scope the route accepts', async () => {
    // Prepare
    const readOnly = await api.token({ scopes: ['tenants/read'] });
    const none = await api.token({ scopes: ['profile'] });

    // Act
    const create = await call(api, 'POST', '/tenants', { token: readOnly, body: validBody() });
    const list = await call(api, 'GET', '/tenants', { token: none });
    const get = await call(api, 'GET', '/tenants/t000000000000000', { token: none });

    // Assess
    expect([create.status, list.status, get.status]).toEqual([403, 403, 403]);
    expect(create.body).toEqual(GATEWAY_FORBIDDEN);
  });

  it('lets read routes through with tenants/read or tenants/admin', async () => {
    // Prepare
    const read = await api.token({ scopes: ['tenants/read'] });
    const admin = await api.token({ scopes: ['tenants/admin'] });

    // Act
    const answers = await Promise.all([
      call(api, 'GET', '/tenants?limit=1', { token: read }),
      call(api, 'GET', '/tenants?limit=1', { token: admin }),
    ]);

    // Assess
    expect(answers.map((answer) => answer.status)).toEqual([200, 200]);
  });

  it('serves /openapi.json without a token and answers an unknown route 404 as API Gateway does', async () => {
    // Act
    const openapi = await call(api, 'GET', '/openapi.json');
    const unknown = await call(api, 'DELETE', '/tenants');

    // Assess
    expect(openapi.status).toBe(200);
    expect(unknown).toMatchObject({ status: 404, body: { message: 'Not Found' } });
  });
});
