"""CloudTrail objects under an ``s3://bucket/prefix``, listed page by page, oldest key first."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from streams.errors import UserError

# CloudTrail's integrity digests sit beside the logs (``AWSLogs/ACCOUNT/CloudTrail-Digest/``):
# hashes of the log files, no events, so they are never read as records.
DIGEST_FOLDER = "CloudTrail-Digest/"


def is_digest(key: str) -> bool:
    return key.startswith(DIGEST_FOLDER) or f"/{DIGEST_FOLDER}" in key


def parse_url(url: str) -> tuple[str, str]:
    if not url.startswith("s3://") or len(url) <= 5:
        raise UserError(f"{url}: expected s3://bucket/prefix")
    bucket, _, prefix = url[5:].partition("/")
    if not bucket:
        raise UserError(f"{url}: no bucket name")
    return bucket, prefix


def s3_client() -> Any:
    import boto3

    return boto3.client("s3")


def list_keys(client: Any, bucket: str, prefix: str, start_after: str = "") -> Iterator[str]:
    from botocore.exceptions import BotoCoreError, ClientError

    paginator = client.get_paginator("list_objects_v2")
    kwargs = {"Bucket": bucket, "Prefix": prefix}
    if start_after:
        kwargs["StartAfter"] = start_after
    try:
        for page in paginator.paginate(**kwargs):
            for item in page.get("Contents", []):
                if not item["Key"].endswith("/") and not is_digest(item["Key"]):
                    yield item["Key"]
    except ClientError as exc:
        raise UserError(f"s3://{bucket}/{prefix}: {exc.response['Error'].get('Message') or exc}"
                        ) from None
    except BotoCoreError as exc:
        raise UserError(f"s3://{bucket}/{prefix}: {exc}") from None


def list_folder(client: Any, bucket: str, prefix: str) -> tuple[list[str], list[str]]:
    """One level under ``prefix``: (its sub-folders, the keys directly in it), both sorted."""
    from botocore.exceptions import BotoCoreError, ClientError

    folders: list[str] = []
    keys: list[str] = []
    try:
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
            folders += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
            keys += [i["Key"] for i in page.get("Contents", []) if not i["Key"].endswith("/")]
    except ClientError as exc:
        raise UserError(f"s3://{bucket}/{prefix}: {exc.response['Error'].get('Message') or exc}"
                        ) from None
    except BotoCoreError as exc:
        raise UserError(f"s3://{bucket}/{prefix}: {exc}") from None
    return sorted(folders), sorted(keys)


def read_object(client: Any, bucket: str, key: str) -> bytes:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except (ClientError, BotoCoreError) as exc:
        raise UserError(f"s3://{bucket}/{key}: cannot read it ({exc})") from None


def read_prefix(url: str, client: Any = None, start_after: str = "",
                ) -> Iterator[tuple[str, bytes]]:
    """(s3 url of the object, its bytes) for every object under the prefix."""
    bucket, prefix = parse_url(url)
    client = client if client is not None else s3_client()
    for key in list_keys(client, bucket, prefix, start_after):
        yield f"s3://{bucket}/{key}", read_object(client, bucket, key)
