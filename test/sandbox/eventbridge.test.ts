import {
  CreateEventBusCommand,
  DeleteEventBusCommand,
  DeleteRuleCommand,
  DescribeEventBusCommand,
  DescribeRuleCommand,
  EventBridgeClient,
  ListRulesCommand,
  ListTargetsByRuleCommand,
  PutEventsCommand,
  PutRuleCommand,
  PutTargetsCommand,
  RemoveTargetsCommand,
} from '@aws-sdk/client-eventbridge';
import { afterAll, describe, expect, it } from 'vitest';
import { addFaults, clientConfig, removeFaults, sandbox, uniqueName } from '../support/sandbox.ts';

const events = new EventBridgeClient(clientConfig);
afterAll(() => events.destroy());

/** The error a call fails with, awaited at once so that no rejection goes unhandled. */
const failureOf = (call: Promise<unknown>): Promise<unknown> =>
  call.then(
    () => new Error('the call succeeded'),
    (error: unknown) => error,
  );

/** What the sandbox kept, through its own route (not an AWS API). */
async function keptEvents(query: Record<string, string>): Promise<unknown> {
  const response = await fetch(`${sandbox.awsEndpoint}/_sandbox/events?${new URLSearchParams(query)}`);
  expect(response.status).toBe(200);
  return response.json();
}

