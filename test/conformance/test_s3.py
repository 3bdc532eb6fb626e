"""S3, as the product uses it: a versioned bucket with a lifecycle document (local/bootstrap.ts, infra), tenant
objects written with tags and server-side encryption (functions/provision/storage.ts, functions/lifecycle/backup.ts),
listed, retagged (retire.ts) and deleted version by version (ListObjectVersions, DeleteObjects with VersionId).

Sources: Amazon S3 API Reference (PutObject, GetObject, DeleteObject, DeleteObjects, ListObjectVersions,
ListObjectsV2, PutObjectTagging, PutBucketLifecycleConfiguration, Error responses); S3 User Guide, "Working with
delete markers", "Specifying server-side encryption with AWS KMS (SSE-KMS)", "Categorizing your storage using tags".
"""

from __future__ import annotations

import base64
import json
from typing import Any, Iterator

import pytest

from support import moto_differs, refused, unique


@pytest.fixture(scope="module")
def bucket(s3: Any) -> Iterator[str]:
    """A versioned bucket of the test's own, as the staging and prod buckets are (infra/config.ts)."""
    name = unique("conformance")
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    yield name
    for entry in all_versions(s3, name, ""):
        s3.delete_object(Bucket=name, Key=entry["Key"], VersionId=entry["VersionId"])
    s3.delete_bucket(Bucket=name)


def all_versions(s3: Any, bucket: str, prefix: str, page_size: int = 1000) -> list[dict[str, Any]]:
    """Every version and delete marker under the prefix, page by page as functions/provision/storage.ts reads them."""
    entries: list[dict[str, Any]] = []
    markers: dict[str, str] = {}
    while True:
        page = s3.list_object_versions(Bucket=bucket, Prefix=prefix, MaxKeys=page_size, **markers)
        entries += [{**version, "marker": False} for version in page.get("Versions", [])]
        entries += [{**marker, "marker": True} for marker in page.get("DeleteMarkers", [])]
        if not page["IsTruncated"]:
            return entries
        markers = {"KeyMarker": page["NextKeyMarker"], "VersionIdMarker": page["NextVersionIdMarker"]}


def tagging(tags: dict[str, str]) -> str:
    return "&".join(f"{key}={value}" for key, value in tags.items())


