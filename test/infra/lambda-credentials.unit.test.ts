import { describe, expect, it } from 'vitest';
import { credentialsFromEnvironment, defaultProvider } from '../../infra/bundling/lambda-credentials.ts';

describe('the credentials of the Lambda bundles', () => {
  it("reads the role's credentials Lambda puts in the environment", () => {
    expect(
      credentialsFromEnvironment({
        AWS_ACCESS_KEY_ID: 'ASIAEXAMPLE',
        AWS_SECRET_ACCESS_KEY: 'secret',
        AWS_SESSION_TOKEN: 'token',
      }),
    ).toEqual({ accessKeyId: 'ASIAEXAMPLE', secretAccessKey: 'secret', sessionToken: 'token' });
    expect(
      credentialsFromEnvironment({
        AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE',
        AWS_SECRET_ACCESS_KEY: 'secret',
        AWS_CREDENTIAL_EXPIRATION: '2026-12-02T10:00:00Z',
      }),
    ).toEqual({
      accessKeyId: 'AKIAEXAMPLE',
      secretAccessKey: 'secret',
      expiration: new Date('2026-12-02T10:00:00Z'),
    });
  });

  it('fails with what is missing, never with a value', () => {
    expect(() => credentialsFromEnvironment({ AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE' })).toThrow(
      /AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY/,
    );
    expect(() => credentialsFromEnvironment({})).toThrow(/No AWS credentials/);
  });

  it('reads the environment at each call, so refreshed credentials are picked up', async () => {
    const saved = { ...process.env };
    try {
      const provider = defaultProvider({});
      process.env.AWS_ACCESS_KEY_ID = 'first';
      process.env.AWS_SECRET_ACCESS_KEY = 's1';
      expect((await provider()).accessKeyId).toBe('first');
      process.env.AWS_ACCESS_KEY_ID = 'second';
      expect((await provider()).accessKeyId).toBe('second');
    } finally {
      process.env = saved;
    }
  });
});
