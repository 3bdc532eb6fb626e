import { setTimeout as sleep } from 'node:timers/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { recordRowFailure, startRow } from '../../functions/bulk/rows.ts';
import { BatchStore, newBatchId } from '../../functions/bulk/store.ts';
import { STAGE } from '../../local/constants.ts';
import { newTenantId } from '../../schema/names.ts';
import { type ApiUnderTest, apiUnderTest, call, ErrorBody } from '../api/api.ts';
import {
  clients,
  NOTHING_LEFT,
  PROVISION_STATE_MACHINE,
  provisioner,
  registry,
  tenantTraces,
} from '../provision/helpers.ts';
import {
  addFaults,
  type FaultRuleInput,
  removeFaults,
  superuserPool,
  uniqueName,
} from '../support/sandbox.ts';

const Problem = z.object({ path: z.string(), message: z.string() });
const DryRun = z.strictObject({
  dryRun: z.literal(true),
  valid: z.boolean(),
  summary: z.strictObject({ rows: z.number(), valid: z.number(), invalid: z.number() }),
  rows: z.array(
    z.strictObject({
      index: z.number(),
      line: z.number().nullable(),
      name: z.string().nullable(),
      slug: z.string().nullable(),
      plan: z.string().nullable(),
      problems: z.array(Problem),
      suggestions: z.array(z.string()),
    }),
  ),
});
const Created = z.strictObject({
  batchId: z.string().regex(/^b[a-z0-9]{15}$/),
  status: z.literal('running'),
  executionArn: z.string(),
  rows: z.array(
    z.strictObject({
      index: z.number(),
      line: z.number().nullable(),
      slug: z.string(),
      tenantId: z.string(),
    }),
  ),
  links: z.strictObject({ self: z.string() }),
});
const Batch = z.looseObject({
  id: z.string(),
  status: z.string(),
  summary: z.strictObject({
    rows: z.number(),
    pending: z.number(),
    provisioning: z.number(),
    succeeded: z.number(),
    failed: z.number(),
  }),
  rows: z.array(
    z.looseObject({
      index: z.number(),
      slug: z.string(),
      tenantId: z.string(),
      outcome: z.string(),
      tenantStatus: z.string().nullable(),
      error: z.object({ step: z.string().nullable(), error: z.string(), cause: z.string() }).nullable(),
    }),
  ),
});

let api: ApiUnderTest;
let token: string;
let caller: string;
beforeAll(async () => {
  api = await apiUnderTest();
  caller = uniqueName('bulk-test');
  token = await api.token({ sub: caller });
});

/** The batches this test file's caller recorded. */
async function batchesOfCaller(): Promise<number> {
  const { rows } = await superuserPool('control_plane').query(
    'SELECT count(*)::int AS n FROM tenant_batches WHERE created_by = $1',
    [`api:${caller}`],
  );
  return z.array(z.object({ n: z.number() })).parse(rows)[0]?.n ?? 0;
}

async function tenantsWithSlugs(slugs: readonly string[]): Promise<string[]> {
  const { rows } = await superuserPool('control_plane').query(
    'SELECT slug FROM tenants WHERE slug = ANY($1) ORDER BY slug',
    [slugs],
  );
  return z
    .array(z.object({ slug: z.string() }))
    .parse(rows)
    .map((row) => row.slug);
}

async function waitForBatch(batchId: string, timeoutMs = 150_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const answer = await call(api, 'GET', `/tenant-batches/${batchId}`, { token });
    expect(answer.status).toBe(200);
    const batch = Batch.parse(answer.body);
    if (batch.status !== 'running') return batch;
    if (Date.now() > deadline)
      throw new Error(`batch ${batchId} still running: ${JSON.stringify(batch.summary)}`);
    await sleep(250);
  }
}

