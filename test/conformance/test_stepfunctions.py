"""Step Functions, as the product uses it: the sandbox registers the state machines (CreateStateMachine, then
UpdateStateMachine on a restart, local/bootstrap.ts); the API starts an execution named after the tenant and
describes it; the reconciler lists RUNNING executions and reads the history newest first (functions/reconcile/stuck.ts).

Sources: AWS Step Functions API Reference (CreateStateMachine, UpdateStateMachine, StartExecution,
DescribeExecution, ListExecutions, GetExecutionHistory, Common Errors).
"""

from __future__ import annotations

import json
import time
from typing import Any, Iterator

import pytest

from support import moto_differs, refused, unique

ROLE = "arn:aws:iam::000000000000:role/conformance-states"


def definition(result: Any) -> str:
    record = {"Type": "Pass", "Result": result, "ResultPath": "$.recorded", "End": True}
    return json.dumps({"StartAt": "Record", "States": {"Record": record}})


WAITING = json.dumps({"StartAt": "Hold", "States": {"Hold": {"Type": "Wait", "Seconds": 3, "End": True}}})


@pytest.fixture
def machine(sfn: Any) -> Iterator[tuple[str, str]]:
    name = unique("conformance")
    arn = sfn.create_state_machine(name=name, definition=definition("v1"), roleArn=ROLE)["stateMachineArn"]
    yield name, arn
    sfn.delete_state_machine(stateMachineArn=arn)