def test_creating_the_bucket_again_in_us_east_1_succeeds(s3: Any, bucket: str) -> None:
    # Act: "BucketAlreadyOwnedByYou ... In the North Virginia Region (us-east-1), Amazon S3 returns 200 OK".
    again = s3.create_bucket(Bucket=bucket)
    versioning = s3.get_bucket_versioning(Bucket=bucket)

    # Assess
    assert again["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert versioning["Status"] == "Enabled"


def test_writes_a_tenant_object_with_tags_and_sse_s3(s3: Any, bucket: str) -> None:
    # Prepare
    key = f"tenants/{unique('t')}/.tenant"
    tags = {"TenantId": "t1", "Stage": "local", "RetentionDays": "30"}

    # Act
    put = s3.put_object(
        Bucket=bucket, Key=key, Body=b'{"tenantId":"t1"}', ContentType="application/json",
        Tagging=tagging(tags), ServerSideEncryption="AES256",
    )
    got = s3.get_object(Bucket=bucket, Key=key)
    tag_set = s3.get_object_tagging(Bucket=bucket, Key=key)

    # Assess
    assert put["ServerSideEncryption"] == "AES256"
    assert put["VersionId"]
    assert got["Body"].read() == b'{"tenantId":"t1"}'
    assert (got["ContentType"], got["VersionId"]) == ("application/json", put["VersionId"])
    assert {tag["Key"]: tag["Value"] for tag in tag_set["TagSet"]} == tags


@moto_differs("moto leaves out x-amz-server-side-encryption when the request names none")
def test_encrypts_with_sse_s3_unasked(s3: Any, bucket: str) -> None:
    # Act: "Amazon S3 now applies server-side encryption with Amazon S3 managed keys (SSE-S3) as the base level".
    put = s3.put_object(Bucket=bucket, Key=f"plain/{unique('o')}", Body=b"x")

    # Assess
    assert put["ServerSideEncryption"] == "AES256"


def test_encrypts_with_the_stage_key_and_the_tenant_in_the_context(s3: Any, bucket: str, kms_key_arn: str) -> None:
    # Prepare: functions/shared/storage.ts tenantEncryption('enhanced', …)
    key = f"tenants/{unique('t')}/data"
    context = base64.b64encode(json.dumps({"tenantId": "t1"}).encode()).decode()

    # Act
    put = s3.put_object(
        Bucket=bucket, Key=key, Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=kms_key_arn,
        SSEKMSEncryptionContext=context,
    )
    head = s3.head_object(Bucket=bucket, Key=key)

    # Assess
    assert (put["ServerSideEncryption"], put["SSEKMSKeyId"]) == ("aws:kms", kms_key_arn)
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", kms_key_arn)


@moto_differs("moto stores any x-amz-server-side-encryption value and echoes it back")
def test_refuses_an_unknown_encryption_method(s3: Any, bucket: str) -> None:
    # Act
    bogus = refused(s3.put_object, Bucket=bucket, Key=f"plain/{unique('o')}", Body=b"x", ServerSideEncryption="bogus")

    # Assess
    assert (bogus.code, bogus.status) == ("InvalidArgument", 400)
    assert bogus.message == "The encryption method specified is not supported"
    assert bogus.error["ArgumentName"] == "x-amz-server-side-encryption"


@moto_differs("moto accepts a key that KMS does not have, a key id without aws:kms, and a context that is not JSON")
def test_refuses_what_sse_kms_cannot_do(s3: Any, bucket: str, kms_key_arn: str) -> None:
    # Prepare
    unknown_key = kms_key_arn.rsplit("/", 1)[0] + "/11111111-2222-3333-4444-555555555555"

    def put(**params: Any):
        return refused(s3.put_object, Bucket=bucket, Key=f"plain/{unique('o')}", Body=b"x", **params)

    # Act
    missing_key = put(ServerSideEncryption="aws:kms", SSEKMSKeyId=unknown_key)
    key_without_kms = put(SSEKMSKeyId=kms_key_arn)
    bad_context = put(ServerSideEncryption="aws:kms", SSEKMSKeyId=kms_key_arn, SSEKMSEncryptionContext="not-json")

    # Assess
    assert (missing_key.code, missing_key.status) == ("KMS.NotFoundException", 400)
    assert (key_without_kms.code, key_without_kms.status) == ("InvalidArgument", 400)
    assert (bad_context.code, bad_context.status) == ("InvalidArgument", 400)
    assert bad_context.error["ArgumentName"] == "x-amz-server-side-encryption-context"


def test_keeps_every_version_behind_a_delete_marker(s3: Any, bucket: str) -> None:
    # Prepare
    prefix = f"tenants/{unique('t')}/"
    key = f"{prefix}data"
    first = s3.put_object(Bucket=bucket, Key=key, Body=b"one")
    second = s3.put_object(Bucket=bucket, Key=key, Body=b"two")

    # Act
    deleted = s3.delete_object(Bucket=bucket, Key=key)
    current = refused(s3.get_object, Bucket=bucket, Key=key)
    old = s3.get_object(Bucket=bucket, Key=key, VersionId=first["VersionId"])
    listed = all_versions(s3, bucket, prefix)

    # Assess
    assert deleted["DeleteMarker"] is True
    assert deleted["VersionId"] not in (first["VersionId"], second["VersionId"])
    assert (current.code, current.status) == ("NoSuchKey", 404)
    assert old["Body"].read() == b"one"
    assert sorted((entry["VersionId"], entry["IsLatest"], entry["marker"]) for entry in listed) == sorted(
        [(first["VersionId"], False, False), (second["VersionId"], False, False), (deleted["VersionId"], True, True)]
    )
    assert s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["KeyCount"] == 0


@moto_differs("moto answers 404 NoSuchVersion for a delete marker's version, and no x-amz-delete-marker on GET")
def test_answers_a_delete_marker_as_s3_does(s3: Any, bucket: str) -> None:
    # Prepare: "Working with delete markers": GET of a marker's version is 405, of a key behind one 404, both flagged.
    key = f"tenants/{unique('t')}/data"
    s3.put_object(Bucket=bucket, Key=key, Body=b"one")
    marker = s3.delete_object(Bucket=bucket, Key=key)

    # Act
    by_version = refused(s3.get_object, Bucket=bucket, Key=key, VersionId=marker["VersionId"])
    current = refused(s3.get_object, Bucket=bucket, Key=key)

    # Assess
    assert (by_version.code, by_version.status) == ("MethodNotAllowed", 405)
    for refusal in (by_version, current):
        assert refusal.headers.get("x-amz-delete-marker") == "true"


def test_deleting_every_version_leaves_nothing(s3: Any, bucket: str) -> None:
    # Prepare: five keys, two versions each and a delete marker on one; pages of three, as the product pages
    prefix = f"tenants/{unique('t')}/"
    for index in range(5):
        for body in (b"v1", b"v2"):
            s3.put_object(Bucket=bucket, Key=f"{prefix}{index}", Body=body)
    s3.delete_object(Bucket=bucket, Key=f"{prefix}0")
    listed = all_versions(s3, bucket, prefix, page_size=3)

    # Act
    output = s3.delete_objects(
        Bucket=bucket,
        Delete={"Objects": [{"Key": entry["Key"], "VersionId": entry["VersionId"]} for entry in listed], "Quiet": True},
    )

    # Assess
    assert len(listed) == 11
    assert len({(entry["Key"], entry["VersionId"]) for entry in listed}) == 11
    assert output.get("Errors", []) == []
    assert all_versions(s3, bucket, prefix) == []


def test_deleting_a_version_already_gone_succeeds(s3: Any, bucket: str) -> None:
    # Prepare
    key = f"tenants/{unique('t')}/data"
    version = s3.put_object(Bucket=bucket, Key=key, Body=b"x")["VersionId"]
    s3.delete_object(Bucket=bucket, Key=key, VersionId=version)

    # Act
    again = s3.delete_object(Bucket=bucket, Key=key, VersionId=version)
    batch = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key, "VersionId": version}]})
    gone = refused(s3.get_object, Bucket=bucket, Key=key, VersionId=version)

    # Assess
    assert again["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert batch["Deleted"] == [{"Key": key, "VersionId": version}]
    assert (gone.code, gone.status) == ("NoSuchVersion", 404)


@moto_differs("moto takes any version id: no InvalidArgument, and DeleteObjects reports it Deleted")
def test_refuses_a_malformed_version_id(s3: Any, bucket: str) -> None:
    # Prepare
    key = f"tenants/{unique('t')}/data"
    s3.put_object(Bucket=bucket, Key=key, Body=b"x")

    # Act
    single = refused(s3.delete_object, Bucket=bucket, Key=key, VersionId="nope")
    read = refused(s3.get_object, Bucket=bucket, Key=key, VersionId="nope")
    batch = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key, "VersionId": "nope"}], "Quiet": True})

    # Assess
    for refusal in (single, read):
        assert (refusal.code, refusal.status) == ("InvalidArgument", 400)
        assert refusal.message == "Invalid version id specified"
    assert [(error["Key"], error["Code"]) for error in batch["Errors"]] == [(key, "NoSuchVersion")]