describe('POST /tenant-batches, dry run', () => {
  it('reports every CSV row with its problems at their columns and the slug it would take; creates nothing', async () => {
    // Prepare
    const prefix = uniqueName('dry');
    const taken = await call(api, 'POST', '/tenants', {
      token,
      body: { name: `${prefix} Taken`, plan: 'basic', adminUser: { email: 'owner@example.com' } },
    });
    expect(taken.status).toBe(202);
    const takenSlug = z.object({ slug: z.string() }).parse(taken.body).slug;
    const csv = [
      'name,slug,plan,admin_email,admin_first_name,auth,features,max_users,mfa_required',
      `${prefix} Good,,basic,good@example.com,Ada,,,,`,
      `"${prefix} Quoted, Inc.",${prefix}-pro,professional,pro@example.com,,password;2fa,apiAccess,20,true`,
      `${prefix} Bad,${prefix}-pro,basic,not-an-email,,sso,customBranding,many,maybe`,
      `${prefix} Taken Again,${takenSlug},basic,t@example.com,,,,,`,
      `${prefix} Over,,basic,o@example.com,,,,500,`,
    ].join('\r\n');

    // Act
    const answer = await call(api, 'POST', '/tenant-batches?dryRun=true', {
      token,
      rawBody: csv,
      headers: { 'content-type': 'text/csv' },
    });

    // Assess
    expect(answer.status).toBe(200);
    const report = DryRun.parse(answer.body);
    expect(report.valid).toBe(false);
    expect(report.summary).toEqual({ rows: 5, valid: 2, invalid: 3 });
    expect(report.rows.map((row) => [row.index, row.line, row.slug])).toEqual([
      [0, 2, `${prefix}-good`],
      [1, 3, `${prefix}-pro`],
      [2, 4, `${prefix}-pro`],
      [3, 5, takenSlug],
      [4, 6, `${prefix}-over`],
    ]);
    expect(report.rows[0]?.problems).toEqual([]);
    expect(report.rows[1]?.problems).toEqual([]);
    const bad = report.rows[2]?.problems.map((problem) => problem.path).sort();
    expect(bad).toEqual(['admin_email', 'auth', 'features', 'max_users', 'mfa_required', 'slug']);
    expect(report.rows[2]?.problems.find((problem) => problem.path === 'slug')?.message).toContain('line 3');
    expect(report.rows[3]?.problems).toEqual([{ path: 'slug', message: `The slug "${takenSlug}" is taken` }]);
    expect(report.rows[3]?.suggestions.length).toBeGreaterThan(0);
    expect(report.rows[4]?.problems).toEqual([
      { path: 'max_users', message: 'maxUsers may not exceed 10 on the basic plan' },
    ]);
    expect(await tenantsWithSlugs([`${prefix}-good`, `${prefix}-pro`, `${prefix}-over`])).toEqual([]);
    expect(await batchesOfCaller()).toBe(0);
  });

  it('validates a JSON batch with the create-tenant rules, dryRun in the body', async () => {
    // Prepare
    const prefix = uniqueName('dry-json');
    const body = {
      dryRun: true,
      tenants: [
        {
          name: `${prefix} A`,
          plan: 'enterprise',
          adminUser: { email: 'a@example.com' },
          features: { auth: ['sso'] },
        },
        { name: `${prefix} B`, plan: 'basic', adminUser: { email: 'b@example.com' }, color: 'red' },
        { name: `${prefix} C`, plan: 'basic', adminUser: { email: 'c@example.com' }, slug: `${prefix}-a` },
      ],
    };

    // Act
    const answer = await call(api, 'POST', '/tenant-batches', { token, body });

    // Assess
    expect(answer.status).toBe(200);
    const report = DryRun.parse(answer.body);
    expect(report.summary).toEqual({ rows: 3, valid: 1, invalid: 2 });
    expect(report.rows[1]?.problems).toEqual([{ path: 'color', message: 'Unknown field' }]);
    expect(report.rows[2]?.problems).toEqual([
      { path: 'slug', message: `The slug "${prefix}-a" is also that of row 0 of this batch` },
    ]);
    expect(await batchesOfCaller()).toBe(0);
  });
});

