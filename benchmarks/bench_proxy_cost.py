"""Where the recorder's proxy CPU goes: the same load through mitmdumps that add one piece at a time.

bench_proxy.py measures what the addons cost the proxy. This script splits that cost. Each
mitmdump runs the test redirect script plus one of these:

- bare: nothing more;
- noop x1: a second script with one addon whose hooks do nothing;
- noop x4: a second script with four such addons, with the same hook names as the recorder
  script's four addons (guard, inspector, recorder, WireGuard QR). mitmproxy walks every addon of
  every script on every event, so this is the cost of being loaded, without any of the work;
- recorder: the recorder script, live inspection off (its writer process writes every flow);
- writer stopped: the same, with its writer process stopped (SIGSTOP) during the turn, so the
  proxy's own work is measured without a helper on the other core. The flows wait in the socket
  and are written after the turn. The turn must fit in the socket: about 2,900 of these flows with
  net.core.wmem_max and rmem_max at 4 MiB. A longer turn would make the proxy write the flows that
  do not fit itself;
- addons: the recorder script as shipped, live inspection on.

Rounds are interleaved, with the order rotated each round and each proxy's helpers allowed to go
idle after its turn (bench_proxy.settle). The script prints medians over the rounds: requests/s,
the proxy's own CPU per flow (from /proc), each line's CPU against bare and against the line
above, and the CPU's spread over the rounds (differences smaller than it are noise). It asserts
nothing.

    python benchmarks/bench_proxy_cost.py                 # 4 connections, 5 rounds x 2,000 requests
    python benchmarks/bench_proxy_cost.py -n 3000 -r 3
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench_proxy import RECORDER, REDIRECT, children, load, proc_cpu, proxy_clients, settle

from tests.support_proxy import mitmdump, tls_upstream

CONFIGS = ("bare", "noop x1", "noop x4", "recorder", "writer stopped", "addons")


def recorder_hook_names() -> list[list[str]]:
    """Each of the recorder script's addons' hook names (mitmproxy's registered hooks they define)."""
    import mitmproxy.proxy.layers  # noqa: F401  (registers the flow hooks with mitmproxy.hooks)
    from mitmproxy import hooks

    from phonehome.addons import recorder

    return [
        sorted(name for name in hooks.all_hooks if callable(getattr(addon, name, None)))
        for addon in recorder.addons
    ]


def noop_script(path: Path, hook_sets: list[list[str]]) -> Path:
    """A mitmproxy script with one addon per hook set, every hook doing nothing."""
    lines = []
    for i, names in enumerate(hook_sets):
        lines.append(f"class Noop{i}:")
        lines += [f"    def {name}(self, *args):\n        pass" for name in names] or ["    pass"]
    lines.append(f"addons = [{', '.join(f'Noop{i}()' for i in range(len(hook_sets)))}]")
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", "--requests", type=int, default=2000, help="requests per turn (default 2000)")
    parser.add_argument("-r", "--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("-c", "--clients", type=int, default=4, help="concurrent connections (default 4)")
    args = parser.parse_args()

    hook_sets = recorder_hook_names()
    with tempfile.TemporaryDirectory() as d, ExitStack() as stack:
        tmp = Path(d)
        up = stack.enter_context(tls_upstream(tmp))
        rec = ["--set", f"phonehome_dir={tmp / 'caps'}"]
        no_inspect = ["--set", "phonehome_inspect=false"]
        setups = {
            "bare": ([REDIRECT], []),
            "noop x1": ([noop_script(tmp / "noop1.py", hook_sets[:1]), REDIRECT], []),
            "noop x4": ([noop_script(tmp / "noop4.py", hook_sets), REDIRECT], []),
            "recorder": ([RECORDER, REDIRECT], [*rec, "--set", "phonehome_session=rec", *no_inspect]),
            "writer stopped": ([RECORDER, REDIRECT], [*rec, "--set", "phonehome_session=stop", *no_inspect]),
            "addons": ([RECORDER, REDIRECT], [*rec, "--set", "phonehome_session=addons"]),
        }
        sessions, pids = {}, {}
        for name in CONFIGS:
            addons, extra = setups[name]
            port, proc = stack.enter_context(mitmdump(tmp / "conf", up, addons, extra))
            sessions[name], pids[name] = proxy_clients(stack, port, tmp / "conf", args.clients), proc.pid
        seq = itertools.count()
        for name in CONFIGS:
            load(sessions[name], 100, seq)
        time.sleep(3)  # the helper processes finish starting

        rps: dict[str, list[float]] = {c: [] for c in CONFIGS}
        cpu: dict[str, list[float]] = {c: [] for c in CONFIGS}
        for i in range(args.rounds):
            order = CONFIGS[i % len(CONFIGS) :] + CONFIGS[: i % len(CONFIGS)]
            for name in order:
                stopped = children(pids[name]) if name == "writer stopped" else []
                for pid in stopped:
                    os.kill(pid, signal.SIGSTOP)
                before = proc_cpu(pids[name])
                r, _ = load(sessions[name], args.requests, seq)
                after = proc_cpu(pids[name])
                for pid in stopped:
                    os.kill(pid, signal.SIGCONT)
                settle(pids[name], limit=10.0 if stopped else 3.0)
                rps[name].append(r)
                if before is not None and after is not None:
                    cpu[name].append((after - before) * 1000 / args.requests)
            turns = "  ".join(f"{c} {rps[c][-1]:.0f}/s" for c in CONFIGS)
            print(f"round {i + 1}/{args.rounds}: {turns}", flush=True)

    med = statistics.median
    print(
        f"\n{args.rounds} interleaved rounds x {args.requests} HTTPS GETs over {args.clients} connections,"
        " medians over rounds"
    )
    print(
        f"{'':16s}{'req/s':>8s}{'of bare':>9s}{'proxy CPU/flow':>16s}{'vs bare':>10s}{'vs above':>10s}"
        "  CPU/flow over the rounds"
    )
    bare_rps, bare_cpu, above = med(rps["bare"]), med(cpu["bare"]), None
    for c in CONFIGS:
        flow_cpu = med(cpu[c])
        vs_above = f"{flow_cpu - above:+.3f}" if above is not None else ""
        print(
            f"{c:16s}{med(rps[c]):8.0f}{med(rps[c]) / bare_rps:9.1%}{flow_cpu:13.3f} ms"
            f"{flow_cpu - bare_cpu:+10.3f}{vs_above:>10s}  {min(cpu[c]):.3f} .. {max(cpu[c]):.3f}"
        )
        above = flow_cpu


if __name__ == "__main__":
    main()
