"""What the conformance tests share: the target they drive, its fixed names, and how an AWS error is read.

The suite drives one endpoint (`AWS_ENDPOINT_URL`) through boto3, as a client the sandbox's authors did not write.
`CONFORMANCE_TARGET` says what answers there: `sandbox` (the default: `npm start`, or the one the vitest runner
starts) or `moto` (`python3 -m moto.server`, the differential oracle of docs/conformance.md).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from typing import Any, Callable

import pytest
from botocore.exceptions import ClientError

ENDPOINT = os.environ.get("AWS_ENDPOINT_URL", "")
TARGET = os.environ.get("CONFORMANCE_TARGET", "sandbox")
REGION = "us-east-1"

# The sandbox's fixed names (local/constants.ts); the vitest runner passes them, a direct run falls back to these.
SANDBOX_CLUSTER_ARN = os.environ.get(
    "CONFORMANCE_CLUSTER_ARN", "arn:aws:rds:us-east-1:000000000000:cluster:tenant-provisioner-local"
)
SANDBOX_SECRET_ARN = os.environ.get("CONFORMANCE_SECRET_ARN", "")
SANDBOX_SECRET_NAME = "tenant-provisioner-local/provisioner"
SANDBOX_KMS_KEY_ARN = os.environ.get(
    "CONFORMANCE_KMS_KEY_ARN", "arn:aws:kms:us-east-1:000000000000:key/0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
)


def unique(prefix: str) -> str:
    """A name no other test (nor another run against the same endpoint) uses: `<prefix>-<8 hex>`."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Refusal:
    """An AWS error as boto3 parses it."""

    code: str
    status: int
    message: str
    error: dict[str, Any]
    headers: dict[str, str]
    body: dict[str, Any]


def refused(call: Callable[..., Any], **params: Any) -> Refusal:
    """Calls a boto3 operation that must fail, and returns its error (the test fails if the call succeeds)."""
    with pytest.raises(ClientError) as caught:
        call(**params)
    response = caught.value.response
    error = dict(response.get("Error", {}))
    meta = response.get("ResponseMetadata", {})
    return Refusal(
        code=str(error.get("Code", "")),
        status=int(meta.get("HTTPStatusCode", 0)),
        message=str(error.get("Message", "")),
        error=error,
        headers=dict(meta.get("HTTPHeaders", {})),
        body={key: value for key, value in response.items() if key not in ("Error", "ResponseMetadata")},
    )


def moto_differs(reason: str) -> pytest.MarkDecorator:
    """A behaviour where moto answers otherwise than AWS documents (and the sandbox): expected to fail on moto."""
    return pytest.mark.moto_differs(reason=reason)


sandbox_only = pytest.mark.skipif(
    TARGET != "sandbox",
    reason="moto's rds-data answers canned results without a database: only the sandbox runs the statements",
)
