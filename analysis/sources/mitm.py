"""mitmproxy flow dumps (any version mitmproxy's own reader migrates) as records.

Reads record by record with mitmproxy's tnetstring reader and migration, so a damaged dump
still yields every flow before the damage and the report says where reading stopped.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from mitmproxy import dns, flow, http, tcp
from mitmproxy.io import compat, tnetstring

from phonehome.analysis.labels import LABEL_KEY, internal_kind, labels_from_metadata, note_internal
from phonehome.analysis.records import ContactRecord, HttpRecord, Labels, SourceReport
from phonehome.analysis.sources import CaptureError, framing
from phonehome.analysis.sources.flow_record import http_record, ws_messages

__all__ = [
    "LABEL_KEY",
    "contact_records",
    "flow_records",
    "http_record",
    "iter_flows",
    "skip_damage",
    "ws_messages",
]

Record = HttpRecord | ContactRecord


def contact_records(
    f: flow.Flow, source: str, defaults: Labels, report: SourceReport | None = None
) -> Iterator[ContactRecord]:
    """DNS and raw TCP/UDP flows: hosts contacted whose HTTP content we did not see."""
    labels = labels_from_metadata(f.metadata, defaults, report)
    if isinstance(f, dns.DNSFlow):
        ts = f.request.timestamp or 0.0
        answers = []
        if f.response:
            answers = [str(a) for a in f.response.answers]
        for q in f.request.questions:
            yield ContactRecord(source, labels, float(ts), q.name.rstrip("."), "dns", "; ".join(answers))
    elif isinstance(f, tcp.TCPFlow) or f.type == "udp":
        sni = f.client_conn.sni if f.client_conn else None
        peer = f.server_conn.address if f.server_conn else None
        host = sni or (str(peer[0]) if peer else "")
        if host:
            yield ContactRecord(
                source,
                labels,
                float(f.timestamp_created or 0.0),
                host,
                f.type,
                # the port tells QUIC (UDP 443) apart for the coverage verdict
                "; ".join(
                    d
                    for d in (
                        f"port {peer[1]}" if peer and len(peer) > 1 else "",
                        str(f.error.msg) if f.error else "",
                    )
                    if d
                ),
                str(peer[0]) if peer else None,
            )


def flow_records(f: flow.Flow, source: str, defaults: Labels, report: SourceReport) -> list[Record]:
    """The records of one flow of a dump: its HttpRecord, or its contacts (DNS, TCP, UDP).

    A flow the proxy answered itself (labels.internal_kind: the mitm.it CA download, the guard's
    refusal, a marker page) is not the app's traffic: no record, only a count in report.notes.
    """
    if isinstance(f, http.HTTPFlow):
        kind = internal_kind(f.metadata, f.request.pretty_host)
        if kind is not None:
            note_internal(report, kind)
            return []
        return [http_record(f, source, defaults, report)]
    return list(contact_records(f, source, defaults, report))


# A flow record is a tnetstring dict whose first key is a short name: `<len>:<n>:<key>;`.
# Zero-width (a lookahead), so every position is tried: a good record right after a damaged
# byte that happens to be a digit is found too (a consuming match would start at that digit,
# fail to load, and step over the real start).
_RECORD_START = re.compile(rb"(?=[1-9][0-9]{0,11}:[0-9]{1,3}:[A-Za-z_]{1,40}[,;])")
_SCAN_CHUNK = 1 << 20


def load_flow(fo: BinaryIO) -> flow.Flow:
    return flow.Flow.from_state(compat.migrate_flow(tnetstring.load(fo)))


def _resync(fo: BinaryIO, start: int, size: int) -> tuple[int, flow.Flow] | None:
    """The next offset after `start` where a whole flow record loads, and that flow."""
    offset = start
    while offset < size:
        fo.seek(offset)
        chunk = fo.read(_SCAN_CHUNK + 64)
        for match in _RECORD_START.finditer(chunk):  # the lookahead may read into the overlap
            if match.start() >= _SCAN_CHUNK:
                break  # the next chunk's
            candidate = offset + match.start()
            fo.seek(candidate)
            length = framing.peek_length(fo)
            if length is None or length > framing.MAX_RECORD_BYTES or candidate + length > size:
                continue  # cannot be a whole record: do not load (and allocate) it
            try:
                found = load_flow(fo)
            except Exception:  # not a record start after all; keep scanning
                continue
            return candidate, found
        offset += _SCAN_CHUNK
    return None


def iter_flows(path: Path, report: SourceReport) -> Iterator[flow.Flow]:
    """mitmproxy Flow objects from a dump, record by record.

    Damage does not end reading: the reader scans forward to the next record that loads and
    says which bytes it skipped, so one corrupted flow loses only itself. A record larger than
    framing.MAX_RECORD_BYTES is skipped with a warning instead of being loaded into memory.
    This is mitmproxy's own reading, object by object: the reference the fast reader
    (analysis.sources.fastdump) is tested against, and its fallback for records it leaves alone.
    """
    size = os.path.getsize(path)
    count = 0
    with path.open("rb") as fo:
        while fo.tell() < size:
            position = fo.tell()
            length = framing.peek_length(fo)
            try:
                if length is not None and length > framing.MAX_RECORD_BYTES:
                    if framing.genuine_oversized(fo, position, length, size):
                        report.damaged(framing.oversized(path, position, length))
                        fo.seek(position + framing.record_size(length))
                        continue
                    raise ValueError(framing.bogus_length(length))
                f = load_flow(fo)
            except Exception as exc:  # damage: reported, then we look for the next good record
                f = skip_damage(fo, path, position, size, count, exc, report)
                if f is None:
                    return
            count += 1
            yield f


def skip_damage(
    fo: BinaryIO, path: Path, position: int, size: int, count: int, exc: Exception, report: SourceReport
) -> flow.Flow | None:
    """After a record at `position` failed to load: the next flow that loads, or None at the end.

    Says in `report` which bytes were lost. Raises CaptureError when nothing before the damage
    was readable (count 0) and nothing after it is: then the file is not a dump at all.
    """
    problem = _describe(exc)
    found = _resync(fo, position + 1, size)
    if found is None:
        if count == 0:
            raise CaptureError(path, f"not a readable mitmproxy dump: {problem}", position) from None
        report.damaged(
            f"{path}: damaged record at byte {position} of {size} ({problem}); "
            f"kept the {count} flow(s) before it"
        )
        return None
    resumed, loaded = found
    report.damaged(
        f"{path}: damaged record at byte {position} of {size} ({problem}); "
        f"skipped {resumed - position} bytes, resumed at byte {resumed}"
    )
    return loaded


# mitmproxy's tnetstring errors quote the bad bytes as a memoryview's repr (an address)
_MEMORY_REPR = re.compile(r":? ?<memory at 0x[0-9a-fA-F]+>")


def _describe(exc: Exception) -> str:
    """The first line of the error, without addresses: the warning is the same on every run."""
    text = _MEMORY_REPR.sub("", str(exc)) or type(exc).__name__
    return text.splitlines()[0][:200]
