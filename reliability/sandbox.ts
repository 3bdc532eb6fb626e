import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { RDSDataClient } from '@aws-sdk/client-rds-data';
import { S3Client } from '@aws-sdk/client-s3';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SFNClient } from '@aws-sdk/client-sfn';
import pg from 'pg';
import { z } from 'zod';
import type { FaultRule } from '../local/aws/chaos.ts';
import type { SandboxInfo } from '../local/constants.ts';
import { removeDir, type SandboxProcess, spawnSandbox } from '../local/spawn.ts';

/** A chaos rule as the suite writes it (defaults filled in by the sandbox). */
export type FaultInput = Partial<Omit<FaultRule, 'error'>> & { error?: Partial<FaultRule['error']> };

/** An AWS call the sandbox answered (`GET /_sandbox/calls`). */
export const RecordedCall = z.object({
  seq: z.number(),
  service: z.string(),
  operation: z.string(),
  subject: z.string().optional(),
  fault: z.string().optional(),
  latencyMs: z.number().optional(),
});
export type RecordedCall = z.infer<typeof RecordedCall>;

const SandboxEvent = z.object({
  source: z.string(),
  detailType: z.string(),
  detail: z.looseObject({ tenantId: z.string().optional() }),
});

/** An API answer, kept for the secret hygiene check. */
export interface Answer {
  readonly status: number;
  readonly text: string;
  readonly body: unknown;
}

export interface SandboxUnderTestOptions {
  /** How often the sandbox runs the drift reconciler (SANDBOX_SCHEDULE_SECONDS). */
  readonly scheduleSeconds?: number;
  /** A copy of `schema/` the functions read (SANDBOX_SCHEMA_DIR), for a scenario that brings a new migration. */
  readonly schemaDir?: string;
}

/**
 * A sandbox of the suite's own, spawned as `npm start` runs it (so that it can be killed and started again),
 * with real SDK clients on it, a superuser for independent inspection, and a record of every API answer and
 * every line it printed, for the secret hygiene check.
 */
export class SandboxUnderTest {
  process: SandboxProcess;
  clients: ReturnType<typeof makeClients>;
  /** Output of the processes that ran before a restart. */
  readonly earlierOutput: string[] = [];
  /** Every answer of the API the suite received, in order. */
  readonly answers: Answer[] = [];
  /** Tokens minted for the suite (their one intended reveal is the mint's answer). */
  readonly tokens: string[] = [];
  readonly #options: SandboxUnderTestOptions;
  #pools = new Map<string, pg.Pool>();

  private constructor(process: SandboxProcess, options: SandboxUnderTestOptions) {
    this.process = process;
    this.#options = options;
    this.clients = makeClients(process.info);
  }

  static async start(options: SandboxUnderTestOptions = {}): Promise<SandboxUnderTest> {
    return new SandboxUnderTest(await spawnSandbox({ env: environment(options) }), options);
  }

  get info(): SandboxInfo {
    return this.process.info;
  }

  /** Everything every process of this sandbox printed. */
  output(): string {
    return [...this.earlierOutput, this.process.output()].join('\n');
  }

  /** A superuser pool on a database of the sandbox's PostgreSQL, for inspection. */
  superuser(database = 'postgres'): pg.Pool {
    let pool = this.#pools.get(database);
    if (!pool) {
      pool = new pg.Pool({ ...this.info.postgres, database, max: 4 });
      pool.on('error', () => {});
      this.#pools.set(database, pool);
    }
    return pool;
  }

