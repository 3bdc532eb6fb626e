"""CloudWatch alarms, as the product uses them: a tenant's alarms put (a statistic, a percentile, metric math),
listed by name prefix page by page, their actions disabled and enabled (suspension), deleted by name
(functions/provision/alarms.ts, functions/lifecycle/access.ts, functions/lifecycle/plan.ts).

boto3 1.43's service model for CloudWatch lists the protocols smithy-rpc-v2-cbor, json and query; botocore picks
the first it supports in its own order (json, rest-json, rest-xml, smithy-rpc-v2-cbor, query), so it speaks awsJson1.0
(X-Amz-Target: GraniteServiceVersion20100801.<Operation>, x-amzn-query-mode: true), as the JavaScript SDK does.

Sources: Amazon CloudWatch API Reference (PutMetricAlarm, DescribeAlarms, DeleteAlarms, EnableAlarmActions,
DisableAlarmActions, Common Errors).
"""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from support import moto_differs, refused, unique

TOPIC = "arn:aws:sns:us-east-1:000000000000:conformance-alarms"
NAMESPACE = "TenantProvisioner/Tenants"
ALARMS = ("error-rate", "latency", "storage")
TAGS = [{"Key": "TenantId", "Value": "t1"}, {"Key": "Stage", "Value": "local"}]


@pytest.fixture
def prefix(cloudwatch: Any) -> Iterator[str]:
    """An alarm name prefix of the test's own (not `tenant-`, which the sandbox's drift reconciler reads)."""
    name = f"{unique('conformance')}-"
    yield name
    names = [alarm["AlarmName"] for alarm in cloudwatch.describe_alarms(AlarmNamePrefix=name)["MetricAlarms"]]
    if names:
        cloudwatch.delete_alarms(AlarmNames=names)


def metric(name: str, tenant: str = "t1") -> dict[str, Any]:
    return {"Namespace": NAMESPACE, "MetricName": name, "Dimensions": [{"Name": "TenantId", "Value": tenant}]}


def stat(name: str, period: int) -> dict[str, Any]:
    return {"Metric": metric(name), "Period": period, "Stat": "Sum"}


def tenant_alarms(prefix: str) -> list[dict[str, Any]]:
    """The shapes of tenantAlarms() in functions/provision/alarms.ts."""
    common = {"TreatMissingData": "notBreaching", "AlarmActions": [TOPIC], "OKActions": [TOPIC]}
    return [
        {
            "AlarmName": f"{prefix}storage", **metric("StorageBytes"), "Statistic": "Maximum", "Period": 3600,
            "EvaluationPeriods": 1, "Threshold": 8e9, "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "Unit": "Bytes", **common,
        },
        {
            "AlarmName": f"{prefix}latency", **metric("Latency"), "ExtendedStatistic": "p99", "Period": 300,
            "EvaluationPeriods": 1, "Threshold": 500, "ComparisonOperator": "GreaterThanThreshold",
            "Unit": "Milliseconds", **common,
        },
        {
            "AlarmName": f"{prefix}error-rate", "EvaluationPeriods": 1, "Threshold": 0.05,
            "ComparisonOperator": "GreaterThanThreshold",
            "Metrics": [
                {"Id": "errors", "MetricStat": stat("5xxErrors", 300), "ReturnData": False},
                {"Id": "requests", "MetricStat": stat("Requests", 300), "ReturnData": False},
                {
                    "Id": "errorRate",
                    "Expression": "IF(requests > 0, errors / requests, 0)",
                    "Label": "Error rate",
                    "ReturnData": True,
                },
            ],
            **common,
        },
    ]


def put_all(cloudwatch: Any, prefix: str) -> None:
    for alarm in tenant_alarms(prefix):
        cloudwatch.put_metric_alarm(**alarm, Tags=TAGS)


def described(cloudwatch: Any, prefix: str, page_size: int = 100) -> tuple[list[dict[str, Any]], int]:
    """The alarms under the prefix, page by page as existingTenantAlarms() reads them, and how many pages it took."""
    alarms: list[dict[str, Any]] = []
    pages, token = 0, {}
    while True:
        page = cloudwatch.describe_alarms(
            AlarmNamePrefix=prefix, AlarmTypes=["MetricAlarm", "CompositeAlarm"], MaxRecords=page_size, **token
        )
        pages += 1
        alarms += page["MetricAlarms"] + page["CompositeAlarms"]
        if "NextToken" not in page:
            return alarms, pages
        token = {"NextToken": page["NextToken"]}


def test_puts_the_tenant_alarms_and_describes_them(cloudwatch: Any, prefix: str) -> None:
    # Act
    put_all(cloudwatch, prefix)
    alarms, _ = described(cloudwatch, prefix)

    # Assess
    by_name = {alarm["AlarmName"]: alarm for alarm in alarms}
    assert sorted(by_name) == [f"{prefix}{what}" for what in ALARMS]
    assert (by_name[f"{prefix}storage"]["Statistic"], by_name[f"{prefix}storage"]["Threshold"]) == ("Maximum", 8e9)
    assert by_name[f"{prefix}latency"]["ExtendedStatistic"] == "p99"
    assert [query["Id"] for query in by_name[f"{prefix}error-rate"]["Metrics"]] == ["errors", "requests", "errorRate"]
    for alarm in alarms:
        assert (alarm["ActionsEnabled"], alarm["AlarmActions"], alarm["OKActions"]) == (True, [TOPIC], [TOPIC])
        assert alarm["AlarmArn"].endswith(f":alarm:{alarm['AlarmName']}")


