"""Requests/s and per-flow latency through a real mitmdump on loopback, bare vs with phonehome addons.

Three mitmdumps run side by side: bare (only the test redirect addon), with the phonehome addons
(recorder + live inspector), and the recorder alone (`phonehome_inspect=false`). Each round sends
the same load through each of them in turn (rotating which goes first), so slow drift on a shared
machine hits all three alike; the figures printed are medians over the rounds. The load: N
sequential HTTPS GETs over one keep-alive connection to a loopback TLS upstream (redirected by
tests/support_redirect_addon.py), tracking-style query with a visited URL and an Android ID plus a
per-request sequence number and timestamp, as real analytics pings carry (so no two requests are
byte-identical). Prints figures, asserts nothing.

    python benchmarks/bench_proxy.py                  # 21 rounds x 200 requests, about a minute
    python benchmarks/bench_proxy.py -n 100 -r 41     # finer interleaving on a busy machine
    python benchmarks/bench_proxy.py -c 4 --compare-rev HEAD~1   # paired with an older tree's addons

"CPU/flow" is the CPU time the proxy process used per request (Linux /proc), summed over its rounds;
"with children" adds its helper processes (the flow writer, which also inspects; the inspector's
worker where one runs), counted over the whole run. Steadier measures of the addons' cost than
req/s on a shared machine.

The helpers work in the pauses of the traffic (addons/dumpwriter.py), so after each proxy's turn
the next waits until that proxy's helpers have stopped using CPU: their work stays in their own
proxy's round instead of slowing the next proxy's. The wait is printed ("helpers idle ... after
the round's last response"): by then every flow of the round is on disk and every live summary
is back. `-n` larger than the writer's backlog limit (a quarter of its socket buffer: about
1,400 of these flows with net.core.wmem_max and rmem_max at 4 MiB, about 75 at Linux's usual
208 KiB) measures a stream with no pause, where the writer must work beside the proxy.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_peer import checkout

from tests.support_proxy import ROOT, mitmdump, tls_upstream

REDIRECT = ROOT / "tests" / "support_redirect_addon.py"
RECORDER = ROOT / "addons" / "recorder.py"
URL = "https://sa.api.example.com/sa?url=https%3A%2F%2Fnews.example%2Fstory&android_id=9774d56d682e549c"
CONFIGS = ("bare", "addons", "recorder")
SETTLE = 3.0  # seconds after the last round for the idle-priority helper processes to catch up


def proc_cpu(pid: int) -> float | None:
    """User+system CPU seconds so far of a process (Linux /proc), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def children(pid: int) -> list[int]:
    """Child process ids (Linux /proc), e.g. the live inspector's worker."""
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        return [int(k) for t in tasks for k in (t / "children").read_text().split()]
    except (OSError, ValueError):
        return []


def tree_cpu(pid: int) -> float | None:
    """CPU seconds of a process and its children, or None."""
    own = proc_cpu(pid)
    return None if own is None else own + sum(tree_cpu(k) or 0.0 for k in children(pid))


@contextmanager
def pythonpath(root: Path | None):
    """PYTHONPATH=root for the processes started inside (mitmdump and its helper children), so
    `phonehome.addons` is imported from an older tree laid out by bench_peer.checkout."""
    if root is None:
        yield
        return
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(root)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def proxy_clients(stack: ExitStack, port: int, confdir: Path, n: int) -> list[requests.Session]:
    """n keep-alive HTTPS clients through the proxy on `port`, trusting the CA in `confdir`."""
    clients = []
    for _ in range(n):
        s = stack.enter_context(requests.Session())
        s.trust_env = False
        s.proxies = {"https": f"http://127.0.0.1:{port}"}
        s.verify = str(confdir / "mitmproxy-ca-cert.pem")
        clients.append(s)
    return clients


def _gets(s: requests.Session, n: int, seq: itertools.count) -> list[float]:
    latencies = []
    for _ in range(n):
        url = f"{URL}&seq={next(seq)}&ts={time.time_ns() // 1_000_000}"
        t = time.perf_counter()
        s.get(url).raise_for_status()
        latencies.append(time.perf_counter() - t)
    return latencies