describe('POST /tenant-batches, refusals', () => {
  it('refuses a real run with an invalid row whole, creating nothing', async () => {
    // Prepare
    const prefix = uniqueName('refused');
    const csv = `name,plan,admin_email\n${prefix} Fine,basic,f@example.com\n${prefix} Broken,platinum,b@example.com\n`;

    // Act
    const answer = await call(api, 'POST', '/tenant-batches', {
      token,
      rawBody: csv,
      headers: { 'content-type': 'text/csv' },
    });

    // Assess
    expect(answer.status).toBe(400);
    const { error } = ErrorBody.parse(answer.body);
    expect(error.code).toBe('invalid_request');
    expect(error.details.map((detail) => detail.path)).toEqual(['rows[1].plan']);
    expect(error.details[0]?.message).toMatch(/^line 3: /);
    expect(await tenantsWithSlugs([`${prefix}-fine`])).toEqual([]);
    expect(await batchesOfCaller()).toBe(0);
  });

  it('refuses a file that is no batch: an unknown column, a missing required one, no row', async () => {
    // Act
    const unknown = await call(api, 'POST', '/tenant-batches', {
      token,
      rawBody: 'name,plan,admin_email,colour\nA,basic,a@example.com,red\n',
      headers: { 'content-type': 'text/csv' },
    });
    const missing = await call(api, 'POST', '/tenant-batches', {
      token,
      rawBody: 'name,plan\nA,basic\n',
      headers: { 'content-type': 'text/csv' },
    });
    const empty = await call(api, 'POST', '/tenant-batches', { token, body: { tenants: [] } });

    // Assess
    expect(unknown.status).toBe(400);
    expect(ErrorBody.parse(unknown.body).error.details).toEqual([
      { path: 'header[3]', message: expect.stringContaining('Unknown column "colour"') },
    ]);
    expect(missing.status).toBe(400);
    expect(ErrorBody.parse(missing.body).error.details).toEqual([
      { path: 'header', message: 'The column "admin_email" is required' },
    ]);
    expect(empty.status).toBe(400);
  });

  it('needs the admin scope to create and answers 404 for an unknown batch', async () => {
    // Prepare
    const reader = await api.token({ scopes: ['tenants/read'] });

    // Act
    const post = await call(api, 'POST', '/tenant-batches', {
      token: reader,
      body: { tenants: [{ name: 'X', plan: 'basic', adminUser: { email: 'x@example.com' } }] },
    });
    const unknown = await call(api, 'GET', `/tenant-batches/${newBatchId()}`, { token: reader });
    const malformed = await call(api, 'GET', '/tenant-batches/nope', { token: reader });

    // Assess
    expect(post.status).toBe(403);
    expect(unknown.status).toBe(404);
    expect(malformed.status).toBe(404);
  });
});

