"""Secrets Manager, as the product uses it: one secret per database role (functions/provision/secrets.ts), read by
name or ARN, listed by name prefix with those scheduled for deletion, deleted at once (rollback) or with a recovery
window (retire).

Sources: AWS Secrets Manager API Reference (CreateSecret, GetSecretValue, ListSecrets, DeleteSecret, Common
Errors); every error of this API is HTTP 400.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import pytest

from support import moto_differs, refused, unique

ROLES = ("admin", "app", "readonly")


@pytest.fixture
def prefix(secrets: Any) -> Iterator[str]:
    """A name prefix of the test's own (not `tenants/`, which the sandbox's drift reconciler reads)."""
    name = f"conformance/{unique('s')}/"
    yield name
    for secret in list_under(secrets, name, include_planned=True):
        secrets.delete_secret(SecretId=secret["ARN"], ForceDeleteWithoutRecovery=True)


def list_under(secrets: Any, prefix: str, include_planned: bool, page_size: int = 100) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    token: dict[str, str] = {}
    while True:
        page = secrets.list_secrets(
            Filters=[{"Key": "name", "Values": [prefix]}], IncludePlannedDeletion=include_planned,
            MaxResults=page_size, **token,
        )
        found += page["SecretList"]
        if "NextToken" not in page:
            return found
        token = {"NextToken": page["NextToken"]}


def rds_secret(username: str) -> str:
    return json.dumps({"engine": "postgres", "host": "127.0.0.1", "port": 5432, "username": username, "password": "pw"})


def test_creates_a_role_secret_and_reads_it_by_name_and_arn(secrets: Any, prefix: str) -> None:
    # Act
    made = secrets.create_secret(
        Name=f"{prefix}db/app", Description="app role", SecretString=rds_secret("app"),
        Tags=[{"Key": "TenantId", "Value": "t1"}, {"Key": "Stage", "Value": "local"}],
    )
    by_name = secrets.get_secret_value(SecretId=f"{prefix}db/app")
    by_arn = secrets.get_secret_value(SecretId=made["ARN"])

    # Assess: the ARN is the name and a hyphen with six random characters
    assert made["Name"] == f"{prefix}db/app"
    assert made["ARN"].split(":secret:")[1][: -len("-abcdef")] == f"{prefix}db/app"
    for read in (by_name, by_arn):
        assert (read["ARN"], read["VersionId"]) == (made["ARN"], made["VersionId"])
        assert read["SecretString"] == rds_secret("app")
        assert read["VersionStages"] == ["AWSCURRENT"]


def test_refuses_a_second_secret_of_one_name(secrets: Any, prefix: str) -> None:
    # Prepare
    secrets.create_secret(Name=f"{prefix}db/admin", SecretString=rds_secret("admin"))

    # Act
    again = refused(secrets.create_secret, Name=f"{prefix}db/admin", SecretString=rds_secret("admin"))

    # Assess
    assert (again.code, again.status) == ("ResourceExistsException", 400)


def test_treats_a_repeated_client_request_token_as_the_same_call(secrets: Any, prefix: str) -> None:
    # Prepare: CreateSecret, ClientRequestToken: the same token and value are ignored; another value fails
    token = str(uuid.uuid4())
    first = secrets.create_secret(Name=f"{prefix}db/readonly", SecretString="v1", ClientRequestToken=token)

    # Act
    repeat = secrets.create_secret(Name=f"{prefix}db/readonly", SecretString="v1", ClientRequestToken=token)
    other_value = refused(
        secrets.create_secret, Name=f"{prefix}db/readonly", SecretString="v2", ClientRequestToken=token
    )

    # Assess
    assert first["VersionId"] == token
    assert (repeat["ARN"], repeat["VersionId"]) == (first["ARN"], first["VersionId"])
    assert (other_value.code, other_value.status) == ("ResourceExistsException", 400)
    assert secrets.get_secret_value(SecretId=first["ARN"])["SecretString"] == "v1"


@moto_differs("moto answers ResourceNotFoundException with HTTP 404; the API reference lists it as 400")
def test_answers_resource_not_found_for_a_missing_secret(secrets: Any, prefix: str) -> None:
    # Act
    missing = refused(secrets.get_secret_value, SecretId=f"{prefix}none")

    # Assess
    assert (missing.code, missing.status) == ("ResourceNotFoundException", 400)
    assert missing.message == "Secrets Manager can't find the specified secret."


def test_lists_by_name_prefix_a_page_at_a_time(secrets: Any, prefix: str) -> None:
    # Prepare
    for role in ROLES:
        secrets.create_secret(Name=f"{prefix}db/{role}", SecretString=rds_secret(role))
    secrets.create_secret(Name=f"{prefix[:-1]}-other/db/app", SecretString=rds_secret("app"))

    # Act
    listed = list_under(secrets, prefix, include_planned=False, page_size=2)

    # Assess: the name filter is a prefix match, here of the prefix with its trailing slash
    assert sorted(secret["Name"] for secret in listed) == [f"{prefix}db/{role}" for role in ROLES]
    secrets.delete_secret(SecretId=f"{prefix[:-1]}-other/db/app", ForceDeleteWithoutRecovery=True)


@moto_differs("moto answers a NextToken it did not issue with a 500")
def test_refuses_a_next_token_it_did_not_issue(secrets: Any) -> None:
    # Act
    bad = refused(secrets.list_secrets, NextToken="garbage")

    # Assess
    assert (bad.code, bad.status) == ("InvalidNextTokenException", 400)


def test_schedules_a_deletion_that_only_a_forced_delete_ends(secrets: Any, prefix: str) -> None:
    # Prepare: functions/lifecycle/retire.ts deletes with the stage's recovery window
    name = f"{prefix}db/auditor"
    arn = secrets.create_secret(Name=name, SecretString=rds_secret("auditor"))["ARN"]

    # Act
    scheduled = secrets.delete_secret(SecretId=arn, RecoveryWindowInDays=7)
    read = refused(secrets.get_secret_value, SecretId=arn)
    again = refused(secrets.delete_secret, SecretId=arn, RecoveryWindowInDays=7)
    with_planned = list_under(secrets, prefix, include_planned=True)
    without_planned = list_under(secrets, prefix, include_planned=False)
    forced = secrets.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
    gone = refused(secrets.get_secret_value, SecretId=arn)

    # Assess
    in_seven_days = datetime.now(timezone.utc) + timedelta(days=7)
    assert abs((scheduled["DeletionDate"] - in_seven_days).total_seconds()) < 120
    for refusal in (read, again):
        assert (refusal.code, refusal.status) == ("InvalidRequestException", 400)
    assert [(secret["Name"], "DeletedDate" in secret) for secret in with_planned] == [(name, True)]
    assert without_planned == []
    assert forced["ARN"] == arn
    assert gone.code == "ResourceNotFoundException"


@moto_differs("moto answers ResourceExistsException for a name whose secret is scheduled for deletion")
def test_refuses_a_name_whose_secret_is_scheduled_for_deletion(secrets: Any, prefix: str) -> None:
    # Prepare
    name = f"{prefix}db/app"
    secrets.create_secret(Name=name, SecretString=rds_secret("app"))
    secrets.delete_secret(SecretId=name, RecoveryWindowInDays=7)

    # Act
    again = refused(secrets.create_secret, Name=name, SecretString=rds_secret("app"))

    # Assess: "You can't create this secret because a secret with this name is already scheduled for deletion."
    assert (again.code, again.status) == ("InvalidRequestException", 400)


def test_refuses_a_recovery_window_out_of_range_or_beside_force(secrets: Any, prefix: str) -> None:
    # Prepare
    arn = secrets.create_secret(Name=f"{prefix}db/app", SecretString=rds_secret("app"))["ARN"]

    # Act
    both = refused(secrets.delete_secret, SecretId=arn, RecoveryWindowInDays=7, ForceDeleteWithoutRecovery=True)
    too_short = refused(secrets.delete_secret, SecretId=arn, RecoveryWindowInDays=3)

    # Assess
    for refusal in (both, too_short):
        assert (refusal.code, refusal.status) == ("InvalidParameterException", 400)
    assert secrets.get_secret_value(SecretId=arn)["SecretString"] == rds_secret("app")
