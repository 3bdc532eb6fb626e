import { Duration } from 'aws-cdk-lib';
import {
  Alarm,
  AlarmStatusWidget,
  AlarmStatusWidgetSortBy,
  ComparisonOperator,
  Dashboard,
  DashboardVariable,
  DefaultValue,
  GraphWidget,
  MathExpression,
  Metric,
  SingleValueWidget,
  TextWidget,
  TreatMissingData,
  Values,
  VariableInputType,
  VariableType,
} from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import { EventField, type EventPattern, type IEventBus, Rule, RuleTargetInput } from 'aws-cdk-lib/aws-events';
import { Effect, PolicyStatement, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { EmailSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import type { IStateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';

export interface MonitoringProps {
  /** Alarm, topic and dashboard names start with it. */
  readonly prefix: string;
  /**
   * Addresses subscribed to the alarm topic (each confirms by mail).
   * @default none
   */
  readonly alarmEmails?: readonly string[];
}

export interface ProvisioningMonitoringProps {
  /** The state machine whose runs are provisionings. */
  readonly stateMachine: IStateMachine;
  /** The bus the product announces on. */
  readonly bus: IEventBus;
  /** The event announced when a rollback could not undo everything (the tenant is `rollback_failed`). */
  readonly rollbackFailedPattern: EventPattern;
  /** Functions whose errors and durations the dashboard shows, by label. */
  readonly functions?: ReadonlyMap<string, IFunction>;
  /** The API's id, for its request, error and latency graphs. */
  readonly httpApiId?: string;
}

export interface StateMachinesMonitoringProps {
  /** Every state machine of the stage, by file name (`statemachines/<name>.asl.json`). */
  readonly stateMachines: ReadonlyMap<string, IStateMachine>;
}

export interface FailureEventsProps {
  /** The bus the product announces on. */
  readonly bus: IEventBus;
  /** The `source` of the product's events. */
  readonly source: string;
  /** The `detail-type`s an operator must hear about: failures, drift. */
  readonly detailTypes: readonly string[];
}

export interface UsageDashboardProps {
  /** The namespace the usage collector publishes to. */
  readonly namespace: string;
  /** The plans (their sums are published under the `Plan` dimension). */
  readonly plans: readonly string[];
  /** The per-tenant metrics: metric name, label. */
  readonly tenantMetrics: readonly { readonly metric: string; readonly label: string }[];
  /** The collector's period, the graphs' period. */
  readonly period: Duration;
}

export interface ScheduledFunctionsMonitoringProps {
  /** The functions that run on a schedule, by registry id: nobody waits on them, so their errors alarm. */
  readonly functions: ReadonlyMap<string, IFunction>;
}

/**
 * The stage's alarm topic (the tenants' own alarms notify it too) and a dashboard. `watchProvisioning` adds the
 * two alarms that matter most to operators: a provisioning failed (its run ended failed, timed out or aborted), and
 * a rollback failed (something may be left behind); the latter also sends the event itself to the topic, so that
 * the mail names the tenant, the step and the leftovers. `watchStateMachines` alarms on every other state machine's
 * runs that did not succeed, `forwardFailureEvents` sends the product's failure and drift events to the topic, and
 * `watchScheduledFunctions` alarms on errors of the functions nobody waits on.
 */
export class Monitoring extends Construct {
  readonly topic: Topic;
  readonly dashboard: Dashboard;
  /** Every alarm of the stage's own (not the tenants'), each notifying the topic; the dashboard shows their state. */
  readonly alarms: Alarm[] = [];
  /** The rules that send events to the topic, by name. */
  readonly rules = new Map<string, Rule>();
  readonly #prefix: string;
  /** State machines that already have their alarm. */
  readonly #watched = new Set<IStateMachine>();

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    this.#prefix = props.prefix;
    this.topic = new Topic(this, 'AlarmTopic', {
      topicName: `${props.prefix}-alarms`,
      displayName: `Tenant Provisioner ${props.prefix} alarms`,
      enforceSSL: true,
    });
    for (const email of props.alarmEmails ?? []) this.topic.addSubscription(new EmailSubscription(email));
    this.dashboard = new Dashboard(this, 'Dashboard', { dashboardName: `${props.prefix}-provisioning` });
    this.dashboard.addWidgets(
      new TextWidget({
        markdown: `# Tenant Provisioner (${props.prefix})\nProvisioning runs, their outcomes and durations; the functions and the API.`,
        width: 24,
        height: 2,
      }),
      // Reads `alarms` when the dashboard is rendered (at synth), so it lists the alarms added after it too.
      new AlarmStatusWidget({
        title: 'Alarms',
        alarms: this.alarms,
        sortBy: AlarmStatusWidgetSortBy.STATE_UPDATED_TIMESTAMP,
        width: 24,
        height: 6,
      }),
    );
  }

  /**
   * Sends a rule's events to the topic. The topic policy lets EventBridge publish for this rule only
   * (`aws:SourceArn`), where the stock `SnsTopic` target would let any rule of any account publish.
   */
  #toTopic(rule: Rule, message: RuleTargetInput): void {
    this.topic.addToResourcePolicy(
      new PolicyStatement({
        sid: `Publish${rule.node.id}`,
        effect: Effect.ALLOW,
        principals: [new ServicePrincipal('events.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [this.topic.topicArn],
        conditions: { ArnEquals: { 'aws:SourceArn': rule.ruleArn } },
      }),
    );
    const topicArn = this.topic.topicArn;
    const topic = this.topic;
    rule.addTarget({ bind: () => ({ arn: topicArn, input: message, targetResource: topic }) });
  }

  /**
   * How often a rule on `bus` matched. Named rules only: on a custom bus the rule's Ref is `<bus>|<rule>`, and
   * EventBridge publishes a custom bus's rule metrics under both `EventBusName` and `RuleName`.
   */
  #ruleMatches(bus: IEventBus, ruleName: string, label: string, period: Duration): Metric {
    return new Metric({
      namespace: 'AWS/Events',
      metricName: 'TriggeredRules',
      dimensionsMap: { EventBusName: bus.eventBusName, RuleName: ruleName },
      statistic: 'Sum',
      period,
      label,
    });
  }

  /**
   * Runs of a state machine that ended failed, timed out or aborted (an aborted run skipped its undo steps).
   * `suffix` keeps the metric ids apart where several of these share a graph.
   */
  #unsuccessfulRuns(machine: IStateMachine, label: string, period: Duration, suffix = ''): MathExpression {
    return new MathExpression({
      label,
      expression: `failed${suffix} + timedOut${suffix} + aborted${suffix}`,
      usingMetrics: {
        [`failed${suffix}`]: machine.metricFailed({ period }),
        [`timedOut${suffix}`]: machine.metricTimedOut({ period }),
        [`aborted${suffix}`]: machine.metricAborted({ period }),
      },
      period,
    });
  }

  /** An alarm on `metric` reaching 1 in one period, notifying the topic; no data is no failure. */
  #alarm(id: string, alarmName: string, alarmDescription: string, metric: Metric | MathExpression): Alarm {
    const alarm = new Alarm(this, id, {
      alarmName,
      alarmDescription,
      metric,
      threshold: 1,
      comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
    alarm.addAlarmAction(new SnsAction(this.topic));
    this.alarms.push(alarm);
    return alarm;
  }

  /** Alarms and dashboard widgets for the provisioning state machine. */
  watchProvisioning(props: ProvisioningMonitoringProps): void {
    const period = Duration.minutes(5);
    const machine = props.stateMachine;
    this.#watched.add(machine);
    this.#alarm(
      'ProvisioningFailed',
      `${this.#prefix}-provisioning-failed`,
      'A tenant provisioning run did not succeed: the tenant is failed (rolled back) or rollback_failed. See the execution in the Step Functions console and GET /tenants/{id}.',
      this.#unsuccessfulRuns(machine, 'Failed, timed out or aborted runs', period),
    );

    const rollbackRuleName = `${this.#prefix}-rollback-failed`;
    const rollbackRule = new Rule(this, 'RollbackFailedRule', {
      ruleName: rollbackRuleName,
      eventBus: props.bus,
      description: 'A tenant rollback failed: resources may be left behind',
      eventPattern: props.rollbackFailedPattern,
    });
    this.#toTopic(
      rollbackRule,
      RuleTargetInput.fromObject({
        alarm: `${this.#prefix}: a tenant rollback failed, resources may be left behind`,
        tenant: EventField.fromPath('$.detail'),
      }),
    );
    this.rules.set(rollbackRuleName, rollbackRule);
    const rollbacks = this.#ruleMatches(props.bus, rollbackRuleName, 'Rollbacks failed', period);
    this.#alarm(
      'RollbackFailed',
      `${this.#prefix}-rollback-failed`,
      'A tenant ended rollback_failed: an undo step kept failing and resources may be left behind (the tenant record lists them as leftovers).',
      rollbacks,
    );

    const hour = Duration.hours(1);
    this.dashboard.addWidgets(
      new SingleValueWidget({
        title: 'Provisionings, last 24 h',
        metrics: [
          machine.metricStarted({ period: Duration.days(1), label: 'Started' }),
          machine.metricSucceeded({ period: Duration.days(1), label: 'Active' }),
          machine.metricFailed({ period: Duration.days(1), label: 'Failed' }),
          rollbacks.with({ period: Duration.days(1) }),
        ],
        width: 24,
        height: 4,
      }),
      new GraphWidget({
        title: 'Provisioning outcomes',
        left: [
          machine.metricSucceeded({ period: hour, label: 'Succeeded' }),
          machine.metricFailed({ period: hour, label: 'Failed' }),
          machine.metricTimedOut({ period: hour, label: 'Timed out' }),
          rollbacks.with({ period: hour }),
        ],
        width: 12,
      }),
      new GraphWidget({
        title: 'Provisioning duration (ms)',
        left: [
          machine.metricTime({ statistic: 'p50', period: hour, label: 'p50' }),
          machine.metricTime({ statistic: 'p90', period: hour, label: 'p90' }),
          machine.metricTime({ statistic: 'Maximum', period: hour, label: 'max' }),
        ],
        width: 12,
      }),
    );
    const functions = [...(props.functions ?? new Map<string, IFunction>())];
    if (functions.length > 0) {
      this.dashboard.addWidgets(
        new GraphWidget({
          title: 'Function errors',
          left: functions.map(([label, fn]) => fn.metricErrors({ period: hour, label })),
          width: 12,
        }),
        new GraphWidget({
          title: 'Function duration p90 (ms)',
          left: functions.map(([label, fn]) => fn.metricDuration({ statistic: 'p90', period: hour, label })),
          width: 12,
        }),
      );
    }
    if (props.httpApiId) {
      const apiMetric = (metricName: string, statistic: string, label: string) =>
        new Metric({
          namespace: 'AWS/ApiGateway',
          metricName,
          dimensionsMap: { ApiId: props.httpApiId ?? '' },
          statistic,
          period: hour,
          label,
        });
      this.dashboard.addWidgets(
        new GraphWidget({
          title: 'API requests and errors',
          left: [
            apiMetric('Count', 'Sum', 'Requests'),
            apiMetric('4xx', 'Sum', '4xx'),
            apiMetric('5xx', 'Sum', '5xx'),
          ],
          width: 12,
        }),
        new GraphWidget({
          title: 'API latency p90 (ms)',
          left: [
            apiMetric('Latency', 'p90', 'Latency'),
            apiMetric('IntegrationLatency', 'p90', 'Integration'),
          ],
          width: 12,
        }),
      );
    }
  }

  /**
   * An alarm per state machine, `<prefix>-<name>-failed`, on runs that ended failed, timed out or aborted (one that
   * `watchProvisioning` watches keeps its own), and a graph of them all.
   */
  watchStateMachines(props: StateMachinesMonitoringProps): void {
    const period = Duration.minutes(5);
    const hour = Duration.hours(1);
    const graphed: MathExpression[] = [];
    for (const [name, machine] of props.stateMachines) {
      graphed.push(this.#unsuccessfulRuns(machine, name, hour, String(graphed.length)));
      if (this.#watched.has(machine)) continue;
      this.#watched.add(machine);
      this.#alarm(
        `${pascal(name)}Failed`,
        `${this.#prefix}-${name}-failed`,
        `A ${name} run did not succeed (failed, timed out or aborted): see the execution in the Step Functions console; the tenant or batch record says which step failed and what is left.`,
        this.#unsuccessfulRuns(machine, 'Failed, timed out or aborted runs', period),
      );
    }
    if (graphed.length > 0) {
      this.dashboard.addWidgets(
        new GraphWidget({
          title: 'Runs failed, timed out or aborted, by state machine',
          left: graphed,
          width: 24,
        }),
      );
    }
  }

  /**
   * Sends the product's failure and drift events to the topic, each mail naming what happened and carrying the
   * event's detail (tenant, step, cause, leftovers; never a secret), and graphs how often they come.
   */
  forwardFailureEvents(props: FailureEventsProps): Rule {
    const ruleName = `${this.#prefix}-failure-events`;
    const rule = new Rule(this, 'FailureEventsRule', {
      ruleName,
      eventBus: props.bus,
      description: 'Tenant operations that failed and drift the reconciler found, to the alarm topic',
      eventPattern: { source: [props.source], detailType: [...props.detailTypes] },
    });
    this.#toTopic(
      rule,
      RuleTargetInput.fromObject({
        alarm: `${this.#prefix}: ${EventField.fromPath('$.detail-type')}`,
        time: EventField.time,
        detail: EventField.fromPath('$.detail'),
      }),
    );
    this.rules.set(ruleName, rule);
    const hour = Duration.hours(1);
    this.dashboard.addWidgets(
      new GraphWidget({
        title: 'Failure and drift events',
        left: [
          this.#ruleMatches(props.bus, ruleName, 'Failed operations and drift', hour),
          ...[...this.rules.keys()]
            .filter((name) => name !== ruleName)
            .map((name) => this.#ruleMatches(props.bus, name, name.slice(this.#prefix.length + 1), hour)),
        ],
        width: 24,
      }),
    );
    return rule;
  }

  /**
   * The stage's tenants dashboard, `<prefix>-tenants`: the fleet's usage summed per plan, and one tenant's usage
   * and the SaaS's signals for it, the tenant chosen in the dashboard's `TenantId` variable (a list of the tenants
   * that publish, filled from a metric search). One dashboard for every tenant, not one per tenant: a dashboard costs
   * $3 a month beyond an account's first three, five times a basic tenant's whole budget, and a per-tenant
   * dashboard would have to be made and deleted with each tenant. Basic tenants publish no per-tenant metrics
   * (`perTenantMonitoring`): GET /tenants/{id}/usage shows theirs.
   */
  watchUsage(props: UsageDashboardProps): Dashboard {
    const { namespace, period } = props;
    const dashboard = new Dashboard(this, 'TenantsDashboard', {
      dashboardName: `${this.#prefix}-tenants`,
      variables: [
        new DashboardVariable({
          id: 'tenant',
          type: VariableType.PROPERTY,
          inputType: VariableInputType.SELECT,
          value: 'TenantId',
          label: 'Tenant',
          values: Values.fromSearchComponents({
            namespace,
            dimensions: ['TenantId'],
            metricName: 'StorageBytes',
            populateFrom: 'TenantId',
          }),
          defaultValue: DefaultValue.FIRST,
        }),
      ],
    });
    const byPlan = (metric: string, statistic: string) =>
      props.plans.map(
        (plan) =>
          new Metric({
            namespace,
            metricName: metric,
            dimensionsMap: { Plan: plan },
            statistic,
            period,
            label: plan,
          }),
      );
    const tenant = (metric: string, statistic: string, label: string) =>
      new Metric({
        namespace,
        metricName: metric,
        // The variable replaces this value with the tenant chosen.
        dimensionsMap: { TenantId: 'tenant' },
        statistic,
        period,
        label,
      });
    dashboard.addWidgets(
      new TextWidget({
        markdown: `# Tenants (${this.#prefix})\nThe fleet's usage per plan, from the usage collector; below, the tenant chosen above (professional and enterprise tenants; a basic tenant's usage is at GET /tenants/{id}/usage).`,
        width: 24,
        height: 2,
      }),
      new GraphWidget({ title: 'Active tenants measured', left: byPlan('Tenants', 'Sum'), width: 8 }),
      new GraphWidget({ title: 'Quotas exceeded', left: byPlan('QuotasExceeded', 'Sum'), width: 8 }),
      new GraphWidget({ title: 'Storage (bytes)', left: byPlan('StorageBytes', 'Sum'), width: 8 }),
      ...props.tenantMetrics.map(
        ({ metric, label }) =>
          new GraphWidget({ title: `Tenant: ${label}`, left: [tenant(metric, 'Maximum', label)], width: 8 }),
      ),
      new GraphWidget({
        title: 'Tenant: requests and 5xx (the SaaS)',
        left: [tenant('Requests', 'Sum', 'Requests'), tenant('5xxErrors', 'Sum', '5xx')],
        width: 8,
      }),
      new GraphWidget({
        title: 'Tenant: latency (the SaaS)',
        left: [tenant('Latency', 'p50', 'p50'), tenant('Latency', 'p99', 'p99')],
        width: 8,
      }),
    );
    return dashboard;
  }

  /** An alarm per scheduled function, `<prefix>-<id>-errors`, on any error (after Lambda's own retries too). */
  watchScheduledFunctions(props: ScheduledFunctionsMonitoringProps): void {
    for (const [id, fn] of props.functions) {
      this.#alarm(
        `${id}Errors`,
        `${this.#prefix}-${id}-errors`,
        `The scheduled ${id} function failed: nothing waits on it, so until it runs again what it watches goes unwatched. See its log group.`,
        fn.metricErrors({ period: Duration.minutes(15), statistic: 'Sum', label: `${id} errors` }),
      );
    }
  }
}

const pascal = (name: string): string =>
  name
    .split(/[^A-Za-z0-9]+/)
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1))
    .join('');
