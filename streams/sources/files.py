"""CloudTrail records from files and directories in every shape they come in (S3-delivery files,
JSON arrays, JSON Lines, EventBridge events, gzip or not); a line that is not a JSON object is a
``BadLine`` with its place and reason, so one bad line never stops a run."""

from __future__ import annotations

import io
import itertools
import os
import re
import stat
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

from streams.core.records import MAX_RECORD_BYTES
from streams.errors import UserError

_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()
# What bytes.strip() strips from a line split at newlines.
_SPACE = frozenset({b" ", b"\t", b"\r", b"\x0b", b"\x0c"})


@dataclass(slots=True)  # not frozen: a frozen init costs a third of reading a line
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


@dataclass(frozen=True, slots=True)
class Lines:
    """Consecutive JSON Lines of one document, as written (``iter_items(..., runs=True)``): the
    forwarder reads a file's lines without building an object for each."""

    origin: str  # the file or object
    numbers: Sequence[int]  # each line's number, counted from 1
    lines: list[bytes]

    def records(self) -> Iterator[Record]:
        for number, line in zip(self.numbers, self.lines, strict=True):
            yield Record(f"{self.origin}:{number}", raw=line)


Item = Record | BadLine


CHUNK_BYTES = 1 << 20
# A document no bigger than this is decoded whole (the fast path); a bigger one, or one that
# fails to decode, is split record by record. Nothing reads a whole file into memory.
MAX_DOCUMENT_BYTES = 64 << 20
BOM = b"\xef\xbb\xbf"
_HEAD_BYTES = 4096  # enough of a file's start to tell its shape
# Where a document's records start: a JSON array, or CloudTrail's S3 delivery file.
_OPENING = re.compile(rb"\[|\{\s*\"Records\"\s*:\s*\[")
# The rest of a string (group 1: its closing quote, None when the data ends first); a bracket.
_STRING_REST = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*(")?', re.S)  # after the opening quote
# Up to the next bracket outside a string (or a string the data ends in).
_BETWEEN_BRACKETS = re.compile(rb'(?:[^"\[\]{}]+|"[^"\\]*(?:\\.[^"\\]*)*")*', re.S)
_BARE = re.compile(rb"[^,\]\s]*")  # a number, true, false or null
_SEPARATORS = re.compile(rb"[\s,]*")


def split_document(payload: bytes, origin: str, runs: bool = False) -> Iterator[Item | Lines]:
    """One file's bytes → its records (gunzipped first when gzip); with ``runs``, JSON Lines
    come out as ``Lines`` between the bad lines instead of a Record each."""
    return split_stream(io.BytesIO(payload), origin, runs)


def split_stream(stream: BinaryIO, origin: str, runs: bool = False,
                 whole_bytes: int | None = None,
                 chunk_bytes: int | None = None) -> Iterator[Item | Lines]:
    """As ``split_document``, reading ``stream`` a chunk at a time: a record larger than
    ``MAX_RECORD_BYTES`` is dropped unread, so memory stays bounded whatever the file holds.
    A document of at most ``whole_bytes`` is decoded whole; a larger one record by record."""
    corrupt: list[str] = []
    whole_bytes = MAX_DOCUMENT_BYTES if whole_bytes is None else whole_bytes
    chunk_bytes = CHUNK_BYTES if chunk_bytes is None else chunk_bytes
    yield from _split(_chunks(stream, corrupt, chunk_bytes), origin, runs, whole_bytes)
    if corrupt:  # the records before the damage are read
        yield BadLine(origin, f"corrupt gzip: {corrupt[0]}")


def _chunks(stream: BinaryIO, corrupt: list[str], chunk_bytes: int) -> Iterator[bytes]:
    """The stream's bytes, gunzipped when gzip (every member), as far as they can be read."""
    data = stream.read(chunk_bytes)
    if data[:2] != b"\x1f\x8b":
        while data:
            yield data
            data = stream.read(chunk_bytes)
        return
    inflate = zlib.decompressobj(wbits=31)
    try:
        while data:
            while data:
                # Bounded output per step: a bomb's ratio never inflates a chunk whole.
                out = inflate.decompress(data, chunk_bytes)
                if out:
                    yield out
                data = inflate.unconsumed_tail
                if inflate.eof:
                    data = inflate.unused_data + data
                    if data.strip(b"\x00"):
                        inflate = zlib.decompressobj(wbits=31)  # the next member
                    else:
                        data = b""
            data = stream.read(chunk_bytes)
        if not inflate.eof:
            corrupt.append("the file ends inside the compressed data")
    except zlib.error as exc:
        corrupt.append(str(exc))


def _split(chunks: Iterator[bytes], origin: str, runs: bool,
           whole_bytes: int) -> Iterator[Item | Lines]:
    head = b""
    for chunk in chunks:
        head += chunk
        if len(head) >= 3 or not BOM.startswith(head):
            break
    head = head.removeprefix(BOM).lstrip()
    while not head:
        chunk = next(chunks, None)
        if chunk is None:
            return
        head = chunk.lstrip()
    if head[:1] in (b"{", b"["):
        parts = [head]
        size = len(head)
        for chunk in chunks:
            parts.append(chunk)
            size += len(chunk)
            if size > whole_bytes and size >= _HEAD_BYTES:
                break
        head = b"".join(parts)
        if size <= whole_bytes:
            try:
                document = _decoder.decode(head)
            except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
                document = None  # JSON Lines, or a record that is not JSON: split it
            if document is not None:
                yield from _from_document(document, origin)
                return
        if _OPENING.match(head):
            yield from _elements(itertools.chain([head], chunks), origin)
            return
    yield from _lines(itertools.chain([head], chunks), origin, runs)


def _lines(chunks: Iterator[bytes], origin: str, runs: bool) -> Iterator[Item | Lines]:
    carry = b""
    first = 1  # the number of the carried line
    overlong = False
    for chunk in chunks:
        lines = chunk.split(b"\n")
        lines[0] = carry + lines[0]
        carry = lines.pop()
        if lines:
            if overlong:
                yield BadLine(f"{origin}:{first}", _too_big())
                lines[0] = b""
                overlong = False
            yield from (_runs(lines, first, origin) if runs else _records(lines, first, origin))
            first += len(lines)
        if len(carry) > MAX_RECORD_BYTES:
            overlong, carry = True, b""
    if overlong:
        yield BadLine(f"{origin}:{first}", _too_big())
    elif carry.strip():
        lines = [carry.rstrip()]
        yield from (_runs(lines, first, origin) if runs else _records(lines, first, origin))


def _too_big() -> str:
    return f"record of more than {MAX_RECORD_BYTES} bytes: not a CloudTrail record"


def _records(lines: list[bytes], first: int, origin: str) -> Iterator[Item]:
    for number, line in enumerate(lines, start=first):
        line = line.strip()
        if not line:
            continue
        if line[:1] != b"{":
            yield BadLine(f"{origin}:{number}", "not a JSON object")
            continue
        yield Record(f"{origin}:{number}", raw=line)


def _runs(lines: list[bytes], first: int, origin: str) -> Iterator[Lines | BadLine]:
    # The usual file: every line an object with no space around it (no Python loop over them).
    if all(map(bytes.startswith, lines, repeat(b"{"))) and all(
            map(bytes.endswith, lines, repeat(b"}"))):
        yield Lines(origin, range(first, first + len(lines)), lines)
        return
    numbers: list[int] = []
    run: list[bytes] = []
    for number, line in enumerate(lines, start=first):
        if line[:1] != b"{" or line[-1:] in _SPACE:
            line = line.strip()
            if not line:
                continue
            if line[:1] != b"{":
                if run:
                    yield Lines(origin, numbers, run)
                    numbers, run = [], []
                yield BadLine(f"{origin}:{number}", "not a JSON object")
                continue
        numbers.append(number)
        run.append(line)
    if run:
        yield Lines(origin, numbers, run)


class _Buffer:
    """A window on a stream of chunks: ``data[pos:]`` is unread; ``more`` reads on, keeping
    ``data[keep:]``."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.data = b""
        self.pos = 0

    def more(self, keep: int) -> int:
        """Read a chunk; the new index of ``keep`` (-1 at the end of the stream)."""
        chunk = next(self.chunks, None)
        if chunk is None:
            return -1
        self.data = self.data[keep:] + chunk
        self.pos -= keep
        return 0


def _elements(chunks: Iterator[bytes], origin: str) -> Iterator[Item]:
    """The records of a JSON array or ``{"Records": [...]}``, one at a time, each as its own
    bytes: a record that is not JSON costs itself only."""
    buffer = _Buffer(chunks)
    buffer.more(0)
    buffer.pos = _OPENING.match(buffer.data).end()  # type: ignore[union-attr]
    number = 0
    while True:
        buffer.pos = _SEPARATORS.match(buffer.data, buffer.pos).end()  # type: ignore[union-attr]
        if buffer.pos >= len(buffer.data):
            if buffer.more(buffer.pos) < 0:
                yield BadLine(f"{origin}[{number}]", "the file ends before the closing ]")
                return
            continue
        first = buffer.data[buffer.pos: buffer.pos + 1]
        if first == b"]":
            if _more_after(buffer):
                yield BadLine(origin, "data after the end of the document, not read")
            return
        where = f"{origin}[{number}]"
        number += 1
        if first in (b"{", b"["):
            item = _element(buffer, where)
            if isinstance(item, Record) and first == b"[":
                item = BadLine(where, "not a JSON object but list")
            yield item
            if buffer.pos < 0:
                return
        else:
            yield _scalar(buffer, where)


def _more_after(buffer: _Buffer) -> bool:
    """Whether anything but space and the document's closing brace follows its ``]``."""
    rest, seen = buffer.data[buffer.pos + 1:], b""
    while len(seen) <= 1:
        seen += rest.strip()
        chunk = next(buffer.chunks, None)
        if chunk is None:
            return seen not in (b"", b"}")
        rest = chunk
    return True


def _element(buffer: _Buffer, where: str) -> Item:
    start, depth, size, in_string = buffer.pos, 0, 0, False
    while True:
        data, pos = buffer.data, buffer.pos
        if in_string:  # a string the last chunk ended in
            string = _STRING_REST.match(data, pos)
            pos = string.end()  # type: ignore[union-attr]
            in_string = string.group(1) is None  # type: ignore[union-attr]
        while not in_string:
            pos = _BETWEEN_BRACKETS.match(data, pos).end()  # type: ignore[union-attr]
            if pos >= len(data):
                break
            if data[pos] == 0x22:  # a string the data ends in
                string = _STRING_REST.match(data, pos + 1)
                pos = string.end()  # type: ignore[union-attr]
                in_string = string.group(1) is None  # type: ignore[union-attr]
                continue
            depth += 1 if data[pos] in b"{[" else -1
            pos += 1
            if depth == 0:
                size += pos - start
                buffer.pos = pos
                if size > MAX_RECORD_BYTES:
                    return BadLine(where, _too_big())
                return Record(where, raw=data[start: pos])
        # The data ends here: read on, dropping what is read once the record is too big.
        if pos - start > MAX_RECORD_BYTES:
            size += pos - start
            start = pos
        buffer.pos = pos
        if buffer.more(start) < 0:
            buffer.pos = -1
            return BadLine(where, "the file ends inside this record")
        start = 0


def _scalar(buffer: _Buffer, where: str) -> BadLine:
    """A value in the list that is no object or array: read to its end, and named."""
    while True:
        data, start = buffer.data, buffer.pos
        if data[start: start + 1] == b'"':
            string = _STRING_REST.match(data, start + 1)
            end, complete = string.end(), string.group(1) is not None  # type: ignore[union-attr]
        else:
            end = _BARE.match(data, start).end()  # type: ignore[union-attr]
            complete = end < len(data)
        if complete or end - start > MAX_RECORD_BYTES or buffer.more(start) < 0:
            break
    text = data[start: end]
    buffer.pos = max(end, start + 1)  # a stray } or :, one byte at a time
    try:
        kind = type(_decoder.decode(text)).__name__
    except (msgspec.DecodeError, UnicodeDecodeError):
        return BadLine(where, "not JSON")
    return BadLine(where, f"not a JSON object but {kind}")


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


def local_files(path: str, skipped: list[tuple[Path, str]] | None = None) -> list[Path]:
    """A file, or every regular file under a directory (sorted, hidden files skipped, linked
    directories followed once); what is not a regular file goes to ``skipped`` with why."""
    root = Path(path)
    if root.is_file():
        return [root]
    if root.is_dir():
        found = []
        seen: set[tuple[int, int]] = set()
        for folder, dirs, files in os.walk(root, followlinks=True):
            status = os.stat(folder)
            if (status.st_dev, status.st_ino) in seen:  # a link back up: read it once
                dirs[:] = []
                continue
            seen.add((status.st_dev, status.st_ino))
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(f for f in files if not f.startswith(".")):
                file = Path(folder, name)
                if file.is_file():
                    found.append(file)
                elif skipped is not None:
                    skipped.append((file, _not_regular(file)))
        return found
    if not root.exists():
        raise UserError(f"{path}: no such file or directory")
    raise UserError(f"{path}: not a regular file or directory")


def _not_regular(path: Path) -> str:
    try:
        mode = path.stat().st_mode
    except OSError:
        return "a broken link"
    for test, kind in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


S3Reader = Callable[[str], Iterator[tuple[str, bytes]]]


def skipped_note(path: Path, reason: str) -> None:
    print(f"exfilguard: skipped {path}: {reason}, not a CloudTrail file", file=sys.stderr)


def iter_items(sources: Iterable[str], s3_reader: S3Reader | None = None,
               runs: bool = False,
               on_skip: Callable[[Path, str], None] = skipped_note) -> Iterator[Item | Lines]:
    """Every record of every source, in the order given (files sorted within a directory);
    ``runs``: JSON Lines as ``Lines`` (see ``split_document``)."""
    for source in sources:
        if source.startswith("s3://"):
            if s3_reader is None:
                raise UserError(f"{source}: S3 input needs boto3 and AWS credentials")
            for name, payload in s3_reader(source):
                yield from split_document(payload, name, runs)
            continue
        skipped: list[tuple[Path, str]] = []
        paths = local_files(source, skipped)
        for path, reason in skipped:
            on_skip(path, reason)
        for path in paths:
            try:
                with path.open("rb") as stream:
                    yield from split_stream(stream, str(path), runs)
            except OSError as exc:
                raise UserError(f"{path}: cannot read it ({exc.strerror or exc})") from None


def check_sources(sources: Iterable[str]) -> None:
    """Fail early, with one line, on a local path that does not exist."""
    for source in sources:
        if not source.startswith("s3://"):
            local_files(source)


# Offline, many files are open at once (merged by time): a document up to this is decoded whole,
# a larger one record by record, and a file up to SMALL_FILE_BYTES on disk is read through at
# once when its turn comes, so CloudTrail's many small delivery files hold no descriptor open.
OFFLINE_WHOLE_BYTES = 1 << 20
SMALL_FILE_BYTES = 8 << 20
PEEK_CHUNK_BYTES = 64 << 10  # enough to read a file's first records


@dataclass(frozen=True, slots=True)
class Source:
    """One file, or one S3 prefix, whose records are read when ``items`` is called."""

    name: str
    path: Path | None = None  # a local file
    size: int | None = None  # bytes on disk, for a local file
    s3_reader: S3Reader | None = None

    def items(self, chunk_bytes: int | None = None) -> Iterator[Item]:
        if self.path is None:
            assert self.s3_reader is not None
            for name, payload in self.s3_reader(self.name):
                yield from split_document(payload, name)  # type: ignore[misc]
            return
        try:
            with self.path.open("rb") as stream:
                yield from split_stream(stream, str(self.path), whole_bytes=OFFLINE_WHOLE_BYTES,
                                        chunk_bytes=chunk_bytes)  # type: ignore[misc]
        except OSError as exc:
            raise UserError(f"{self.path}: cannot read it ({exc.strerror or exc})") from None

    def head(self, size: int) -> bytes:
        """About the first ``size`` bytes of a local file, gunzipped when gzip."""
        assert self.path is not None
        try:
            with self.path.open("rb") as stream:
                chunks = _chunks(stream, [], size)
                return next(chunks, b"")
        except OSError as exc:
            raise UserError(f"{self.path}: cannot read it ({exc.strerror or exc})") from None

    @property
    def small(self) -> bool:
        return self.size is not None and self.size <= SMALL_FILE_BYTES


def sources_of(paths: Iterable[str], s3_reader: S3Reader | None = None,
               on_skip: Callable[[Path, str], None] = skipped_note) -> list[Source]:
    """The files of the paths (each S3 prefix one source, read in its listing order), as
    ``iter_items`` would read them, not yet opened."""
    found = []
    for source in paths:
        if source.startswith("s3://"):
            if s3_reader is None:
                raise UserError(f"{source}: S3 input needs boto3 and AWS credentials")
            found.append(Source(source, s3_reader=s3_reader))
            continue
        skipped: list[tuple[Path, str]] = []
        files = local_files(source, skipped)
        for path, reason in skipped:
            on_skip(path, reason)
        for path in files:
            try:
                size = path.stat().st_size
            except OSError as exc:
                raise UserError(f"{path}: cannot read it ({exc.strerror or exc})") from None
            found.append(Source(str(path), path, size))
    return found
