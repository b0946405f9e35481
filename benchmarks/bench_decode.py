"""Decoder throughput: fields decoded per second and cost per request on a capture.

Reads the capture once (through analysis.sources.read_source, not timed), then decodes every
HTTP request `--repeat` times and prints requests, fields, time per request and fields/second,
plus the slowest request, and the CPU seconds of one pass (median over the passes: CPU, not
wall, because the machine may be shared). With `--reader` and a mitmproxy dump, the fast dump
reader (analysis.sources.fastdump.iter_dump) is timed the same way. Speed is printed, never
asserted.

Compare two trees PAIRED (alternately, in the same minute), e.g. against a commit's tree made
by benchmarks/bench_peer.py --rev:

    python benchmarks/bench_decode.py                          # the bundled sample capture
    python benchmarks/bench_decode.py ~/.cache/phonehome-bench/varied-v1-5000/flows.mitm --repeat 5 --reader
    python benchmarks/bench_decode.py ~/.cache/phonehome-bench/varied-v1-5000/flows.mitm --repeat 5 --parts
    PYTHONPATH=~/.cache/phonehome-bench/trees/<sha>/pyroot python benchmarks/bench_decode.py ...
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from pathlib import Path

from phonehome.analysis.decode import decode_request
from phonehome.analysis.records import HttpRecord, Labels, SourceReport
from phonehome.analysis.sources import read_source

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "captures" / "sample-mint-browser"


def reader_cpu(capture: Path, repeat: int) -> tuple[int, list[float]]:
    """(records, CPU seconds of each pass) of the fast dump reader over the capture's dump."""
    from phonehome.analysis.sources.fastdump import iter_dump

    dump = capture / "flows.mitm" if capture.is_dir() else capture
    passes = []
    count = 0
    for _ in range(max(1, repeat)):
        c0 = time.process_time()
        count = sum(1 for _ in iter_dump(dump, Labels(), SourceReport(str(dump))))
        passes.append(time.process_time() - c0)
    return count, passes


def print_parts(records: list[HttpRecord], repeat: int) -> None:
    """CPU of each part of decode_request (URL path, query, headers, body: the functions it runs in
    turn, each on a fresh Walker as it would be), median over the passes, then the body's share
    per media type and Content-Encoding: where the decoder's time goes on this capture."""
    from phonehome.analysis.decode import request as req
    from phonehome.analysis.decode.model import DEFAULT_LIMITS
    from phonehome.analysis.decode.walk import Stop, Walker

    def run(part, recs) -> float:
        c0 = time.process_time()
        for rec in recs:
            with contextlib.suppress(Stop):  # max_fields reached: what decode_request stops on
                part(Walker(DEFAULT_LIMITS), rec)
        return time.process_time() - c0

    parts = [
        ("url path", req._url_path),
        ("query", req._query),
        ("headers", req._headers),
        ("body", req._body),
    ]
    passes = max(1, min(repeat, 5))
    print(f"decode CPU per part (median of {passes} passes, ms):")
    for name, part in parts:
        cpu = statistics.median(run(part, records) for _ in range(passes))
        print(f"  {name:10s} {cpu * 1e3:8.1f}")
    kinds: dict[str, list[HttpRecord]] = {}
    for rec in records:
        media = (rec.header("content-type") or "").split(";", 1)[0].strip().lower() or "(none)"
        coding = rec.header("content-encoding")
        kinds.setdefault(f"{media}{' + ' + coding if coding else ''}", []).append(rec)
    rows = [
        (statistics.median(run(req._body, recs) for _ in range(passes)), kind, len(recs))
        for kind, recs in kinds.items()
    ]
    print("body CPU by media type (ms, requests):")
    for cpu, kind, count in sorted(rows, reverse=True)[:12]:
        print(f"  {cpu * 1e3:8.1f} {count:6d}  {kind}")


def _cpu_figures(passes: list[float], items: int, unit: str) -> str:
    """Median CPU of a pass, per item, and the spread (every pass when there are few)."""
    med = statistics.median(passes)
    spread = (
        ", ".join(f"{c * 1e3:.1f}" for c in passes)
        if len(passes) <= 10
        else (f"min {min(passes) * 1e3:.1f}, max {max(passes) * 1e3:.1f}")
    )
    return (
        f"{med * 1e3:.1f} ms median of {len(passes)} passes over {items} ({med / max(items, 1) * 1e3:.3f} "
        f"ms/{unit}; passes in ms: {spread})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("capture", nargs="?", default=str(SAMPLE))
    parser.add_argument("--repeat", type=int, default=200, help="decode every request this many times")
    parser.add_argument("--reader", action="store_true", help="also time the fast dump reader (dumps only)")
    parser.add_argument(
        "--parts", action="store_true", help="also CPU per part of a request, and per body media type"
    )
    args = parser.parse_args(argv)

    import phonehome.analysis.decode as decode_package

    report = SourceReport(args.capture)
    records = [r for r in read_source(args.capture, Labels(), report) if isinstance(r, HttpRecord)]
    if not records:
        print(f"{args.capture}: no HTTP requests")
        return 1
    body_bytes = sum(len(r.request_body) for r in records)
    per_request: list[tuple[float, HttpRecord]] = []
    pass_cpu: list[float] = []
    fields = 0
    truncated = 0
    start = time.perf_counter()
    for _ in range(max(1, args.repeat)):
        c0 = time.process_time()
        for rec in records:
            t0 = time.perf_counter()
            decoded = decode_request(rec)  # dropped at once, as the pipeline does
            per_request.append((time.perf_counter() - t0, rec))
            fields += len(decoded.fields)
            truncated += decoded.truncated
        pass_cpu.append(time.process_time() - c0)
    elapsed = time.perf_counter() - start
    n = len(per_request)
    slowest_time, slowest = max(per_request, key=lambda x: x[0])
    times = sorted(t for t, _ in per_request)
    print(f"decoder            {Path(decode_package.__file__).parent}")
    print(f"capture            {args.capture}")
    print(f"requests           {len(records)} x {args.repeat} = {n}  ({body_bytes} body bytes per pass)")
    print(f"fields             {fields}  ({fields / n:.1f} per request), truncated requests {truncated}")
    print(f"total              {elapsed:.3f} s")
    print(f"per request        mean {elapsed / n * 1e3:.3f} ms, median {times[n // 2] * 1e3:.3f} ms,")
    print(f"                   p99 {times[int(n * 0.99)] * 1e3:.3f} ms, max {slowest_time * 1e3:.3f} ms")
    print(f"fields per second  {fields / elapsed:,.0f}")
    print(f"slowest request    {slowest.method} {slowest.url[:100]}")
    print(f"decode CPU/pass    {_cpu_figures(pass_cpu, len(records), 'request')}")
    if args.parts:
        print_parts(records, args.repeat)
    if args.reader:
        capture = Path(args.capture)
        if capture.suffix in (".mitm", ".flows") or (capture / "flows.mitm").exists():
            count, passes = reader_cpu(capture, args.repeat)
            print(f"fast reader CPU    {_cpu_figures(passes, count, 'record')}")
        else:
            print("fast reader CPU    (not a mitmproxy dump)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