describe('POST /tenant-batches, text PostgreSQL cannot store and rows nested too deep', () => {
  it('reports a NUL in a CSV slug cell and a lone surrogate in a JSON slug at the slug, dry run or not', async () => {
    // Prepare
    const prefix = uniqueName('nul-slug');
    const csv = `name,slug,plan,admin_email\n${prefix} Nul,bad\u0000slug,basic,n@example.com\n`;
    const json = {
      tenants: [
        {
          name: `${prefix} Lone`,
          slug: `${prefix}-\ud800`,
          plan: 'basic',
          adminUser: { email: 'l@example.com' },
        },
      ],
    };
    const csvRequest = { token, rawBody: csv, headers: { 'content-type': 'text/csv' } };

    // Act
    const csvDry = await call(api, 'POST', '/tenant-batches?dryRun=true', csvRequest);
    const csvReal = await call(api, 'POST', '/tenant-batches', csvRequest);
    const jsonDry = await call(api, 'POST', '/tenant-batches', { token, body: { ...json, dryRun: true } });
    const jsonReal = await call(api, 'POST', '/tenant-batches', { token, body: json });

    // Assess
    expect([csvDry.status, csvReal.status, jsonDry.status, jsonReal.status]).toEqual([200, 400, 200, 400]);
    for (const answer of [csvDry, jsonDry]) {
      const report = DryRun.parse(answer.body);
      expect(report.valid).toBe(false);
      expect(report.rows[0]?.problems.map((problem) => problem.path)).toEqual(['slug']);
    }
    expect(ErrorBody.parse(csvReal.body).error.details.map((detail) => detail.path)).toEqual([
      'rows[0].slug',
    ]);
    expect(ErrorBody.parse(jsonReal.body).error.details.map((detail) => detail.path)).toEqual([
      'tenants[0].slug',
    ]);
    expect(await batchesOfCaller()).toBe(0);
  });

  it('refuses on the dry run a row with a NUL in settings, as the real run does', async () => {
    // Prepare
    const row = {
      name: uniqueName('nul-settings'),
      plan: 'basic',
      adminUser: { email: 's@example.com', firstName: 'Ada' },
      settings: { theme: 'dark\u0000' },
    };

    // Act
    const dry = await call(api, 'POST', '/tenant-batches', { token, body: { dryRun: true, tenants: [row] } });
    const real = await call(api, 'POST', '/tenant-batches', { token, body: { tenants: [row] } });

    // Assess
    expect(dry.status).toBe(200);
    const report = DryRun.parse(dry.body);
    expect(report.valid).toBe(false);
    expect(report.rows[0]?.problems.map((problem) => problem.path)).toEqual(['settings.theme']);
    expect(real.status).toBe(400);
    expect(ErrorBody.parse(real.body).error.details.map((detail) => detail.path)).toEqual([
      'tenants[0].settings.theme',
    ]);
    expect(await batchesOfCaller()).toBe(0);
  });

  it('reports rows nested 60,000 levels deep, with an Idempotency-Key too', async () => {
    // Prepare: built as text (JSON.stringify cannot write them either); 60,000 levels twice fit in 256 KB
    const deepArray = `${'['.repeat(60_000)}${']'.repeat(60_000)}`;
    const deepSettings = `{"name":${JSON.stringify(uniqueName('deep'))},"plan":"basic","adminUser":{"email":"d@example.com"},"settings":{"a":${deepArray}}}`;
    const rawBody = `{"dryRun":true,"tenants":[${deepArray},${deepSettings}]}`;

    // Act
    const answer = await call(api, 'POST', '/tenant-batches', {
      token,
      rawBody,
      headers: { 'content-type': 'application/json', 'idempotency-key': uniqueName('deep') },
    });

    // Assess
    expect(answer.status).toBe(200);
    const report = DryRun.parse(answer.body);
    expect(report.summary).toEqual({ rows: 2, valid: 0, invalid: 2 });
    expect(report.rows[0]?.problems.map((problem) => problem.path)).toEqual(['']);
    expect(report.rows[1]?.problems).toEqual([{ path: 'settings', message: 'At most 5 levels of nesting' }]);
  });
  it('keeps a report that echoes a NUL for its Idempotency-Key, and answers it again', async () => {
    // Prepare: the row's name and slug come back in the report, which the key's record keeps
    const request = {
      token,
      rawBody: `name,slug,plan,admin_email\n${uniqueName('echo')} \u0000,x\u0000y,basic,e@example.com\n`,
      headers: { 'content-type': 'text/csv', 'idempotency-key': uniqueName('echo') },
    };
    const first = await call(api, 'POST', '/tenant-batches?dryRun=true', request);

    // Act
    const again = await call(api, 'POST', '/tenant-batches?dryRun=true', request);

    // Assess
    expect(first.status).toBe(200);
    expect(again.status).toBe(200);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body).toEqual(first.body);
  });
});

describe('POST /tenant-batches, a real run', () => {
  it('provisions 10 rows; the one made to fail is reported alone and leaves nothing behind', {
    timeout: 180_000,
  }, async () => {
    // Prepare
    const prefix = uniqueName('bulk');
    const tenants = Array.from({ length: 10 }, (_, i) => ({
      name: `${prefix} ${i}`,
      plan: i % 2 === 0 ? 'basic' : 'professional',
      adminUser: { email: `admin${i}@example.com` },
    }));

    // Act
    const answer = await call(api, 'POST', '/tenant-batches', { token, body: { tenants } });
    expect(answer.status).toBe(202);
    const created = Created.parse(answer.body);
    // The last row starts once a first row has ended (8 at a time), and SeedDefaults is its sixth step: the
    // fault, scoped to that row's tenant id (known from the answer), is in place long before.
    const failing = created.rows[9];
    if (!failing) throw new Error('no row 9');
    const fault: FaultRuleInput = {
      service: 'secrets-manager',
      operation: 'CreateSecret',
      match: `tenants/${STAGE}/${failing.tenantId}/invitation/admin`,
      error: { code: 'AccessDeniedException', statusCode: 400, message: 'Injected: not allowed' },
      count: 1,
    };
    await addFaults([fault]);
    let batch: z.infer<typeof Batch>;
    try {
      batch = await waitForBatch(created.batchId);
    } finally {
      await removeFaults([fault]);
    }

    // Assess
    expect(answer.headers.get('location')).toBe(`/tenant-batches/${created.batchId}`);
    expect(created.rows.map((row) => row.slug)).toEqual(tenants.map((_, i) => `${prefix}-${i}`));
    expect(batch.status).toBe('completed_with_failures');
    expect(batch.summary).toEqual({ rows: 10, pending: 0, provisioning: 0, succeeded: 9, failed: 1 });
    const failed = batch.rows.filter((row) => row.outcome === 'failed');
    expect(failed.map((row) => [row.index, row.tenantId, row.tenantStatus, row.error?.step])).toEqual([
      [9, failing.tenantId, 'failed', 'SeedDefaults'],
    ]);
    expect(failed[0]?.error?.error).toBe('AccessDeniedException');
    expect(await tenantTraces(failing.tenantId)).toEqual(NOTHING_LEFT);
    for (const row of batch.rows.filter((r) => r.index !== 9)) {
      expect(row.tenantStatus).toBe('active');
      expect((await registry.tenants.require(row.tenantId)).slug).toBe(row.slug);
    }
  });
});

