import { isDeepStrictEqual } from 'node:util';
import { ListExecutionsCommand } from '@aws-sdk/client-sfn';
import { stateMachineArn } from '../../local/constants.ts';
import { figure, type ScenarioResult, tally } from '../report.ts';
import type { Answer, SandboxUnderTest } from '../sandbox.ts';
import { tenantRequest, uniqueName, waitSettled } from '../tenants.ts';
import { registryRows } from '../traces.ts';

export const CONCURRENT_REQUESTS = 50;

/** Every execution of provision-tenant, by name. */
async function executionNames(sut: SandboxUnderTest): Promise<string[]> {
  const names: string[] = [];
  let nextToken: string | undefined;
  do {
    const page = await sut.clients.sfn.send(
      new ListExecutionsCommand({
        stateMachineArn: stateMachineArn('provision-tenant'),
        maxResults: 1000,
        nextToken,
      }),
    );
    names.push(...(page.executions ?? []).flatMap((execution) => (execution.name ? [execution.name] : [])));
    nextToken = page.nextToken;
  } while (nextToken);
  return names;
}

interface Burst {
  readonly answers: Answer[];
  readonly tenants: number;
  readonly executions: number;
  /** Answers that are neither the first success (as it was) nor a 409. */
  readonly stray: Answer[];
}

async function burst(
  sut: SandboxUnderTest,
  headers: (index: number) => Record<string, string>,
): Promise<Burst> {
  const name = uniqueName('Duplicate');
  const body = JSON.stringify(tenantRequest(name));
  const answers = await Promise.all(
    Array.from({ length: CONCURRENT_REQUESTS }, (_, index) =>
      sut.request('POST', '/tenants', {
        body,
        headers: { 'content-type': 'application/json', ...headers(index) },
      }),
    ),
  );
  const slug = name.toLowerCase().replaceAll(/[^a-z0-9]+/g, '-');
  const rows = await registryRows(sut, 'slug = $1', [slug]);
  for (const row of rows) await waitSettled(sut, row.id);
  const executions = (await executionNames(sut)).filter((execution) =>
    rows.some((row) => execution.startsWith(row.id)),
  );
  const first = answers.find((answer) => answer.status === 202);
  const stray = answers.filter(
    (answer) =>
      answer.status !== 409 &&
      !(first && answer.status === 202 && isDeepStrictEqual(answer.body, first.body)),
  );
  return { answers, tenants: rows.length, executions: executions.length, stray };
}

/**
 * Duplicates under concurrency: 50 POSTs of one slug at once (each with its own Idempotency-Key), then 50 with
 * one Idempotency-Key: each burst makes exactly one tenant and one execution, and every other answer is the
 * first answer again or a 409.
 */
export async function duplicates(sut: SandboxUnderTest): Promise<ScenarioResult> {
  const before = (await executionNames(sut)).length;
  const sameSlug = await burst(sut, (index) => ({ 'idempotency-key': `slug-burst-${index}-${Date.now()}` }));
  const key = `key-burst-${Date.now()}`;
  const sameKey = await burst(sut, () => ({ 'idempotency-key': key }));
  const after = (await executionNames(sut)).length;
  const problems: string[] = [];
  const scenario = 'duplicates';
  const figures = [];
  for (const [label, result] of [
    ['same slug', sameSlug],
    ['same Idempotency-Key', sameKey],
  ] as const) {
    if (result.tenants !== 1) problems.push(`${label}: ${result.tenants} tenants`);
    if (result.executions !== 1) problems.push(`${label}: ${result.executions} executions`);
    for (const answer of result.stray)
      problems.push(`${label}: answered ${answer.status} ${answer.text.slice(0, 200)}`);
    figures.push(
      figure(
        scenario,
        `${CONCURRENT_REQUESTS} concurrent POSTs, ${label}: answers`,
        tally(result.answers.map((a) => String(a.status))),
        '202 once, else 202 replayed or 409',
        result.stray.length === 0,
      ),
      figure(
        scenario,
        `${label}: tenants / executions`,
        `${result.tenants} / ${result.executions}`,
        '1 / 1',
        result.tenants === 1 && result.executions === 1,
      ),
    );
  }
  const duplicatesCreated =
    Math.max(0, sameSlug.tenants - 1) + Math.max(0, sameKey.tenants - 1) + Math.max(0, after - before - 2);
  if (after - before !== 2) problems.push(`${after - before} executions started for 2 tenants`);
  figures.push(figure(scenario, 'duplicates created', duplicatesCreated, '0', duplicatesCreated === 0));
  return { figures, problems };
}
