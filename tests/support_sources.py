"""Paths and helpers for the HAR/pcap source tests (real files copied under tests/data/sources)."""

from __future__ import annotations

from pathlib import Path

from phonehome.analysis.records import Labels, SourceReport
from phonehome.analysis.sources import CaptureError, read_source

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