@moto_differs("moto accepts more than 1,000 keys in one DeleteObjects")
def test_refuses_more_than_a_thousand_keys_in_one_delete(s3: Any, bucket: str) -> None:
    # Act
    too_many = refused(s3.delete_objects, Bucket=bucket, Delete={"Objects": [{"Key": f"k{i}"} for i in range(1001)]})

    # Assess
    assert (too_many.code, too_many.status) == ("MalformedXML", 400)


def test_lists_objects_by_prefix_and_delimiter_a_page_at_a_time(s3: Any, bucket: str) -> None:
    # Prepare: functions/reconcile/drift.ts lists `tenants/` by its `/`-delimited prefixes
    root = f"{unique('root')}/"
    for tenant in ("a", "b", "c"):
        s3.put_object(Bucket=bucket, Key=f"{root}{tenant}/.tenant", Body=b"x")
    s3.put_object(Bucket=bucket, Key=f"{root}stray", Body=b"x")

    # Act
    prefixes, keys, pages, token = [], [], 0, None
    while True:
        page = s3.list_objects_v2(
            Bucket=bucket, Prefix=root, Delimiter="/", MaxKeys=2, **({"ContinuationToken": token} if token else {})
        )
        pages += 1
        prefixes += [entry["Prefix"] for entry in page.get("CommonPrefixes", [])]
        keys += [entry["Key"] for entry in page.get("Contents", [])]
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]

    # Assess
    assert prefixes == [f"{root}a/", f"{root}b/", f"{root}c/"]
    assert keys == [f"{root}stray"]
    assert pages == 2


