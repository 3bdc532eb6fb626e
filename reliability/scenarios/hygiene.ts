import {
  GetSecretValueCommand,
  ListSecretsCommand,
  ResourceNotFoundException,
} from '@aws-sdk/client-secrets-manager';
import {
  GetExecutionHistoryCommand,
  ListExecutionsCommand,
  ListStateMachinesCommand,
} from '@aws-sdk/client-sfn';
import { z } from 'zod';
import { figure, type ScenarioResult } from '../report.ts';
import type { SandboxUnderTest } from '../sandbox.ts';

/** The secret fields of the secrets the product keeps: role passwords and invitation tokens. */
const SecretFields = z.looseObject({ password: z.string().optional(), token: z.string().optional() });

/** Every secret value the sandbox holds: tenant passwords and invitation tokens, the provisioner's password. */
async function secretValues(sut: SandboxUnderTest): Promise<{ what: string; value: string }[]> {
  const values: { what: string; value: string }[] = [];
  let nextToken: string | undefined;
  do {
    const page = await sut.clients.secrets.send(
      new ListSecretsCommand({ MaxResults: 100, NextToken: nextToken }),
    );
    for (const secret of page.SecretList ?? []) {
      if (!secret.ARN) continue;
      let text: string | undefined;
      try {
        text = (await sut.clients.secrets.send(new GetSecretValueCommand({ SecretId: secret.ARN })))
          .SecretString;
      } catch (error) {
        if (
          error instanceof ResourceNotFoundException ||
          (error instanceof Error && error.name === 'InvalidRequestException')
        )
          continue;
        throw error;
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(text ?? '');
      } catch {
        continue;
      }
      const fields = SecretFields.safeParse(parsed);
      if (!fields.success) continue;
      if (fields.data.password)
        values.push({ what: `password of ${secret.Name}`, value: fields.data.password });
      if (fields.data.token) values.push({ what: `token of ${secret.Name}`, value: fields.data.token });
    }
    nextToken = page.NextToken;
  } while (nextToken);
  return values;
}

/** The text of every execution history of every state machine. */
async function histories(sut: SandboxUnderTest): Promise<{ count: number; text: string }> {
  const { sfn } = sut.clients;
  const parts: string[] = [];
  const machines = await sfn.send(new ListStateMachinesCommand({ maxResults: 1000 }));
  for (const machine of machines.stateMachines ?? []) {
    let nextToken: string | undefined;
    do {
      const page = await sfn.send(
        new ListExecutionsCommand({ stateMachineArn: machine.stateMachineArn, maxResults: 1000, nextToken }),
      );
      for (const execution of page.executions ?? []) {
        let token: string | undefined;
        do {
          const history = await sfn.send(
            new GetExecutionHistoryCommand({
              executionArn: execution.executionArn,
              maxResults: 1000,
              nextToken: token,
            }),
          );
          parts.push(JSON.stringify(history.events ?? []));
          token = history.nextToken;
        } while (token);
      }
      nextToken = page.nextToken;
    } while (nextToken);
  }
  return { count: parts.length, text: parts.join('\n') };
}

/** The registry's tables, as text: what the API answers from and what an operator reads. */
async function registryText(sut: SandboxUnderTest): Promise<string> {
  const pool = sut.superuser('control_plane');
  const parts: string[] = [];
  for (const table of ['tenants', 'tenant_steps', 'audit_log', 'idempotency_keys']) {
    const { rows } = await pool.query(`SELECT row_to_json(t)::text AS row FROM ${table} t`);
    parts.push(...rows.map((row: { row: string }) => row.row));
  }
  return parts.join('\n');
}

/**
 * Secret hygiene, after everything else: no password, invitation token or API token appears in any execution
 * history, the sandbox's output (every function's log line and the API's), any EventBridge event, any API
 * answer the suite received, the AWS call log (the Data API's SQL), or the registry's tables. The one place a
 * secret value may be is its Secrets Manager secret, read here to know what to look for.
 */
export async function hygiene(sut: SandboxUnderTest): Promise<ScenarioResult> {
  const secrets = [
    ...(await secretValues(sut)),
    { what: 'the sandbox API token', value: sut.info.token },
    ...sut.tokens.map((value) => ({ what: 'an API token', value })),
  ].filter(({ value }) => value.length >= 16);
  const executions = await histories(sut);
  const haystacks: [string, string][] = [
    ['execution histories', executions.text],
    ['log lines', sut.output()],
    ['EventBridge events', (await sut.events()).text],
    ['API answers', sut.answers.map((answer) => answer.text).join('\n')],
    ['AWS call log', JSON.stringify(await sut.calls())],
    ['registry tables', await registryText(sut)],
  ];
  const leaks: string[] = [];
  for (const { what, value } of secrets) {
    for (const [place, text] of haystacks) if (text.includes(value)) leaks.push(`${what} in ${place}`);
  }
  const scenario = 'secret hygiene';
  return {
    problems: leaks.map((leak) => `leaked: ${leak}`),
    figures: [
      figure(scenario, 'secret values looked for', secrets.length, '> 0', secrets.length > 0),
      figure(scenario, 'execution histories read', executions.count, '> 0', executions.count > 0),
      figure(
        scenario,
        'places searched (MB)',
        (haystacks.reduce((sum, [, text]) => sum + text.length, 0) / 1e6).toFixed(1),
        '-',
        true,
      ),
      figure(scenario, 'secrets leaked', leaks.length, '0', leaks.length === 0),
    ],
  };
}
