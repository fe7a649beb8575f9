"""``forward --sqs-queue-url``: S3 event notifications on an SQS queue name the objects to read.

The bodies come in three shapes: S3's own notification (``Records[].s3``), the same wrapped by
SNS (``Type: Notification``, ``Message`` a JSON string) and EventBridge's ``Object Created``.
Several forwarders can share one queue; a message is deleted only by the caller, once Kafka has
acknowledged every record of its objects.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from streams.errors import UserError


@dataclass(frozen=True)
class ObjectRef:
    bucket: str
    key: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class Notification:
    message_id: str
    receipt_handle: str
    body: str
    objects: list[ObjectRef]  # empty: a test event or an event of no created object
    problem: str | None = None  # a body that is no notification at all


def objects_of(body: str) -> list[ObjectRef]:
    """The objects a message body announces; ValueError naming what is wrong with it."""
    try:
        document = json.loads(body)
    except ValueError:
        raise ValueError("message body is not JSON") from None
    if not isinstance(document, dict):
        raise ValueError("message body is not a JSON object")
    if document.get("Type") == "Notification" and isinstance(document.get("Message"), str):
        return objects_of(document["Message"])  # through SNS
    if document.get("Event") == "s3:TestEvent":
        return []  # S3 sends one when the notification is configured
    if document.get("source") == "aws.s3" and isinstance(document.get("detail"), dict):
        if document.get("detail-type") != "Object Created":
            return []
        detail = document["detail"]
        try:
            return [ObjectRef(detail["bucket"]["name"], detail["object"]["key"])]
        except (KeyError, TypeError):
            raise ValueError("EventBridge S3 event without bucket.name and object.key") from None
    records = document.get("Records")
    if not isinstance(records, list):
        raise ValueError("not an S3 event notification (no Records, no EventBridge detail)")
    found = []
    for record in records:
        if not isinstance(record, dict) or not str(record.get("eventName", "")).startswith(
                "ObjectCreated:"):
            continue
        try:
            # S3 URL-encodes keys in notifications (a space is "+").
            found.append(ObjectRef(record["s3"]["bucket"]["name"],
                                   unquote_plus(record["s3"]["object"]["key"])))
        except (KeyError, TypeError):
            raise ValueError("S3 event record without s3.bucket.name and s3.object.key") from None
    return found


def sqs_client(queue_url: str) -> Any:
    import boto3

    # The queue's URL names its region (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME).
    host = queue_url.split("/")[2] if queue_url.count("/") >= 2 else ""
    parts = host.split(".")
    region = parts[1] if len(parts) > 3 and parts[0] == "sqs" else None
    return boto3.client("sqs", region_name=region) if region else boto3.client("sqs")


def receive(client: Any, queue_url: str, wait_seconds: int = 20, max_messages: int = 10,
            ) -> list[Notification]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response = client.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=max_messages,
                                          WaitTimeSeconds=wait_seconds)
    except ClientError as exc:
        raise UserError(f"SQS queue {queue_url}: "
                        f"{exc.response['Error'].get('Message') or exc}") from None
    except BotoCoreError as exc:
        raise UserError(f"SQS queue {queue_url}: {exc}") from None
    notifications = []
    for message in response.get("Messages", []):
        body = message.get("Body", "")
        try:
            objects, problem = objects_of(body), None
        except ValueError as exc:
            objects, problem = [], str(exc)
        notifications.append(Notification(message["MessageId"], message["ReceiptHandle"], body,
                                          objects, problem))
    return notifications


def delete(client: Any, queue_url: str, notifications: list[Notification]) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    for start in range(0, len(notifications), 10):  # SQS deletes at most 10 at once
        entries = [{"Id": str(n), "ReceiptHandle": x.receipt_handle}
                   for n, x in enumerate(notifications[start:start + 10])]
        try:
            result = client.delete_message_batch(QueueUrl=queue_url, Entries=entries)
        except (ClientError, BotoCoreError) as exc:
            raise UserError(f"SQS queue {queue_url}: cannot delete messages ({exc})") from None
        if result.get("Failed"):
            failed = result["Failed"][0]
            raise UserError(f"SQS queue {queue_url}: cannot delete a message "
                            f"({failed.get('Code')}: {failed.get('Message')})")


class Unreadable(Exception):
    """An object that cannot be read now (access, throttling, network): leave its message."""


def get_object(s3: Any, ref: ObjectRef) -> bytes | None:
    """The object's bytes; None when it is gone (a poison object)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return s3.get_object(Bucket=ref.bucket, Key=ref.key)["Body"].read()
    except ClientError as exc:
        if exc.response["Error"].get("Code") in ("NoSuchKey", "NoSuchBucket", "404"):
            return None
        raise Unreadable(f"{ref.url}: {exc.response['Error'].get('Message') or exc}") from None
    except BotoCoreError as exc:
        raise Unreadable(f"{ref.url}: {exc}") from None


@dataclass
class QueueStats:
    messages: int = 0
    objects: int = 0
    records: int = 0
    digests: int = 0
    poison: int = 0
    failed_rounds: int = 0
