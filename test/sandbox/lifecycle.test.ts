import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { runningPostgresPid } from '../../local/postgres.ts';
import { removeDir, type SandboxProcess, sandboxDir, spawnSandbox } from '../../local/spawn.ts';

const clientFor = (sandbox: SandboxProcess) =>
  new SecretsManagerClient({
    endpoint: sandbox.info.awsEndpoint,
    region: sandbox.info.region,
    credentials: { accessKeyId: 'sandbox', secretAccessKey: 'sandbox' },
  });

describe('the sandbox process', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    await Promise.all(dirs.map(removeDir));
  });

  it('keeps its data across a restart and leaves no PostgreSQL behind on SIGTERM', async () => {
    // Prepare
    const dir = await sandboxDir();
    dirs.push(dir);
    const first = await spawnSandbox({ dir });
    const db = new pg.Client(first.info.postgres);
    await db.connect();
    await db.query('CREATE TABLE kept (note text); INSERT INTO kept VALUES ($$across restarts$$)');
    await db.end();

    // Act
    expect(await first.stop('SIGTERM')).toBe(0);
    const pidAfterStop = await runningPostgresPid(`${dir}/postgres`);
    const second = await spawnSandbox({ dir });

    // Assess
    expect(pidAfterStop).toBeUndefined();
    expect(second.info.provisionerSecretArn).toBe(first.info.provisionerSecretArn);
    const secret = await clientFor(second).send(
      new GetSecretValueCommand({ SecretId: second.info.provisionerSecretArn }),
    );
    const { username, password } = JSON.parse(secret.SecretString ?? '{}');
    const provisioner = new pg.Client({ ...second.info.postgres, user: username, password });
    await provisioner.connect();
    const { rows } = await provisioner.query(
      'SELECT rolcreatedb, rolcreaterole, rolsuper FROM pg_roles WHERE rolname = current_user',
    );
    await provisioner.end();
    expect(rows).toEqual([{ rolcreatedb: true, rolcreaterole: true, rolsuper: false }]);
    const reader = new pg.Client(second.info.postgres);
    await reader.connect();
    const kept = await reader.query('SELECT note FROM kept');
    await reader.end();
    expect(kept.rows).toEqual([{ note: 'across restarts' }]);
    expect(await second.stop('SIGINT')).toBe(0);
    expect(await runningPostgresPid(`${dir}/postgres`)).toBeUndefined();
  });

  it('starts again after being killed hard, stopping the PostgreSQL it left running', async () => {
    // Prepare
    const dir = await sandboxDir();
    dirs.push(dir);
    const crashed = await spawnSandbox({ dir });
    await crashed.stop('SIGKILL');
    const orphan = await runningPostgresPid(`${dir}/postgres`);

    // Act
    const restarted = await spawnSandbox({ dir });

    // Assess
    expect(orphan).toBeDefined();
    const db = new pg.Client(restarted.info.postgres);
    await db.connect();
    const { rows } = await db.query('SELECT 1 AS up');
    await db.end();
    expect(rows).toEqual([{ up: 1 }]);
    expect(await restarted.stop(), restarted.output()).toBe(0);
    expect(await runningPostgresPid(`${dir}/postgres`)).toBeUndefined();
  });
});
