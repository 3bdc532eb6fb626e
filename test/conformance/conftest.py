"""boto3 clients of the endpoint under test, and the markers that record where moto and the sandbox differ."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Iterator

import boto3
import botocore
import pytest
from botocore.config import Config

from support import ENDPOINT, SANDBOX_KMS_KEY_ARN, SANDBOX_SECRET_ARN, SANDBOX_SECRET_NAME, TARGET, REGION

# One attempt: a retried 500 or throttle would hide the answer under test. Path-style addressing, which the
# sandbox's S3 serves (botocore picks it for an IP endpoint anyway, not for `localhost`).
CONFIG = Config(retries={"total_max_attempts": 1}, s3={"addressing_style": "path"}, connect_timeout=5, read_timeout=70)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "moto_differs(reason): moto answers otherwise than AWS documents")
    if not ENDPOINT:
        raise pytest.UsageError("AWS_ENDPOINT_URL is not set: point it at the sandbox (npm start prints it)")
    if TARGET not in ("sandbox", "moto"):
        raise pytest.UsageError(f"CONFORMANCE_TARGET={TARGET!r}: expected sandbox or moto")
    if TARGET == "sandbox":
        status = _get(f"{ENDPOINT}/_sandbox/health")
        if status != {"status": "running"}:
            raise pytest.UsageError(f"no sandbox answers at {ENDPOINT} (GET /_sandbox/health: {status})")
    else:
        # moto keeps executions RUNNING for ever unless asked to run their definitions.
        _post(f"{ENDPOINT}/moto-api/config", {"stepfunctions": {"execute_state_machine": True}})


def pytest_report_header() -> str:
    return f"conformance: {TARGET} at {ENDPOINT}; boto3 {boto3.__version__}, botocore {botocore.__version__}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """On moto, its known differences are strict expected failures: one that goes away fails the run, to be unmarked."""
    if TARGET != "moto":
        return
    for item in items:
        marker = item.get_closest_marker("moto_differs")
        if marker:
            item.add_marker(pytest.mark.xfail(reason=f"moto differs: {marker.kwargs['reason']}", strict=True))


def _get(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)
    except (urllib.error.URLError, ValueError) as error:
        return str(error)


def _post(url: str, body: Any) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=5):
        pass


def client(service: str) -> Any:
    """A boto3 client of the endpoint under test, with test credentials the sandbox (and moto) accept."""
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=ENDPOINT,
        aws_access_key_id="sandbox",
        aws_secret_access_key="sandbox",
        config=CONFIG,
    )


@pytest.fixture(scope="session")
def s3() -> Any:
    return client("s3")


@pytest.fixture(scope="session")
def secrets() -> Any:
    return client("secretsmanager")


@pytest.fixture(scope="session")
def sfn() -> Any:
    return client("stepfunctions")


@pytest.fixture(scope="session")
def cloudwatch() -> Any:
    return client("cloudwatch")


@pytest.fixture(scope="session")
def events() -> Any:
    return client("events")


@pytest.fixture(scope="session")
def rds_data() -> Any:
    return client("rds-data")


@pytest.fixture(scope="session")
def provisioner_secret_arn(secrets: Any) -> str:
    """The secret the product's provisioning functions give the Data API: the sandbox's, found by name."""
    return SANDBOX_SECRET_ARN or secrets.describe_secret(SecretId=SANDBOX_SECRET_NAME)["ARN"]


@pytest.fixture(scope="session")
def kms_key_arn() -> Iterator[str]:
    """The stage's KMS key: the one the sandbox's S3 knows (it has no KMS), or one made in moto's KMS."""
    if TARGET == "sandbox":
        yield SANDBOX_KMS_KEY_ARN
        return
    kms = client("kms")
    key = kms.create_key(Description="conformance suite")["KeyMetadata"]
    yield key["Arn"]
    kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
