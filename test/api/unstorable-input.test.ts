import { beforeAll, describe, expect, it } from 'vitest';
import { reserveTenant } from '../provision/helpers.ts';
import { superuserPool } from '../support/sandbox.ts';
import { type ApiUnderTest, apiUnderTest, call, ErrorBody } from './api.ts';

// Text PostgreSQL cannot store (a NUL, a lone UTF-16 surrogate) in the lifecycle routes' bodies, and request
// paths that cannot be decoded: each a 400 naming the field, never a 500.

let api: ApiUnderTest;
let admin: string;
beforeAll(async () => {
  api = await apiUnderTest();
  admin = await api.token({ scopes: ['tenants/admin'] });
});

/** A tenant in the registry with this status (no resources: only requests refused before any run reach it). */
async function tenantWithStatus(status: 'active' | 'suspended') {
  const tenant = await reserveTenant();
  await superuserPool('control_plane').query('UPDATE tenants SET status = $2 WHERE id = $1', [
    tenant.id,
    status,
  ]);
  return tenant;
}

/** The tenant's lifecycle operations, as the registry recorded them. */
async function operationsOf(tenantId: string): Promise<number> {
  const { rows } = await superuserPool('control_plane').query<{ n: number }>(
    'SELECT count(*)::int AS n FROM tenant_operations WHERE tenant_id = $1',
    [tenantId],
  );
  return rows[0]?.n ?? 0;
}

describe('lifecycle bodies with text PostgreSQL cannot store', () => {
  it('refuses a lone surrogate in a reason or a name with 400 at its field, recording nothing', async () => {
    // Prepare
    const active = await tenantWithStatus('active');
    const suspended = await tenantWithStatus('suspended');

    // Act
    const answers = await Promise.all([
      call(api, 'POST', `/tenants/${active.id}/suspend`, { token: admin, body: { reason: 'late \ud800' } }),
      call(api, 'POST', `/tenants/${suspended.id}/resume`, { token: admin, body: { reason: '\udc00 paid' } }),
      call(api, 'POST', `/tenants/${active.id}/backups`, { token: admin, body: { reason: 'before \udbff' } }),
      call(api, 'PATCH', `/tenants/${active.id}`, {
        token: admin,
        body: { plan: 'professional', reason: 'upgrade \ud800' },
      }),
      call(api, 'POST', `/tenants/${active.id}/restore`, {
        token: admin,
        body: { backup: '2025-01-31T12:00:00.000Z', name: 'Copy \udfff' },
      }),
    ]);

    // Assess
    expect(answers.map((answer) => answer.status)).toEqual([400, 400, 400, 400, 400]);
    const paths = answers.map((answer) => ErrorBody.parse(answer.body).error.details.map((d) => d.path));
    expect(paths).toEqual([['reason'], ['reason'], ['reason'], ['reason'], ['name']]);
    expect(ErrorBody.parse(answers[0]?.body).error.details[0]?.message).toMatch(/surrogate/);
    expect(await operationsOf(active.id)).toBe(0);
    expect(await operationsOf(suspended.id)).toBe(0);
  });
});

describe('request paths the API cannot decode', () => {
  it('answers 400 in the error shape to a malformed percent-encoding and to an empty segment', async () => {
    // Act: with a token, and without one (the path is refused before authentication)
    const answers = await Promise.all([
      call(api, 'GET', '/tenants/%E0%A4%A', { token: admin }),
      call(api, 'GET', '/tenants/%E0%A4%A'),
      call(api, 'POST', '/tenants/t%ZZ/suspend', { token: admin, body: { reason: 'x' } }),
      call(api, 'GET', '//', { token: admin }),
      call(api, 'GET', '//'),
      call(api, 'GET', '/tenants//backups', { token: admin }),
    ]);

    // Assess
    for (const answer of answers) {
      expect(answer.status, JSON.stringify(answer.body)).toBe(400);
      const { error } = ErrorBody.parse(answer.body);
      expect(error.code).toBe('invalid_request');
      expect(error.details.map((detail) => detail.path)).toEqual(['path']);
    }
  });
});
