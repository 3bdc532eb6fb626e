import { writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { removeDir, spawnSandbox } from '../local/spawn.ts';

/**
 * `npm run bench:bulk` (`-- --quick`, `-- --rows 200`): bulk onboarding in a sandbox of its own: the time from
 * `POST /tenant-batches` (a CSV of ROWS rows, 50 by default, 10 with --quick) to the batch's end, every row
 * provisioned (8 at a time), after a 2-row warm-up batch that loads every function. Also the dry run of the same
 * file. Run by `npm run bench` (bench/external.ts): its figures go to BENCH_RESULT_FILE when that is set.
 */
const { values } = parseArgs({
  options: { quick: { type: 'boolean', default: false }, rows: { type: 'string' } },
});
const rows = Number(values.rows ?? (values.quick ? 10 : 50));
if (!Number.isInteger(rows) || rows < 1 || rows > 500) throw new Error(`--rows: ${values.rows}`);

const Created = z.object({ batchId: z.string() });
const Batch = z.object({
  status: z.string(),
  summary: z.object({ rows: z.number(), succeeded: z.number(), failed: z.number() }),
});

const sandbox = await spawnSandbox({ env: { SANDBOX_SCHEDULE_SECONDS: '0' } });
const { apiUrl, token } = sandbox.info;

async function post(path: string, csv: string): Promise<unknown> {
  const response = await fetch(`${apiUrl}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'text/csv' },
    body: csv,
  });
  const body: unknown = await response.json();
  if (!response.ok) throw new Error(`POST ${path}: ${response.status} ${JSON.stringify(body)}`);
  return body;
}

/** Runs one batch to its end; returns its time in ms. */
async function onboard(label: string, count: number): Promise<number> {
  const csv = [
    'name,plan,admin_email,admin_first_name',
    ...Array.from(
      { length: count },
      (_, i) => `${label} ${i},${i % 3 === 0 ? 'professional' : 'basic'},admin${i}@bench.example,Admin`,
    ),
  ].join('\n');
  const started = performance.now();
  const { batchId } = Created.parse(await post('/tenant-batches', csv));
  for (;;) {
    const response = await fetch(`${apiUrl}/tenant-batches/${batchId}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const batch = Batch.parse(await response.json());
    if (batch.status !== 'running') {
      if (batch.status !== 'succeeded')
        throw new Error(`batch ${batchId} ended ${batch.status}: ${JSON.stringify(batch.summary)}`);
      return performance.now() - started;
    }
    await sleep(100);
  }
}

try {
  await onboard(`Warm ${Date.now()}`, 2);
  const label = `Bench ${Date.now()}`;
  const dryCsv = [
    'name,plan,admin_email',
    ...Array.from({ length: rows }, (_, i) => `${label} Dry ${i},basic,admin${i}@bench.example`),
  ].join('\n');
  const started = performance.now();
  await post('/tenant-batches?dryRun=true', dryCsv);
  const dryMs = performance.now() - started;
  const ms = await onboard(label, rows);
  const figures = [
    {
      label: `bulk onboarding, ${rows} rows`,
      value: `${(ms / 1000).toFixed(1)} s (${((rows * 1000) / ms).toFixed(2)} tenants/s)`,
      beside: `${Math.round(ms / rows)} ms per row, 8 rows at a time`,
    },
    { label: `bulk dry run, ${rows} rows`, value: `${Math.round(dryMs)} ms` },
  ];
  const result = { figures, details: { rows, ms, dryMs } };
  if (process.env.BENCH_RESULT_FILE)
    await writeFile(process.env.BENCH_RESULT_FILE, JSON.stringify(result, null, 2));
  console.table(
    figures.map(({ label: figure, value, beside }) => ({ figure, measured: value, beside: beside ?? '' })),
  );
} finally {
  await sandbox.stop();
  await removeDir(sandbox.dir);
}
