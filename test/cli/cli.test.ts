import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { main } from '../../cli/tenants.ts';
import { PROVISIONING_STEPS } from '../../functions/provision/step.ts';
import { PROJECT_ROOT } from '../../local/constants.ts';
import { type ApiUnderTest, apiUnderTest } from '../api/api.ts';
import { registry } from '../provision/helpers.ts';
import { uniqueName } from '../support/sandbox.ts';
import { collectUsage } from '../usage/helpers.ts';
import { type CliRun, runCli } from './cli.ts';

/** The `tenants` command driven as a user drives it: a child process, piped, the sandbox's API in its environment. */
let api: ApiUnderTest;
let token: string;
let dir: string;
beforeAll(async () => {
  api = await apiUnderTest();
  token = await api.token({ sub: uniqueName('cli-test') });
  dir = await mkdtemp(join(tmpdir(), 'cli-test-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const tenants = (args: readonly string[], env: NodeJS.ProcessEnv = {}) =>
  runCli(args, { apiUrl: api.url, token, env, cwd: dir });

const lines = (run: CliRun) => run.stdout.split('\n').filter((line) => line !== '');

describe('tenants create', () => {
  it('follows the provisioning step by step in plain lines when piped, and exits 0 once active', {
    timeout: 90_000,
  }, async () => {
    // Prepare
    const name = uniqueName('Cli Create');

    // Act
    const run = await tenants([
      'create',
      name,
      '--plan',
      'professional',
      '--admin-email',
      'cli@example.com',
      '--feature',
      'apiAccess',
    ]);

    // Assess
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const output = lines(run);
    const tenantId = /tenant (t[a-z0-9]{15})/.exec(output[0] ?? '')?.[1] ?? '';
    expect(output[0]).toMatch(/^create: tenant t[a-z0-9]{15} \(cli-create-[0-9a-f]{8}\) is provisioning$/);
    // Each step's end, in the order provisioning runs them.
    const ends = output.filter((line) => / succeeded in /.test(line)).map((line) => line.split(':')[0]);
    expect(ends).toEqual(PROVISIONING_STEPS);
    expect(output).toContain('status: provisioning → active');
    expect(output.at(-1)).toBe(`tenant ${tenantId} (${name.toLowerCase().replaceAll(' ', '-')}) is active`);
    expect(run.stdout).not.toContain('\x1b[');
    const tenant = await registry.tenants.require(tenantId);
    expect(tenant.status).toBe('active');
    expect(tenant.config.features.apiAccess).toBe(true);
  });

  it('with --json --no-wait prints only the accepted tenant, at once', async () => {
    // Act
    const run = await tenants([
      'create',
      uniqueName('Cli Json'),
      '--plan',
      'basic',
      '--admin-email',
      'json@example.com',
      '--json',
      '--no-wait',
    ]);

    // Assess
    expect(run.code).toBe(0);
    const body = z
      .object({ tenantId: z.string(), status: z.literal('provisioning'), executionArn: z.string() })
      .parse(JSON.parse(run.stdout));
    expect(body.tenantId).toMatch(/^t[a-z0-9]{15}$/);
  });

  it('exits 2 on a wrong command line, 3 on a refusal, with the API error on stderr', async () => {
    // Act
    const missing = await tenants(['create', 'No Plan', '--admin-email', 'x@example.com']);
    const unknownOption = await tenants(['list', '--colour', 'red']);
    const refused = await tenants(['create', 'Bad Email', '--plan', 'basic', '--admin-email', 'nope']);
    const notFound = await tenants(['get', 'tzzzzzzzzzzzzzzz']);

    // Assess
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--plan is required');
    expect(unknownOption.code).toBe(2);
    expect(unknownOption.stderr).toContain("Unknown option '--colour'");
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain('(invalid_request, HTTP 400)');
    expect(refused.stderr).toContain('adminUser.email: Invalid email address');
    expect(notFound.code).toBe(3);
    expect(notFound.stderr).toContain('(not_found, HTTP 404)');
  });

  it('exits 4 when the API does not accept its token', async () => {
    // Act
    const run = await runCli(['list'], { apiUrl: api.url, token: 'not-a-token', cwd: dir });

    // Assess
    expect(run.code).toBe(4);
    expect(run.stderr).toContain('HTTP 401');
  });

  it('exits 5 when the API cannot be reached', async () => {
    // Act
    const run = await runCli(['list'], { apiUrl: 'http://127.0.0.1:9', token, cwd: dir });

    // Assess
    expect(run.code).toBe(5);
    expect(run.stderr).toContain('Cannot reach the API at http://127.0.0.1:9');
  });
});

describe('tenants get, list', () => {
  it('shows a tenant, and lists tenants as JSON', { timeout: 90_000 }, async () => {
    // Prepare
    const name = uniqueName('Cli Get');
    const created = await tenants([
      'create',
      name,
      '--plan',
      'basic',
      '--admin-email',
      'g@example.com',
      '--json',
    ]);
    const tenant = z
      .object({ id: z.string(), slug: z.string(), status: z.string() })
      .parse(JSON.parse(created.stdout));

    // Act
    const shown = await tenants(['get', tenant.id]);
    const listed = await tenants(['list', '--status', 'active', '--limit', '100', '--json']);

    // Assess
    expect(created.code).toBe(0);
    expect(tenant.status).toBe('active');
    expect(shown.code).toBe(0);
    expect(lines(shown)[0]).toBe(`${tenant.id}  ${tenant.slug}  (${name})`);
    expect(shown.stdout).toContain('  status    active');
    expect(shown.stdout).toContain(`  database  tenant_${tenant.id}`);
    expect(listed.code).toBe(0);
    const page = z
      .object({ items: z.array(z.object({ id: z.string(), status: z.string() })) })
      .parse(JSON.parse(listed.stdout));
    expect(page.items.every((item) => item.status === 'active')).toBe(true);
  });
});

describe('on a terminal', () => {
  it('redraws one block in place as the provisioning moves, every step ticked at the end', {
    timeout: 90_000,
  }, async () => {
    // Prepare: a terminal as the CLI sees one (isTTY, its size).
    let written = '';
    const terminal = { isTTY: true, rows: 40, columns: 120, write: (text: string) => (written += text) };
    let errors = '';

    // Act
    const code = await main(
      ['create', uniqueName('Cli Tty'), '--plan', 'basic', '--admin-email', 'tty@example.com'],
      {
        stdout: terminal,
        stderr: { write: (text: string) => (errors += text) },
        env: { TENANTS_API_URL: api.url, TENANTS_TOKEN: token, TENANTS_POLL_MS: '100', NO_COLOR: '1' },
        cwd: dir,
      },
    );

    // Assess
    expect(errors).toBe('');
    expect(code).toBe(0);
    // Each redraw moves the cursor up over the previous block and clears it.
    const ESC = String.fromCharCode(27);
    expect(written).toMatch(new RegExp(`${ESC}\\[\\d+F${ESC}\\[0J`));
    const lastFrame = written.slice(written.lastIndexOf('\x1b[0J') + 4).split('\n');
    for (const step of PROVISIONING_STEPS) {
      expect(lastFrame).toContainEqual(expect.stringMatching(new RegExp(`^  ✓ ${step} \\d`)));
    }
    expect(written.trimEnd().split('\n').at(-1)).toMatch(
      /^tenant t[a-z0-9]{15} \(cli-tty-[0-9a-f]{8}\) is active$/,
    );
  });
});

describe('tenants suspend, resume, plan, delete', () => {
  it('follow each run on the tenant and exit 0 when it succeeded, 3 when refused', {
    timeout: 120_000,
  }, async () => {
    // Prepare
    const created = await tenants([
      'create',
      uniqueName('Cli Life'),
      '--plan',
      'basic',
      '--admin-email',
      'l@example.com',
      '--json',
    ]);
    const { id, slug } = z.object({ id: z.string(), slug: z.string() }).parse(JSON.parse(created.stdout));

    // Act
    const suspended = await tenants(['suspend', id, '--reason', 'Invoice unpaid']);
    const resumed = await tenants(['resume', id, '--reason', 'Invoice paid']);
    const upgraded = await tenants(['plan', id, 'professional', '--limit', 'maxUsers=20']);
    const wrongSlug = await tenants(['delete', id, '--confirm', `${slug}-not`]);

    // Assess
    expect(suspended.code).toBe(0);
    expect(lines(suspended)[0]).toBe(`suspend: tenant ${id} (${slug}) is active`);
    expect(lines(suspended)).toContain('status: active → suspended');
    expect(lines(suspended).at(-1)).toBe(`tenant ${id} (${slug}) is suspended`);
    expect(resumed.code).toBe(0);
    expect(lines(resumed).at(-1)).toBe(`tenant ${id} (${slug}) is active`);
    expect(upgraded.code).toBe(0);
    expect(lines(upgraded).at(-1)).toMatch(
      new RegExp(`^tenant ${id} \\(${slug}\\) is on the professional plan: .*maxUsers=20`),
    );
    expect(wrongSlug.code).toBe(3);
    expect((await registry.tenants.require(id)).status).toBe('active');
  });
});

describe('tenants bulk', () => {
  it('reports a dry run row by row and exits 1 when a row is invalid; creates nothing', async () => {
    // Prepare
    const prefix = uniqueName('clidry');
    const file = join(dir, 'dry.csv');
    await writeFile(
      file,
      `name,plan,admin_email\n${prefix} Ok,basic,ok@example.com\n${prefix} Bad,gold,bad@example.com\n`,
    );

    // Act
    const run = await tenants(['bulk', file, '--dry-run']);
    const json = await tenants(['bulk', file, '--dry-run', '--json']);

    // Assess
    expect(run.code).toBe(1);
    expect(lines(run)).toEqual([
      `ok      line 2: ${prefix}-ok (basic)`,
      `invalid line 3: ${prefix}-bad (gold)`,
      expect.stringMatching(/^ {10}plan: /),
      'dry run: 1 of 2 rows are invalid (1 valid); nothing was created',
    ]);
    expect(json.code).toBe(1);
    expect(z.object({ valid: z.literal(false) }).parse(JSON.parse(json.stdout))).toEqual({ valid: false });
    expect(await registry.tenants.freeSlugs([`${prefix}-ok`])).toEqual([`${prefix}-ok`]);
  });

  it('provisions a CSV, a line per row as it ends, and exits 0; watch on the batch then ends at once', {
    timeout: 120_000,
  }, async () => {
    // Prepare
    const prefix = uniqueName('clibulk');
    const file = join(dir, 'bulk.csv');
    await writeFile(
      file,
      `name,plan,admin_email,admin_first_name\n${prefix} A,basic,a@example.com,Ada\n${prefix} B,professional,b@example.com,Bob\n${prefix} C,basic,c@example.com,\n`,
    );

    // Act
    const run = await tenants(['bulk', file]);
    const batchId = /batch (b[a-z0-9]{15})/.exec(run.stdout)?.[1] ?? '';
    const watched = await tenants(['watch', batchId, '--json']);

    // Assess
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const output = lines(run);
    expect(output[0]).toBe(`batch ${batchId}: 3 rows, running`);
    for (const [index, letter] of ['a', 'b', 'c'].entries()) {
      expect(output).toContainEqual(
        expect.stringMatching(
          new RegExp(`^row ${index} \\(line ${index + 2}\\) ${prefix}-${letter}: succeeded t[a-z0-9]{15}$`),
        ),
      );
    }
    expect(output).toContain('progress: 3/3 done (3 succeeded, 0 failed), 0 provisioning');
    expect(output.at(-1)).toBe(`batch ${batchId} succeeded: 3 of 3 rows provisioned, 0 failed`);
    expect(watched.code).toBe(0);
    expect(z.object({ id: z.string(), status: z.string() }).parse(JSON.parse(watched.stdout))).toEqual({
      id: batchId,
      status: 'succeeded',
    });
  });
});

describe('the launcher (package.json bin)', () => {
  // The shebang's `node` is whatever the PATH has first: the project's pinned Node.js 24 inside npm scripts, the
  // system's (maybe older) outside. The launcher runs the CLI either way.
  const nodes = [process.execPath, '/usr/bin/node', '/usr/local/bin/node'].filter(
    (node, i, all) => existsSync(node) && all.indexOf(node) === i,
  );

  it.for(nodes)('runs under %s', async (node) => {
    // Act
    const run = await runCli(['--version'], { apiUrl: api.url, token, node, cwd: dir });
    const help = await runCli(['--help'], { apiUrl: api.url, token, node, cwd: dir });

    // Assess
    const { version } = z
      .object({ version: z.string() })
      .parse(JSON.parse(await readFile(join(PROJECT_ROOT, 'package.json'), 'utf8')));
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(`${version}\n`);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Exit codes:');
  });
});

describe('tenants credentials', () => {
  it("prints a role's secret ARN, issued with its expiry when the plan does not stand it; exits 2 on a bad ttl", {
    timeout: 90_000,
  }, async () => {
    // Prepare
    const created = await tenants([
      'create',
      uniqueName('Cli Credentials'),
      '--plan',
      'basic',
      '--admin-email',
      'c@example.com',
      '--json',
    ]);
    const { id } = z.object({ id: z.string() }).parse(JSON.parse(created.stdout));

    // Act
    const app = await tenants(['credentials', id, 'app']);
    const admin = await tenants(['credentials', id, 'admin', '--ttl-hours', '2']);
    const badTtl = await tenants(['credentials', id, 'admin', '--ttl-hours', 'soon']);

    // Assess
    const record = await registry.tenants.require(id);
    expect(app.code).toBe(0);
    expect(lines(app)).toEqual([
      `app of tenant ${id}: ${record.resources.secrets?.app} (standing on its plan)`,
    ]);
    expect(admin.code).toBe(0);
    expect(lines(admin)).toEqual([
      `admin of tenant ${id}: ${record.resources.secrets?.admin} (issued now, expires ${record.resources.credentialExpiries?.admin})`,
    ]);
    expect(badTtl.code).toBe(2);
  });
});

describe('tenants usage', () => {
  it('shows the latest reading against the limits, and says when there is none yet', {
    timeout: 120_000,
  }, async () => {
    // Prepare
    const created = await tenants([
      'create',
      uniqueName('Cli Usage'),
      '--plan',
      'basic',
      '--admin-email',
      'u@example.com',
      '--json',
    ]);
    const { id } = z.object({ id: z.string() }).parse(JSON.parse(created.stdout));
    const before = await tenants(['usage', id]);
    const at = new Date(Math.floor(Date.now() / 60_000) * 60_000 + 30 * 60_000);
    await collectUsage(at);

    // Act
    const shown = await tenants(['usage', id]);
    const json = await tenants(['usage', id, '--json']);

    // Assess
    expect(before.code).toBe(0);
    expect(lines(before)).toEqual([
      `tenant ${id}: not measured yet (the usage collector runs every few minutes)`,
    ]);
    expect(shown.code).toBe(0);
    expect(lines(shown)[0]).toBe(`tenant ${id}, measured ${at.toISOString()}`);
    expect(lines(shown)[1]).toMatch(/^MEASURE\s+USED\s+LIMIT\s+SHARE\s+UNIT$/);
    expect(shown.stdout).toMatch(/users\s+1\s+10\s+10\.0%\s+Count/);
    expect(z.object({ measuredAt: z.string() }).parse(JSON.parse(json.stdout)).measuredAt).toBe(
      at.toISOString(),
    );
  });
});