describe('a row whose slug is taken after its batch was accepted', () => {
  it('fails alone with slug_taken at run time, creating no tenant', async () => {
    // Prepare: a recorded batch whose row's slug another tenant takes before the row runs.
    const batches = new BatchStore(provisioner);
    const batchId = newBatchId();
    const tenantId = newTenantId();
    const slug = uniqueName('late');
    const request = { name: `Late ${slug}`, slug, plan: 'basic', adminUser: { email: 'late@example.com' } };
    await batches.create({
      id: batchId,
      source: 'json',
      createdBy: 'api:bulk-test',
      rows: [{ index: 0, line: null, tenantId, slug, name: request.name, request }],
    });
    const rival = await call(api, 'POST', '/tenants', { token, body: { ...request, name: `Rival ${slug}` } });
    expect(rival.status).toBe(202);

    // Act
    const result = await startRow(
      {
        tenants: registry.tenants,
        batches,
        sfn: clients.sfn,
        provisionStateMachineArn: PROVISION_STATE_MACHINE,
      },
      { batchId, index: 0, tenantId },
    );

    // Assess
    expect(result).toEqual({ started: false, executionArn: null });
    expect(await registry.tenants.get(tenantId)).toBeUndefined();
    const [row] = await batches.rows(batchId);
    expect(row?.status).toBe('failed');
    expect(row?.error).toEqual({
      step: null,
      error: 'SlugTakenError',
      cause: expect.stringContaining(`"${slug}" was taken after the batch was accepted`),
    });
  });
});

describe('a row whose provisioning cannot be started', () => {
  it('undoes its reservation, is retried as unavailable, and is recorded failed with nothing left', async () => {
    // Prepare
    const batches = new BatchStore(provisioner);
    const batchId = newBatchId();
    const tenantId = newTenantId();
    const slug = uniqueName('unstarted');
    const request = { name: `Unstarted ${slug}`, slug, plan: 'basic', adminUser: { email: 'u@example.com' } };
    await batches.create({
      id: batchId,
      source: 'json',
      createdBy: 'api:bulk-test',
      rows: [{ index: 0, line: null, tenantId, slug, name: request.name, request }],
    });
    const fault: FaultRuleInput = {
      service: 'sfn',
      operation: 'StartExecution',
      match: tenantId,
      error: { code: 'AccessDeniedException', statusCode: 400, message: 'Injected: not allowed' },
      count: 1,
    };
    const deps = {
      tenants: registry.tenants,
      batches,
      sfn: clients.sfn,
      provisionStateMachineArn: PROVISION_STATE_MACHINE,
    };
    await addFaults([fault]);

    // Act
    let thrown: unknown;
    try {
      await startRow(deps, { batchId, index: 0, tenantId });
    } catch (error) {
      thrown = error;
    } finally {
      await removeFaults([fault]);
    }
    const afterStart = await registry.tenants.get(tenantId);
    const recorded = await recordRowFailure(deps, {
      batchId,
      index: 0,
      tenantId,
      error: {
        Error: 'ServiceUnavailableError',
        Cause: JSON.stringify({ errorMessage: 'Provisioning could not be started' }),
      },
    });

    // Assess
    expect(thrown).toBeInstanceOf(Error);
    expect(thrown instanceof Error ? thrown.name : '').toBe('ServiceUnavailableError');
    expect(afterStart).toBeUndefined();
    expect(recorded).toEqual({ outcome: 'failed' });
    const [row] = await batches.rows(batchId);
    expect(row?.status).toBe('failed');
    expect(row?.error).toEqual({
      step: null,
      error: 'ServiceUnavailableError',
      cause: 'Provisioning could not be started',
    });
    expect(await tenantsWithSlugs([slug])).toEqual([]);
  });
});
