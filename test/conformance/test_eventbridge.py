"""EventBridge, as the product uses it: the stage's bus (CreateEventBus, local/bootstrap.ts) and one event per
provisioning outcome (PutEvents, functions/provision/outcome.ts, which fails the step on any failed entry).

Sources: Amazon EventBridge API Reference (CreateEventBus, PutEvents, PutEventsResultEntry); EventBridge User
Guide, "Sending events with PutEvents" (failure handling).
"""

from __future__ import annotations

import json
from typing import Any, Iterator

import pytest

from support import moto_differs, refused, unique


@pytest.fixture(scope="module")
def bus(events: Any) -> Iterator[str]:
    name = unique("conformance")
    events.create_event_bus(Name=name)
    yield name
    events.delete_event_bus(Name=name)


def outcome(bus: str, **fields: Any) -> dict[str, Any]:
    entry = {
        "EventBusName": bus,
        "Source": "tenant-provisioner",
        "DetailType": "Tenant Provisioned",
        "Detail": json.dumps({"tenantId": "t1", "status": "active"}),
        "Resources": ["arn:aws:states:us-east-1:000000000000:execution:provision-tenant:t1"],
    }
    return {key: value for key, value in {**entry, **fields}.items() if value is not None}


def test_refuses_a_second_bus_of_one_name(events: Any, bus: str) -> None:
    # Act
    again = refused(events.create_event_bus, Name=bus)

    # Assess
    assert (again.code, again.status) == ("ResourceAlreadyExistsException", 400)


def test_accepts_an_outcome_event(events: Any, bus: str) -> None:
    # Act
    output = events.put_events(Entries=[outcome(bus)])

    # Assess
    assert output["FailedEntryCount"] == 0
    assert [sorted(entry) for entry in output["Entries"]] == [["EventId"]]


def test_fails_the_entries_it_cannot_take_and_takes_the_others(events: Any, bus: str) -> None:
    # Act: one result entry per request entry, in order; a failed one has ErrorCode and ErrorMessage, no EventId
    output = events.put_events(Entries=[outcome(bus), outcome(bus, Detail="not json"), outcome(bus, Source=None)])

    # Assess
    assert output["FailedEntryCount"] == 2
    first, malformed, no_source = output["Entries"]
    assert "EventId" in first and "ErrorCode" not in first
    assert (malformed.get("ErrorCode"), "EventId" in malformed) == ("MalformedDetail", False)
    assert (no_source.get("ErrorCode"), "EventId" in no_source) == ("InvalidArgument", False)


@moto_differs("moto refuses the call with ResourceNotFoundException")
def test_takes_an_event_for_a_bus_that_does_not_exist(events: Any) -> None:
    # Act: what AWS answers, though its failure-handling guide leads one to expect a failed entry
    # (aws/aws-sdk#186, aws/aws-cli#9186: FailedEntryCount 0 and an EventId)
    output = events.put_events(Entries=[outcome(unique("conformance-none"))])

    # Assess
    assert output["FailedEntryCount"] == 0
    assert "EventId" in output["Entries"][0]


def test_refuses_more_than_ten_entries(events: Any, bus: str) -> None:
    # Act: PutEvents, Entries: "Array Members: Minimum number of 1 item. Maximum number of 10 items."
    too_many = refused(events.put_events, Entries=[outcome(bus)] * 11)

    # Assess
    assert (too_many.code, too_many.status) == ("ValidationException", 400)
