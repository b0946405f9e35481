"""Throughput of the HAR and pcap readers: requests/s for HAR, packets/s for pcap.

    python benchmarks/bench_sources.py [--repeat N] [--har PATH]

Inputs are built from the real test files by repetition (bounded: about 20k packets / 5k entries),
in a temporary directory; figures are printed, never asserted.

`--har PATH` (e.g. the varied session of bench_peer.py, ~/.cache/phonehome-bench/varied-v1-5000/
flows.har) also prints read_har's in-process CPU on that file (median of --repeat runs, ms per
entry) and how many entries took each way to a record: their request's parts computed directly
(sources.har._plain_request) or built by mitmproxy's Request.make (anything not plain), and how
many request bodies were re-compressed for their Content-Encoding (mitmproxy's encoder; brotli at
mitmproxy 11's quality 11 is about half of reading the varied session).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

from phonehome.analysis.records import Labels, SourceReport
from phonehome.analysis.sources import har as har_source
from phonehome.analysis.sources.har import read_har
from phonehome.analysis.sources.pcap import read_pcap

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "sources"


def make_har(out: Path, entries: int) -> int:
    doc = json.loads((DATA / "har" / "tweasel" / "android_first-run.har").read_text(encoding="utf-8"))
    base = doc["log"]["entries"]
    doc["log"]["entries"] = [base[i % len(base)] for i in range(entries)]
    out.write_text(json.dumps(doc))
    return entries


def make_pcap(out: Path, packets: int) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from scapy.utils import PcapWriter, rdpcap

    pkts = []
    for name in (
        "scapy/http_content_length.pcap",
        "tcpdump_tests/dns_udp.pcap",
        "illustrated_tls13/capture.pcap",
    ):
        pkts.extend(rdpcap(str(DATA / "pcap" / name)))
    writer = PcapWriter(str(out), linktype=1, sync=False)
    written = 0
    t0 = 1.6e9
    while written < packets:
        for p in pkts:
            if p.__class__.__name__ != "Ether":
                continue
            p.time = t0 + written * 0.001
            writer.write(p)
            written += 1
            if written >= packets:
                break
    writer.close()
    return written


def timed(fn) -> tuple[int, float]:
    start = time.perf_counter()
    n = sum(1 for _ in fn())
    return n, time.perf_counter() - start


def har_cpu(path: Path, repeat: int) -> None:
    """read_har's in-process CPU on `path` and the ways its entries took (see the docstring)."""
    runs = []
    for _ in range(repeat):
        start = time.process_time()
        n = sum(1 for _ in read_har(path, Labels("b"), SourceReport(str(path))))
        runs.append(time.process_time() - start)
    cpu = statistics.median(runs)
    ways = {"plain": 0, "Request.make": 0, "re-compressed": 0}
    plain_request = har_source._plain_request

    def counted(request, timestamp):
        found = plain_request(request, timestamp)
        ways["plain" if found is not None else "Request.make"] += 1
        if any(h["name"].lower() == "content-encoding" for h in request["headers"]):
            ways["re-compressed"] += 1
        return found

    har_source._plain_request = counted
    try:
        sum(1 for _ in read_har(path, Labels("b"), SourceReport(str(path))))
    finally:
        har_source._plain_request = plain_request
    print(
        f"HAR {path}: {n} records, read_har CPU {cpu:.3f} s (median of {repeat}: "
        f"{', '.join(f'{r:.3f}' for r in runs)}) = {1000 * cpu / max(n, 1):.3f} ms/entry; "
        f"request parts computed {ways['plain']}, built by Request.make {ways['Request.make']}, "
        f"body with a Content-Encoding {ways['re-compressed']}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=5000)
    ap.add_argument("--packets", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each --har measurement (median)")
    ap.add_argument("--har", type=Path, action="append", default=[], help="also time read_har on this HAR")
    args = ap.parse_args(argv)
    for path in args.har:
        har_cpu(path, max(1, args.repeat))
    with tempfile.TemporaryDirectory() as tmp:
        har = Path(tmp) / "bench.har"
        entries = make_har(har, min(args.entries, 50000))
        n, secs = timed(lambda: read_har(har, Labels("b"), SourceReport(str(har))))
        print(f"HAR: {entries} entries -> {n} records in {secs:.2f} s = {n / secs:,.0f} requests/s")
        pcap = Path(tmp) / "bench.pcap"
        packets = make_pcap(pcap, min(args.packets, 200000))
        n, secs = timed(lambda: read_pcap(pcap, Labels("b"), SourceReport(str(pcap))))
        print(f"pcap: {packets} packets -> {n} records in {secs:.2f} s = {packets / secs:,.0f} packets/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
