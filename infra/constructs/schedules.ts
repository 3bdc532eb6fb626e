import { Duration, Stack } from 'aws-cdk-lib';
import { Effect, PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import {
  type ISchedule,
  type IScheduleTarget,
  Schedule,
  ScheduleExpression,
  type ScheduleTargetConfig,
  ScheduleTargetInput,
} from 'aws-cdk-lib/aws-scheduler';
import { Construct } from 'constructs';
import type { FunctionDefinition } from '../../functions/registry.ts';

/** A function and the registry entry it was made from. */
export interface ScheduledFunction {
  readonly definition: FunctionDefinition;
  readonly function: IFunction;
}

export interface SchedulesProps {
  /** Schedules are named `<prefix>-<function id>`. */
  readonly prefix: string;
  /** The stack's functions; those whose entry has a `schedule` get one, the others are ignored. */
  readonly functions: readonly ScheduledFunction[];
  /**
   * How long Scheduler keeps retrying a delivery it could not make (throttling, Lambda unavailable). The function's
   * own errors are Lambda's asynchronous retries, not these.
   * @default 5 minutes: a late run is superseded by the next one anyway
   */
  readonly maxEventAge?: Duration;
}

/**
 * One EventBridge Scheduler schedule per registry function with a `schedule`: it invokes the function
 * (asynchronously) with `{}` on the entry's expression, through a role that may invoke that one function, unqualified,
 * and nothing else. (`aws-scheduler-targets`' `LambdaInvoke` would grant `<arn>:*` too, every version and alias.)
 * The sandbox runs the same entries on its own clock (local/schedule.ts).
 */
export class Schedules extends Construct {
  /** By registry id. */
  readonly schedules: ReadonlyMap<string, Schedule>;
  /** The role each schedule assumes, by registry id. */
  readonly roles: ReadonlyMap<string, Role>;

  constructor(scope: Construct, id: string, props: SchedulesProps) {
    super(scope, id);
    const schedules = new Map<string, Schedule>();
    const roles = new Map<string, Role>();
    const stack = Stack.of(this);
    for (const { definition, function: fn } of props.functions) {
      if (!definition.schedule) continue;
      const name = `${props.prefix}-${definition.id}`;
      // Scheduler assumes the role for schedules of this account's default group only (confused deputy).
      const role = new Role(this, `${definition.id}Role`, {
        assumedBy: new ServicePrincipal('scheduler.amazonaws.com', {
          conditions: {
            StringEquals: {
              'aws:SourceAccount': stack.account,
              'aws:SourceArn': stack.formatArn({
                service: 'scheduler',
                resource: 'schedule-group',
                resourceName: 'default',
              }),
            },
          },
        }),
        description: `${name}: invokes ${definition.id} on its schedule`,
      });
      role.addToPrincipalPolicy(
        new PolicyStatement({
          effect: Effect.ALLOW,
          actions: ['lambda:InvokeFunction'],
          resources: [fn.functionArn],
        }),
      );
      const schedule = new Schedule(this, definition.id, {
        scheduleName: name,
        description: definition.schedule.description,
        schedule: ScheduleExpression.expression(definition.schedule.expression),
        target: new InvokeWithEmptyEvent(fn, role, props.maxEventAge ?? Duration.minutes(5)),
      });
      schedules.set(definition.id, schedule);
      roles.set(definition.id, role);
    }
    this.schedules = schedules;
    this.roles = roles;
  }
}

/** Invokes a function with `{}` through a role that already holds exactly `lambda:InvokeFunction` on it. */
class InvokeWithEmptyEvent implements IScheduleTarget {
  readonly #fn: IFunction;
  readonly #role: Role;
  readonly #maxEventAge: Duration;

  constructor(fn: IFunction, role: Role, maxEventAge: Duration) {
    this.#fn = fn;
    this.#role = role;
    this.#maxEventAge = maxEventAge;
  }

  bind(_schedule: ISchedule): ScheduleTargetConfig {
    return {
      arn: this.#fn.functionArn,
      role: this.#role,
      input: ScheduleTargetInput.fromObject({}),
      retryPolicy: {
        maximumEventAgeInSeconds: this.#maxEventAge.toSeconds(),
        maximumRetryAttempts: 3,
      },
    };
  }
}
