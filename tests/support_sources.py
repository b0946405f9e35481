"""Paths and helpers for the HAR/pcap source tests (real files copied under tests/data/sources)."""

from __future__ import annotations

import binascii
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mitmproxy import http
from mitmproxy.io import FlowWriter
from mitmproxy.io import har as mitm_har

from phonehome.analysis.pipeline import Analysis, build_analysis, default_labels, load_profiles
from phonehome.analysis.records import ContactRecord, HttpRecord, Labels, SourceReport
from phonehome.analysis.rows import RowCollector, RowSettings
from phonehome.analysis.sources import CaptureError, har, read_source
from phonehome.analysis.sources.capture_dir import capture_parts, read_events
from phonehome.analysis.sources.framing import has_records
from phonehome.analysis.sources.mitm import flow_records, http_record, iter_flows

DATA = Path(__file__).resolve().parent / "data" / "sources"
HAR = DATA / "har"
PCAP = DATA / "pcap"


def read_all(
    path: Path, labels: Labels | None = None, keylog: Path | None = None
) -> tuple[list, SourceReport]:
    report = SourceReport(str(path))
    records = list(read_source(path, labels or Labels(), report, keylog))
    return records, report


def read_damaged(path: Path) -> tuple[list, SourceReport]:
    """Read a possibly damaged capture the way the CLI does: records and warnings, or no records
    and a CaptureError whose one-line message names the file (asserted here)."""
    report = SourceReport(str(path))
    try:
        return list(read_source(path, Labels(session="fuzz"), report)), report
    except CaptureError as exc:
        message = str(exc)
        assert str(path) in message and "\n" not in message
        return [], report


def pcapng_with_keylog(pcap: Path, keylog: Path, out: Path) -> Path:
    """A pcapng (SHB, IDB, DSB with the key log, EPBs) of `pcap`'s packets, as PCAPdroid writes.

    Assembled with struct from the pcapng spec because scapy writes no Decryption Secrets Block.
    """
    import struct
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from scapy.utils import RawPcapReader

    def block(kind: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        length = 12 + len(body)
        return struct.pack("<II", kind, length) + body + struct.pack("<I", length)

    reader = RawPcapReader(str(pcap))
    linktype = reader.linktype
    parts = [block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))]
    parts.append(block(1, struct.pack("<HHI", linktype, 0, 0)))
    secrets = keylog.read_bytes()
    parts.append(block(0x0A, struct.pack("<II", 0x544C534B, len(secrets)) + secrets))
    for data, meta in reader:
        ts = meta.sec * 1_000_000 + meta.usec
        parts.append(
            block(6, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(data), meta.wirelen) + data)
        )
    reader.close()
    out.write_bytes(b"".join(parts))
    return out


def reference_read_dump(
    path: Path, defaults: Labels, report: SourceReport, *, allow_empty: bool = False
) -> Iterator[HttpRecord | ContactRecord]:
    """A dump read the straightforward way: mitmproxy's reader and Flow objects, record by record.

    The reference the library's fast reader (sources.fastdump.read_dump) must equal; it lives here
    because nothing but the differential tests reads dumps this way.
    """
    if not has_records(path, report, allow_empty=allow_empty):
        return
    source = str(path)
    for f in iter_flows(path, report):
        for record in flow_records(f, source, defaults, report):  # internal flows left out
            report.records += 1
            yield record


def reference_analysis(path: str | os.PathLike[str]) -> Analysis:
    """One capture through the straightforward path: mitmproxy's own reader, record by record, in
    this process, every row from one RowCollector. The analysis (`pipeline.analyze`, fast reader,
    byte ranges in workers) must give exactly these tables; tests/test_parallel.py compares."""
    source = Path(path)
    profile = load_profiles([source], None)
    collector = RowCollector(RowSettings(profile))
    report = SourceReport(str(source))
    defaults = default_labels(source, None, None)
    if source.is_dir():
        parts = capture_parts(source, defaults, report)
        records = (
            reference_read_dump(parts.dump, parts.defaults, report, allow_empty=True) if parts.dump else ()
        )
        for record in records:
            collector.add(record)
        for record in read_events(parts.events, parts.defaults, report) if parts.events else ():
            collector.add(record)
    else:
        for record in reference_read_dump(source, defaults, report):
            collector.add(record)
    return build_analysis(collector.take(), [report], profile)


# --- HAR: the record built through mitmproxy's own request_to_flow, the reference for read_har ---


def _as_recorded(flow: http.HTTPFlow, fixed: dict[str, Any]) -> None:
    """Undo the decoding mitmproxy 12's request_to_flow adds, so a HAR reads alike on 11 and 12.

    mitmproxy 12 ends request_to_flow with `request.decode()` and `response.decode()`: a request
    whose headers say `Content-Encoding: br|gzip|...` loses that header and its body is stored
    decoded (Content-Length rewritten), and a response with a body gets its Content-Length
    rewritten or added. A record is the request as sent (HttpRecord.request_body; a dump of the
    same request keeps the encoded body and the header, and analysis.decode undoes and names the
    encoding), so the request is rebuilt by the very call request_to_flow makes first
    (Request.make, identical in 11 and 12) and the response keeps the HAR's headers: what
    mitmproxy 11 returns, and on 11 this changes nothing. The compressed bytes are mitmproxy's
    re-compression of the HAR's text (a HAR keeps no wire bytes; 12 compresses at lower levels
    than 11), so dedup compares bodies by their decoded content.
    """
    request = fixed["request"]
    if any(h["name"].lower() == "content-encoding" for h in request["headers"]):
        rebuilt = har.made_request(request)
        rebuilt.timestamp_start = flow.request.timestamp_start
        rebuilt.timestamp_end = flow.request.timestamp_end
        rebuilt.http_version = flow.request.http_version
        flow.request = rebuilt
    if flow.response is not None:
        flow.response.headers = mitm_har.fix_headers(fixed["response"]["headers"])


def reference_har_record(fixed: dict[str, Any], source: str, labels: Labels) -> HttpRecord:
    """A normalised HAR entry through mitmproxy.io.har.request_to_flow, as the library read HARs
    before it built records without flows (sources.har.record_of_entry); bad timestamps or
    response bodies fall back as that reader did."""
    try:
        flow = mitm_har.request_to_flow(fixed)
    except (ValueError, binascii.Error):  # bad timestamp or response body: drop them
        fixed["startedDateTime"] = "1970-01-01T00:00:00Z"
        fixed["response"]["content"] = {"text": ""}
        flow = mitm_har.request_to_flow(fixed)
    _as_recorded(flow, fixed)
    return http_record(flow, source, labels)


def har_entry_variant(entry: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A deep copy of a HAR `entry` with values replaced by dotted path (`request.method="GET"`).

    The HAR tests build odd and damaged entries from one good entry this way.
    """
    copy = json.loads(json.dumps(entry))
    for dotted, value in changes.items():
        target = copy
        *parents, last = dotted.split(".")
        for key in parents:
            target = target[key]
        target[last] = value
    return copy


def write_dump(path: Path, flows) -> Path:
    """`flows` written to `path` by mitmproxy's own FlowWriter: a dump as mitmproxy records one."""
    with path.open("wb") as fo:
        writer = FlowWriter(fo)
        for f in flows:
            writer.add(f)
    return path
