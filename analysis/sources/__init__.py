"""Capture sources: turn files on disk into records (HttpRecord, ContactRecord).

Every reader streams, reports what it could not read in a SourceReport, and raises
CaptureError (one line naming the file and the problem) only when nothing usable is there.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from phonehome.analysis.labels import internal_kind, note_internal
from phonehome.analysis.records import ContactRecord, HttpRecord, Labels, SourceReport

Record = HttpRecord | ContactRecord


class CaptureError(Exception):
    """A capture that cannot be read; str() is the one-line message for the user."""

    def __init__(self, path: str | Path, problem: str, position: int | None = None):
        self.path = str(path)
        self.problem = problem
        self.position = position
        where = f" (at byte {position})" if position is not None else ""
        super().__init__(f"{self.path}: {problem}{where}")


# The one list of input file names per kind (sniff_kind, deduplication's source ranking).
DUMP_SUFFIXES = (".mitm", ".flows", ".dump", ".historical")
HAR_SUFFIXES = (".har", ".zhar")
PCAP_SUFFIXES = (".pcap", ".pcapng", ".cap", ".pcap.gz", ".pcapng.gz")


def sniff_kind(path: Path) -> str:
    """'capture_dir', 'dump', 'har' or 'pcap', by name first and then by the first bytes."""
    if path.is_dir():
        return "capture_dir"
    name = path.name.lower()
    if name.endswith(HAR_SUFFIXES):
        return "har"
    if name.endswith(PCAP_SUFFIXES):
        return "pcap"
    if name.endswith(DUMP_SUFFIXES):
        return "dump"
    with path.open("rb") as fo:
        head = fo.read(8)
    if head[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"):
        return "pcap"
    if head[:4] == b"\x0a\x0d\x0d\x0a":
        return "pcap"
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        return "har"
    if head[:1].isdigit():
        return "dump"
    raise CaptureError(path, "not a capture (expected a capture directory, mitmproxy dump, HAR or pcap)")


def read_source(
    path: str | Path,
    defaults: Labels,
    report: SourceReport,
    keylog: str | Path | None = None,
    *,
    kind: str | None = None,
) -> Iterator[Record]:
    """Records from one capture path, in order, in this process; `kind` if already sniffed.

    Raises CaptureError for a missing or unreadable path. (The analysis reads through
    phonehome.analysis.reader, which sends big dumps and HARs to worker processes instead.)
    """
    path = Path(path)
    if not path.exists():
        raise CaptureError(path, "no such file or directory")
    kind = kind or sniff_kind(path)
    if kind == "capture_dir":
        from phonehome.analysis.sources.capture_dir import read_capture_dir

        yield from read_capture_dir(path, defaults, report)
    elif kind == "dump":
        from phonehome.analysis.sources.fastdump import read_dump

        yield from read_dump(path, defaults, report)
    elif kind == "har":
        from phonehome.analysis.sources.har import read_har

        yield from app_traffic(read_har(path, defaults, report), report)
    else:
        from phonehome.analysis.sources.pcap import read_pcap

        yield from app_traffic(read_pcap(path, defaults, report, keylog=keylog), report)


def app_traffic(records: Iterator[Record], report: SourceReport) -> Iterator[Record]:
    """HAR and pcap records without requests the proxy answers itself (mitm.it, phonehome.mark),
    counted in report.notes; dumps carry the recorder's own mark and their readers leave them out.
    (analysis.parallel applies it to each range of a big HAR in its worker.)"""
    for record in records:
        kind = internal_kind(None, record.host) if isinstance(record, HttpRecord) else None
        if kind is None:
            yield record
        else:
            report.records -= 1
            note_internal(report, kind)
