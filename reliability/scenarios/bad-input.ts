import { isDeepStrictEqual } from 'node:util';
import { ListExecutionsCommand } from '@aws-sdk/client-sfn';
import fc from 'fast-check';
import { z } from 'zod';
import { stateMachineArn } from '../../local/constants.ts';
import { figure, type ScenarioResult, tally } from '../report.ts';
import type { Answer, SandboxUnderTest } from '../sandbox.ts';
import { uniqueName, waitSettled } from '../tenants.ts';
import { allTraces, registryRows } from '../traces.ts';

/** The API's error shape. */
const ErrorBody = z.strictObject({
  error: z.strictObject({
    code: z.string(),
    message: z.string(),
    details: z.array(z.strictObject({ path: z.string(), message: z.string() })),
    suggestions: z.array(z.string()).optional(),
  }),
});
/** API Gateway's own answers (no route, no token, a body over its limit). */
const GatewayBody = z.strictObject({ message: z.string() });

/** Strings meant to break out of SQL, identifiers, paths, templates and text handling. */
export const NASTY = [
  "'; DROP TABLE tenants; --",
  '" OR 1=1 --',
  'tenant_x"; DROP DATABASE control_plane; --',
  '$$; DROP ROLE provisioner; $$',
  "\\'; SELECT pg_sleep(5); --",
  'Robert"); GRANT ALL ON DATABASE postgres TO PUBLIC; --',
  ':id',
  '%s%s%s%n',
  '../../../etc/passwd',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a log4j lookup, as text the API must take as text
  '${jndi:ldap://x/a}',
  '{{7*7}}',
  '<script>alert(1)</script>',
  'a\u0000b',
  '\u202Eevil\u202C',
  'ｔｅｎａｎｔ',
  'аdmin',
  'zero\u200Bwidth',
  '\uD800',
  '\uFEFFbom',
  'e\u0301\u0301\u0301',
  '🏳️‍🌈'.repeat(20),
  'x'.repeat(5000),
];

const nasty = fc.oneof(
  fc.constantFrom(...NASTY),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
);

/** A valid request's shape, every free-text field nasty (still valid text, as far as that goes). */
const baseBody = fc.record({
  name: fc.constantFrom('Fuzz Tenant', "O'Brien; DROP TABLE tenants;--", 'Ünïcødé Çørp'),
  plan: fc.constantFrom('basic', 'professional', 'enterprise'),
  adminUser: fc.record({
    email: fc.constant('fuzz@example.com'),
    firstName: fc.constantFrom('Ada', '$$ x $$'),
  }),
});

type Body = Record<string, unknown>;
const set = (body: Body, path: readonly string[], value: unknown): Body => {
  const copy: Body = structuredClone(body);
  let node: Body = copy;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    node[key] = typeof next === 'object' && next !== null && !Array.isArray(next) ? { ...next } : {};
    node = node[key] as Body;
  }
  const last = path.at(-1) ?? '';
  if (value === undefined) delete node[last];
  else node[last] = value;
  return copy;
};

const wrongType = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(nasty, { maxLength: 3 }),
  fc.dictionary(nasty, nasty, { minKeys: 1, maxKeys: 3 }),
);