def load(clients: list[requests.Session], n: int, seq: itertools.count) -> tuple[float, list[float]]:
    """n GETs, split over the clients (each a keep-alive connection, sequential requests, one
    thread each); requests/s and each request's latency in seconds."""
    start = time.perf_counter()
    if len(clients) == 1:
        latencies = _gets(clients[0], n, seq)
    else:
        with ThreadPoolExecutor(len(clients)) as pool:
            parts = pool.map(_gets, clients, [n // len(clients)] * len(clients), [seq] * len(clients))
            latencies = [x for part in parts for x in part]
    return len(latencies) / (time.perf_counter() - start), latencies


def schedstat_cpu(pid: int) -> int:
    """CPU nanoseconds so far of a process's main thread (Linux /proc/PID/schedstat), else 0."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def settle(pid: int, limit: float = SETTLE) -> float:
    """Wait until the proxy's helper processes stop using CPU (the writer has written and inspected
    what it was sent; the inspector's worker has answered), at most `limit` seconds; the seconds
    waited. Each proxy's deferred work then stays in its own round instead of slowing the next
    proxy's, and the wait is how late the last live summary of a round came."""
    start = time.perf_counter()
    kids = children(pid)
    if not kids:
        return 0.0
    last, still = -1, 0
    while time.perf_counter() - start < limit:
        now = sum(schedstat_cpu(k) for k in kids)
        still = still + 1 if now == last else 0
        if still >= 2:  # unchanged over two looks 20 ms apart
            return time.perf_counter() - start - 0.04
        last = now
        time.sleep(0.02)
    return limit


def pct(xs: list[float], q: int) -> float:
    """q-th percentile in milliseconds."""
    return statistics.quantiles(xs, n=100)[q - 1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", "--requests", type=int, default=200, help="requests per run (default 200)")
    parser.add_argument("-r", "--rounds", type=int, default=21, help="interleaved rounds (default 21)")
    parser.add_argument(
        "-w", "--warmup", type=int, default=30, help="warm-up requests per proxy (default 30)"
    )
    parser.add_argument(
        "-c",
        "--clients",
        type=int,
        default=1,
        help="concurrent keep-alive connections (default 1: the phone's experience, latency-bound;"
        " 4 or more: the proxy's CPU becomes the limit)",
    )
    parser.add_argument(
        "--recorder", type=Path, default=RECORDER, help="recorder addon to load (to compare against a copy)"
    )
    parser.add_argument(
        "--compare",
        type=Path,
        default=None,
        help="a second recorder file, run as a fourth proxy in the same interleaved rounds (it imports"
        " the other addons from the installed tree: to compare a whole older tree, use --compare-rev)",
    )
    parser.add_argument(
        "--compare-rev",
        metavar="REV",
        help="run git revision REV's addons (the whole tree: recorder, writer, inspector) as a fourth"
        " proxy in the same interleaved rounds; its tree is kept in --cache",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path.home() / ".cache" / "phonehome-bench",
        help="where --compare-rev trees are kept (shared with bench_peer.py --rev)",
    )
    args = parser.parse_args()
    compare_root = checkout(args.compare_rev, args.cache) if args.compare_rev else None
    if compare_root is not None:
        args.compare = compare_root / "phonehome" / "addons" / "recorder.py"
    configs = CONFIGS + (("compare",) if args.compare else ())

    with tempfile.TemporaryDirectory() as d, ExitStack() as stack:
        tmp = Path(d)
        up = stack.enter_context(tls_upstream(tmp))
        rec = ["--set", f"phonehome_dir={tmp / 'caps'}"]
        setups = {
            "bare": ([REDIRECT], []),
            "addons": ([args.recorder, REDIRECT], [*rec, "--set", "phonehome_session=addons"]),
            "recorder": (
                [args.recorder, REDIRECT],
                [*rec, "--set", "phonehome_session=rec", "--set", "phonehome_inspect=false"],
            ),
        }
        if args.compare:
            setups["compare"] = ([args.compare, REDIRECT], [*rec, "--set", "phonehome_session=compare"])
        sessions, pids = {}, {}
        for name in configs:
            confdir = tmp / "conf"  # shared: one CA for all three
            addons, extra = setups[name]
            with pythonpath(compare_root if name == "compare" else None):
                port, proc = stack.enter_context(mitmdump(confdir, up, addons, extra))
            sessions[name], pids[name] = proxy_clients(stack, port, confdir, args.clients), proc.pid
        seq = itertools.count()
        for name in configs:
            load(sessions[name], args.warmup, seq)
        time.sleep(3)  # let the inspector's worker process finish starting (imports) and catch up

        rps: dict[str, list[float]] = {c: [] for c in configs}
        p50: dict[str, list[float]] = {c: [] for c in configs}
        p99: dict[str, list[float]] = {c: [] for c in configs}
        cpu: dict[str, list[float]] = {c: [] for c in configs}
        caught_up: dict[str, list[float]] = {c: [] for c in configs}
        has_worker = {c: bool(children(pids[c])) for c in configs}
        kids_start = {c: (tree_cpu(pids[c]) or 0.0) - (proc_cpu(pids[c]) or 0.0) for c in configs}
        for i in range(args.rounds):
            k = i % len(configs)
            order = configs[k:] + configs[:k]
            for name in order:
                before = proc_cpu(pids[name])
                r, lat = load(sessions[name], args.requests, seq)
                after = proc_cpu(pids[name])
                caught_up[name].append(settle(pids[name]))
                rps[name].append(r)
                p50[name].append(pct(lat, 50))
                p99[name].append(pct(lat, 99))
                if before is not None and after is not None:
                    cpu[name].append((after - before) * 1000)
            print(
                f"round {i + 1}/{args.rounds}: "
                + "  ".join(f"{c} {rps[c][-1]:.0f}/s" for c in configs)
                + f"  ratio {rps['addons'][-1] / rps['bare'][-1]:.1%}",
                flush=True,
            )

        # the helper processes run at idle priority: their work is deferred, also into the other
        # proxies' rounds, so it is counted over the whole run, once they have caught up
        time.sleep(SETTLE)
        tree = {}
        for c in configs:  # per round: the proxy's own, and an equal share of its children's
            kids = (tree_cpu(pids[c]) or 0.0) - (proc_cpu(pids[c]) or 0.0) - kids_start[c]
            tree[c] = [own + kids * 1000 / args.rounds for own in cpu[c]]

    med = statistics.median

    def per_flow(ms: list[float]) -> float:
        """CPU ms per request over all rounds (per round, /proc's 10 ms ticks are too coarse)."""
        return sum(ms) / (len(ms) * args.requests)

    ratio = [a / b for a, b in zip(rps["addons"], rps["bare"], strict=True)]
    ratio_rec = [a / b for a, b in zip(rps["recorder"], rps["bare"], strict=True)]
    add50 = [a - b for a, b in zip(p50["addons"], p50["bare"], strict=True)]
    add99 = [a - b for a, b in zip(p99["addons"], p99["bare"], strict=True)]
    how = "sequential," if args.clients == 1 else f"over {args.clients} concurrent connections,"
    print(f"\n{args.rounds} interleaved rounds x {args.requests} HTTPS GETs {how} medians over rounds")
    labels = {
        "bare": "bare mitmdump",
        "addons": "with phonehome addons",
        "recorder": "recorder, no inspect",
        "compare": f"{args.compare_rev or '--compare'} addons"[:22],
    }
    for c in configs:
        cpu_text = f"  CPU/flow: proxy {per_flow(cpu[c]):.3f} ms" if cpu[c] else ""
        if tree[c] and has_worker[c]:
            cpu_text += f", with children {per_flow(tree[c]):.3f} ms"
        print(
            f"{labels[c]:22s}{med(rps[c]):8.1f} req/s"
            f"  p50 {med(p50[c]):.2f} ms  p99 {med(p99[c]):.2f} ms{cpu_text}"
        )
        if has_worker[c]:
            waits = caught_up[c]
            print(
                f"{'':22s}helpers idle {med(waits) * 1000:.0f} ms after the round's last response"
                f" (max {max(waits) * 1000:.0f} ms): the last live summary came by then"
            )
    print(f"ratio, addons/bare:    {med(ratio):.1%}  (rounds: {min(ratio):.1%} .. {max(ratio):.1%})")
    print(
        f"ratio, recorder/bare:  {med(ratio_rec):.1%}  (rounds: {min(ratio_rec):.1%} .. {max(ratio_rec):.1%})"
    )
    if args.compare:
        ratio_cmp = [a / b for a, b in zip(rps["compare"], rps["bare"], strict=True)]
        spread = f"(rounds: {min(ratio_cmp):.1%} .. {max(ratio_cmp):.1%})"
        print(f"ratio, compare/bare:   {med(ratio_cmp):.1%}  {spread}")
        vs = [a / b for a, b in zip(rps["addons"], rps["compare"], strict=True)]
        print(f"ratio, addons/compare: {med(vs):.1%}  (same rounds)")
        if cpu["addons"] and cpu["compare"]:
            dcpu = per_flow(cpu["addons"]) - per_flow(cpu["compare"])
            dtree = per_flow(tree["addons"]) - per_flow(tree["compare"])
            print(f"CPU/flow, addons - compare: proxy {dcpu:+.3f} ms, with children {dtree:+.3f} ms")
    print(
        "added latency per flow (addons - bare, same round):"
        f" p50 {med(add50):.2f} ms  p99 {med(add99):.2f} ms"
    )


if __name__ == "__main__":
    main()
