import { ListExecutionsCommand, SFNClient } from '@aws-sdk/client-sfn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientConfig, superuserPool, uniqueName } from '../support/sandbox.ts';
import {
  type ApiUnderTest,
  apiUnderTest,
  CreatedBody,
  call,
  ErrorBody,
  tenantsNamed,
  validBody,
} from './api.ts';

let api: ApiUnderTest;
let admin: string;
beforeAll(async () => {
  api = await apiUnderTest();
  admin = await api.token({ scopes: ['tenants/admin'] });
});
const sfn = new SFNClient(clientConfig);
afterAll(() => sfn.destroy());

/**
 * Executions of the provisioning state machine whose tenant is not in the registry: none should ever exist.
 * An execution is named by its tenant id (other tests' re-runs add a suffix: `<id>-again`).
 */
async function orphanExecutions(): Promise<string[]> {
  const names: string[] = [];
  let nextToken: string | undefined;
  do {
    const page = await sfn.send(
      new ListExecutionsCommand({ stateMachineArn: api.stateMachineArn, nextToken }),
    );
    names.push(...(page.executions ?? []).map((execution) => execution.name ?? ''));
    nextToken = page.nextToken;
  } while (nextToken);
  const tenantIdOf = (name: string) => /^t[a-z0-9]{15}/.exec(name)?.[0] ?? name;
  if (names.length === 0) return [];
  const { rows } = await superuserPool('control_plane').query<{ id: string }>(
    'SELECT id FROM tenants WHERE id = ANY($1)',
    [names.map(tenantIdOf)],
  );
  const known = new Set(rows.map((row) => row.id));
  return names.filter((name) => !known.has(tenantIdOf(name)));
}

interface Case {
  readonly title: string;
  readonly body: (name: string) => Record<string, unknown>;
  /** A detail the answer must have: its path, and a piece of its message. */
  readonly path: string;
  readonly message?: string | RegExp;
}

const base = (name: string, overrides: Record<string, unknown> = {}) => ({
  name,
  plan: 'basic',
  adminUser: { email: 'owner@example.com' },
  ...overrides,
});