/** One change that makes any valid body invalid, whatever else it holds. */
const breakage: fc.Arbitrary<(body: Body) => Body> = fc.oneof(
  nasty.map((key) => (body: Body) => set(body, [`x-${key}`], 1)),
  fc.tuple(fc.constantFrom('adminUser', 'features', 'securityPolicy', 'compliance', 'limits'), nasty).map(
    ([parent, key]) =>
      (body: Body) =>
        set(body, [parent, `unknown_${key}`], key),
  ),
  fc
    .tuple(
      fc.constantFrom('name', 'plan', 'adminUser', 'features', 'limits', 'compliance', 'slug'),
      wrongType,
    )
    .map(
      ([field, value]) =>
        (body: Body) =>
          set(body, [field], typeof value === 'string' && field === 'name' ? 1 : value),
    ),
  fc.constantFrom('name', 'plan', 'adminUser').map((field) => (body: Body) => set(body, [field], undefined)),
  nasty.map((value) => (body: Body) => set(body, ['plan'], `${value}-plan`)),
  nasty.map((value) => (body: Body) => set(body, ['adminUser', 'email'], `${value}@@`)),
  nasty.map((value) => (body: Body) => set(body, ['slug'], `${value}-INVALID`)),
  nasty.map((value) => (body: Body) => set(body, ['securityPolicy', 'allowedIpRanges'], [`${value}/33`])),
  fc
    .constantFrom(-1, 0, 1.5, 1e308, Number.MAX_SAFE_INTEGER)
    .map((value) => (body: Body) => set(body, ['limits', 'maxUsers'], value)),
  fc
    .constantFrom(1, 7, 364, 100000)
    .map((value) => (body: Body) => set(body, ['compliance', 'retentionDays'], value)),
  fc
    .constantFrom('password', ['password', 'password'], [], ['telepathy'])
    .map((value) => (body: Body) => set(body, ['features', 'auth'], value)),
  fc
    .constantFrom('', ' ', 'x'.repeat(201), 'a\u0007b', '\t\n')
    .map((value) => (body: Body) => set(body, ['name'], value)),
  fc.constant((body: Body) => set(body, ['settings'], { deep: { a: { b: { c: { d: { e: { f: 1 } } } } } } })),
  fc.constant((body: Body) => set(body, ['settings'], { blob: 'x'.repeat(17_000) })),
  // Text PostgreSQL cannot store: a NUL or a lone surrogate in a settings value or key (at any depth), or a name.
  fc
    .tuple(
      fc.constantFrom('\u0000', '\uD800', 'a\uDC00b'),
      fc.constantFrom<(bad: string) => [string[], unknown]>(
        (bad) => [['settings'], { theme: bad }],
        (bad) => [['settings'], { [bad]: 1 }],
        (bad) => [['settings'], { ui: [{ [`k${bad}`]: [bad] }] }],
        (bad) => [['adminUser', 'firstName'], `Ada${bad}`],
        (bad) => [['adminUser', 'lastName'], bad],
      ),
    )
    .map(
      ([bad, place]) =>
        (body: Body) =>
          set(body, ...place(bad)),
    ),
);

/** A request the API must refuse: method, path, headers and raw body. */
interface BadRequest {
  readonly kind: string;
  readonly method: string;
  readonly path: string;
  readonly headers?: Record<string, string>;
  readonly body?: string;
  /** Send without a token; `read` sends a token without the admin scope. */
  readonly token?: 'none' | 'read' | 'garbage';
}

const json = { 'content-type': 'application/json' };

const badBodies: fc.Arbitrary<BadRequest> = fc
  .tuple(baseBody, fc.array(breakage, { minLength: 1, maxLength: 3 }))
  .map(([body, changes]) => ({
    kind: 'body',
    method: 'POST',
    path: '/tenants',
    headers: json,
    body: JSON.stringify(changes.reduce((current, change) => change(current), body as Body)),
  }));

const rawBodies: fc.Arbitrary<BadRequest> = fc
  .oneof(
    fc.constantFrom(
      '',
      '{',
      '{"name": "x",}',
      'null',
      '[]',
      '"string"',
      '42',
      'true',
      '\uFEFF{}',
      '{"a":1,"a":2}',
    ),
    fc.string({ unit: 'binary', maxLength: 200 }).filter((text) => !text.trim().startsWith('{')),
    fc
      .jsonValue({ maxDepth: 3 })
      .map((value) => JSON.stringify(value))
      .filter((text) => !text.includes('"adminUser"')),
    fc.integer({ min: 1000, max: 5000 }).map((depth) => `${'['.repeat(depth)}${']'.repeat(depth)}`),
    // Nesting that overflows any recursive walk, within the API's 256 KB: in settings, as objects or arrays.
    fc
      .tuple(fc.integer({ min: 20_000, max: 40_000 }), fc.boolean())
      .map(
        ([depth, objects]) =>
          `{"name":"Deep","plan":"basic","adminUser":{"email":"d@example.com"},"settings":{"a":${
            objects
              ? `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`
              : `${'['.repeat(depth)}${']'.repeat(depth)}`
          }}}`,
      ),
  )
  .map((body) => ({ kind: 'raw body', method: 'POST', path: '/tenants', headers: json, body }));

