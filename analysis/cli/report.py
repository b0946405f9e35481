"""`phonehome report` and `phonehome demo` (DESIGN.md "Command line")."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from phonehome.analysis.cli.options import (
    InputOptions,
    add_input_arguments,
    add_redact_argument,
    damage_exit,
    run_analysis,
)


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    add_input_arguments(parser)
    parser.add_argument(
        "-o",
        "--output",
        default="report.html",
        metavar="report.html|report.md",
        help="report file; the suffix picks the format; tables go to <stem>_tables/ (default: %(default)s)",
    )
    add_redact_argument(parser)
    parser.add_argument(
        "--claims", metavar="FILE", help="claims file (TOML) to check against the capture (docs/claims.md)"
    )


def _build(options: InputOptions, *, redact: bool, claims: str | None = None):
    """(analysis, report): the analysis for its damage list, the report to write."""
    from phonehome.analysis.cli.plan import add_study_tables, read_study_inputs
    from phonehome.analysis.report import build_report

    study = read_study_inputs(list(options.captures), claims)  # a bad claims file fails before reading
    result = run_analysis(options)
    report = build_report(result, redact=redact)
    add_study_tables(report, result, list(options.captures), claims, study)  # claims, canaries
    return result, report


def run_report(args: argparse.Namespace) -> int:
    from phonehome.analysis.report import write_report
    from phonehome.analysis.report.provenance import for_run
    from phonehome.analysis.report.write import report_format

    report_format(args.output)  # an unknown report suffix is refused before any reading
    options = InputOptions.from_args(args)
    result, report = _build(options, redact=args.redact, claims=args.claims)
    provenance = for_run(options, redact=args.redact, claims=args.claims)  # the footer: inputs, hashes
    written = write_report(report, Path(args.output), provenance=provenance)
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
    add_redact_argument(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")


def run_demo(args: argparse.Namespace) -> int:
    from phonehome.analysis.installed import sample_capture
    from phonehome.analysis.report import write_report
    from phonehome.analysis.report.provenance import for_run
    from phonehome.analysis.sources import CaptureError

    sample = sample_capture()
    if not (sample / "flows.mitm").is_file():
        raise CaptureError(str(sample), "the bundled sample capture is missing from this installation")
    options = InputOptions(captures=(str(sample),), jobs=1, quiet=args.quiet)
    out = Path(args.output)
    _, report = _build(options, redact=args.redact)
    provenance = for_run(options, redact=args.redact)
    html = write_report(report, out / "report.html", provenance=provenance)
    md = write_report(report, out / "report.md", provenance=provenance)
    print(f"Demo report on {sample.name}:")
    print(f"  HTML:     {html[0].resolve()}")
    print(f"  Markdown: {md[0].resolve()}")
    print(f"  Tables:   {html[1].parent.resolve()}/")
    return 0
