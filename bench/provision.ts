import {
  DescribeExecutionCommand,
  GetExecutionHistoryCommand,
  type HistoryEvent,
  SFNClient,
} from '@aws-sdk/client-sfn';
import { z } from 'zod';
import type { SandboxInfo } from '../local/constants.ts';
import { removeDir, spawnSandbox } from '../local/spawn.ts';

/**
 * `npm run bench:provision`: POST /tenants to `active`, TENANTS tenants one after another (20 by default),
 * in a sandbox of its own; prints the median and p95, and what one provisioning costs in AWS terms:
 * state transitions, Lambda invocations and AWS calls by service, counted by the sandbox.
 */
const count = Number(process.env.TENANTS ?? 20);

const created = z.object({ tenantId: z.string(), executionArn: z.string() });
const recordedCall = z.object({ seq: z.number(), service: z.string(), operation: z.string() });

async function provisionOne(
  info: SandboxInfo,
  sfn: SFNClient,
  index: number,
): Promise<{ ms: number; executionArn: string }> {
  const started = performance.now();
  const response = await fetch(`${info.apiUrl}/tenants`, {
    method: 'POST',
    headers: { authorization: `Bearer ${info.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      name: `Bench ${index} ${Date.now()}`,
      plan: 'professional',
      adminUser: { email: `admin${index}@bench.example` },
    }),
  });
  if (response.status !== 202) throw new Error(`POST /tenants: ${response.status} ${await response.text()}`);
  const { tenantId, executionArn } = created.parse(await response.json());
  // Activate is the last step: the execution succeeds as the tenant turns active. Polling the execution
  // rather than GET /tenants keeps the benchmark's own reads out of the Data API count.
  for (;;) {
    const { status } = await sfn.send(new DescribeExecutionCommand({ executionArn }));
    if (status === 'SUCCEEDED') return { ms: performance.now() - started, executionArn };
    if (status !== 'RUNNING') throw new Error(`${tenantId}: execution ${status}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function calls(info: SandboxInfo, since: number) {
  const response = await fetch(`${info.awsEndpoint}/_sandbox/calls?since=${since}`);
  return z.array(recordedCall).parse(await response.json());
}

async function history(sfn: SFNClient, executionArn: string): Promise<HistoryEvent[]> {
  const events: HistoryEvent[] = [];
  let nextToken: string | undefined;
  do {
    const page = await sfn.send(
      new GetExecutionHistoryCommand({ executionArn, nextToken, maxResults: 1000 }),
    );
    events.push(...(page.events ?? []));
    nextToken = page.nextToken;
  } while (nextToken);
  return events;
}

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;

const sandbox = await spawnSandbox();
const sfn = new SFNClient({
  endpoint: sandbox.info.awsEndpoint,
  region: sandbox.info.region,
  credentials: { accessKeyId: 'bench', secretAccessKey: 'bench' },
});
try {
  const { info } = sandbox;
  await provisionOne(info, sfn, -1); // warm-up: first imports of every handler
  const before = (await calls(info, 0)).at(-1)?.seq ?? 0;
  const runs: { ms: number; executionArn: string }[] = [];
  for (let index = 0; index < count; index += 1) runs.push(await provisionOne(info, sfn, index));
  const after = await calls(info, before);

  const events = await history(sfn, runs[0]?.executionArn ?? '');
  // AWS bills a Standard workflow per state transition: each state entered, and the end of the run.
  const transitions = events.filter((event) => event.type?.endsWith('StateEntered')).length + 1;
  const invocations = events.filter((event) => event.type === 'LambdaFunctionScheduled').length;
  const perService = new Map<string, number>();
  for (const call of after) {
    if (call.service === 'sfn') continue; // the API's StartExecution and this benchmark's polling
    perService.set(call.service, (perService.get(call.service) ?? 0) + 1);
  }
  const sorted = runs.map((run) => run.ms).sort((a, b) => a - b);
  console.table({
    'POST to active': {
      tenants: count,
      'median ms': Math.round(percentile(sorted, 50)),
      'p95 ms': Math.round(percentile(sorted, 95)),
      'max ms': Math.round(sorted.at(-1) ?? 0),
    },
  });
  console.table({
    'one provisioning': {
      'state transitions': transitions,
      'Lambda invocations': invocations,
      ...Object.fromEntries(
        [...perService].map(([service, n]) => [`${service} calls`, Math.round(n / count)]),
      ),
    },
  });
} finally {
  sfn.destroy();
  await sandbox.stop();
  await removeDir(sandbox.dir);
}
