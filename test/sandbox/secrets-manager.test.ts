import {
  CreateSecretCommand,
  DeleteSecretCommand,
  DescribeSecretCommand,
  GetSecretValueCommand,
  ListSecretsCommand,
  type ListSecretsCommandInput,
  PutSecretValueCommand,
  RestoreSecretCommand,
  SecretsManagerClient,
  TagResourceCommand,
  UntagResourceCommand,
} from '@aws-sdk/client-secrets-manager';
import { afterAll, describe, expect, it } from 'vitest';
import { STORE_DATABASE } from '../../local/aws/store.ts';
import {
  addFaults,
  clientConfig,
  removeFaults,
  sandbox,
  superuserPool,
  uniqueName,
} from '../support/sandbox.ts';

const secrets = new SecretsManagerClient(clientConfig);
afterAll(() => secrets.destroy());

const DAY_MS = 86_400_000;

/** The error a call fails with, awaited at once so that no rejection goes unhandled. */
const failureOf = (call: Promise<unknown>): Promise<unknown> =>
  call.then(
    () => new Error('the call succeeded'),
    (error: unknown) => error,
  );

async function listedNames(input: ListSecretsCommandInput): Promise<string[]> {
  const names: string[] = [];
  let NextToken: string | undefined;
  do {
    const page = await secrets.send(new ListSecretsCommand({ ...input, NextToken }));
    names.push(...(page.SecretList ?? []).map((secret) => secret.Name ?? ''));
    NextToken = page.NextToken;
  } while (NextToken);
  return names;
}