@moto_differs("moto starts an alarm in OK")
def test_starts_an_alarm_with_insufficient_data(cloudwatch: Any, prefix: str) -> None:
    # Act
    put_all(cloudwatch, prefix)
    alarms, _ = described(cloudwatch, prefix)

    # Assess
    assert {alarm["StateValue"] for alarm in alarms} == {"INSUFFICIENT_DATA"}


def test_putting_an_alarm_again_replaces_it(cloudwatch: Any, prefix: str) -> None:
    # Prepare: functions/lifecycle/plan.ts puts a plan's alarms over the old ones, actions off while suspended
    put_all(cloudwatch, prefix)
    storage = tenant_alarms(prefix)[0]

    # Act
    cloudwatch.put_metric_alarm(**{**storage, "Threshold": 16e9}, ActionsEnabled=False)
    alarms, _ = described(cloudwatch, prefix)

    # Assess
    assert len(alarms) == 3
    replaced = next(alarm for alarm in alarms if alarm["AlarmName"] == storage["AlarmName"])
    assert (replaced["Threshold"], replaced["ActionsEnabled"]) == (16e9, False)


@moto_differs("moto ignores MaxRecords and returns every alarm in one page")
def test_describes_alarms_a_page_at_a_time(cloudwatch: Any, prefix: str) -> None:
    # Prepare
    put_all(cloudwatch, prefix)

    # Act
    alarms, pages = described(cloudwatch, prefix, page_size=1)

    # Assess
    assert sorted(alarm["AlarmName"] for alarm in alarms) == [f"{prefix}{what}" for what in ALARMS]
    assert pages == 3


@moto_differs("moto ignores NextToken")
def test_refuses_a_next_token_it_did_not_issue(cloudwatch: Any, prefix: str) -> None:
    # Act
    bad = refused(cloudwatch.describe_alarms, AlarmNamePrefix=prefix, NextToken="garbage")

    # Assess
    assert (bad.code, bad.status) == ("InvalidNextToken", 400)


@moto_differs("moto answers DisableAlarmActions and EnableAlarmActions with a 500")
def test_disables_and_enables_alarm_actions_by_name(cloudwatch: Any, prefix: str) -> None:
    # Prepare: functions/lifecycle/access.ts on suspend and resume
    put_all(cloudwatch, prefix)
    names = [f"{prefix}storage", f"{prefix}latency", f"{prefix}none"]

    # Act
    cloudwatch.disable_alarm_actions(AlarmNames=names)
    disabled = {alarm["AlarmName"]: alarm["ActionsEnabled"] for alarm in described(cloudwatch, prefix)[0]}
    cloudwatch.enable_alarm_actions(AlarmNames=names)
    enabled = {alarm["AlarmName"]: alarm["ActionsEnabled"] for alarm in described(cloudwatch, prefix)[0]}

    # Assess
    assert disabled == {f"{prefix}storage": False, f"{prefix}latency": False, f"{prefix}error-rate": True}
    assert set(enabled.values()) == {True}


def test_deletes_the_named_alarms_and_passes_over_unknown_names(cloudwatch: Any, prefix: str) -> None:
    # Prepare: DeleteAlarms: "If you specify any incorrect alarm names, the alarms you specify with correct names
    # are still deleted."
    put_all(cloudwatch, prefix)

    # Act
    cloudwatch.delete_alarms(AlarmNames=[f"{prefix}storage", f"{prefix}latency", f"{prefix}none"])
    left, _ = described(cloudwatch, prefix)

    # Assess
    assert [alarm["AlarmName"] for alarm in left] == [f"{prefix}error-rate"]


@moto_differs("moto accepts Statistic with ExtendedStatistic, Metrics beside MetricName, two results of metric math")
def test_refuses_an_alarm_that_cannot_be_evaluated(cloudwatch: Any, prefix: str) -> None:
    # Prepare
    base = {"EvaluationPeriods": 1, "Threshold": 1, "ComparisonOperator": "GreaterThanThreshold"}

    def put(**alarm: Any):
        return refused(cloudwatch.put_metric_alarm, AlarmName=f"{prefix}bad", **base, **alarm)

    # Act
    both_statistics = put(**metric("X"), Period=60, Statistic="Maximum", ExtendedStatistic="p99")
    no_statistic = put(**metric("X"), Period=60)
    expression = [{"Id": "e", "Expression": "1", "ReturnData": True}]
    metrics_and_name = put(MetricName="X", Namespace=NAMESPACE, Metrics=expression)
    two_results = put(
        Metrics=[
            {"Id": "a", "MetricStat": stat("A", 60), "ReturnData": True},
            {"Id": "b", "MetricStat": stat("B", 60), "ReturnData": True},
        ]
    )

    # Assess
    for refusal in (both_statistics, no_statistic, metrics_and_name):
        assert (refusal.code, refusal.status) == ("InvalidParameterCombination", 400)
    assert (two_results.code, two_results.status) == ("ValidationError", 400)
    assert described(cloudwatch, prefix)[0] == []


@moto_differs("moto deletes more than 100 alarms in one call")
def test_refuses_more_than_a_hundred_names_in_one_delete(cloudwatch: Any, prefix: str) -> None:
    # Act: DeleteAlarms, AlarmNames: "Array Members: Maximum number of 100 items" (functions/provision/alarms.ts
    # deletes in batches of 100 for this)
    too_many = refused(cloudwatch.delete_alarms, AlarmNames=[f"{prefix}{index}" for index in range(101)])

    # Assess
    assert (too_many.code, too_many.status) == ("ValidationError", 400)