  /** Stops the sandbox with the signal (SIGKILL: the hard way) and starts it again on the same data. */
  async restart(signal: NodeJS.Signals): Promise<void> {
    await this.#closeClients();
    await this.process.stop(signal);
    this.earlierOutput.push(this.process.output());
    this.process = await spawnSandbox({
      dir: this.process.dir,
      postgresPort: this.info.postgres.port,
      env: environment(this.#options),
    });
    this.clients = makeClients(this.info);
  }

  async stop(): Promise<void> {
    await this.#closeClients();
    await this.process.stop();
    if (process.env.KEEP_SANDBOX) console.log(`sandbox kept in ${this.process.dir}`);
    else await removeDir(this.process.dir);
  }

  async #closeClients(): Promise<void> {
    for (const client of Object.values(this.clients)) client.destroy();
    await Promise.all([...this.#pools.values()].map((pool) => pool.end()));
    this.#pools.clear();
  }

  /** An HTTP call to the API with the sandbox's token (unless `token` says otherwise); the answer is kept. */
  async request(
    method: string,
    path: string,
    options: { body?: string; headers?: Record<string, string>; token?: string | null } = {},
  ): Promise<Answer> {
    const headers: Record<string, string> = { ...options.headers };
    const token = options.token === undefined ? this.info.token : options.token;
    if (token !== null) headers.authorization ??= `Bearer ${token}`;
    const response = await fetch(`${this.info.apiUrl}${path}`, {
      method,
      headers,
      ...(options.body !== undefined ? { body: options.body } : {}),
    });
    const text = await response.text();
    let body: unknown;
    try {
      body = text === '' ? undefined : JSON.parse(text);
    } catch {
      body = undefined;
    }
    const answer = { status: response.status, text, body };
    this.answers.push(answer);
    return answer;
  }

  /** A token of the sandbox's issuer with these scopes. */
  async mintToken(scopes: readonly string[]): Promise<string> {
    const response = await fetch(`${this.info.apiUrl}/_sandbox/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ sub: 'reliability', scopes }),
    });
    const { token } = z.object({ token: z.string() }).parse(await response.json());
    this.tokens.push(token);
    return token;
  }

  /** Adds chaos rules. */
  async addFaults(rules: readonly FaultInput[]): Promise<void> {
    await this.#chaos('PATCH', rules);
  }

  /** Removes every chaos rule: this sandbox is the suite's alone. */
  async clearFaults(): Promise<void> {
    await this.#chaos('DELETE', []);
  }

  async #chaos(method: string, rules: readonly FaultInput[]): Promise<void> {
    const response = await fetch(`${this.info.awsEndpoint}/_sandbox/chaos/faults`, {
      method,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(rules),
    });
    if (!response.ok) throw new Error(`chaos ${method}: ${response.status} ${await response.text()}`);
  }

  /** The AWS calls answered after `seq`. */
  async calls(since = 0): Promise<RecordedCall[]> {
    const response = await fetch(`${this.info.awsEndpoint}/_sandbox/calls?since=${since}`);
    return z.array(RecordedCall).parse(await response.json());
  }

  /** The sequence number of the last call answered. */
  async lastCall(): Promise<number> {
    return (await this.calls()).at(-1)?.seq ?? 0;
  }

  /** Every EventBridge event put, as raw JSON text and parsed. */
  async events(): Promise<{ text: string; events: z.infer<typeof SandboxEvent>[] }> {
    const response = await fetch(`${this.info.awsEndpoint}/_sandbox/events`);
    const text = await response.text();
    return { text, events: z.array(SandboxEvent).parse(JSON.parse(text)) };
  }
}

function environment(options: SandboxUnderTestOptions): NodeJS.ProcessEnv {
  return {
    SANDBOX_SCHEDULE_SECONDS: String(options.scheduleSeconds ?? 2),
    ...(options.schemaDir ? { SANDBOX_SCHEMA_DIR: options.schemaDir } : {}),
    // The functions' own log lines are part of what the hygiene check reads.
    POWERTOOLS_LOG_LEVEL: 'INFO',
  };
}

function makeClients(info: SandboxInfo) {
  const config = {
    endpoint: info.awsEndpoint,
    region: info.region,
    credentials: { accessKeyId: 'reliability', secretAccessKey: 'reliability' },
  };
  return {
    rdsData: new RDSDataClient(config),
    secrets: new SecretsManagerClient(config),
    s3: new S3Client({ ...config, forcePathStyle: true }),
    cloudWatch: new CloudWatchClient(config),
    sfn: new SFNClient(config),
    events: new EventBridgeClient(config),
  };
}
