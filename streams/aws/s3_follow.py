"""``forward --follow``: poll S3 prefixes for new CloudTrail objects, a cursor per folder.

CloudTrail writes ``AWSLogs/ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/``; one ``StartAfter`` over the
whole prefix would never see a new ``us-east-1`` object after a ``us-west-2`` one, so every folder
keeps the set of objects it has forwarded. The cursors live in a compacted Kafka topic and are
written in the same Kafka transaction as the records they cover (``streams.kafka.follow``): a
forwarder killed at any point and restarted (on any pod) forwards every object once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from streams.aws.s3 import is_digest, list_folder, parse_url

# A day folder and the partial dates above it, under CloudTrail/REGION/.
_DATED = re.compile(r"^(?P<region>(?:.*/)?CloudTrail/[^/]+/)(?P<y>\d{4})/(?:(?P<m>\d{2})/"
                    r"(?:(?P<d>\d{2})/)?)?$")
# Events reach S3 within ~15 minutes, so around midnight the day before still gets objects.
FOLLOW_DAYS = 2
OBJECTS_PER_TRANSACTION = 100


def _dated(folder: str) -> tuple[str, date, date] | None:
    """(region folder, first day, last day) a dated folder covers; None for any other folder."""
    match = _DATED.match(folder)
    if match is None:
        return None
    year = int(match["y"])
    try:
        if match["d"]:
            day = date(year, int(match["m"]), int(match["d"]))
            return match["region"], day, day
        if match["m"]:
            month = int(match["m"])
            first = date(year, month, 1)
            last = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1))
            return match["region"], first, last
        return match["region"], date(year, 1, 1), date(year, 12, 31)
    except ValueError:
        return None


@dataclass
class Cursors:
    """Per folder (``s3://bucket/folder``), the names of the objects already forwarded."""

    seen: dict[str, set[str]] = field(default_factory=dict)

    def floors(self, follow_days: int) -> dict[str, date]:
        """Per region folder, the oldest day still listed: the newest day minus the window."""
        newest: dict[str, date] = {}
        for url in self.seen:
            _, _, bucket, folder = (url.split("/", 3) + ["", "", ""])[:4]
            dated = _dated(folder)
            if dated is not None:
                region = f"s3://{bucket}/{dated[0]}"
                newest[region] = max(newest.get(region, dated[2]), dated[2])
        return {r: d - timedelta(days=follow_days - 1) for r, d in newest.items()}


@dataclass(frozen=True)
class Found:
    folder_url: str  # s3://bucket/folder/
    bucket: str
    keys: list[str]  # new objects, oldest name first


def new_objects(client: Any, source: str, cursors: Cursors, follow_days: int = FOLLOW_DAYS,
                digests: Callable[[str], None] = lambda folder: None) -> Iterator[Found]:
    """Walk the prefix folder by folder; folders of days older than each region's window are
    not listed again (their objects were forwarded), digest folders never."""
    bucket, prefix = parse_url(source)
    floors = cursors.floors(follow_days)
    stack = [prefix]
    while stack:
        folder = stack.pop()
        subfolders, keys = list_folder(client, bucket, folder)
        url = f"s3://{bucket}/{folder}"
        seen = cursors.seen.get(url, set())
        fresh = [k for k in keys if k[len(folder):] not in seen and not is_digest(k)]
        if fresh:
            yield Found(url, bucket, fresh)
        for sub in reversed(subfolders):  # popped oldest first
            if is_digest(sub):
                digests(f"s3://{bucket}/{sub}")
                continue
            dated = _dated(sub)
            if dated is not None:
                floor = floors.get(f"s3://{bucket}/{dated[0]}")
                if floor is not None and dated[2] < floor:
                    continue
            stack.append(sub)