/** Printable Latin-1 only: fetch refuses other header values, as any HTTP client would. */
const headerText = fc.string({
  unit: fc
    .oneof(fc.integer({ min: 0x20, max: 0x7e }), fc.integer({ min: 0xa0, max: 0xff }))
    .map((code) => String.fromCharCode(code)),
  maxLength: 300,
});

const badHeaders: fc.Arbitrary<BadRequest> = fc.oneof(
  headerText
    // HTTP trims a header value: what arrives must still be invalid.
    .filter((key) => !/^[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?$/.test(key.trim()))
    .map((key) => ({
      kind: 'Idempotency-Key',
      method: 'POST',
      path: '/tenants',
      headers: { ...json, 'idempotency-key': key },
      body: JSON.stringify({
        name: uniqueName('Header Fuzz'),
        plan: 'basic',
        adminUser: { email: 'h@example.com' },
      }),
    })),
  fc.constantFrom<BadRequest['token']>('none', 'read', 'garbage').map((token) => ({
    kind: 'Authorization',
    method: 'POST',
    path: '/tenants',
    headers: json,
    body: JSON.stringify({
      name: uniqueName('Token Fuzz'),
      plan: 'basic',
      adminUser: { email: 't@example.com' },
    }),
    token,
  })),
  headerText.map((value) => ({
    kind: 'Authorization',
    method: 'GET',
    path: '/tenants',
    headers: { authorization: `Bearer ${value}` },
  })),
);

/** A path segment from any text (a lone surrogate cannot be percent-encoded: it becomes `?`). */
const segment = (text: string): string => encodeURIComponent(text.replaceAll(/[\uD800-\uDFFF]/g, '?') || 'x');

const badPaths: fc.Arbitrary<BadRequest> = fc.oneof(
  nasty.map((id) => ({ kind: 'path', method: 'GET', path: `/tenants/${segment(id)}` })),
  fc.stringMatching(/^t[a-z0-9]{15}$/).map((id) => ({ kind: 'path', method: 'GET', path: `/tenants/${id}` })),
  nasty.map((text) => ({ kind: 'path', method: 'GET', path: `/tenants/x/${segment(text)}` })),
  fc.constantFrom('PUT', 'PATCH').map((method) => ({ kind: 'method', method, path: '/openapi.json/x' })),
  // Percent-encodings that do not decode, and empty segments.
  fc
    .constantFrom('/tenants/%E0%A4%A', '/tenants/%ZZ/backups', '/%', '//', '/tenants//suspend')
    .map((path) => ({ kind: 'path', method: 'GET', path })),
);

const badQueries: fc.Arbitrary<BadRequest> = fc
  .oneof(
    nasty.map((value) => ({ status: `${value}x` })),
    nasty.map((value) => ({ plan: `${value}x` })),
    fc
      .constantFrom('0', '-1', '1000000', 'abc', '1.5', 'NaN', 'Infinity', '1; DROP TABLE tenants')
      .map((limit) => ({ limit })),
    nasty.map((value) => ({ cursor: `${value}!` })),
    nasty.map((value) => ({ [`unknown${value}`]: '1' })),
  )
  .map((query) => ({ kind: 'query', method: 'GET', path: `/tenants?${new URLSearchParams(query)}` }));

/** How many requests of each kind: a few hundred in all, so that the scenario takes seconds. */
export const RUNS = { body: 150, raw: 40, headers: 40, paths: 40, queries: 40 } as const;

async function send(sut: SandboxUnderTest, request: BadRequest, readToken: string): Promise<Answer> {
  const token =
    request.token === 'none'
      ? null
      : request.token === 'read'
        ? readToken
        : request.token === 'garbage'
          ? 'not.a.jwt'
          : undefined;
  return sut.request(request.method, request.path, {
    ...(request.headers ? { headers: request.headers } : {}),
    ...(request.body !== undefined ? { body: request.body } : {}),
    token,
  });
}

/** What exists that a refused request might have made: executions, databases, secrets, tenants. */
async function footprint(sut: SandboxUnderTest): Promise<string> {
  const executions = await sut.clients.sfn.send(
    new ListExecutionsCommand({ stateMachineArn: stateMachineArn('provision-tenant'), maxResults: 1000 }),
  );
  const traces = [...(await allTraces(sut)).values()].flat();
  return JSON.stringify({
    executions: executions.executions?.length ?? 0,
    databases: traces.filter((trace) => trace.startsWith('database ')).length,
    secrets: traces.filter((trace) => trace.startsWith('secret ')).length,
    tenants: (await registryRows(sut)).length,
  });
}

/**
 * Bad input: property-based requests (fast-check, a fixed seed) that are each invalid in at least one way while
 * every free-text field carries SQL, identifier, path or unicode tricks; raw bodies that are not the JSON asked
 * for, an oversized one; bad Idempotency-Keys and tokens; odd paths and query strings. Every answer must be a
 * 4xx with the API's JSON error shape (or API Gateway's own `{message}`), never a 5xx, and nothing may appear.
 * Unknown fields must be refused, by name. Then requests valid but full of injection text must be stored as
 * given and provision normally.
 */
export async function badInput(sut: SandboxUnderTest, seed = 5): Promise<ScenarioResult> {
  const readToken = await sut.mintToken(['tenants/read']);
  const requests = [
    ...fc.sample(badBodies, { numRuns: RUNS.body, seed }),
    ...fc.sample(rawBodies, { numRuns: RUNS.raw, seed }),
    ...fc.sample(badHeaders, { numRuns: RUNS.headers, seed }),
    ...fc.sample(badPaths, { numRuns: RUNS.paths, seed }),
    ...fc.sample(badQueries, { numRuns: RUNS.queries, seed }),
    {
      kind: 'oversized body',
      method: 'POST',
      path: '/tenants',
      headers: json,
      body: JSON.stringify({
        name: 'Big',
        plan: 'basic',
        adminUser: { email: 'b@example.com' },
        settings: { x: 'x'.repeat(300_000) },
      }),
    },
    {
      kind: 'oversized body',
      method: 'POST',
      path: '/tenants',
      headers: json,
      body: 'x'.repeat(11 * 1024 * 1024),
    },
  ];
  const before = await footprint(sut);
  const answers: { request: BadRequest; answer: Answer }[] = [];
  const queue = [...requests];
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let request = queue.shift(); request; request = queue.shift()) {
        answers.push({ request, answer: await send(sut, request, readToken) });
      }
    }),
  );
  const after = await footprint(sut);
  const problems: string[] = [];
  let shaped = 0;
  for (const { request, answer } of answers) {
    const ok4xx = answer.status >= 400 && answer.status < 500;
    const shape = ErrorBody.safeParse(answer.body).success || GatewayBody.safeParse(answer.body).success;
    if (ok4xx && shape) shaped += 1;
    else
      problems.push(
        `${request.kind} ${request.method} ${request.path.slice(0, 80)} ${request.body?.slice(0, 120) ?? ''}: ${answer.status} ${answer.text.slice(0, 200)}`,
      );
  }
  if (before !== after) problems.push(`refused requests left traces: ${before} -> ${after}`);
  const fiveXx = answers.filter(({ answer }) => answer.status >= 500).length;

  const unknown = await unknownFields(sut);
  problems.push(...unknown.problems);
  const verbatim = await injectionStoredVerbatim(sut);
  problems.push(...verbatim.problems);

  const scenario = 'bad input';
  return {
    problems,
    figures: [
      figure(scenario, 'bad inputs tried', answers.length, '> 0', answers.length > 0),
      figure(
        scenario,
        'answered (status)',
        tally(answers.map(({ answer }) => String(answer.status)).sort()),
        '4xx only',
        fiveXx === 0,
      ),
      figure(
        scenario,
        '4xx with the JSON error shape',
        `${shaped}/${answers.length}`,
        'all',
        shaped === answers.length,
      ),
      figure(scenario, '5xx answers', fiveXx, '0', fiveXx === 0),
      figure(
        scenario,
        'executions, databases, secrets made',
        before === after ? 0 : 'some',
        '0',
        before === after,
      ),
      figure(
        scenario,
        'unknown fields refused by name',
        `${unknown.refused}/${unknown.tried}`,
        'all',
        unknown.refused === unknown.tried,
      ),
      figure(
        scenario,
        'injection text stored verbatim, tenant active',
        `${verbatim.ok}/${verbatim.tried}`,
        'all',
        verbatim.ok === verbatim.tried,
      ),
    ],
  };
}

