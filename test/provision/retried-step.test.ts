import { DescribeSecretCommand } from '@aws-sdk/client-secrets-manager';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { databaseName } from '../../schema/names.ts';
import { addFaults, type FaultRuleInput, removeFaults, sandbox } from '../support/sandbox.ts';
import {
  asRole,
  clients,
  outcome,
  registry,
  reserveTenant,
  startProvisioning,
  waitForExecution,
} from './helpers.ts';

const RecordedCalls = z.array(
  z.object({ service: z.string(), operation: z.string(), subject: z.string().optional() }),
);

describe('a Step Functions retry of CreateRoles', () => {
  it('keeps the secrets the first attempt made: one version each, no new password, logins that work', async () => {
    // Prepare: the auditor's CREATE ROLE fails once with a transient error, after the four role secrets exist. On
    // AWS a ClientRequestToken is bound to the value it first stored, so a retry must not store a new password.
    // Enterprise: all four roles stand, so each has its secret.
    const tenant = await reserveTenant({ plan: 'enterprise' });
    const fault: FaultRuleInput = {
      service: 'rds-data',
      match: `CREATE ROLE "tenant_${tenant.id}_auditor"`,
      error: { code: 'DatabaseResumingException', statusCode: 400, message: 'The database is resuming' },
      count: 1,
    };
    await addFaults([fault]);

    try {
      // Act
      const execution = await waitForExecution(await startProvisioning(tenant.id));

      // Assess
      expect(execution.status).toBe('SUCCEEDED');
      const steps = await registry.progress.steps(tenant.id);
      expect(steps.find((record) => record.step === 'CreateRoles')).toMatchObject({
        status: 'succeeded',
        attempts: 2,
      });
      const arns = Object.values((await registry.tenants.require(tenant.id)).resources.secrets ?? {});
      expect(arns).toHaveLength(4);
      const versions = await Promise.all(
        arns.map(async (arn) => {
          const described = await clients.secrets.send(new DescribeSecretCommand({ SecretId: arn }));
          return Object.values(described.VersionIdsToStages ?? {});
        }),
      );
      expect(versions).toEqual(arns.map(() => [['AWSCURRENT']]));
      const calls = RecordedCalls.parse(await (await fetch(`${sandbox.awsEndpoint}/_sandbox/calls`)).json());
      const secretWrites = calls.filter(
        (call) => call.service === 'secrets-manager' && call.subject?.includes(`/${tenant.id}/db/`),
      );
      expect(secretWrites.filter((call) => call.operation === 'CreateSecret')).toHaveLength(8);
      expect(secretWrites.filter((call) => call.operation === 'PutSecretValue')).toEqual([]);
      const logins = await Promise.all(
        arns.map((arn) => outcome(asRole(arn, databaseName(tenant.id)).execute('SELECT 1'))),
      );
      expect(logins).toEqual(['ok', 'ok', 'ok', 'ok']);
    } finally {
      await removeFaults([fault]);
    }
  }, 90_000);
});
