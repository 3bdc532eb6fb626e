import { RDSDataClient } from '@aws-sdk/client-rds-data';
import {
  CreateSecretCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureProvisionerRole } from '../../functions/setup/provisioner-role.ts';
import { DataApi } from '../../functions/shared/data-api.ts';
import { clientConfig, sandbox, superuserPool, uniqueName } from '../support/sandbox.ts';

/**
 * The deploy-time setup's first half, against the sandbox's Data API: the master user (here the sandbox's
 * superuser, through a secret as on Aurora) creates the provisioner role from the provisioner's secret.
 */
describe('ensureProvisionerRole', () => {
  const secrets = new SecretsManagerClient(clientConfig);
  const rdsData = new RDSDataClient(clientConfig);
  const role = uniqueName('provisioner').replace('-', '_');
  let master: DataApi;
  let provisionerSecretArn: string;

  const secretString = (password: string) =>
    JSON.stringify({
      engine: 'postgres',
      host: sandbox.postgres.host,
      port: sandbox.postgres.port,
      username: role,
      password,
      dbname: 'postgres',
    });
  const canLogIn = async (password: string): Promise<boolean> => {
    const client = new pg.Client({ ...sandbox.postgres, user: role, password, database: 'postgres' });
    try {
      await client.connect();
      return true;
    } catch {
      return false;
    } finally {
      await client.end().catch(() => undefined);
    }
  };

  beforeAll(async () => {
    const { ARN: masterArn } = await secrets.send(
      new CreateSecretCommand({
        Name: uniqueName('test/master'),
        SecretString: JSON.stringify({
          username: sandbox.postgres.user,
          password: sandbox.postgres.password,
        }),
      }),
    );
    const { ARN: provisionerArn } = await secrets.send(
      new CreateSecretCommand({
        Name: uniqueName('test/provisioner'),
        SecretString: secretString('first-Password-1'),
      }),
    );
    if (!masterArn || !provisionerArn) throw new Error('Secrets Manager returned no ARN');
    master = new DataApi(rdsData, {
      resourceArn: sandbox.clusterArn,
      secretArn: masterArn,
      database: 'postgres',
    });
    provisionerSecretArn = provisionerArn;
  });

  afterAll(async () => {
    // DROP OWNED also revokes the role's CONNECT on the database.
    await superuserPool().query(`DROP OWNED BY "${role}"`);
    await superuserPool().query(`DROP ROLE "${role}"`);
    secrets.destroy();
    rdsData.destroy();
  });

  it('creates a login role with CREATEDB and CREATEROLE, not superuser, with the secret’s password', async () => {
    // Act
    const result = await ensureProvisionerRole(master, secrets, provisionerSecretArn);

    // Assess
    expect(result).toEqual({ role, created: true });
    const { rows } = await superuserPool().query(
      'SELECT rolcanlogin, rolcreatedb, rolcreaterole, rolsuper FROM pg_roles WHERE rolname = $1',
      [role],
    );
    expect(rows).toEqual([{ rolcanlogin: true, rolcreatedb: true, rolcreaterole: true, rolsuper: false }]);
    expect(await canLogIn('first-Password-1')).toBe(true);
  });

  it('brings an existing role to the secret’s current password on the next deploy', async () => {
    // Prepare: the role exists; its secret gets a new password with characters SQL would choke on unquoted.
    await ensureProvisionerRole(master, secrets, provisionerSecretArn);
    const next = "it's-a-new \\ password";
    await secrets.send(
      new PutSecretValueCommand({ SecretId: provisionerSecretArn, SecretString: secretString(next) }),
    );

    // Act
    const result = await ensureProvisionerRole(master, secrets, provisionerSecretArn);

    // Assess
    expect(result).toEqual({ role, created: false });
    expect(await canLogIn(next)).toBe(true);
    expect(await canLogIn('first-Password-1')).toBe(false);
  });
});