/** Unknown fields at each depth are refused with their path, not ignored. */
async function unknownFields(sut: SandboxUnderTest) {
  const valid = { name: uniqueName('Unknown Field'), plan: 'basic', adminUser: { email: 'u@example.com' } };
  const cases: [Body, string][] = [
    [{ ...valid, isAdmin: true }, 'isAdmin'],
    [{ ...valid, adminUser: { ...valid.adminUser, role: 'owner' } }, 'adminUser.role'],
    [{ ...valid, features: { sso: true } }, 'features.sso'],
    [
      { ...valid, securityPolicy: { passwordPolicy: { minLength: 12, allowBlank: true } } },
      'securityPolicy.passwordPolicy.allowBlank',
    ],
    [{ ...valid, limits: { maxUsers: 5, maxDatabases: 9 } }, 'limits.maxDatabases'],
  ];
  const problems: string[] = [];
  let refused = 0;
  for (const [body, path] of cases) {
    const answer = await sut.request('POST', '/tenants', { body: JSON.stringify(body), headers: json });
    const parsed = ErrorBody.safeParse(answer.body);
    if (
      answer.status === 400 &&
      parsed.success &&
      parsed.data.error.details.some((detail) => detail.path === path)
    )
      refused += 1;
    else problems.push(`unknown field ${path}: ${answer.status} ${answer.text.slice(0, 200)}`);
  }
  return { tried: cases.length, refused, problems };
}

