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


class _Unreadable(Exception):
    """An object that cannot be read now (access, throttling, network): leave its message."""


def _get(s3: Any, ref: ObjectRef) -> bytes | None:
    """The object's bytes; None when it is gone (a poison object)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return s3.get_object(Bucket=ref.bucket, Key=ref.key)["Body"].read()
    except ClientError as exc:
        if exc.response["Error"].get("Code") in ("NoSuchKey", "NoSuchBucket", "404"):
            return None
        raise _Unreadable(f"{ref.url}: {exc.response['Error'].get('Message') or exc}") from None
    except BotoCoreError as exc:
        raise _Unreadable(f"{ref.url}: {exc}") from None


@dataclass
class QueueStats:
    messages: int = 0
    objects: int = 0
    records: int = 0
    digests: int = 0
    poison: int = 0
    failed_rounds: int = 0


def run_queue(s3: Any, sqs: Any, queue_url: str, settings: Any, topic: str, partitions: int,
              batch_records: int, stop: Any, note: Any, wait_seconds: int = 20,
              max_rounds: int | None = None) -> QueueStats:
    """Receive, forward, dead-letter the poison, delete: until ``stop()`` is true."""
    from confluent_kafka import Producer

    from streams.aws.s3 import is_digest
    from streams.forwarder import ForwardStats, forward, producer_config
    from streams.inputs import Record, split_document

    totals = QueueStats()
    dlq = Producer(producer_config(settings))
    rounds = 0
    while not stop() and (max_rounds is None or rounds < max_rounds):
        rounds += 1
        received = receive(sqs, queue_url, wait_seconds)
        if not received:
            continue
        items: list = []
        poison: list[tuple[Notification, str, str]] = []  # (message, source, reason)
        settled: list[Notification] = []  # deleted once Kafka has everything
        for message in received:
            if message.problem is not None:
                poison.append((message, f"sqs:{message.message_id}", message.problem))
                settled.append(message)
                continue
            try:
                found: list = []
                for ref in message.objects:
                    if is_digest(ref.key):
                        totals.digests += 1
                        continue
                    payload = _get(s3, ref)
                    if payload is None:
                        poison.append((message, ref.url, "object not found (deleted?)"))
                        continue
                    parsed = list(split_document(payload, ref.url))
                    if parsed and not any(isinstance(i, Record) for i in parsed):
                        poison.append((message, ref.url, f"no CloudTrail record: "
                                       f"{parsed[0].reason}"))
                        continue
                    totals.objects += 1
                    found += parsed
            except _Unreadable as exc:
                note("forward", f"cannot read {exc}; the message stays on the queue")
                continue
            items += found
            settled.append(message)
        stats = (forward(iter(items), settings, topic, partitions, None, batch_records)
                 if items else ForwardStats())
        totals.records += stats.records
        for line in stats.skipped:
            note("forward", f"skipped {line}")
        if stats.failed:
            totals.failed_rounds += 1
            note("forward", f"delivery failed ({stats.first_failure}): {len(received)} "
                 "messages stay on the queue and come back")
            continue
        failures: list[str] = []

        def dead_lettered(err, msg, failures=failures) -> None:
            if err is not None:
                failures.append(err.str())

        for message, source, reason in poison:
            dlq.produce(settings.topic_dlq, key=source.encode(), value=message.body.encode(),
                        headers=[("exfilguard-reason", f"poison object: {reason}".encode()[:400]),
                                 ("exfilguard-source", source.encode())],
                        on_delivery=dead_lettered)
            note("forward", f"dead-lettered {source}: {reason}")
        if dlq.flush(60) or failures:
            totals.failed_rounds += 1
            note("forward", f"dead-letter delivery failed ({failures[:1]}): the messages stay")
            continue
        totals.poison += len(poison)
        delete(sqs, queue_url, settled)
        totals.messages += len(settled)
        note("forward", f"{len(settled)} messages, {stats.records} records forwarded, "
             f"{len(poison)} poison, {totals.digests} digests skipped so far")
    return totals