describe('EventBridge', () => {
  it('keeps the events PutEvents sends, listed by source, detail type and time', async () => {
    // Prepare
    const source = uniqueName('tenant-provisioner.test');
    const since = new Date().toISOString();
    const time = new Date('2026-01-02T03:04:05Z');

    // Act
    const put = await events.send(
      new PutEventsCommand({
        Entries: [
          {
            Source: source,
            DetailType: 'TenantActivated',
            Detail: '{"tenantId":"t1"}',
            Resources: ['arn:x'],
          },
          {
            Source: source,
            DetailType: 'TenantFailed',
            Detail: '{"tenantId":"t2","step":"CreateRoles"}',
            EventBusName: `arn:aws:events:${sandbox.region}:${sandbox.accountId}:event-bus/default`,
            Time: time,
          },
        ],
      }),
    );
    const all = await keptEvents({ source, since });
    const failed = await keptEvents({ source, detailType: 'TenantFailed', bus: 'default' });
    const later = await keptEvents({ source, since: new Date(Date.now() + 60_000).toISOString() });

    // Assess
    expect(put.FailedEntryCount).toBe(0);
    const ids = put.Entries?.map((entry) => entry.EventId);
    expect(all).toEqual([
      {
        id: ids?.[0],
        time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/),
        bus: 'default',
        source,
        detailType: 'TenantActivated',
        detail: { tenantId: 't1' },
        resources: ['arn:x'],
      },
      {
        id: ids?.[1],
        time: '2026-01-02T03:04:05Z',
        bus: 'default',
        source,
        detailType: 'TenantFailed',
        detail: { tenantId: 't2', step: 'CreateRoles' },
        resources: [],
      },
    ]);
    expect(failed).toEqual([expect.objectContaining({ id: ids?.[1] })]);
    expect(later).toEqual([]);
  });

  it('fails an entry whose detail is not a JSON object, and keeps the others', async () => {
    // Prepare
    const source = uniqueName('tenant-provisioner.malformed');

    // Act
    const put = await events.send(
      new PutEventsCommand({
        Entries: [
          { Source: source, DetailType: 'Bad', Detail: '[1,2]' },
          { Source: source, DetailType: 'Good', Detail: '{}' },
        ],
      }),
    );

    // Assess
    expect(put.FailedEntryCount).toBe(1);
    expect(put.Entries?.[0]).toMatchObject({ ErrorCode: 'MalformedDetail' });
    expect(put.Entries?.[1]?.EventId).toEqual(expect.any(String));
    expect(await keptEvents({ source })).toEqual([expect.objectContaining({ detailType: 'Good' })]);
  });

  it('refuses more than ten entries with ValidationException', async () => {
    // Prepare
    const entry = { Source: uniqueName('too-many'), DetailType: 'X', Detail: '{}' };

    // Act
    const error = await failureOf(events.send(new PutEventsCommand({ Entries: Array(11).fill(entry) })));

    // Assess
    expect(error).toMatchObject({ name: 'ValidationException' });
    expect(await keptEvents({ source: entry.Source })).toEqual([]);
  });

  it('stores buses, rules and targets, with the errors AWS gives', async () => {
    // Prepare
    const bus = uniqueName('tenants');
    const ruleName = uniqueName('on-tenant-failed');
    const created = await events.send(new CreateEventBusCommand({ Name: bus, Description: 'tenant events' }));

    // Act
    const rule = await events.send(
      new PutRuleCommand({
        Name: ruleName,
        EventBusName: bus,
        EventPattern: JSON.stringify({ 'detail-type': ['TenantFailed'] }),
        Description: 'alert',
      }),
    );
    await events.send(
      new PutTargetsCommand({
        Rule: ruleName,
        EventBusName: bus,
        Targets: [{ Id: 'sns', Arn: 'arn:aws:sns:us-east-1:000000000000:alerts', Input: '{"a":1}' }],
      }),
    );
    const described = await events.send(new DescribeRuleCommand({ Name: ruleName, EventBusName: bus }));
    const listed = await events.send(new ListRulesCommand({ EventBusName: bus, NamePrefix: 'on-tenant' }));
    const targets = await events.send(new ListTargetsByRuleCommand({ Rule: ruleName, EventBusName: bus }));
    const deleteWithTargets = await failureOf(
      events.send(new DeleteRuleCommand({ Name: ruleName, EventBusName: bus })),
    );
    await events.send(new RemoveTargetsCommand({ Rule: ruleName, EventBusName: bus, Ids: ['sns'] }));
    await events.send(new DeleteRuleCommand({ Name: ruleName, EventBusName: bus }));
    const ruleGone = await failureOf(
      events.send(new DescribeRuleCommand({ Name: ruleName, EventBusName: bus })),
    );
    const busDescribed = await events.send(new DescribeEventBusCommand({ Name: bus }));
    const duplicate = await failureOf(events.send(new CreateEventBusCommand({ Name: bus })));
    const defaultBus = await failureOf(events.send(new CreateEventBusCommand({ Name: 'default' })));
    await events.send(new DeleteEventBusCommand({ Name: bus }));
    const busGone = await failureOf(events.send(new DescribeEventBusCommand({ Name: bus })));

    // Assess
    const busArn = `arn:aws:events:${sandbox.region}:${sandbox.accountId}:event-bus/${bus}`;
    expect(created.EventBusArn).toBe(busArn);
    expect(rule.RuleArn).toBe(
      `arn:aws:events:${sandbox.region}:${sandbox.accountId}:rule/${bus}/${ruleName}`,
    );
    expect(described).toMatchObject({
      Name: ruleName,
      State: 'ENABLED',
      EventBusName: bus,
      Description: 'alert',
    });
    expect(listed.Rules?.map((found) => found.Name)).toEqual([ruleName]);
    expect(targets.Targets).toEqual([
      { Id: 'sns', Arn: 'arn:aws:sns:us-east-1:000000000000:alerts', Input: '{"a":1}' },
    ]);
    expect(deleteWithTargets).toMatchObject({ name: 'ValidationException' });
    expect(ruleGone).toMatchObject({ name: 'ResourceNotFoundException' });
    expect(busDescribed).toMatchObject({ Name: bus, Arn: busArn, Description: 'tenant events' });
    expect(duplicate).toMatchObject({ name: 'ResourceAlreadyExistsException' });
    expect(defaultBus).toMatchObject({ name: 'ResourceAlreadyExistsException' });
    expect(busGone).toMatchObject({ name: 'ResourceNotFoundException' });
  });

  it('fails only the PutEvents call whose detail type a chaos rule matches', async () => {
    // Prepare
    const source = uniqueName('tenant-provisioner.chaos');
    const detailType = uniqueName('TenantChaos');
    const rule = {
      service: 'eventbridge' as const,
      operation: 'PutEvents',
      match: detailType,
      error: { code: 'AccessDeniedException', statusCode: 400 },
    };
    await addFaults([rule]);
    try {
      // Act
      const failed = await failureOf(
        events.send(
          new PutEventsCommand({ Entries: [{ Source: source, DetailType: detailType, Detail: '{}' }] }),
        ),
      );
      await events.send(
        new PutEventsCommand({ Entries: [{ Source: source, DetailType: 'Calm', Detail: '{}' }] }),
      );

      // Assess
      expect(failed).toMatchObject({ name: 'AccessDeniedException' });
      expect(await keptEvents({ source })).toEqual([expect.objectContaining({ detailType: 'Calm' })]);
    } finally {
      await removeFaults([rule]);
    }
  });
});
