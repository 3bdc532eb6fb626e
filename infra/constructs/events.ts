import { EventBus } from 'aws-cdk-lib/aws-events';
import { Construct } from 'constructs';

export interface EventsProps {
  /** The bus's name; `EVENT_BUS_NAME` of the functions that announce. */
  readonly eventBusName: string;
}

/**
 * The EventBridge bus the product announces on (a tenant provisioned, failed, deleted), so that the SaaS's
 * other services subscribe with rules of their own instead of polling the API. A bus holds no data: it goes
 * with the stack in every stage.
 */
export class Events extends Construct {
  readonly bus: EventBus;

  constructor(scope: Construct, id: string, props: EventsProps) {
    super(scope, id);
    this.bus = new EventBus(this, 'Bus', {
      eventBusName: props.eventBusName,
      description: 'Tenant Provisioner: tenant lifecycle events',
    });
  }
}
