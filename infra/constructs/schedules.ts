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
import type { IStateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import type { FunctionDefinition } from '../../functions/registry.ts';

/** A function and the registry entry it was made from. */
export interface ScheduledFunction {
  readonly definition: FunctionDefinition;
  readonly function: IFunction;
}

/** A state machine started on a schedule (functions/registry.ts STATE_MACHINE_SCHEDULES). */
export interface ScheduledStateMachine {
  /** The schedule is named `<prefix>-<id>`. */
  readonly id: string;
  readonly stateMachine: IStateMachine;
  /** An EventBridge Scheduler expression, e.g. `rate(5 minutes)`. */
  readonly expression: string;
  readonly description: string;
  /** The run's input; Scheduler fills in context attributes such as `<aws.scheduler.scheduled-time>`. */
  readonly input: Readonly<Record<string, string>>;
}

export interface SchedulesProps {
  /** Schedules are named `<prefix>-<function id>`. */
  readonly prefix: string;
  /** The stack's functions; those whose entry has a `schedule` get one, the others are ignored. */
  readonly functions: readonly ScheduledFunction[];
  /** State machines to start on a schedule. @default none */
  readonly stateMachines?: readonly ScheduledStateMachine[];
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
    // Scheduler assumes a schedule's role for schedules of this account's default group only (confused deputy).
    const schedulerRole = (id: string, description: string) =>
      new Role(this, `${id}Role`, {
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
        description,
      });
    const maxEventAge = props.maxEventAge ?? Duration.minutes(5);
    for (const { definition, function: fn } of props.functions) {
      if (!definition.schedule) continue;
      const name = `${props.prefix}-${definition.id}`;
      const role = schedulerRole(definition.id, `${name}: invokes ${definition.id} on its schedule`);
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
        target: new ScheduleTarget(fn.functionArn, role, {}, maxEventAge),
      });
      schedules.set(definition.id, schedule);
      roles.set(definition.id, role);
    }
    for (const scheduled of props.stateMachines ?? []) {
      const name = `${props.prefix}-${scheduled.id}`;
      const role = schedulerRole(scheduled.id, `${name}: starts its state machine on its schedule`);
      role.addToPrincipalPolicy(
        new PolicyStatement({
          effect: Effect.ALLOW,
          actions: ['states:StartExecution'],
          resources: [scheduled.stateMachine.stateMachineArn],
        }),
      );
      const schedule = new Schedule(this, scheduled.id, {
        scheduleName: name,
        description: scheduled.description,
        schedule: ScheduleExpression.expression(scheduled.expression),
        target: new ScheduleTarget(
          scheduled.stateMachine.stateMachineArn,
          role,
          scheduled.input,
          maxEventAge,
        ),
      });
      schedules.set(scheduled.id, schedule);
      roles.set(scheduled.id, role);
    }
    this.schedules = schedules;
    this.roles = roles;
  }
}

/**
 * Invokes a function or starts a state machine (Scheduler's templated targets: the ARN says which) with `input`,
 * through a role that already holds exactly the one action on that one resource.
 */
class ScheduleTarget implements IScheduleTarget {
  readonly #arn: string;
  readonly #role: Role;
  readonly #input: Readonly<Record<string, string>>;
  readonly #maxEventAge: Duration;

  constructor(arn: string, role: Role, input: Readonly<Record<string, string>>, maxEventAge: Duration) {
    this.#arn = arn;
    this.#role = role;
    this.#input = input;
    this.#maxEventAge = maxEventAge;
  }

  bind(_schedule: ISchedule): ScheduleTargetConfig {
    return {
      arn: this.#arn,
      role: this.#role,
      input: ScheduleTargetInput.fromObject(this.#input),
      retryPolicy: {
        maximumEventAgeInSeconds: this.#maxEventAge.toSeconds(),
        maximumRetryAttempts: 3,
      },
    };
  }
}
