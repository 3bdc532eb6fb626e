import { DescribeExecutionCommand, SFNClient } from '@aws-sdk/client-sfn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { slugProblem } from '../../schema/api/slug.ts';
import { clientConfig, superuserPool, uniqueName } from '../support/sandbox.ts';
import {
  type ApiUnderTest,
  apiUnderTest,
  auditOf,
  CreatedBody,
  call,
  ErrorBody,
  tenantsNamed,
  validBody,
} from './api.ts';

let api: ApiUnderTest;
let admin: string;
let sub: string;
beforeAll(async () => {
  api = await apiUnderTest();
  sub = uniqueName('creator');
  admin = await api.token({ scopes: ['tenants/admin'], sub });
});
const sfn = new SFNClient(clientConfig);
afterAll(() => sfn.destroy());

/** A slug no other test uses. */
const uniqueSlug = (prefix: string) =>
  uniqueName(prefix)
    .toLowerCase()
    .replace(/^([0-9])/, 'x$1');

async function slugsTaken(slugs: readonly string[]): Promise<string[]> {
  const { rows } = await superuserPool('control_plane').query<{ slug: string }>(
    'SELECT slug FROM tenants WHERE slug = ANY($1)',
    [slugs],
  );
  return rows.map((row) => row.slug);
}

describe('POST /tenants', () => {
  it('answers 202, reserves the tenant and starts its provisioning named by the tenant id', async () => {
    // Prepare
    const body = validBody({
      name: `${uniqueName('Café Zürich')} GmbH`,
      plan: 'professional',
      features: { auth: ['password', 'passkey'], apiAccess: true },
      limits: { maxUsers: 25 },
      securityPolicy: { allowedIpRanges: ['203.0.113.0/24', '2001:db8::/32'] },
      compliance: { retentionDays: 2555, encryptionLevel: 'enhanced' },
      settings: { theme: 'corporate' },
    });

    // Act
    const answer = await call(api, 'POST', '/tenants', { token: admin, body });

    // Assess
    expect(answer.status).toBe(202);
    const created = CreatedBody.parse(answer.body);
    expect(created.slug).toMatch(/^cafe-zurich-[0-9a-f]{8}-gmbh$/);
    expect(created.links.self).toBe(`/tenants/${created.tenantId}`);
    expect(answer.headers.get('location')).toBe(created.links.self);
    const [row] = await tenantsNamed(String(body.name));
    expect(row).toMatchObject({
      id: created.tenantId,
      slug: created.slug,
      plan: 'professional',
      execution_arn: created.executionArn,
      created_by: `api:${sub}`,
      limits: {
        maxUsers: 25,
        storageQuotaGb: 100,
        maxConnections: 50,
        maxApiKeys: 10,
        apiRequestsPerMinute: 600,
      },
    });
    expect(row?.config).toMatchObject({
      adminUser: { email: 'owner@example.com' },
      features: { auth: ['password', 'passkey'], apiAccess: true, customBranding: false, storage: true },
      securityPolicy: {
        passwordPolicy: { minLength: 12 },
        allowedIpRanges: ['203.0.113.0/24', '2001:db8::/32'],
      },
      compliance: { retentionDays: 2555, encryptionLevel: 'enhanced' },
      settings: { theme: 'corporate' },
    });
    const execution = await sfn.send(new DescribeExecutionCommand({ executionArn: created.executionArn }));
    expect(execution.stateMachineArn).toBe(api.stateMachineArn);
    expect(execution.name).toBe(created.tenantId);
    expect(JSON.parse(execution.input ?? '')).toEqual({ tenantId: created.tenantId });
    const audit = await auditOf(created.tenantId);
    expect(audit[0]).toMatchObject({
      action: 'TENANT_CREATED',
      actor: `api:${sub}`,
      details: { slug: created.slug },
    });
  });

  it('answers 409 for a taken slug, with three free suggestions', async () => {
    // Prepare: the slug and its first obvious alternative are taken.
    const slug = uniqueSlug('taken');
    const first = await call(api, 'POST', '/tenants', { token: admin, body: validBody({ slug }) });
    const second = await call(api, 'POST', '/tenants', {
      token: admin,
      body: validBody({ slug: `${slug}-2` }),
    });

    // Act
    const body = validBody({ slug });
    const answer = await call(api, 'POST', '/tenants', { token: admin, body });

    // Assess
    expect([first.status, second.status]).toEqual([202, 202]);
    expect(answer.status).toBe(409);
    const { error } = ErrorBody.parse(answer.body);
    expect(error.code).toBe('slug_taken');
    expect(error.details).toEqual([{ path: 'slug', message: expect.stringContaining(slug) }]);
    const suggestions = error.suggestions ?? [];
    expect(suggestions).toHaveLength(3);
    expect(new Set(suggestions).size).toBe(3);
    expect(suggestions).not.toContain(`${slug}-2`);
    for (const suggestion of suggestions) expect(slugProblem(suggestion)).toBeUndefined();
    expect(await slugsTaken(suggestions)).toEqual([]);
    expect(await tenantsNamed(String(body.name))).toEqual([]);
    // A suggestion is indeed free to take.
    const retry = await call(api, 'POST', '/tenants', {
      token: admin,
      body: { ...body, slug: suggestions[0] },
    });
    expect(retry.status).toBe(202);
  });

  it('derives a slug within 40 characters from a long name', async () => {
    // Act
    const answer = await call(api, 'POST', '/tenants', {
      token: admin,
      body: validBody({ name: `${uniqueName('Ünïcode')} International Holdings Limited Partnership` }),
    });

    // Assess
    expect(answer.status).toBe(202);
    const { slug } = CreatedBody.parse(answer.body);
    expect(slug.length).toBeLessThanOrEqual(40);
    expect(slug).toMatch(/^unicode-[0-9a-f]{8}-/);
    expect(slugProblem(slug)).toBeUndefined();
  });
});

