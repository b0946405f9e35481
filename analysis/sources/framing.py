"""How a mitmproxy dump is framed: records `<length>:<payload><tag>`, found without parsing.

A dump is a sequence of tnetstring records; each starts with its payload's length in ASCII
digits and a colon, and ends with a one-byte type tag. The sequential readers (mitmproxy-object
and fast), the damage resync and the byte-range split all need the same three facts — where a
record ends, how big a record may be, and what an empty file means — so they are written here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from phonehome.analysis.records import SourceReport
from phonehome.analysis.sources import CaptureError

#: A single flow larger than this is skipped, not loaded (a damaged length would ask for anything).
MAX_RECORD_BYTES = 512 * 1024 * 1024
_HEAD = 13  # 12 digits (a length up to a terabyte) and the colon


def parse_length(head: bytes) -> int | None:
    """The payload length announced by the first bytes of a record, or None if it is no prefix.

    Digits then a colon, no leading zero (mitmproxy's writer never writes one).
    """
    digits, colon, _ = head[:_HEAD].partition(b":")
    if not colon or not digits.isdigit() or (len(digits) > 1 and digits[:1] == b"0"):
        return None
    return int(digits)


def peek_length(fo: BinaryIO) -> int | None:
    """parse_length of the record at the current position; the position is left unchanged."""
    start = fo.tell()
    head = fo.read(_HEAD)
    fo.seek(start)
    return parse_length(head)


def record_size(length: int) -> int:
    """Bytes of a whole record whose payload is `length` bytes: prefix, colon, payload, tag."""
    return len(str(length)) + 1 + length + 1


def record_offsets(path: Path, size: int | None = None) -> list[int] | None:
    """Start offset of every record, from the length prefixes alone; None if anything is off.

    None (irregular framing, a record over MAX_RECORD_BYTES, a record running past the end)
    means "let the sequential reader handle this file": it knows how to resync.
    """
    size = os.path.getsize(path) if size is None else size
    offsets: list[int] = []
    position = 0
    with path.open("rb", buffering=64 * 1024) as fo:
        while position < size:
            fo.seek(position)
            length = parse_length(fo.read(_HEAD))
            if length is None or length > MAX_RECORD_BYTES:
                return None
            offsets.append(position)
            position += record_size(length)
    return offsets if position == size else None


def has_records(path: Path, report: SourceReport, *, allow_empty: bool = False) -> bool:
    """False for an empty dump: an error for a dump given alone, a warning inside a capture
    directory (the recorder creates flows.mitm before the first flow has finished)."""
    if path.stat().st_size:
        return True
    if not allow_empty:
        raise CaptureError(path, "empty file (no flows)")
    report.warnings.append(f"{path}: empty (no flows recorded)")
    return False


_TAGS = frozenset(b"}],;#^!~")


def genuine_oversized(fo: BinaryIO, position: int, length: int, size: int) -> bool:
    """Whether an over-limit length at `position` frames a real record: it ends inside the file on
    a tnetstring type tag, right before the end of the file or another record's length prefix.

    A damaged length (a flipped digit) almost never does; then the readers resynchronise at the
    next record that loads instead of jumping past the end and losing every flow after it.
    The position of `fo` is left unchanged.
    """
    end = position + record_size(length)
    if end > size:
        return False
    start = fo.tell()
    try:
        fo.seek(end - 1)
        tail = fo.read(1 + _HEAD)
    finally:
        fo.seek(start)
    if not tail or tail[0] not in _TAGS:
        return False
    return end == size or parse_length(tail[1:]) is not None


def oversized(path: Path, position: int, length: int) -> str:
    """The damage message for a record over MAX_RECORD_BYTES, which readers skip."""
    return (
        f"{path}: record at byte {position} is {length} bytes, over the "
        f"{MAX_RECORD_BYTES} byte limit; skipped"
    )


def bogus_length(length: int) -> str:
    """Why a record whose over-limit length frames nothing (genuine_oversized False) is damage."""
    return f"record length {length} is over the {MAX_RECORD_BYTES} byte limit and frames no record"
