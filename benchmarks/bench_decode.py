"""Decoder throughput: fields decoded per second and cost per request on a capture.

Reads the capture once (through analysis.sources.read_source, not timed), then decodes every
HTTP request `--repeat` times and prints requests, fields, time per request and fields/second,
plus the slowest request. Speed is printed, never asserted.

    python benchmarks/bench_decode.py                          # the bundled sample capture
    python benchmarks/bench_decode.py /tmp/phonehome-bench/flows-5000.mitm --repeat 1
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from phonehome.analysis.decode import decode_request
from phonehome.analysis.records import HttpRecord, Labels, SourceReport
from phonehome.analysis.sources import read_source

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "captures" / "sample-mint-browser"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("capture", nargs="?", default=str(SAMPLE))
    parser.add_argument("--repeat", type=int, default=200, help="decode every request this many times")
    args = parser.parse_args(argv)

    report = SourceReport(args.capture)
    records = [r for r in read_source(args.capture, Labels(), report) if isinstance(r, HttpRecord)]
    if not records:
        print(f"{args.capture}: no HTTP requests")
        return 1
    body_bytes = sum(len(r.request_body) for r in records)
    per_request: list[tuple[float, HttpRecord]] = []
    fields = 0
    truncated = 0
    start = time.perf_counter()
    for _ in range(max(1, args.repeat)):
        for rec in records:
            t0 = time.perf_counter()
            decoded = decode_request(rec)
            per_request.append((time.perf_counter() - t0, rec))
            fields += len(decoded.fields)
            truncated += decoded.truncated
    elapsed = time.perf_counter() - start
    n = len(per_request)
    slowest_time, slowest = max(per_request, key=lambda x: x[0])
    times = sorted(t for t, _ in per_request)
    print(f"capture            {args.capture}")
    print(f"requests           {len(records)} x {args.repeat} = {n}  ({body_bytes} body bytes per pass)")
    print(f"fields             {fields}  ({fields / n:.1f} per request), truncated requests {truncated}")
    print(f"total              {elapsed:.3f} s")
    print(f"per request        mean {elapsed / n * 1e3:.3f} ms, median {times[n // 2] * 1e3:.3f} ms,")
    print(f"                   p99 {times[int(n * 0.99)] * 1e3:.3f} ms, max {slowest_time * 1e3:.3f} ms")
    print(f"fields per second  {fields / elapsed:,.0f}")
    print(f"slowest request    {slowest.method} {slowest.url[:100]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