describe('POST /tenants with an Idempotency-Key', () => {
  it('answers a retry with the first answer, whatever the order of the fields', async () => {
    // Prepare
    const key = uniqueName('retry');
    const body = validBody({ plan: 'enterprise', features: { auth: ['sso', 'password'] } });
    const reordered = Object.fromEntries(Object.entries(body).reverse());
    const first = await call(api, 'POST', '/tenants', {
      token: admin,
      body,
      headers: { 'idempotency-key': key },
    });

    // Act
    const again = await call(api, 'POST', '/tenants', {
      token: admin,
      body: reordered,
      headers: { 'idempotency-key': key },
    });

    // Assess
    expect(first.status).toBe(202);
    expect(again.status).toBe(202);
    expect(again.body).toEqual(first.body);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(await tenantsNamed(String(body.name))).toHaveLength(1);
  });

  it('answers 422 to the same key with another body, creating nothing', async () => {
    // Prepare
    const key = uniqueName('reused');
    const first = await call(api, 'POST', '/tenants', {
      token: admin,
      body: validBody(),
      headers: { 'idempotency-key': key },
    });
    const other = validBody();

    // Act
    const answer = await call(api, 'POST', '/tenants', {
      token: admin,
      body: other,
      headers: { 'idempotency-key': key },
    });

    // Assess
    expect(first.status).toBe(202);
    expect(answer.status).toBe(422);
    expect(ErrorBody.parse(answer.body).error.code).toBe('idempotency_key_reused');
    expect(await tenantsNamed(String(other.name))).toEqual([]);
  });

  it('keeps keys per caller: another caller with the same key and body is a new request', async () => {
    // Prepare
    const key = uniqueName('shared');
    const body = validBody();
    const otherCaller = await api.token({ scopes: ['tenants/admin'], sub: uniqueName('other-caller') });
    const first = await call(api, 'POST', '/tenants', {
      token: admin,
      body,
      headers: { 'idempotency-key': key },
    });

    // Act
    const answer = await call(api, 'POST', '/tenants', {
      token: otherCaller,
      body,
      headers: { 'idempotency-key': key },
    });

    // Assess: not a replay; the slug is taken by the first caller's tenant.
    expect(first.status).toBe(202);
    expect(answer.status).toBe(409);
    expect(answer.headers.get('idempotent-replayed')).toBeNull();
  });

  it('creates one tenant for concurrent requests with the same key', async () => {
    // Prepare
    const key = uniqueName('race');
    const body = validBody();

    // Act
    const answers = await Promise.all(
      [1, 2, 3].map(() =>
        call(api, 'POST', '/tenants', { token: admin, body, headers: { 'idempotency-key': key } }),
      ),
    );

    // Assess
    const accepted = answers.filter((answer) => answer.status === 202);
    expect(accepted.length).toBeGreaterThanOrEqual(1);
    for (const answer of accepted) expect(answer.body).toEqual(accepted[0]?.body);
    for (const answer of answers.filter((a) => a.status !== 202)) {
      expect(answer.status).toBe(409);
      expect(ErrorBody.parse(answer.body).error.code).toBe('idempotency_key_in_progress');
    }
    expect(await tenantsNamed(String(body.name))).toHaveLength(1);
  });

  it('replays a 409 as it was first answered', async () => {
    // Prepare
    const slug = uniqueSlug('replayed');
    await call(api, 'POST', '/tenants', { token: admin, body: validBody({ slug }) });
    const key = uniqueName('conflict');
    const body = validBody({ slug });
    const first = await call(api, 'POST', '/tenants', {
      token: admin,
      body,
      headers: { 'idempotency-key': key },
    });

    // Act
    const again = await call(api, 'POST', '/tenants', {
      token: admin,
      body,
      headers: { 'idempotency-key': key },
    });

    // Assess
    expect(first.status).toBe(409);
    expect(again).toMatchObject({ status: 409, body: first.body });
  });
});
