"""AWS's ``ip-ranges.json`` on disk: load the shipped snapshot or the config's file, and fetch,
check and atomically replace a snapshot (written byte for byte as AWS serves it, only after
``parse_ip_ranges`` accepts it and its ``createDate`` is no older than the one it replaces)."""

from __future__ import annotations

import http.client
import json
import os
import re
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from streams import __version__
from streams.core.awsranges import AwsIpRanges, BadIpRanges, parse_ip_ranges
from streams.core.settings import DetectionConfig
from streams.errors import UserError

SNAPSHOT_NAME = "ip-ranges.json"
DEFAULT_URL = "https://ip-ranges.amazonaws.com/ip-ranges.json"
DEFAULT_TIMEOUT_S = 30.0
MAX_BYTES = 64 * 1024 * 1024  # the real file is a few MB; anything this big is something else
CREATE_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}$")  # 2026-08-22-21-17-05


@dataclass(frozen=True)
class RangesInfo:
    """What ``show`` and ``update`` print of one document."""

    create_date: str
    sync_token: str
    ipv4_prefixes: int
    ipv6_prefixes: int
    regions: int
    services: int

    def summary(self) -> str:
        return (f"createDate {self.create_date}, syncToken {self.sync_token}: "
                f"{self.ipv4_prefixes} IPv4 and {self.ipv6_prefixes} IPv6 prefixes, "
                f"{self.regions} regions, {self.services} services")


def snapshot_age_seconds(create_date: str, now: float | None = None) -> float | None:
    """Seconds since a ``createDate`` (YYYY-MM-DD-hh-mm-ss, UTC); None when it is not one."""
    from datetime import UTC, datetime

    try:
        created = datetime.strptime(create_date, "%Y-%m-%d-%H-%M-%S").replace(tzinfo=UTC)
    except (TypeError, ValueError):
        return None
    return (now if now is not None else time.time()) - created.timestamp()


def age_text(seconds: float) -> str:
    days = seconds / 86400
    return f"{days:.0f} days old" if days >= 1 else f"{seconds / 3600:.1f} hours old"


def snapshot_path() -> Path:
    """The snapshot shipped in the package (``streams/data/ip-ranges.json``)."""
    return Path(str(resources.files("streams.data").joinpath(SNAPSHOT_NAME)))


def load_ip_ranges(path: str | Path | None = None) -> AwsIpRanges:
    """The file at ``path``, or the snapshot shipped in the package when path is None."""
    try:
        text = (snapshot_path() if path is None else Path(path)).read_text("utf-8")
    except OSError as exc:
        raise BadIpRanges(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise BadIpRanges(f"not UTF-8 (byte {exc.start}): not AWS's ip-ranges.json") from None
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise BadIpRanges(f"not JSON: {exc}") from None
    return parse_ip_ranges(document)


def load_aws_ranges(detection: DetectionConfig) -> AwsIpRanges:
    """The ranges the config names, or one line saying how to mend it."""
    try:
        return load_ip_ranges(detection.aws_ip_ranges)
    except BadIpRanges as exc:
        raise UserError(
            f"aws_ip_ranges {detection.aws_ip_ranges or '(shipped snapshot)'}: {exc}; "
            "point it at AWS's ip-ranges.json or run `exfilguard ip-ranges update`"
        ) from None


def download(url: str, timeout: float = DEFAULT_TIMEOUT_S) -> bytes:
    if urllib.parse.urlsplit(url).scheme not in ("https", "http", "file"):
        raise UserError(f"{url}: expected an https://, http:// or file:// URL")
    request = urllib.request.Request(url, headers={"User-Agent": f"exfilguard/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read(MAX_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise UserError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise UserError(f"{url}: cannot fetch it ({exc.reason})") from None
    except TimeoutError:
        raise UserError(f"{url}: no answer within {timeout:g}s") from None
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise UserError(f"{url}: cannot fetch it ({exc!r})") from None
    if len(body) > MAX_BYTES:
        raise UserError(f"{url}: more than {MAX_BYTES // (1024 * 1024)} MB: not ip-ranges.json")
    return body


def check(body: bytes, where: str) -> RangesInfo:
    """Validate a document as AWS's ip-ranges.json; ``BadIpRanges`` names what is wrong."""
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise BadIpRanges(f"{where}: not JSON ({exc})") from None
    try:
        parse_ip_ranges(document)
    except BadIpRanges as exc:
        raise BadIpRanges(f"{where}: {exc}") from None
    create_date, sync_token = document.get("createDate"), document.get("syncToken")
    if not isinstance(create_date, str) or not CREATE_DATE.match(create_date):
        raise BadIpRanges(f"{where}: createDate {create_date!r} is not YYYY-MM-DD-hh-mm-ss")
    if not isinstance(sync_token, str) or not sync_token.isdigit():
        raise BadIpRanges(f"{where}: syncToken {sync_token!r} is not a number")
    entries = document["prefixes"] + (document.get("ipv6_prefixes") or [])
    return RangesInfo(create_date, sync_token, len(document["prefixes"]),
                      len(document.get("ipv6_prefixes") or []),
                      len({e["region"] for e in entries}), len({e["service"] for e in entries}))


def read_info(path: Path) -> RangesInfo:
    try:
        body = path.read_bytes()
    except OSError as exc:
        raise BadIpRanges(f"{path}: cannot read it ({exc.strerror or exc})") from None
    return check(body, str(path))


def current_info(path: Path) -> RangesInfo | None:
    """The snapshot about to be replaced, or None when there is none (or it is not one)."""
    if not path.exists():
        return None
    try:
        return read_info(path)
    except BadIpRanges:
        return None


def write_atomically(path: Path, body: bytes) -> None:
    """Readers see the old file or the new one, never half of one; the old mode is kept."""
    try:
        mode = path.stat().st_mode & 0o777 if path.exists() else None
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise UserError(f"{path}: cannot write there ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(body)
            out.flush()
            os.fsync(out.fileno())
        if mode is None:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise UserError(f"{path}: cannot write it ({exc.strerror or exc})") from None
