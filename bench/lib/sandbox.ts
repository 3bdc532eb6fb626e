import { GetExecutionHistoryCommand, type HistoryEvent, SFNClient } from '@aws-sdk/client-sfn';
import pg from 'pg';
import { z } from 'zod';
import type { SandboxInfo } from '../../local/constants.ts';
import { removeDir, type SandboxProcess, spawnSandbox } from '../../local/spawn.ts';
import type { PlanName } from '../../schema/plans.ts';
import { treeCpu } from './cpu.ts';

const created = z.object({ tenantId: z.string(), executionArn: z.string() });
const recordedCall = z.object({
  seq: z.number(),
  service: z.string(),
  operation: z.string(),
  subject: z.string().optional(),
});
export type RecordedCall = z.infer<typeof recordedCall>;

/** One tenant provisioned through the API: its id, execution, and POST-to-done time. */
export interface Provisioned {
  readonly tenantId: string;
  readonly executionArn: string;
  readonly ms: number;
  /** The POST /tenants alone. */
  readonly postMs: number;
}

const FINAL_STEP = 'Activate';
const TIMEOUT_MS = 120_000;
const FAILED = ['failed', 'rollback_failed'];

/**
 * A sandbox of the benchmark's own (`npm start` in a child process, fresh data directory), with what the
 * benchmarks need around it: the API to create tenants, the call log, execution histories, and a superuser
 * connection to the registry. Completion is read straight from PostgreSQL, so that waiting costs the sandbox
 * nothing and adds no call to the counts: a tenant is done when the registry shows it `active` with its last
 * step (Activate) recorded as succeeded, the last write of a provisioning.
 */
export class BenchSandbox {
  readonly info: SandboxInfo;
  readonly sfn: SFNClient;
  /** Superuser on the registry database. */
  readonly registry: pg.Pool;
  /** The completion poller's own connection, whose backend's CPU is not the sandbox's. */
  readonly #poller: pg.Client;
  #pollerPid: number | undefined;
  readonly #process: SandboxProcess;
  #serial = 0;
  readonly #waiting = new Map<
    string,
    { resolve: () => void; reject: (error: Error) => void; deadline: number }
  >();
  #polling = false;
  /**
   * How often the completion poller looks: often for latency (a 5 ms step bounds its error), less under load,
   * where its own queries would take CPU from what is measured.
   */
  pollMs = 5;

  private constructor(process: SandboxProcess) {
    this.#process = process;
    this.info = process.info;
    this.sfn = new SFNClient({
      endpoint: process.info.awsEndpoint,
      region: process.info.region,
      credentials: { accessKeyId: 'bench', secretAccessKey: 'bench' },
    });
    this.registry = new pg.Pool({ ...process.info.postgres, database: 'control_plane', max: 4 });
    this.#poller = new pg.Client({ ...process.info.postgres, database: 'control_plane' });
  }

  /** `env`: more of the sandbox's environment (e.g. NODE_OPTIONS to profile it). */
  static async start(env: NodeJS.ProcessEnv = {}): Promise<BenchSandbox> {
    // The drift reconciler runs at startup only: a pass in the middle of a measurement would be noise.
    const sandbox = new BenchSandbox(await spawnSandbox({ env: { SANDBOX_SCHEDULE_SECONDS: '0', ...env } }));
    await sandbox.#poller.connect();
    const { rows } = await sandbox.#poller.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    sandbox.#pollerPid = rows[0]?.pid;
    return sandbox;
  }

