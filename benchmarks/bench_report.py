"""How big and how slow the report is on a big capture: HTML/Markdown size and build time.

Builds (once, cached) a varied Mi-Browser-like session of N requests (benchmarks/varied_session.py:
every URL, id and body different, normal then incognito), analyses it, then times each report
stage separately: the report tables (build_report), the evidence groups and worked examples
(re-reading the example requests from the dump), and the HTML and Markdown renderers (with the
plots). Prints the figures; nothing is asserted (the test suite asserts no timings).

    python benchmarks/bench_report.py             # 30,000 requests
    python benchmarks/bench_report.py 5000 30000 --out /tmp/phonehome-bench
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _varied_session():
    spec = importlib.util.spec_from_file_location("varied_session", ROOT / "benchmarks" / "varied_session.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("varied_session", module)
    spec.loader.exec_module(module)
    return module


def bench(requests: int, out: Path) -> dict[str, float]:
    from phonehome.analysis.pipeline import analyze
    from phonehome.analysis.report import build_report
    from phonehome.analysis.report.evidence import evidence_groups
    from phonehome.analysis.report.html import MAX_EXAMPLES, render_html
    from phonehome.analysis.report.markdown import render_markdown
    from phonehome.analysis.report.worked import worked_examples

    dump, _ = _varied_session().ensure_session(out, requests)
    t0 = time.perf_counter()
    analysis = analyze([dump])
    t1 = time.perf_counter()
    report = build_report(analysis)
    t2 = time.perf_counter()
    groups = evidence_groups(report.findings, report.flows)
    t3 = time.perf_counter()
    examples = worked_examples(groups, report.flows, per_app=MAX_EXAMPLES)
    t4 = time.perf_counter()
    cpu = time.process_time()
    html = render_html(report)  # the whole HTML path, examples and plots included
    html_cpu = time.process_time() - cpu
    t5 = time.perf_counter()
    markdown = render_markdown(report)
    t6 = time.perf_counter()
    return {
        "requests": len(analysis.flows),
        "findings": len(analysis.findings),
        "groups": len(groups),
        "examples": len(examples),
        "analyze_s": t1 - t0,
        "tables_s": t2 - t1,
        "groups_s": t3 - t2,
        "examples_s": t4 - t3,
        "html_s": t5 - t4,
        "html_cpu_s": html_cpu,
        "markdown_s": t6 - t5,
        "report_s": (t2 - t1) + (t5 - t4),
        "html_mb": len(html.encode("utf-8")) / 1e6,
        "markdown_mb": len(markdown.encode("utf-8")) / 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[30_000])
    parser.add_argument("--out", type=Path, default=Path.home() / ".cache" / "phonehome-bench")
    args = parser.parse_args(argv)
    print(
        f"{'requests':>9} {'findings':>9} {'groups':>6} {'analyze':>8} {'tables':>7} {'examples':>9} "
        f"{'html':>6} {'html cpu':>8} {'report':>7} {'HTML MB':>8} {'md':>6} {'MD MB':>6}"
    )
    for size in args.sizes:
        r = bench(size, args.out)
        print(
            f"{r['requests']:>9,} {r['findings']:>9,} {r['groups']:>6,} {r['analyze_s']:>7.2f}s "
            f"{r['tables_s']:>6.2f}s {r['examples_s']:>8.2f}s {r['html_s']:>5.2f}s {r['html_cpu_s']:>7.2f}s "
            f"{r['report_s']:>6.2f}s "
            f"{r['html_mb']:>8.2f} {r['markdown_s']:>5.2f}s {r['markdown_mb']:>6.2f}",
            flush=True,
        )
    print(
        "report = build_report + render_html (examples, plots included); analyze is phonehome analyze's work"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