def finished(sfn: Any, execution_arn: str, timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        described = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING" or time.monotonic() > deadline:
            return described
        time.sleep(0.1)


def test_creating_the_same_machine_again_returns_it(sfn: Any, machine: tuple[str, str]) -> None:
    # Prepare
    name, arn = machine

    # Act
    again = sfn.create_state_machine(name=name, definition=definition("v1"), roleArn=ROLE)
    bad_name = refused(sfn.create_state_machine, name="bad name", definition=definition("v1"), roleArn=ROLE)

    # Assess
    assert again["stateMachineArn"] == arn
    assert (bad_name.code, bad_name.status) == ("InvalidName", 400)


@moto_differs("moto returns the existing machine whatever the definition, and stores definitions unchecked")
def test_refuses_another_definition_under_the_name_and_an_invalid_one(sfn: Any, machine: tuple[str, str]) -> None:
    # Prepare
    name, arn = machine
    broken = json.dumps({"StartAt": "Nowhere", "States": {}})

    # Act
    other = refused(sfn.create_state_machine, name=name, definition=definition("v2"), roleArn=ROLE)
    invalid = refused(sfn.create_state_machine, name=unique("conformance"), definition=broken, roleArn=ROLE)
    invalid_update = refused(sfn.update_state_machine, stateMachineArn=arn, definition=broken)

    # Assess
    assert (other.code, other.status) == ("StateMachineAlreadyExists", 400)
    for refusal in (invalid, invalid_update):
        assert (refusal.code, refusal.status) == ("InvalidDefinition", 400)


def test_runs_an_execution_to_its_end_and_describes_it(sfn: Any, machine: tuple[str, str]) -> None:
    # Prepare
    _, arn = machine
    tenant = unique("t")

    # Act
    started = sfn.start_execution(stateMachineArn=arn, name=tenant, input=json.dumps({"tenantId": tenant}))
    described = finished(sfn, started["executionArn"])
    succeeded = sfn.list_executions(stateMachineArn=arn, statusFilter="SUCCEEDED", maxResults=1000)
    running = sfn.list_executions(stateMachineArn=arn, statusFilter="RUNNING", maxResults=1000)

    # Assess
    assert started["executionArn"].endswith(f":execution:{arn.split(':')[-1]}:{tenant}")
    assert (described["status"], described["name"], described["stateMachineArn"]) == ("SUCCEEDED", tenant, arn)
    assert json.loads(described["input"]) == {"tenantId": tenant}
    assert json.loads(described["output"]) == {"tenantId": tenant, "recorded": "v1"}
    assert described["stopDate"] >= described["startDate"]
    assert [execution["name"] for execution in succeeded["executions"]] == [tenant]
    assert running["executions"] == []


@moto_differs("moto ignores reverseOrder and lists the history oldest first")
def test_lists_the_history_newest_first(sfn: Any, machine: tuple[str, str]) -> None:
    # Prepare
    _, arn = machine
    started = sfn.start_execution(stateMachineArn=arn, name=unique("t"), input='{"step": 1}')
    finished(sfn, started["executionArn"])

    # Act
    history = sfn.get_execution_history(executionArn=started["executionArn"], reverseOrder=True, maxResults=100)

    # Assess
    types = [event["type"] for event in history["events"]]
    assert types[0] == "ExecutionSucceeded"
    assert types[-1] == "ExecutionStarted"
    entered = next(event for event in history["events"] if event["type"] == "PassStateEntered")
    assert entered["stateEnteredEventDetails"]["name"] == "Record"
    assert json.loads(entered["stateEnteredEventDetails"]["input"]) == {"step": 1}


def test_runs_the_updated_definition(sfn: Any, machine: tuple[str, str]) -> None:
    # Prepare
    _, arn = machine

    # Act
    updated = sfn.update_state_machine(stateMachineArn=arn, definition=definition("v2"))
    started = sfn.start_execution(stateMachineArn=arn, name=unique("t"), input="{}")
    missing = refused(sfn.update_state_machine, stateMachineArn=f"{arn}-none", definition=definition("v2"))

    # Assess
    assert updated["updateDate"]
    assert json.loads(finished(sfn, started["executionArn"])["output"]) == {"recorded": "v2"}
    assert (missing.code, missing.status) == ("StateMachineDoesNotExist", 400)


def test_starting_a_running_execution_again_is_idempotent_and_a_closed_one_is_not(sfn: Any) -> None:
    # Prepare: StartExecution: the same name and input as a running execution succeeds with the same response;
    # a closed execution, or other input, is ExecutionAlreadyExists
    arn = sfn.create_state_machine(name=unique("conformance"), definition=WAITING, roleArn=ROLE)["stateMachineArn"]
    tenant = unique("t")
    try:
        first = sfn.start_execution(stateMachineArn=arn, name=tenant, input='{"a": 1}')

        # Act
        same = sfn.start_execution(stateMachineArn=arn, name=tenant, input='{"a": 1}')
        other_input = refused(sfn.start_execution, stateMachineArn=arn, name=tenant, input='{"a": 2}')
        running = sfn.list_executions(stateMachineArn=arn, statusFilter="RUNNING", maxResults=1000)
        status = finished(sfn, first["executionArn"])["status"]
        closed = refused(sfn.start_execution, stateMachineArn=arn, name=tenant, input='{"a": 1}')
    finally:
        sfn.delete_state_machine(stateMachineArn=arn)

    # Assess
    assert same["executionArn"] == first["executionArn"]
    assert [execution["name"] for execution in running["executions"]] == [tenant]
    assert status == "SUCCEEDED"
    for refusal in (other_input, closed):
        assert (refusal.code, refusal.status) == ("ExecutionAlreadyExists", 400)


def test_names_the_errors_of_a_bad_call(sfn: Any, machine: tuple[str, str]) -> None:
    # Prepare
    _, arn = machine
    execution_arn = arn.replace(":stateMachine:", ":execution:") + ":none"

    # Act
    no_machine = refused(sfn.start_execution, stateMachineArn=f"{arn}-none", name="t")
    not_an_arn = refused(sfn.start_execution, stateMachineArn="not-an-arn", name="t")
    no_execution = refused(sfn.describe_execution, executionArn=execution_arn)
    no_history = refused(sfn.get_execution_history, executionArn=execution_arn)
    not_listed = refused(sfn.list_executions, stateMachineArn=f"{arn}-none")
    bad_token = refused(sfn.list_executions, stateMachineArn=arn, nextToken="garbage")

    # Assess
    assert (no_machine.code, no_machine.status) == ("StateMachineDoesNotExist", 400)
    assert (not_an_arn.code, not_an_arn.status) == ("InvalidArn", 400)
    for refusal in (no_execution, no_history):
        assert (refusal.code, refusal.status) == ("ExecutionDoesNotExist", 400)
    assert (not_listed.code, not_listed.status) == ("StateMachineDoesNotExist", 400)
    assert (bad_token.code, bad_token.status) == ("InvalidToken", 400)


@moto_differs("moto, running definitions (execute_state_machine), answers input that is not JSON with a nameless 400")
def test_refuses_input_that_is_not_json(sfn: Any, machine: tuple[str, str]) -> None:
    # Act
    bad_input = refused(sfn.start_execution, stateMachineArn=machine[1], name=unique("t"), input="not json")

    # Assess
    assert (bad_input.code, bad_input.status) == ("InvalidExecutionInput", 400)
