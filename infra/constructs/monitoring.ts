import { Duration } from 'aws-cdk-lib';
import {
  Alarm,
  ComparisonOperator,
  Dashboard,
  GraphWidget,
  MathExpression,
  Metric,
  SingleValueWidget,
  TextWidget,
  TreatMissingData,
} from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import { EventField, type EventPattern, type IEventBus, Rule, RuleTargetInput } from 'aws-cdk-lib/aws-events';
import { SnsTopic } from 'aws-cdk-lib/aws-events-targets';
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

/**
 * The stage's alarm topic (the tenants' own alarms notify it too) and a dashboard. `watchProvisioning` adds the
 * two alarms that matter to operators: a provisioning failed (its run ended failed, timed out or aborted), and a
 * rollback failed (something may be left behind); the latter also sends the event itself to the topic, so that
 * the mail names the tenant, the step and the leftovers.
 */
export class Monitoring extends Construct {
  readonly topic: Topic;
  readonly dashboard: Dashboard;
  readonly alarms: Alarm[] = [];
  readonly #prefix: string;

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
    );
  }

  /** Alarms and dashboard widgets for the provisioning state machine. */
  watchProvisioning(props: ProvisioningMonitoringProps): void {
    const period = Duration.minutes(5);
    const machine = props.stateMachine;
    const failed = new MathExpression({
      label: 'Failed, timed out or aborted runs',
      expression: 'failed + timedOut + aborted',
      usingMetrics: {
        failed: machine.metricFailed({ period }),
        timedOut: machine.metricTimedOut({ period }),
        aborted: machine.metricAborted({ period }),
      },
      period,
    });
    const provisioningFailed = new Alarm(this, 'ProvisioningFailed', {
      alarmName: `${this.#prefix}-provisioning-failed`,
      alarmDescription:
        'A tenant provisioning run did not succeed: the tenant is failed (rolled back) or rollback_failed. See the execution in the Step Functions console and GET /tenants/{id}.',
      metric: failed,
      threshold: 1,
      comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });

    // Named: on a custom bus the rule's Ref is `<bus>|<rule>`, and the metric's RuleName wants the name alone.
    const rollbackRuleName = `${this.#prefix}-rollback-failed`;
    const rollbackRule = new Rule(this, 'RollbackFailedRule', {
      ruleName: rollbackRuleName,
      eventBus: props.bus,
      description: 'A tenant rollback failed: resources may be left behind',
      eventPattern: props.rollbackFailedPattern,
    });
    rollbackRule.addTarget(
      new SnsTopic(this.topic, {
        message: RuleTargetInput.fromObject({
          alarm: `${this.#prefix}: a tenant rollback failed, resources may be left behind`,
          tenant: EventField.fromPath('$.detail'),
        }),
      }),
    );
    const rollbacks = new Metric({
      namespace: 'AWS/Events',
      metricName: 'TriggeredRules',
      dimensionsMap: { RuleName: rollbackRuleName },
      statistic: 'Sum',
      period,
      label: 'Rollbacks failed',
    });
    const rollbackFailed = new Alarm(this, 'RollbackFailed', {
      alarmName: `${this.#prefix}-rollback-failed`,
      alarmDescription:
        'A tenant ended rollback_failed: an undo step kept failing and resources may be left behind (the tenant record lists them as leftovers).',
      metric: rollbacks,
      threshold: 1,
      comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
    for (const alarm of [provisioningFailed, rollbackFailed]) {
      alarm.addAlarmAction(new SnsAction(this.topic));
      this.alarms.push(alarm);
    }

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
}