@moto_differs("moto answers a bad continuation token with a 500")
def test_refuses_a_bad_continuation_token(s3: Any, bucket: str) -> None:
    # Act
    bad = refused(s3.list_objects_v2, Bucket=bucket, ContinuationToken="garbage")

    # Assess
    assert (bad.code, bad.status) == ("InvalidArgument", 400)


def test_answers_no_such_bucket_and_no_such_key(s3: Any, bucket: str) -> None:
    # Act
    no_bucket = refused(s3.list_objects_v2, Bucket=unique("conformance-none"))
    no_key = refused(s3.get_object, Bucket=bucket, Key=unique("none"))

    # Assess
    assert (no_bucket.code, no_bucket.status) == ("NoSuchBucket", 404)
    assert (no_key.code, no_key.status) == ("NoSuchKey", 404)


@moto_differs("moto returns no x-amz-version-id from PutObjectTagging")
def test_retags_an_object_in_place(s3: Any, bucket: str) -> None:
    # Prepare: functions/lifecycle/retire.ts gives a retired tenant's objects its retention tags
    key = f"tenants/{unique('t')}/data"
    version = s3.put_object(Bucket=bucket, Key=key, Body=b"x", Tagging="TenantId=t1&RetentionDays=30")["VersionId"]
    retention = [{"Key": "TenantId", "Value": "t1"}, {"Key": "RetentionDays", "Value": "7"}]

    # Act
    tagged = s3.put_object_tagging(Bucket=bucket, Key=key, Tagging={"TagSet": retention})
    tags = s3.get_object_tagging(Bucket=bucket, Key=key)

    # Assess
    assert tagged["VersionId"] == version
    assert tags["TagSet"] == retention
    assert len(all_versions(s3, bucket, key)) == 1


def test_refuses_tags_beyond_the_limits(s3: Any, bucket: str) -> None:
    # Prepare: "Categorizing your storage using tags": up to 10 tags per object, keys unique
    key = f"tenants/{unique('t')}/data"
    s3.put_object(Bucket=bucket, Key=key, Body=b"x")

    # Act
    eleven = [{"Key": f"k{i}", "Value": "v"} for i in range(11)]
    too_many = refused(s3.put_object_tagging, Bucket=bucket, Key=key, Tagging={"TagSet": eleven})
    no_object = refused(
        s3.put_object_tagging, Bucket=bucket, Key=f"{key}-none", Tagging={"TagSet": [{"Key": "a", "Value": "b"}]}
    )

    # Assess
    assert (too_many.code, too_many.status) == ("BadRequest", 400)
    assert (no_object.code, no_object.status) == ("NoSuchKey", 404)


