import { type EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';

/** The `source` of every event the product announces. */
export const EVENT_SOURCE = 'tenant-provisioner';

/** Where events go: the stage's bus. */
export interface Announcer {
  readonly events: EventBridgeClient;
  readonly busName: string;
}

/** An event of the product: its detail-type, its detail, and the ARNs it is about. */
export interface ProductEvent {
  readonly detailType: string;
  readonly detail: Record<string, unknown>;
  readonly resources?: readonly string[];
}

/** EventBridge API Reference, PutEvents: "Entries: … Maximum number of 10 items." */
const EVENTS_PER_CALL = 10;

/** Puts one event on the product's bus; an entry EventBridge refuses fails the call, named by its error code. */
export async function announce(
  deps: Announcer,
  detailType: string,
  detail: Record<string, unknown>,
  resources: readonly string[] = [],
): Promise<void> {
  await announceAll(deps, [{ detailType, detail, resources }]);
}

/** Puts the events, ten a call, in order; the first entry EventBridge refuses fails the call, named by its code. */
export async function announceAll(deps: Announcer, events: readonly ProductEvent[]): Promise<void> {
  for (let i = 0; i < events.length; i += EVENTS_PER_CALL) {
    const output = await deps.events.send(
      new PutEventsCommand({
        Entries: events.slice(i, i + EVENTS_PER_CALL).map((event) => ({
          EventBusName: deps.busName,
          Source: EVENT_SOURCE,
          DetailType: event.detailType,
          Detail: JSON.stringify(event.detail),
          Resources: [...(event.resources ?? [])],
        })),
      }),
    );
    const failed = output.Entries?.find((entry) => entry.ErrorCode);
    if ((output.FailedEntryCount ?? 0) > 0 || failed) {
      const refused = events[i + (output.Entries?.findIndex((entry) => entry.ErrorCode) ?? 0)];
      const error = new Error(
        `EventBridge refused the "${refused?.detailType ?? events[i]?.detailType}" event: ${failed?.ErrorMessage ?? 'no reason given'}`,
      );
      error.name = failed?.ErrorCode ?? 'PutEventsFailed';
      throw error;
    }
  }
}
