"""`phonehome report` and `phonehome demo` (DESIGN.md "Command line")."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    from phonehome.analysis.cli.main import add_input_arguments

    add_input_arguments(parser)
    parser.add_argument(
        "-o",
        "--output",
        default="report.html",
        metavar="report.html|report.md",
        help="report file; the suffix picks the format; tables go to <stem>_tables/ (default: %(default)s)",
    )
    parser.add_argument(
        "--redact",
        action="store_true",
        help="replace identifiers, tokens and cookies with short stable hashes",
    )
    parser.add_argument(
        "--claims", metavar="FILE", help="claims file (TOML) to check against the capture (docs/claims.md)"
    )


def _build(args: argparse.Namespace):
    """(analysis, report): the analysis for its damage list, the report to write."""
    from phonehome.analysis.cli.main import run_analysis
    from phonehome.analysis.cli.plan import add_study_tables
    from phonehome.analysis.report import build_report

    result = run_analysis(args)
    report = build_report(result, redact=args.redact)
    add_study_tables(report, result, args.captures, getattr(args, "claims", None))  # claims, canaries
    return result, report


def run_report(args: argparse.Namespace) -> int:
    from phonehome.analysis.cli.main import damage_exit
    from phonehome.analysis.report import write_report

    result, report = _build(args)
    written = write_report(report, Path(args.output))
    if not args.quiet:
        print(f"report: {written[0]}  tables: {written[1].parent}", file=sys.stderr)
    print(written[0])
    return damage_exit(result)


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o",
        "--output",
        default="phonehome-demo",
        metavar="DIR",
        help="directory for report.html, report.md and tables (default: ./%(default)s)",
    )
    parser.add_argument("--redact", action="store_true", help="redact identifiers, tokens and cookies")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")


def run_demo(args: argparse.Namespace) -> int:
    from phonehome.analysis.installed import sample_capture
    from phonehome.analysis.report import write_report
    from phonehome.analysis.sources import CaptureError

    sample = sample_capture()
    if not (sample / "flows.mitm").is_file():
        raise CaptureError(str(sample), "the bundled sample capture is missing from this installation")
    demo = argparse.Namespace(
        captures=[str(sample)],
        profile=None,
        app=None,
        mode=None,
        keylog=None,
        endpoints=[],
        jobs=1,
        quiet=args.quiet,
        redact=args.redact,
    )
    out = Path(args.output)
    _, report = _build(demo)
    html = write_report(report, out / "report.html")
    md = write_report(report, out / "report.md")
    print(f"Demo report on {sample.name}:")
    print(f"  HTML:     {html[0].resolve()}")
    print(f"  Markdown: {md[0].resolve()}")
    print(f"  Tables:   {html[1].parent.resolve()}/")
    return 0
