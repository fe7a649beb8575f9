"""The S3 sources' pure parts: the shapes of SQS notifications, and which folders --follow lists
again (the newest days of each region)."""

from __future__ import annotations

import json
from datetime import date

import pytest

from streams.aws.s3 import is_digest
from streams.aws.s3_follow import Cursors, _dated
from streams.aws.sqs import ObjectRef, objects_of

KEY = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/01/a b.json.gz"


def test_s3_notification_keys_are_url_decoded():
    body = {"Records": [{"eventName": "ObjectCreated:Put", "s3": {
        "bucket": {"name": "trail"}, "object": {"key": KEY.replace(" ", "+")}}},
        {"eventName": "ObjectRemoved:Delete", "s3": {"bucket": {"name": "trail"},
                                                     "object": {"key": "gone"}}}]}
    assert objects_of(json.dumps(body)) == [ObjectRef("trail", KEY)]


def test_sns_wrapped_eventbridge_and_test_events():
    inner = {"Records": [{"eventName": "ObjectCreated:Put", "s3": {
        "bucket": {"name": "trail"}, "object": {"key": "k.json.gz"}}}]}
    sns = {"Type": "Notification", "Message": json.dumps(inner)}
    assert objects_of(json.dumps(sns)) == [ObjectRef("trail", "k.json.gz")]
    bridge = {"source": "aws.s3", "detail-type": "Object Created",
              "detail": {"bucket": {"name": "trail"}, "object": {"key": KEY}}}
    assert objects_of(json.dumps(bridge)) == [ObjectRef("trail", KEY)]
    assert objects_of(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"})) == []


@pytest.mark.parametrize("body", ["not json", "[1]", '{"hello": 1}',
                                  '{"Records": [{"eventName": "ObjectCreated:Put"}]}'])
def test_a_body_that_is_no_notification_is_named(body):
    with pytest.raises(ValueError):
        objects_of(body)


def test_digest_folders_are_recognised():
    assert is_digest("AWSLogs/1/CloudTrail-Digest/us-east-1/2024/03/01/x.json.gz")
    assert not is_digest(KEY)


def test_dated_folders_and_the_window_of_each_region():
    region = "AWSLogs/1/CloudTrail/us-east-1/"
    assert _dated(region + "2024/") == (region, date(2024, 1, 1), date(2024, 12, 31))
    assert _dated(region + "2024/02/") == (region, date(2024, 2, 1), date(2024, 2, 29))
    assert _dated(region + "2024/03/01/") == (region, date(2024, 3, 1), date(2024, 3, 1))
    assert _dated("AWSLogs/1/CloudTrail/") is None
    cursors = Cursors({f"s3://b/{region}2024/03/01/": {"x"}, f"s3://b/{region}2024/03/05/": {"y"},
                       "s3://b/AWSLogs/1/CloudTrail/eu-west-1/2023/12/31/": {"z"}})
    assert cursors.floors(2) == {f"s3://b/{region}": date(2024, 3, 4),
                                 "s3://b/AWSLogs/1/CloudTrail/eu-west-1/": date(2023, 12, 30)}
