import {
  CreateSecretCommand,
  DescribeSecretCommand,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { afterAll, describe, expect, it } from 'vitest';
import {
  addFaults,
  clientConfig,
  type FaultRuleInput,
  removeFaults,
  sandbox,
  uniqueName,
} from '../support/sandbox.ts';

const secrets = new SecretsManagerClient(clientConfig);
afterAll(() => secrets.destroy());

describe('a chaos latency rule', () => {
  it('holds the answer of the matching call back, carries the call out, and leaves other calls alone', async () => {
    // Prepare
    const slow = uniqueName('latency-slow');
    const fast = uniqueName('latency-fast');
    const rule: FaultRuleInput = {
      service: 'secrets-manager',
      operation: 'CreateSecret',
      match: slow,
      latencyMs: 700,
      count: 1,
    };
    await addFaults([rule]);

    try {
      // Act
      const startedSlow = performance.now();
      await secrets.send(new CreateSecretCommand({ Name: slow, SecretString: 'x' }));
      const slowMs = performance.now() - startedSlow;
      const startedFast = performance.now();
      await secrets.send(new CreateSecretCommand({ Name: fast, SecretString: 'x' }));
      const fastMs = performance.now() - startedFast;

      // Assess
      expect(slowMs).toBeGreaterThanOrEqual(690);
      expect(fastMs).toBeLessThan(600);
      expect((await secrets.send(new DescribeSecretCommand({ SecretId: slow }))).Name).toBe(slow);
      const calls = (await (await fetch(`${sandbox.awsEndpoint}/_sandbox/calls`)).json()) as unknown[];
      expect(calls).toContainEqual(
        expect.objectContaining({ operation: 'CreateSecret', subject: slow, latencyMs: 700 }),
      );
    } finally {
      await removeFaults([rule]);
    }
  });
});