const CASES: readonly Case[] = [
  {
    title: 'an unknown top-level field',
    body: (name) => base(name, { color: 'red' }),
    path: 'color',
    message: 'Unknown field',
  },
  {
    title: 'an unknown nested field',
    body: (name) => base(name, { adminUser: { email: 'owner@example.com', phone: '+1 555' } }),
    path: 'adminUser.phone',
    message: 'Unknown field',
  },
  {
    title: "seed 000's requireSpecialChars (unknown here: requireSymbols)",
    body: (name) => base(name, { securityPolicy: { passwordPolicy: { requireSpecialChars: true } } }),
    path: 'securityPolicy.passwordPolicy.requireSpecialChars',
  },
  { title: 'a slug with an underscore', body: (name) => base(name, { slug: 'bad_slug' }), path: 'slug' },
  { title: 'a slug starting with a digit', body: (name) => base(name, { slug: '9lives' }), path: 'slug' },
  { title: 'a slug too short', body: (name) => base(name, { slug: 'ab' }), path: 'slug', message: '3 to 40' },
  { title: 'a slug ending with a hyphen', body: (name) => base(name, { slug: 'acme-' }), path: 'slug' },
  {
    title: 'a reserved slug',
    body: (name) => base(name, { slug: 'admin' }),
    path: 'slug',
    message: 'reserved',
  },
  {
    title: 'the reserved control-plane',
    body: (name) => base(name, { slug: 'control-plane' }),
    path: 'slug',
    message: 'reserved',
  },
  {
    title: 'a name from which no slug derives, without a slug',
    body: () => base('日本'),
    path: 'slug',
    message: 'give one',
  },
  {
    title: 'sso on basic',
    body: (name) => base(name, { features: { auth: ['password', 'sso'] } }),
    path: 'features.auth[1]',
    message: 'basic plan does not include the auth method "sso"',
  },
  {
    title: 'customBranding on professional',
    body: (name) => base(name, { plan: 'professional', features: { customBranding: true } }),
    path: 'features.customBranding',
    message: 'professional plan does not include the feature "customBranding"',
  },
  {
    title: 'a limit above the plan',
    body: (name) => base(name, { plan: 'professional', limits: { maxUsers: 51 } }),
    path: 'limits.maxUsers',
    message: 'maxUsers may not exceed 50 on the professional plan',
  },
  {
    title: 'a limit of 0',
    body: (name) => base(name, { limits: { maxConnections: 0 } }),
    path: 'limits.maxConnections',
  },
  {
    title: 'a prefix length out of range',
    body: (name) => base(name, { securityPolicy: { allowedIpRanges: ['10.0.0.0/8', '10.0.0.0/33'] } }),
    path: 'securityPolicy.allowedIpRanges[1]',
    message: 'prefix length',
  },
  {
    title: 'a CIDR with host bits set',
    body: (name) => base(name, { securityPolicy: { allowedIpRanges: ['2001:db8::1/32'] } }),
    path: 'securityPolicy.allowedIpRanges[0]',
    message: '2001:db8::/32',
  },
  {
    title: 'an address that is not one',
    body: (name) => base(name, { securityPolicy: { allowedIpRanges: ['300.1.1.0/24'] } }),
    path: 'securityPolicy.allowedIpRanges[0]',
  },
  {
    title: 'a password minLength of 7',
    body: (name) => base(name, { securityPolicy: { passwordPolicy: { minLength: 7 } } }),
    path: 'securityPolicy.passwordPolicy.minLength',
  },
  {
    title: 'a session timeout below 5 minutes',
    body: (name) => base(name, { securityPolicy: { session: { timeoutSeconds: 60 } } }),
    path: 'securityPolicy.session.timeoutSeconds',
  },
  {
    title: 'mfaRequired without a second factor',
    body: (name) => base(name, { securityPolicy: { mfaRequired: true } }),
    path: 'securityPolicy.mfaRequired',
  },
  {
    title: 'a retention without a lifecycle rule',
    body: (name) => base(name, { compliance: { retentionDays: 100 } }),
    path: 'compliance.retentionDays',
  },
  {
    title: 'settings nested too deep',
    body: (name) => base(name, { settings: { a: { b: { c: { d: { e: { f: 1 } } } } } } }),
    path: 'settings',
    message: 'levels',
  },
  {
    title: 'settings too large',
    body: (name) => base(name, { settings: { blob: 'x'.repeat(17_000) } }),
    path: 'settings',
    message: 'bytes',
  },
  {
    title: 'a NUL in a settings value',
    body: (name) => base(name, { settings: { theme: 'dark\u0000' } }),
    path: 'settings.theme',
    message: 'NUL',
  },
  {
    title: 'a NUL in a settings key',
    body: (name) => base(name, { settings: { 'the\u0000me': 'dark' } }),
    path: 'settings',
    message: 'key',
  },
  {
    title: 'a NUL in a nested settings key',
    body: (name) => base(name, { settings: { ui: [{ ok: 1 }, { 'c\u0000': 1 }] } }),
    path: 'settings.ui[1]',
    message: 'key',
  },
  {
    title: 'a lone surrogate in a settings value',
    body: (name) => base(name, { settings: { ui: { labels: ['ok', 'x\ud800'] } } }),
    path: 'settings.ui.labels[1]',
    message: 'surrogate',
  },
  {
    title: 'a lone surrogate in a settings key',
    body: (name) => base(name, { settings: { ui: { '\udc00': true } } }),
    path: 'settings.ui',
    message: 'surrogate',
  },
  {
    title: "a lone surrogate in the admin's first name",
    body: (name) => base(name, { adminUser: { email: 'owner@example.com', firstName: 'Ada\ud800' } }),
    path: 'adminUser.firstName',
    message: 'surrogate',
  },
  {
    title: "a lone surrogate in the admin's last name",
    body: (name) => base(name, { adminUser: { email: 'owner@example.com', lastName: '\udfffLovelace' } }),
    path: 'adminUser.lastName',
    message: 'surrogate',
  },
  {
    title: 'a lone surrogate in the name (stored as U+FFFD before)',
    body: (name) => base(`${name} \ud83d`),
    path: 'name',
    message: 'surrogate',
  },
  { title: 'an unknown plan', body: (name) => base(name, { plan: 'gold' }), path: 'plan' },
  { title: 'a control character in the name', body: (name) => base(`${name}\u0007`), path: 'name' },
  { title: 'a blank name', body: () => base('   '), path: 'name' },
  {
    title: 'a bad admin email',
    body: (name) => base(name, { adminUser: { email: 'nobody' } }),
    path: 'adminUser.email',
  },
];

