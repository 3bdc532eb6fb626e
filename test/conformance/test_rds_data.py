"""RDS Data API, as functions/shared/data-api.ts uses it: ExecuteStatement (rows as JSON, counts), transactions.

Sources: RDS Data API Reference (ExecuteStatement, BeginTransaction, Errors); Aurora User Guide, "Amazon RDS Data
API limitations", "Controlling Data API timeout behavior", "Processing Amazon RDS Data API query results in JSON
format". boto3 reads JSON numbers exactly, so 64-bit integers are checked here as the JavaScript SDK cannot.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from typing import Any, Iterator

import pytest

from support import ENDPOINT, SANDBOX_CLUSTER_ARN, Refusal, refused, sandbox_only, unique

pytestmark = sandbox_only

BIG = 9_007_199_254_740_993  # 2^53 + 1: a double rounds it to ...992
LONG_MAX = 9_223_372_036_854_775_807


@pytest.fixture(scope="module")
def target(provisioner_secret_arn: str) -> dict[str, str]:
    return {"resourceArn": SANDBOX_CLUSTER_ARN, "secretArn": provisioner_secret_arn}


@pytest.fixture(scope="module")
def database(rds_data: Any, target: dict[str, str]) -> Iterator[str]:
    """A database of the provisioner's own, made and dropped through the Data API, as the product makes tenants'."""
    name = unique("conformance").replace("-", "_")
    rds_data.execute_statement(**target, database="postgres", sql=f'CREATE DATABASE "{name}"')
    yield name
    rds_data.execute_statement(**target, database="postgres", sql=f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def run(rds_data: Any, target: dict[str, str], database: str):
    def execute(sql: str, **params: Any) -> dict[str, Any]:
        return rds_data.execute_statement(**target, database=database, sql=sql, **params)

    return execute


@pytest.fixture
def refuse(rds_data: Any, target: dict[str, str], database: str):
    def execute(sql: str, **params: Any) -> Refusal:
        return refused(rds_data.execute_statement, **{**target, "database": database, "sql": sql, **params})

    return execute


@pytest.fixture
def table(run) -> str:
    name = unique("entries").replace("-", "_")
    run(f'CREATE TABLE public."{name}" (entry text NOT NULL)')
    return name


def rows(run, table: str) -> list[str]:
    output = run(f'SELECT entry FROM public."{table}" ORDER BY 1', formatRecordsAs="JSON")
    return [row["entry"] for row in json.loads(output["formattedRecords"])]


def test_binds_every_value_kind_and_type_hint(run) -> None:
    # Act
    output = run(
        "SELECT :text AS text, :long AS long, :double AS double, :bool AS bool, :none::int AS none, :blob AS blob, "
        "pg_typeof(:id)::text AS id, pg_typeof(:doc)::text AS doc, pg_typeof(:at)::text AS at, "
        "pg_typeof(:day)::text AS day, pg_typeof(:clock)::text AS clock, (:price)::text AS price",
        parameters=[
            {"name": "text", "value": {"stringValue": "it's"}},
            {"name": "long", "value": {"longValue": LONG_MAX}},
            {"name": "double", "value": {"doubleValue": 2.5}},
            {"name": "bool", "value": {"booleanValue": True}},
            {"name": "none", "value": {"isNull": True}},
            {"name": "blob", "value": {"blobValue": b"\x00\x01\xff"}},
            {"name": "id", "value": {"stringValue": "6f1c2b1e-1111-4222-8333-444455556666"}, "typeHint": "UUID"},
            {"name": "doc", "value": {"stringValue": '{"plan": "pro"}'}, "typeHint": "JSON"},
            {"name": "at", "value": {"stringValue": "2024-01-02 03:04:05.123"}, "typeHint": "TIMESTAMP"},
            {"name": "day", "value": {"stringValue": "2024-01-02"}, "typeHint": "DATE"},
            {"name": "clock", "value": {"stringValue": "03:04:05"}, "typeHint": "TIME"},
            {"name": "price", "value": {"stringValue": "12.340"}, "typeHint": "DECIMAL"},
        ],
    )

    # Assess
    assert output["records"] == [
        [
            {"stringValue": "it's"},
            {"longValue": LONG_MAX},
            {"doubleValue": 2.5},
            {"booleanValue": True},
            {"isNull": True},
            {"blobValue": b"\x00\x01\xff"},
            {"stringValue": "uuid"},
            {"stringValue": "json"},
            {"stringValue": "timestamp without time zone"},
            {"stringValue": "date"},
            {"stringValue": "time without time zone"},
            {"stringValue": "12.340"},
        ]
    ]


def test_returns_result_types_as_aurora_does(run) -> None:
    # Act
    output = run(
        f"SELECT 7::int2 AS small, {BIG}::int8 AS big, 1.5::float4 AS real, 3.10::numeric(4,2) AS num, "
        "'\\x0aff'::bytea AS bytes, '2024-01-02 03:04:05.5+02'::timestamptz AS instant, "
        "ARRAY[1, 2]::int8[] AS ids, ARRAY['a', 'b c'] AS names, NULL::text AS nothing"
    )

    # Assess
    assert output["records"] == [
        [
            {"longValue": 7},
            {"longValue": BIG},
            {"doubleValue": 1.5},
            {"stringValue": "3.10"},
            {"blobValue": b"\x0a\xff"},
            {"stringValue": "2024-01-02 01:04:05.5"},
            {"arrayValue": {"longValues": [1, 2]}},
            {"arrayValue": {"stringValues": ["a", "b c"]}},
            {"isNull": True},
        ]
    ]


def test_formats_records_as_json_with_every_digit(run) -> None:
    # Act
    output = run(
        f"SELECT 1 AS id, 'pro' AS plan, 2.5::float8 AS ratio, true AS active, NULL AS ended, {BIG}::int8 AS big, "
        "ARRAY[1, 2] AS seats, '{\"a\": 1}'::jsonb AS doc, 9.50::numeric AS fee",
        formatRecordsAs="JSON",
    )

    # Assess
    assert "records" not in output
    assert json.loads(output["formattedRecords"]) == [
        {
            "id": 1,
            "plan": "pro",
            "ratio": 2.5,
            "active": True,
            "ended": None,
            "big": BIG,
            "seats": [1, 2],
            "doc": '{"a": 1}',
            "fee": "9.50",
        }
    ]


def test_counts_the_rows_a_statement_changed(run, table: str) -> None:
    # Act
    inserted = run(f"INSERT INTO public.\"{table}\" VALUES ('a'), ('b'), ('c')")
    updated = run(f"UPDATE public.\"{table}\" SET entry = entry || '!' WHERE entry <> 'a'")

    # Assess
    assert inserted["numberOfRecordsUpdated"] == 3
    assert updated["numberOfRecordsUpdated"] == 2


def test_commits_what_a_transaction_wrote_and_rolls_back_the_rest(rds_data, target, database, run, table) -> None:
    # Prepare
    def write(transaction_id: str, entry: str) -> None:
        run(
            f'INSERT INTO public."{table}" VALUES (:entry)',
            parameters=[{"name": "entry", "value": {"stringValue": entry}}],
            transactionId=transaction_id,
        )

    undone = rds_data.begin_transaction(**target, database=database)["transactionId"]
    kept = rds_data.begin_transaction(**target, database=database)["transactionId"]

    # Act
    write(undone, "undone")
    rollback = rds_data.rollback_transaction(**target, transactionId=undone)
    write(kept, "kept")
    before_commit = rows(run, table)
    commit = rds_data.commit_transaction(**target, transactionId=kept)

    # Assess
    assert rollback["transactionStatus"] == "Rollback Complete"
    assert commit["transactionStatus"] == "Transaction Committed"
    assert before_commit == []
    assert rows(run, table) == ["kept"]


def test_ends_a_transaction_at_its_first_failed_statement(rds_data, target, database, run, refuse, table) -> None:
    # Prepare
    transaction_id = rds_data.begin_transaction(**target, database=database)["transactionId"]
    run(f"INSERT INTO public.\"{table}\" VALUES ('before')", transactionId=transaction_id)
    failed = refuse("SELECT 1 / 0", transactionId=transaction_id)

    # Act
    later = refuse("SELECT 1", transactionId=transaction_id)
    commit = refused(rds_data.commit_transaction, **target, transactionId=transaction_id)
    rollback = refused(rds_data.rollback_transaction, **target, transactionId=transaction_id)

    # Assess
    assert (failed.code, failed.status) == ("DatabaseErrorException", 400)
    assert failed.message.endswith("SQLState: 22012")
    for refusal in (later, commit, rollback):
        assert (refusal.code, refusal.status) == ("TransactionNotFoundException", 404)
        assert refusal.message.startswith(f"Transaction {transaction_id} is not found.")
    assert rows(run, table) == []


def test_refuses_a_second_call_while_the_transaction_runs_one(rds_data, target, database, run, refuse) -> None:
    # Prepare
    transaction_id = rds_data.begin_transaction(**target, database=database)["transactionId"]
    marker = unique("slow")
    slow_sql = f"SELECT pg_sleep(2)::text AS slept /* {marker} */"
    slow = threading.Thread(target=lambda: run(slow_sql, transactionId=transaction_id))
    slow.start()
    assert _running(run, marker)

    # Act
    second = refuse("SELECT 2", transactionId=transaction_id)
    slow.join()
    commit = rds_data.commit_transaction(**target, transactionId=transaction_id)

    # Assess
    assert (second.code, second.message) == ("DatabaseErrorException", "Transaction is still running a query")
    assert commit["transactionStatus"] == "Transaction Committed"


def test_refuses_results_beyond_the_documented_sizes(run, refuse) -> None:
    # Act
    wide_row = refuse("SELECT repeat('x', 70 * 1024) AS wide")
    big_result = refuse("SELECT repeat('x', 50 * 1024) AS wide FROM generate_series(1, 30)")
    big_json = refuse(f"SELECT 1 AS {'a' * 63} FROM generate_series(1, 200000)", formatRecordsAs="JSON")
    fits = run("SELECT repeat('x', 60 * 1024) AS wide FROM generate_series(1, 16)", formatRecordsAs="JSON")

    # Assess
    assert (wide_row.code, wide_row.status, wide_row.message) == (
        "UnsupportedResultException",
        400,
        "Packet for query is too large",
    )
    assert (big_result.code, big_result.message) == (
        "UnsupportedResultException",
        "Database response exceeded size limit",
    )
    assert (big_json.code, big_json.status) == ("BadRequestException", 400)
    assert len(json.loads(fits["formattedRecords"])) == 16


def test_refuses_a_two_dimensional_array(refuse) -> None:
    # Act
    nested = refuse("SELECT ARRAY[[1, 2], [3, 4]] AS grid")

    # Assess
    assert (nested.code, nested.status) == ("UnsupportedResultException", 400)


def test_names_the_errors_of_a_bad_request(rds_data, target, refuse, provisioner_secret_arn) -> None:
    # Prepare
    cluster_id = SANDBOX_CLUSTER_ARN.split(":")[-1]

    # Act
    missing_parameter = refuse("SELECT :absent")
    array_parameter = refuse("SELECT :ids", parameters=[{"name": "ids", "value": {"arrayValue": {"longValues": [1]}}}])
    two_statements = refuse("SELECT 1; SELECT 2")
    with_schema = refuse("SELECT 1", schema="public")
    other_cluster = refuse("SELECT 1", resourceArn=f"{SANDBOX_CLUSTER_ARN}-other")
    unknown_secret = refuse("SELECT 1", secretArn=f"{provisioner_secret_arn}-none")
    syntax = refuse("SELEC 1")
    unknown_transaction = refused(rds_data.rollback_transaction, **target, transactionId="no-such-transaction")

    # Assess
    assert (missing_parameter.code, missing_parameter.status) == ("BadRequestException", 400)
    assert (array_parameter.code, array_parameter.status) == ("BadRequestException", 400)
    assert (two_statements.code, two_statements.status) == ("ValidationException", 400)
    assert (with_schema.code, with_schema.message) == ("ValidationException", "The schema parameter isn't supported")
    assert (other_cluster.code, other_cluster.status) == ("HttpEndpointNotEnabledException", 400)
    assert other_cluster.message == f"HttpEndpoint is not enabled for cluster {cluster_id}-other"
    assert (unknown_secret.code, unknown_secret.status) == ("SecretsErrorException", 400)
    assert (syntax.code, syntax.status) == ("DatabaseErrorException", 400)
    assert syntax.message == 'ERROR: syntax error at or near "SELEC"\n  Position: 1; SQLState: 42601'
    assert (unknown_transaction.code, unknown_transaction.status) == ("TransactionNotFoundException", 404)


def test_times_a_statement_out_or_lets_it_continue_after_answering(run, refuse) -> None:
    # Prepare: the sandbox's control shortens the 45-second timeout for statements that carry the marker.
    marker = unique("timeout")
    cancelled, continued = unique("cancelled").replace("-", "_"), unique("continued").replace("-", "_")

    def create(name: str) -> str:
        return f'CREATE TABLE public."{name}" AS SELECT 1 AS v FROM pg_catalog.pg_sleep(3) /* {marker} */'

    def tables() -> list[str]:
        found = run(
            "SELECT relname::text AS name FROM pg_catalog.pg_class WHERE relname IN (:a, :b) ORDER BY 1",
            parameters=[
                {"name": "a", "value": {"stringValue": cancelled}},
                {"name": "b", "value": {"stringValue": continued}},
            ],
            formatRecordsAs="JSON",
        )
        return [row["name"] for row in json.loads(found["formattedRecords"])]

    _timeouts("POST", marker, 500)
    try:
        # Act
        started = time.monotonic()
        stopped = refuse(create(cancelled))
        stopped_after = time.monotonic() - started
        going_on = refuse(create(continued), continueAfterTimeout=True)
    finally:
        _timeouts("DELETE", marker, 500)
    deadline = time.monotonic() + 15
    while tables() != [continued] and time.monotonic() < deadline:
        time.sleep(0.2)

    # Assess: the cancelled statement stopped well before its three seconds; the other ran on to its end
    assert (stopped.code, stopped.status) == ("StatementTimeoutException", 400)
    assert stopped_after < 2.5
    assert going_on.code == "StatementTimeoutException"
    assert tables() == [continued]


def _timeouts(method: str, match: str, ms: int) -> None:
    request = urllib.request.Request(
        f"{ENDPOINT}/_sandbox/rds-data/statement-timeouts",
        data=json.dumps([{"match": match, "ms": ms}]).encode(),
        method=method,
    )
    with urllib.request.urlopen(request, timeout=5):
        pass


def _running(run, needle: str, timeout: float = 10) -> bool:
    """Whether a statement with `needle` in its text runs in PostgreSQL (polls pg_stat_activity)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = run(
            "SELECT count(*)::int AS n FROM pg_catalog.pg_stat_activity WHERE state = 'active' AND "
            "strpos(query, :needle) > 0",
            parameters=[{"name": "needle", "value": {"stringValue": needle}}],
            formatRecordsAs="JSON",
        )
        if json.loads(found["formattedRecords"]) != [{"n": 0}]:
            return True
        time.sleep(0.05)
    return False