@moto_differs("moto accepts the same tag key twice, in PutObjectTagging and in x-amz-tagging")
def test_refuses_a_tag_key_given_twice(s3: Any, bucket: str) -> None:
    # Prepare
    key = f"tenants/{unique('t')}/data"
    s3.put_object(Bucket=bucket, Key=key, Body=b"x")

    # Act
    retag = refused(
        s3.put_object_tagging, Bucket=bucket, Key=key,
        Tagging={"TagSet": [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}]},
    )
    header = refused(s3.put_object, Bucket=bucket, Key=f"{key}-2", Body=b"x", Tagging="a=1&a=2")

    # Assess
    for refusal in (retag, header):
        assert (refusal.code, refusal.status) == ("InvalidTag", 400)


def product_lifecycle_rules() -> list[dict[str, Any]]:
    """bucketLifecycleRules({ versioned: true, noncurrentVersionDays: 7 }) of functions/shared/storage.ts, with one
    retention period."""
    return [
        {
            "ID": "tenant-retention-30-days",
            "Status": "Enabled",
            "Filter": {"And": {"Prefix": "tenants/", "Tags": [{"Key": "RetentionDays", "Value": "30"}]}},
            "Expiration": {"Days": 30},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
        },
        {
            "ID": "abort-incomplete-uploads",
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
        },
        {
            "ID": "tenant-expired-delete-markers",
            "Status": "Enabled",
            "Filter": {"Prefix": "tenants/"},
            "Expiration": {"ExpiredObjectDeleteMarker": True},
        },
        {
            "ID": "expire-noncurrent-versions",
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 7},
        },
    ]


def test_keeps_the_lifecycle_document_as_put(s3: Any) -> None:
    # Prepare
    name = unique("conformance-lifecycle")
    s3.create_bucket(Bucket=name)
    try:
        none_yet = refused(s3.get_bucket_lifecycle_configuration, Bucket=name)

        # Act
        s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": product_lifecycle_rules()})
        got = s3.get_bucket_lifecycle_configuration(Bucket=name)
    finally:
        s3.delete_bucket_lifecycle(Bucket=name)
        s3.delete_bucket(Bucket=name)

    # Assess
    assert (none_yet.code, none_yet.status) == ("NoSuchLifecycleConfiguration", 404)
    assert got["Rules"] == product_lifecycle_rules()


def test_refuses_expired_object_delete_marker_beside_days(s3: Any, bucket: str) -> None:
    # Act: LifecycleExpiration: ExpiredObjectDeleteMarker "cannot be specified with Days or Date"
    both = refused(
        s3.put_bucket_lifecycle_configuration, Bucket=bucket,
        LifecycleConfiguration={
            "Rules": [
                {"ID": "r", "Status": "Enabled", "Filter": {"Prefix": ""},
                 "Expiration": {"Days": 3, "ExpiredObjectDeleteMarker": True}}
            ]
        },
    )

    # Assess
    assert (both.code, both.status) == ("MalformedXML", 400)


@moto_differs("moto accepts Days 0, a rule without an action, and two rules of one ID")
def test_refuses_an_invalid_lifecycle_rule(s3: Any, bucket: str) -> None:
    # Prepare

    def put(*rules: dict[str, Any]):
        document = {"Rules": list(rules)}
        return refused(s3.put_bucket_lifecycle_configuration, Bucket=bucket, LifecycleConfiguration=document)

    rule = {"ID": "r", "Status": "Enabled", "Filter": {"Prefix": ""}}

    # Act
    zero_days = put({**rule, "Expiration": {"Days": 0}})
    no_action = put(rule)
    same_id = put({**rule, "Expiration": {"Days": 1}}, {**rule, "Filter": {"Prefix": "a"}, "Expiration": {"Days": 1}})

    # Assess
    assert (zero_days.code, zero_days.status) == ("InvalidArgument", 400)
    assert (no_action.code, no_action.status) == ("InvalidRequest", 400)
    assert (same_id.code, same_id.status) == ("InvalidArgument", 400)