describe('POST /tenants refuses an invalid body with 400, naming each problem, and creates nothing', () => {
  it.each(CASES)('$title', async ({ body, path, message }) => {
    // Prepare
    const name = uniqueName('Invalid');
    const request = body(name);

    // Act
    const answer = await call(api, 'POST', '/tenants', { token: admin, body: request });

    // Assess
    expect(answer.status).toBe(400);
    const { error } = ErrorBody.parse(answer.body);
    expect(error.code).toBe('invalid_request');
    const detail = error.details.find((d) => d.path === path);
    expect(detail, JSON.stringify(error.details)).toBeDefined();
    if (message !== undefined) expect(detail?.message).toMatch(message);
    const slug = typeof request.slug === 'string' ? request.slug : '';
    expect(await tenantsNamed(String(request.name), slug)).toEqual([]);
  });

  it('reports every problem of a body at once', async () => {
    // Act
    const answer = await call(api, 'POST', '/tenants', {
      token: admin,
      body: base(uniqueName('Many'), {
        extra: 1,
        plan: 'basic',
        features: { auth: ['sso'] },
        limits: { maxUsers: 11 },
      }),
    });

    // Assess
    const paths = ErrorBody.parse(answer.body).error.details.map((detail) => detail.path);
    expect(paths).toEqual(expect.arrayContaining(['extra', 'features.auth[0]', 'limits.maxUsers']));
  });

  it('refuses a body that is not JSON, or not an object', async () => {
    // Act
    const answers = await Promise.all([
      call(api, 'POST', '/tenants', {
        token: admin,
        rawBody: '{"name":',
        headers: { 'content-type': 'application/json' },
      }),
      call(api, 'POST', '/tenants', { token: admin, body: ['a'] }),
      call(api, 'POST', '/tenants', { token: admin }),
    ]);

    // Assess
    for (const answer of answers) {
      expect(answer.status).toBe(400);
      expect(ErrorBody.parse(answer.body).error.code).toBe('invalid_request');
    }
  });

  it('refuses JSON nested 100,000 levels deep in settings, as objects or arrays, naming settings', async () => {
    // Prepare: 240 KB and 200 KB, under the API's 256 KB; the test cannot JSON.stringify them either
    const head = `{"name":${JSON.stringify(uniqueName('Deep'))},"plan":"basic","adminUser":{"email":"o@example.com"},"settings":`;
    const objects = `${head}${'{"a":'.repeat(40_000)}1${'}'.repeat(40_000)}}`;
    const arrays = `${head}{"a":${'['.repeat(100_000)}${']'.repeat(100_000)}}}`;

    // Act
    const answers = await Promise.all(
      [objects, arrays].map((rawBody) =>
        call(api, 'POST', '/tenants', {
          token: admin,
          rawBody,
          headers: { 'content-type': 'application/json' },
        }),
      ),
    );

    // Assess
    for (const answer of answers) {
      expect(answer.status).toBe(400);
      expect(ErrorBody.parse(answer.body).error.details).toEqual([
        { path: 'settings', message: 'At most 5 levels of nesting' },
      ]);
    }
  });

  it('answers 413 to a body above 10 MB, as API Gateway does, without resetting the connection', async () => {
    // Act: several at once, so that the answer racing the upload shows
    const answers = await Promise.all(
      Array.from({ length: 4 }, () =>
        call(api, 'POST', '/tenants', {
          token: admin,
          rawBody: 'x'.repeat(11 * 1024 * 1024),
          headers: { 'content-type': 'application/json' },
        }),
      ),
    );

    // Assess
    expect(answers.map((answer) => answer.status)).toEqual([413, 413, 413, 413]);
    expect(answers[0]?.body).toEqual({ message: 'Request Entity Too Large' });
  });

  it('refuses a malformed Idempotency-Key', async () => {
    // Act
    const answer = await call(api, 'POST', '/tenants', {
      token: admin,
      body: validBody(),
      headers: { 'idempotency-key': 'x'.repeat(256) },
    });

    // Assess
    expect(answer.status).toBe(400);
    expect(ErrorBody.parse(answer.body).error.details[0]?.path).toBe('headers.Idempotency-Key');
  });

  it('does not keep a refused request as the answer to its Idempotency-Key', async () => {
    // Prepare
    const key = uniqueName('key');
    const refused = await call(api, 'POST', '/tenants', {
      token: admin,
      body: base(uniqueName('Refused'), { slug: 'www' }),
      headers: { 'idempotency-key': key },
    });

    // Act
    const accepted = await call(api, 'POST', '/tenants', {
      token: admin,
      body: validBody(),
      headers: { 'idempotency-key': key },
    });

    // Assess
    expect(refused.status).toBe(400);
    expect(accepted.status).toBe(202);
    CreatedBody.parse(accepted.body);
  });

  it('leaves no execution without its tenant', async () => {
    // Assess (after the refusals above, and whatever other files ran meanwhile)
    expect(await orphanExecutions()).toEqual([]);
  });
});