/** Valid requests whose free text is all injection: accepted, stored as given, provisioned like any other. */
async function injectionStoredVerbatim(sut: SandboxUnderTest) {
  const problems: string[] = [];
  let ok = 0;
  const names = ["Robert'); DROP TABLE tenants; --", 'x" OR "1"="1', '$$; DROP DATABASE postgres; $$'];
  for (const text of names) {
    const name = `${text} ${uniqueName('')}`.trim();
    const body = {
      name,
      slug: uniqueName('inj').replaceAll(' ', '-'),
      plan: 'basic',
      adminUser: { email: 'inj@example.com', firstName: text, lastName: "'; --" },
      settings: { [text]: text, nested: { "a'b": ['"; DROP ROLE provisioner; --'] } },
    };
    const answer = await sut.request('POST', '/tenants', { body: JSON.stringify(body), headers: json });
    const created = z.object({ tenantId: z.string() }).safeParse(answer.body);
    if (answer.status !== 202 || !created.success) {
      problems.push(`injection ${text}: ${answer.status} ${answer.text.slice(0, 200)}`);
      continue;
    }
    const settled = await waitSettled(sut, created.data.tenantId);
    const { rows } = await sut
      .superuser('control_plane')
      .query('SELECT name, config FROM tenants WHERE id = $1', [created.data.tenantId]);
    const stored = z
      .object({
        name: z.string(),
        config: z.object({ settings: z.unknown(), adminUser: z.object({ firstName: z.string() }) }),
      })
      .safeParse(rows[0]);
    if (
      settled?.status === 'active' &&
      stored.success &&
      stored.data.name === name &&
      stored.data.config.adminUser.firstName === text &&
      isDeepStrictEqual(stored.data.config.settings, body.settings)
    ) {
      ok += 1;
    } else
      problems.push(`injection ${text}: ${settled?.status}, stored ${JSON.stringify(rows[0]).slice(0, 200)}`);
  }
  return { tried: names.length, ok, problems };
}