describe('Secrets Manager', () => {
  it('creates a secret whose value reads back by name and by ARN', async () => {
    // Prepare
    const name = uniqueName('tenants/test/create');

    // Act
    const created = await secrets.send(
      new CreateSecretCommand({ Name: name, SecretString: '{"password":"p1"}', Description: 'first' }),
    );
    const byName = await secrets.send(new GetSecretValueCommand({ SecretId: name }));
    const byArn = await secrets.send(new GetSecretValueCommand({ SecretId: created.ARN }));
    const byPartialArn = await secrets.send(
      new GetSecretValueCommand({ SecretId: created.ARN?.slice(0, -7) }),
    );

    // Assess
    expect(created.ARN).toMatch(
      new RegExp(
        `^arn:aws:secretsmanager:${sandbox.region}:${sandbox.accountId}:secret:${name}-[A-Za-z0-9]{6}$`,
      ),
    );
    expect(byName).toMatchObject({
      ARN: created.ARN,
      Name: name,
      VersionId: created.VersionId,
      SecretString: '{"password":"p1"}',
      VersionStages: ['AWSCURRENT'],
    });
    expect(byName.CreatedDate).toBeInstanceOf(Date);
    expect(byArn.SecretString).toBe('{"password":"p1"}');
    expect(byPartialArn.Name).toBe(name);
  });

  it('keeps a binary secret as bytes', async () => {
    // Prepare
    const name = uniqueName('binary');
    const bytes = new Uint8Array([0, 1, 2, 250, 255]);

    // Act
    await secrets.send(new CreateSecretCommand({ Name: name, SecretBinary: bytes }));
    const read = await secrets.send(new GetSecretValueCommand({ SecretId: name }));

    // Assess
    expect(read.SecretString).toBeUndefined();
    expect([...(read.SecretBinary ?? [])]).toEqual([...bytes]);
  });

  it('answers a retried CreateSecret (same token, same value) as the first, and refuses the token with another value', async () => {
    // Prepare
    const name = uniqueName('retried');
    const token = crypto.randomUUID();
    const first = await secrets.send(
      new CreateSecretCommand({ Name: name, SecretString: 'v', ClientRequestToken: token }),
    );

    // Act
    const again = await secrets.send(
      new CreateSecretCommand({ Name: name, SecretString: 'v', ClientRequestToken: token }),
    );
    const otherValue = await failureOf(
      secrets.send(new CreateSecretCommand({ Name: name, SecretString: 'w', ClientRequestToken: token })),
    );
    const otherToken = await failureOf(
      secrets.send(new CreateSecretCommand({ Name: name, SecretString: 'v' })),
    );
    const described = await secrets.send(new DescribeSecretCommand({ SecretId: name }));
    const current = await secrets.send(new GetSecretValueCommand({ SecretId: name }));

    // Assess
    expect(again).toMatchObject({ ARN: first.ARN, Name: name, VersionId: token });
    expect(otherValue).toMatchObject({
      name: 'ResourceExistsException',
      message: `You can't use ClientRequestToken ${token} because that value is already in use for a version of secret ${first.ARN}.`,
    });
    expect(otherToken).toMatchObject({
      name: 'ResourceExistsException',
      message: `The operation failed because the secret ${name} already exists.`,
    });
    expect(described.VersionIdsToStages).toEqual({ [token]: ['AWSCURRENT'] });
    expect(current.SecretString).toBe('v');
  });

  it('makes a put value current and the former current previous; a repeated token is idempotent', async () => {
    // Prepare
    const name = uniqueName('rotate');
    const created = await secrets.send(new CreateSecretCommand({ Name: name, SecretString: 'old' }));
    const token = crypto.randomUUID();

    // Act
    const put = await secrets.send(
      new PutSecretValueCommand({ SecretId: name, SecretString: 'new', ClientRequestToken: token }),
    );
    const repeated = await secrets.send(
      new PutSecretValueCommand({ SecretId: name, SecretString: 'new', ClientRequestToken: token }),
    );
    const current = await secrets.send(new GetSecretValueCommand({ SecretId: name }));
    const previous = await secrets.send(
      new GetSecretValueCommand({ SecretId: name, VersionStage: 'AWSPREVIOUS' }),
    );
    const described = await secrets.send(new DescribeSecretCommand({ SecretId: name }));

    // Assess
    expect(put).toMatchObject({ VersionId: token, VersionStages: ['AWSCURRENT'] });
    expect(repeated.VersionId).toBe(token);
    expect(current.SecretString).toBe('new');
    expect(previous).toMatchObject({ SecretString: 'old', VersionId: created.VersionId });
    expect(described.VersionIdsToStages).toEqual({
      [token]: ['AWSCURRENT'],
      [created.VersionId ?? '']: ['AWSPREVIOUS'],
    });
    const reused = await failureOf(
      secrets.send(
        new PutSecretValueCommand({ SecretId: name, SecretString: 'other', ClientRequestToken: token }),
      ),
    );
    expect(reused).toMatchObject({
      name: 'ResourceExistsException',
      message: `You can't use ClientRequestToken ${token} because that value is already in use for a version of secret ${created.ARN}.`,
    });
    const after = await secrets.send(new DescribeSecretCommand({ SecretId: name }));
    expect(after.VersionIdsToStages).toEqual(described.VersionIdsToStages);
    expect((await secrets.send(new GetSecretValueCommand({ SecretId: name }))).SecretString).toBe('new');
  });

  it('takes a ClientRequestToken of 32 to 64 characters and refuses others with ValidationException', async () => {
    // Prepare
    const name = uniqueName('token-length');
    const [short, shortest, longest, long] = [31, 32, 64, 65].map((length) =>
      crypto.randomUUID().replaceAll('-', '').repeat(3).slice(0, length),
    );

    // Act
    const tooShort = await failureOf(
      secrets.send(new CreateSecretCommand({ Name: name, SecretString: 'v', ClientRequestToken: short })),
    );
    const notCreated = await failureOf(secrets.send(new GetSecretValueCommand({ SecretId: name })));
    const created = await secrets.send(
      new CreateSecretCommand({ Name: name, SecretString: 'v', ClientRequestToken: shortest }),
    );
    const tooLong = await failureOf(
      secrets.send(
        new PutSecretValueCommand({ SecretId: name, SecretString: 'w', ClientRequestToken: long }),
      ),
    );
    const put = await secrets.send(
      new PutSecretValueCommand({ SecretId: name, SecretString: 'w', ClientRequestToken: longest }),
    );

    // Assess
    const refusal =
      "1 validation error detected: Value at 'clientRequestToken' failed to satisfy constraint:";
    expect(tooShort).toMatchObject({
      name: 'ValidationException',
      message: `${refusal} Member must have length greater than or equal to 32`,
      $metadata: { httpStatusCode: 400 },
    });
    expect(notCreated).toMatchObject({ name: 'ResourceNotFoundException' });
    expect(created.VersionId).toBe(shortest);
    expect(tooLong).toMatchObject({
      name: 'ValidationException',
      message: `${refusal} Member must have length less than or equal to 64`,
    });
    expect(put.VersionId).toBe(longest);
  });

  it('refuses a raw CreateSecret or PutSecretValue without a ClientRequestToken (the SDKs always make one)', async () => {
    // Prepare
    const name = uniqueName('raw');
    const call = async (operation: string, input: Record<string, string>) => {
      const response = await fetch(sandbox.awsEndpoint, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-amz-json-1.1',
          'x-amz-target': `secretsmanager.${operation}`,
          authorization: `AWS4-HMAC-SHA256 Credential=sandbox/20250101/${sandbox.region}/secretsmanager/aws4_request, SignedHeaders=host, Signature=00`,
        },
        body: JSON.stringify(input),
      });
      return { status: response.status, body: await response.json() };
    };
    const noToken = {
      status: 400,
      body: {
        __type: 'InvalidRequestException',
        message: 'You must provide a ClientRequestToken value. We recommend a UUID-type value.',
      },
    };

    // Act
    const create = await call('CreateSecret', { Name: name, SecretString: 'v' });
    const notCreated = await failureOf(secrets.send(new GetSecretValueCommand({ SecretId: name })));
    const withToken = await call('CreateSecret', {
      Name: name,
      SecretString: 'v',
      ClientRequestToken: crypto.randomUUID(),
    });
    const put = await call('PutSecretValue', { SecretId: name, SecretString: 'w' });

    // Assess
    expect(create).toEqual(noToken);
    expect(notCreated).toMatchObject({ name: 'ResourceNotFoundException' });
    expect(withToken.status).toBe(200);
    expect(put).toEqual(noToken);
    expect((await secrets.send(new GetSecretValueCommand({ SecretId: name }))).SecretString).toBe('v');
  });

  it('describes tags, adds and removes them', async () => {
    // Prepare
    const name = uniqueName('tags');
    await secrets.send(
      new CreateSecretCommand({
        Name: name,
        SecretString: 'x',
        Tags: [
          { Key: 'TenantId', Value: 't1' },
          { Key: 'Stage', Value: 'test' },
        ],
      }),
    );

    // Act
    await secrets.send(
      new TagResourceCommand({
        SecretId: name,
        Tags: [
          { Key: 'Stage', Value: 'prod' },
          { Key: 'Owner', Value: 'ops' },
        ],
      }),
    );
    await secrets.send(new UntagResourceCommand({ SecretId: name, TagKeys: ['TenantId'] }));
    const described = await secrets.send(new DescribeSecretCommand({ SecretId: name }));

    // Assess
    expect(described.Tags).toEqual([
      { Key: 'Stage', Value: 'prod' },
      { Key: 'Owner', Value: 'ops' },
    ]);
    expect(described.LastChangedDate).toBeInstanceOf(Date);
    expect(described.DeletedDate).toBeUndefined();
  });

  it('lists with name, tag and description filters, negation, and pagination', async () => {
    // Prepare
    const prefix = uniqueName('list');
    const names = [`${prefix}/a`, `${prefix}/b`, `${prefix}/c`];
    await Promise.all(
      names.map((name, index) =>
        secrets.send(
          new CreateSecretCommand({
            Name: name,
            SecretString: 'x',
            Description: index === 0 ? 'Primary database credentials' : 'other',
            Tags: [{ Key: `${prefix}-role`, Value: index === 1 ? `${prefix}-app` : `${prefix}-admin` }],
          }),
        ),
      ),
    );

    // Act
    const byName = await listedNames({ Filters: [{ Key: 'name', Values: [prefix] }], MaxResults: 1 });
    const byTagValue = await listedNames({ Filters: [{ Key: 'tag-value', Values: [`${prefix}-app`] }] });
    const byTagKey = await listedNames({ Filters: [{ Key: 'tag-key', Values: [`${prefix}-ro`] }] });
    const byDescription = await listedNames({
      Filters: [
        { Key: 'name', Values: [prefix] },
        { Key: 'description', Values: ['database'] },
      ],
    });
    const negated = await listedNames({
      Filters: [
        { Key: 'name', Values: [prefix] },
        { Key: 'tag-value', Values: [`!${prefix}-app`] },
      ],
    });
    const caseSensitive = await listedNames({ Filters: [{ Key: 'name', Values: [prefix.toUpperCase()] }] });

    // Assess
    expect(byName.sort()).toEqual(names);
    expect(byTagValue).toEqual([`${prefix}/b`]);
    expect(byTagKey.sort()).toEqual(names);
    expect(byDescription).toEqual([`${prefix}/a`]);
    expect(negated.sort()).toEqual([`${prefix}/a`, `${prefix}/c`]);
    expect(caseSensitive).toEqual([]);
  });

  it('schedules a deletion: value refused, listed only on request, name held, restorable', async () => {
    // Prepare
    const name = uniqueName('scheduled');
    await secrets.send(new CreateSecretCommand({ Name: name, SecretString: 'keep' }));
    const before = Date.now();

    // Act
    const deleted = await secrets.send(new DeleteSecretCommand({ SecretId: name, RecoveryWindowInDays: 7 }));

    // Assess
    expect(deleted.DeletionDate?.getTime()).toBeGreaterThanOrEqual(before + 7 * DAY_MS - 1000);
    expect(deleted.DeletionDate?.getTime()).toBeLessThanOrEqual(Date.now() + 7 * DAY_MS + 1000);
    await expect(secrets.send(new GetSecretValueCommand({ SecretId: name }))).rejects.toMatchObject({
      name: 'InvalidRequestException',
    });
    await expect(
      secrets.send(new PutSecretValueCommand({ SecretId: name, SecretString: 'x' })),
    ).rejects.toMatchObject({
      name: 'InvalidRequestException',
    });
    await expect(secrets.send(new DeleteSecretCommand({ SecretId: name }))).rejects.toMatchObject({
      name: 'InvalidRequestException',
    });
    // AWS refuses the name of a secret scheduled for deletion with InvalidRequestException, not ResourceExistsException.
    await expect(
      secrets.send(new CreateSecretCommand({ Name: name, SecretString: 'x' })),
    ).rejects.toMatchObject({
      name: 'InvalidRequestException',
    });
    expect(await listedNames({ Filters: [{ Key: 'name', Values: [name] }] })).toEqual([]);
    expect(
      await listedNames({ Filters: [{ Key: 'name', Values: [name] }], IncludePlannedDeletion: true }),
    ).toEqual([name]);
    expect((await secrets.send(new DescribeSecretCommand({ SecretId: name }))).DeletedDate).toBeInstanceOf(
      Date,
    );

    await secrets.send(new RestoreSecretCommand({ SecretId: name }));
    expect((await secrets.send(new GetSecretValueCommand({ SecretId: name }))).SecretString).toBe('keep');
  });

  it('purges a secret once its recovery window has passed, freeing the name', async () => {
    // Prepare
    const name = uniqueName('expired');
    await secrets.send(new CreateSecretCommand({ Name: name, SecretString: 'old' }));
    await secrets.send(new DeleteSecretCommand({ SecretId: name, RecoveryWindowInDays: 7 }));
    // Seven days cannot pass in a test: the end of the window moves into the past in the sandbox's store.
    await superuserPool(STORE_DATABASE).query(
      `UPDATE item SET doc = jsonb_set(doc, '{purgeAt}', '0')
       WHERE service = 'secretsmanager' AND kind = 'secret' AND key = $1`,
      [name],
    );

    // Act
    const listed = await listedNames({
      Filters: [{ Key: 'name', Values: [name] }],
      IncludePlannedDeletion: true,
    });
    const recreated = await secrets.send(new CreateSecretCommand({ Name: name, SecretString: 'new' }));

    // Assess
    expect(listed).toEqual([]);
    expect(recreated.Name).toBe(name);
    expect((await secrets.send(new GetSecretValueCommand({ SecretId: name }))).SecretString).toBe('new');
  });

  it('deletes at once without recovery, freeing the name', async () => {
    // Prepare
    const name = uniqueName('forced');
    await secrets.send(new CreateSecretCommand({ Name: name, SecretString: 'first' }));

    // Act
    await secrets.send(new DeleteSecretCommand({ SecretId: name, ForceDeleteWithoutRecovery: true }));

    // Assess
    await expect(secrets.send(new DescribeSecretCommand({ SecretId: name }))).rejects.toMatchObject({
      name: 'ResourceNotFoundException',
    });
    await secrets.send(new CreateSecretCommand({ Name: name, SecretString: 'second' }));
    expect((await secrets.send(new GetSecretValueCommand({ SecretId: name }))).SecretString).toBe('second');
  });

  it('rejects contradictory or out-of-range deletion parameters', async () => {
    // Prepare
    const name = uniqueName('bad-delete');
    await secrets.send(new CreateSecretCommand({ Name: name, SecretString: 'x' }));

    // Act
    const both = await failureOf(
      secrets.send(
        new DeleteSecretCommand({
          SecretId: name,
          RecoveryWindowInDays: 7,
          ForceDeleteWithoutRecovery: true,
        }),
      ),
    );
    const tooShort = await failureOf(
      secrets.send(new DeleteSecretCommand({ SecretId: name, RecoveryWindowInDays: 3 })),
    );

    // Assess
    expect(both).toMatchObject({ name: 'InvalidParameterException' });
    expect(tooShort).toMatchObject({ name: 'InvalidParameterException' });
    expect((await secrets.send(new GetSecretValueCommand({ SecretId: name }))).SecretString).toBe('x');
  });

  it('answers ResourceNotFoundException for an unknown secret, except to a forced deletion', async () => {
    // Prepare
    const name = uniqueName('missing');

    // Act
    const forced = await secrets.send(
      new DeleteSecretCommand({ SecretId: name, ForceDeleteWithoutRecovery: true }),
    );

    // Assess
    expect(forced.Name).toBe(name);
    const calls = [
      () => secrets.send(new GetSecretValueCommand({ SecretId: name })),
      () => secrets.send(new DescribeSecretCommand({ SecretId: name })),
      () => secrets.send(new PutSecretValueCommand({ SecretId: name, SecretString: 'x' })),
      () => secrets.send(new DeleteSecretCommand({ SecretId: name })),
      () =>
        secrets.send(
          new GetSecretValueCommand({
            SecretId: `arn:aws:secretsmanager:${sandbox.region}:${sandbox.accountId}:secret:${name}-AbCdEf`,
          }),
        ),
    ];
    for (const call of calls)
      await expect(call()).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
  });

  it('creates exactly one secret when many create the same name at once', async () => {
    // Prepare
    const name = uniqueName('race');

    // Act
    const outcomes = await Promise.allSettled(
      Array.from({ length: 10 }, (_, index) =>
        secrets.send(new CreateSecretCommand({ Name: name, SecretString: `value-${index}` })),
      ),
    );

    // Assess
    const won = outcomes.filter((outcome) => outcome.status === 'fulfilled');
    const lost = outcomes.flatMap((outcome) => (outcome.status === 'rejected' ? [outcome.reason] : []));
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(9);
    for (const error of lost) expect(error).toMatchObject({ name: 'ResourceExistsException' });
    expect(await listedNames({ Filters: [{ Key: 'name', Values: [name] }] })).toEqual([name]);
  });

  it('fails only the call whose secret a chaos rule matches', async () => {
    // Prepare
    const hit = uniqueName('chaos-hit');
    const spared = uniqueName('chaos-spared');
    await secrets.send(new CreateSecretCommand({ Name: hit, SecretString: 'x' }));
    const created = await secrets.send(new CreateSecretCommand({ Name: spared, SecretString: 'y' }));
    const rule = {
      service: 'secrets-manager' as const,
      operation: 'GetSecretValue',
      match: hit,
      error: { code: 'DecryptionFailure', statusCode: 400, message: 'chaos' },
    };
    await addFaults([rule]);
    try {
      // Act
      const failed = await failureOf(secrets.send(new GetSecretValueCommand({ SecretId: hit })));
      const passed = await secrets.send(new GetSecretValueCommand({ SecretId: created.ARN }));

      // Assess
      expect(failed).toMatchObject({ name: 'DecryptionFailure', message: 'chaos' });
      expect(passed.SecretString).toBe('y');
    } finally {
      await removeFaults([rule]);
    }
  });
});
