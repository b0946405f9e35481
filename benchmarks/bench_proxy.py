"""Requests/s and per-flow latency through a real mitmdump on loopback, bare vs with phonehome addons.

Same load both times: N sequential HTTPS GETs with a tracking-style query, over one keep-alive
connection, to a loopback TLS upstream (upstream redirected by tests/support_redirect_addon.py).
Usage: python benchmarks/bench_proxy.py [N]   (default 300; prints figures, asserts nothing)
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support_proxy import ROOT, mitmdump, tls_upstream

REDIRECT = ROOT / "tests" / "support_redirect_addon.py"
RECORDER = ROOT / "addons" / "recorder.py"


def run(n: int, addons: list[Path], extra: list[str], tmp: Path, up: int) -> tuple[float, list[float]]:
    confdir = tmp / "conf"
    with mitmdump(confdir, up, addons, extra) as (port, _proc), requests.Session() as s:
        s.trust_env = False
        s.proxies = {"https": f"http://127.0.0.1:{port}"}
        s.verify = str(confdir / "mitmproxy-ca-cert.pem")
        url = (
            "https://sa.api.example.com/sa?url=https%3A%2F%2Fnews.example%2Fstory&android_id=9774d56d682e549c"
        )
        for _ in range(20):  # warm-up
            s.get(url)
        latencies = []
        start = time.perf_counter()
        for _ in range(n):
            t = time.perf_counter()
            s.get(url).raise_for_status()
            latencies.append(time.perf_counter() - t)
        return n / (time.perf_counter() - start), latencies


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        with tls_upstream(tmp) as up:
            bare_rps, bare = run(n, [REDIRECT], [], tmp, up)
            rec = ["--set", f"phonehome_dir={tmp / 'caps'}", "--set", "phonehome_session=bench"]
            ph_rps, ph = run(n, [RECORDER, REDIRECT], rec, tmp, up)
            rec_only = [*rec, "--set", "phonehome_inspect=false"]
            ro_rps, ro = run(n, [RECORDER, REDIRECT], rec_only, tmp, up)

    def pct(xs: list[float], q: int) -> float:
        return statistics.quantiles(xs, n=100)[q - 1] * 1000

    print(f"requests: {n} sequential HTTPS GETs per run")
    print(
        f"bare mitmdump:        {bare_rps:8.1f} req/s  p50 {pct(bare, 50):.2f} ms  p99 {pct(bare, 99):.2f} ms"
    )
    print(f"with phonehome addons:{ph_rps:8.1f} req/s  p50 {pct(ph, 50):.2f} ms  p99 {pct(ph, 99):.2f} ms")
    print(f"recorder, no inspect: {ro_rps:8.1f} req/s  p50 {pct(ro, 50):.2f} ms  p99 {pct(ro, 99):.2f} ms")
    print(f"ratio: {ph_rps / bare_rps:.1%} of bare throughput")
    p50, p99 = pct(ph, 50) - pct(bare, 50), pct(ph, 99) - pct(bare, 99)
    print(f"added latency per flow: p50 {p50:.2f} ms  p99 {p99:.2f} ms")


if __name__ == "__main__":
    main()