  /** CPU time the sandbox's processes have used so far, by command (`node`, `postgres`), in milliseconds. */
  cpu(): Promise<Map<string, number>> {
    const { pid } = this.#process.child;
    if (pid === undefined) return Promise.resolve(new Map());
    return treeCpu(pid, new Set(this.#pollerPid === undefined ? [] : [this.#pollerPid]));
  }

  /** The sandbox's PostgreSQL as the superuser, on `database`. */
  connect(database = 'postgres'): pg.Client {
    return new pg.Client({ ...this.info.postgres, database });
  }

  /** POST /tenants, as an admin backend would (professional unless `plan` says); returns the tenant id and execution. */
  async create(
    label: string,
    plan: PlanName = 'professional',
  ): Promise<{ tenantId: string; executionArn: string }> {
    this.#serial += 1;
    const response = await fetch(`${this.info.apiUrl}/tenants`, {
      method: 'POST',
      headers: { authorization: `Bearer ${this.info.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        name: `Bench ${label} ${this.#serial} ${Date.now()}`,
        plan,
        adminUser: { email: `admin.${this.#serial}@bench.example` },
      }),
    });
    if (response.status !== 202) {
      throw new Error(`POST /tenants answered ${response.status}: ${await response.text()}`);
    }
    return created.parse(await response.json());
  }

  /** Creates a tenant and waits until it is done; the time from POST to done. */
  async provision(label: string, plan?: PlanName): Promise<Provisioned> {
    const started = performance.now();
    const { tenantId, executionArn } = await this.create(label, plan);
    const postMs = performance.now() - started;
    await this.done(tenantId);
    return { tenantId, executionArn, ms: performance.now() - started, postMs };
  }

  /**
   * Resolves when the tenant is done; rejects when it fails or takes over two minutes. All tenants waited for
   * share one poller (a query every `pollMs`), so that waiting for sixteen costs PostgreSQL what one does.
   */
  done(tenantId: string): Promise<void> {
    const settled = new Promise<void>((resolve, reject) =>
      this.#waiting.set(tenantId, { resolve, reject, deadline: performance.now() + TIMEOUT_MS }),
    );
    if (!this.#polling) void this.#poll();
    return settled;
  }

  async #poll(): Promise<void> {
    this.#polling = true;
    try {
      await this.#pollUntilNoneWaits();
    } catch (error) {
      for (const waiter of this.#waiting.values())
        waiter.reject(new Error('Polling failed', { cause: error }));
      this.#waiting.clear();
    } finally {
      this.#polling = false;
      // A waiter added between the loop's last look and here would otherwise wait for nobody.
      if (this.#waiting.size > 0) void this.#poll();
    }
  }

  async #pollUntilNoneWaits(): Promise<void> {
    while (this.#waiting.size > 0) {
      const { rows } = await this.#poller.query<{ id: string; status: string; done: boolean }>(
        `SELECT t.id, t.status, EXISTS (SELECT 1 FROM tenant_steps s WHERE s.tenant_id = t.id
           AND s.step = $2 AND s.status = 'succeeded') AS done
         FROM tenants t WHERE t.id = ANY($1)`,
        [[...this.#waiting.keys()], FINAL_STEP],
      );
      const now = performance.now();
      for (const row of rows) {
        const waiter = this.#waiting.get(row.id);
        if (!waiter) continue;
        if (FAILED.includes(row.status)) waiter.reject(new Error(`Tenant ${row.id} ended ${row.status}`));
        else if (row.status === 'active' && row.done) waiter.resolve();
        else if (now > waiter.deadline) waiter.reject(new Error(`Tenant ${row.id} not done in time`));
        else continue;
        this.#waiting.delete(row.id);
      }
      await new Promise((resolve) => setTimeout(resolve, this.pollMs));
    }
  }

  /** The recorded step durations (ms) of the tenants, by step. */
  async stepDurations(tenantIds: readonly string[]): Promise<Map<string, number[]>> {
    const { rows } = await this.registry.query<{ step: string; duration_ms: number }>(
      'SELECT step, duration_ms FROM tenant_steps WHERE tenant_id = ANY($1) AND duration_ms IS NOT NULL',
      [tenantIds],
    );
    const byStep = new Map<string, number[]>();
    for (const row of rows) byStep.set(row.step, [...(byStep.get(row.step) ?? []), row.duration_ms]);
    return byStep;
  }

  /** The calls the sandbox answered after `since` (a sequence number; 0 for all). */
  async calls(since = 0): Promise<RecordedCall[]> {
    const response = await fetch(`${this.info.awsEndpoint}/_sandbox/calls?since=${since}`);
    return z.array(recordedCall).parse(await response.json());
  }

  /** The sequence number of the last call answered. */
  async lastCall(): Promise<number> {
    return (await this.calls()).at(-1)?.seq ?? 0;
  }

  async history(executionArn: string): Promise<HistoryEvent[]> {
    const events: HistoryEvent[] = [];
    let nextToken: string | undefined;
    do {
      const page = await this.sfn.send(
        new GetExecutionHistoryCommand({ executionArn, nextToken, maxResults: 1000 }),
      );
      events.push(...(page.events ?? []));
      nextToken = page.nextToken;
    } while (nextToken);
    return events;
  }

  async stop(): Promise<void> {
    this.sfn.destroy();
    await this.#poller.end();
    await this.registry.end();
    await this.#process.stop();
    await removeDir(this.#process.dir);
  }
}
