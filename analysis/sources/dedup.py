"""Drop requests seen twice when two sources of one session overlap (a dump and a pcap, a HAR).

Two HttpRecords are the same request when method, host, path and a hash of the body's content
(its Content-Encoding undone) agree and their timestamps differ by at most `tolerance` seconds.
The copy from the richer source is kept: mitmproxy dump > pcap > HAR (a dump has labels and
responses; a HAR may have lost the raw body).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from phonehome.analysis.decode import DEFAULT_LIMITS
from phonehome.analysis.decode.codecs import Inflated, decompress
from phonehome.analysis.decode.content_encoding import undo_content_encoding
from phonehome.analysis.records import ContactRecord, HttpRecord
from phonehome.analysis.sources import HAR_SUFFIXES, PCAP_SUFFIXES

_RANK = {"dump": 0, "pcap": 1, "har": 2}


def source_rank(source: str) -> int:
    """Lower is richer: mitmproxy dumps and capture dirs, then pcaps, then HARs."""
    name = source.lower()
    if name.endswith(HAR_SUFFIXES):
        return _RANK["har"]
    if name.endswith(PCAP_SUFFIXES):
        return _RANK["pcap"]
    return _RANK["dump"]


def _content(rec: HttpRecord) -> bytes:
    """The request body with its Content-Encoding undone, or as sent if that fails or hits the bound.

    A dump or pcap holds a compressed body as sent, but a HAR holds its decoded text, which a
    reader can only compress again: mitmproxy's HAR reader does, and mitmproxy 12 compresses at
    other levels than 11 (and than the app), so the compressed bytes of one request differ by
    source. Its decoded content does not. Bounded like the decoder (zip bombs).
    """
    undone = undo_content_encoding(rec.request_body, rec.header("content-encoding"), _inflate)
    return undone.body if undone.complete else rec.request_body


def _inflate(kind: str, data: bytes) -> Inflated | None:
    return decompress(kind, data, DEFAULT_LIMITS.max_decompressed_bytes)


def _key(rec: HttpRecord) -> tuple[str, str, str, str]:
    return (rec.method.upper(), rec.host.lower(), rec.path, hashlib.sha256(_content(rec)).hexdigest())


def drop_duplicates(
    records: Iterable[HttpRecord | ContactRecord], tolerance: float = 2.0
) -> list[HttpRecord | ContactRecord]:
    """`records` in their order, less HttpRecords that repeat one from another source.

    Duplicates within one source are kept (an app may really send a request twice); ContactRecords
    pass through untouched.
    """
    items = list(records)
    groups: dict[tuple[str, str, str, str], list[int]] = {}
    for i, rec in enumerate(items):
        if isinstance(rec, HttpRecord):
            groups.setdefault(_key(rec), []).append(i)
    drop: set[int] = set()
    for indices in groups.values():
        if len({items[i].source for i in indices}) < 2:
            continue
        ordered = sorted(indices, key=lambda i: (source_rank(items[i].source), i))
        kept: list[int] = []
        for i in ordered:
            rec = items[i]
            if any(
                items[k].source != rec.source and abs(items[k].timestamp - rec.timestamp) <= tolerance
                for k in kept
            ):
                drop.add(i)
            else:
                kept.append(i)
    return [rec for i, rec in enumerate(items) if i not in drop]
