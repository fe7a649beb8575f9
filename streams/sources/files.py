"""CloudTrail records from files and directories in every shape they come in (S3-delivery files,
JSON arrays, JSON Lines, EventBridge events, gzip or not); a line that is not a JSON object is a
``BadLine`` with its place and reason, so one bad line never stops a run."""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from streams.errors import UserError

_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Record:
    origin: str  # file or object name, and line where there is one
    raw: bytes | None = None
    data: Any = None

    def as_bytes(self) -> bytes:
        return self.raw if self.raw is not None else _encoder.encode(self.data)


@dataclass(frozen=True, slots=True)
class BadLine:
    origin: str
    reason: str


Item = Record | BadLine


def split_document(payload: bytes, origin: str) -> Iterator[Item]:
    """One file's bytes → its records (gunzipped first when gzip)."""
    if payload[:2] == b"\x1f\x8b":
        try:
            payload = gzip.decompress(payload)
        except (OSError, EOFError) as exc:
            yield BadLine(origin, f"corrupt gzip: {exc}")
            return
    text = payload.strip()
    if not text:
        return
    if text[:1] in (b"{", b"["):
        try:
            document = _decoder.decode(text)
        except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
            document = None  # JSON Lines, or a broken file: read it line by line
        if document is not None:
            yield from _from_document(document, origin)
            return
    for number, line in enumerate(text.split(b"\n"), start=1):
        line = line.strip()
        if not line:
            continue
        if line[:1] != b"{":
            yield BadLine(f"{origin}:{number}", "not a JSON object")
            continue
        yield Record(f"{origin}:{number}", raw=line)


def _from_document(document: Any, origin: str) -> Iterator[Item]:
    if isinstance(document, dict) and isinstance(document.get("Records"), list):
        items: Iterable[Any] = document["Records"]
    elif isinstance(document, list):
        items = document
    else:
        items = [document]
    for number, item in enumerate(items):
        if isinstance(item, dict):
            yield Record(f"{origin}[{number}]", data=item)
        else:
            yield BadLine(f"{origin}[{number}]", f"not a JSON object but {type(item).__name__}")


def local_files(path: str) -> list[Path]:
    """A file, or every file under a directory (sorted, hidden files skipped)."""
    root = Path(path)
    if root.is_file():
        return [root]
    if root.is_dir():
        found = []
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found += [Path(folder, f) for f in sorted(files) if not f.startswith(".")]
        return found
    if not root.exists():
        raise UserError(f"{path}: no such file or directory")
    raise UserError(f"{path}: not a regular file or directory")


S3Reader = Callable[[str], Iterator[tuple[str, bytes]]]


def iter_items(sources: Iterable[str], s3_reader: S3Reader | None = None) -> Iterator[Item]:
    """Every record of every source, in the order given (files sorted within a directory)."""
    for source in sources:
        if source.startswith("s3://"):
            if s3_reader is None:
                raise UserError(f"{source}: S3 input needs boto3 and AWS credentials")
            for name, payload in s3_reader(source):
                yield from split_document(payload, name)
            continue
        for path in local_files(source):
            try:
                payload = path.read_bytes()
            except OSError as exc:
                raise UserError(f"{path}: cannot read it ({exc.strerror or exc})") from None
            yield from split_document(payload, str(path))


def check_sources(sources: Iterable[str]) -> None:
    """Fail early, with one line, on a local path that does not exist."""
    for source in sources:
        if not source.startswith("s3://"):
            local_files(source)
