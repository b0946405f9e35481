"""The input options every command that reads captures shares (analyze, report, export, demo).

One typed set, InputOptions, built from argparse's namespace in one place, so that a command
never reaches for an attribute another command's parser did not add, and `demo` (which has no
such options) builds the same object instead of faking a namespace. `run_analysis` is the one
way a command runs the analysis: progress, warnings and notes on stderr, the same for all.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from phonehome.analysis.modes import LabelError, clean_label, normalize_mode, read_mode

if TYPE_CHECKING:
    from phonehome.analysis.pipeline import Analysis
    from phonehome.analysis.records import ContactRecord, HttpRecord, ProgressCallback

EXIT_OK, EXIT_FINDINGS, EXIT_BAD_INPUT = 0, 1, 2


@dataclass(frozen=True, slots=True)
class InputOptions:
    """Which captures to read and how (DESIGN.md "Command line")."""

    captures: tuple[str, ...]
    profile: str | None = None  # profile.json: known values to look for
    app: str | None = None  # label for flows that carry none
    mode: str | None = None  # label for flows that carry none (normalised)
    keylog: str | None = None  # TLS key log for pcap inputs
    endpoints: tuple[str, ...] = ()  # extra endpoint lists
    jobs: int | None = None  # worker processes for big dumps and HARs; None: every core
    quiet: bool = False  # no progress, notes or summary on stderr (warnings still)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> InputOptions:
        """The options add_input_arguments added, as parsed."""
        return cls(
            captures=tuple(args.captures),
            profile=args.profile,
            app=args.app,
            mode=args.mode,
            keylog=args.keylog,
            endpoints=tuple(args.endpoints),
            jobs=args.jobs,
            quiet=args.quiet,
        )


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the shared options to a command's parser (read back with InputOptions.from_args)."""
    parser.add_argument(
        "captures", nargs="+", metavar="CAPTURE", help="capture dirs, dumps, HAR or pcap files"
    )
    parser.add_argument("--profile", metavar="profile.json", help="device profile: known values to look for")
    parser.add_argument(
        "--app", type=_app, help="label for flows that carry no app label (e.g. com.example.browser)"
    )
    parser.add_argument(
        "--mode", type=_mode, help="label for flows that carry no mode label (normal, incognito, ...)"
    )
    parser.add_argument("--keylog", metavar="FILE", help="TLS key log (SSLKEYLOGFILE format) for pcap inputs")
    parser.add_argument(
        "--endpoints",
        action="append",
        default=[],
        metavar="LIST",
        help="extra endpoint list (hosts file, Disconnect services.json, DuckDuckGo TDS JSON); repeatable",
    )
    parser.add_argument(
        "-j",
        "--jobs",
        type=positive_int,
        default=None,
        metavar="N",
        help="worker processes for big dumps and HARs (default: every core, or $PHONEHOME_WORKERS; 1 = none)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress or summary on stderr")


def add_redact_argument(parser: argparse.ArgumentParser) -> None:
    """`--redact`, one meaning for every command that writes captured data (analysis.redact)."""
    parser.add_argument(
        "--redact",
        action="store_true",
        help="replace identifiers, tokens, user ids, contacts, locations, cookies and credentials with "
        "keyed tags in every form (set PHONEHOME_REDACTION_KEY for tags stable across runs); withhold "
        "what cannot be scrubbed in place; visited URLs and searches are kept",
    )


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _mode(text: str) -> str:
    try:
        return normalize_mode(text)
    except LabelError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _app(text: str) -> str:
    try:
        return clean_label(text, what="app")
    except LabelError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run_analysis(
    options: InputOptions, *, records_out: list[HttpRecord | ContactRecord] | None = None
) -> Analysis:
    """phonehome.analysis.pipeline.analyze with these options; progress and warnings on stderr.

    Bad input raises (CaptureError, ProfileError, ...): `main` turns it into one line and exit 2.
    """
    from phonehome.analysis.pipeline import analyze
    from phonehome.analysis.profile import Profile

    if options.mode is not None:
        warning = read_mode(options.mode, where="--mode").warning
        if warning:
            print(f"phonehome: warning: {warning}", file=sys.stderr)
    progress = None if options.quiet else _progress_printer()
    result = analyze(
        options.captures,
        profile=Profile.load(options.profile) if options.profile else None,
        app=options.app,
        mode=options.mode,
        keylog=options.keylog,
        progress=progress,
        endpoint_lists=options.endpoints,
        workers=options.jobs,
        records_out=records_out,
    )
    if progress is not None and sys.stderr.isatty():
        print(file=sys.stderr)  # end the progress line
    about_inputs = []
    if may_warn_about_inputs(result):
        from phonehome.analysis.verdicts.inputs import input_warnings  # imports pandas

        about_inputs = input_warnings(result)
    for warning in [*result.warnings, *about_inputs]:
        print(f"phonehome: warning: {warning}", file=sys.stderr)
    if not options.quiet:
        for note in result.notes:
            print(f"phonehome: {note}", file=sys.stderr)
    return result


def may_warn_about_inputs(result: Analysis) -> bool:
    """Whether verdicts.inputs.input_warnings could have anything to say, decided on the Arrow
    tables without building DataFrames (that module needs pandas, which `analyze` otherwise never
    imports): True if some input gave no HTTP request, or some capture (session and folder) holds
    more than one app label. When False, input_warnings returns nothing (tests/test_arrow_tables.py
    checks both on real captures)."""
    import os

    import pyarrow.compute as pc

    flows = result.table("flows")
    sources = [str(s) for s in pc.unique(flows.column("source")).to_pylist()] if flows.num_rows else []
    for report in result.sources:
        path = str(report.path)
        prefix = path.rstrip(os.sep) + os.sep
        if not any(source == path or source.startswith(prefix) for source in sources):
            return True
    tables = [result.table(name) for name in ("flows", "contacts")]
    tables = [table for table in tables if table.num_rows]
    if len({app for table in tables for app in pc.unique(table.column("app")).to_pylist()}) < 2:
        return False  # a single app label (or none) throughout
    apps: dict[tuple[str, str], set[str]] = {}
    for table in tables:
        columns = [table.column(c).to_pylist() for c in ("session", "app", "source")]
        for session, app, source in set(zip(*columns, strict=True)):
            key = (session, os.path.dirname(str(source)))
            apps.setdefault(key, set()).add("" if app is None else str(app))
    return any(len(found) > 1 for found in apps.values())


def damage_exit(result: Analysis) -> int:
    """Exit 2, with one line per damaged input, when data was lost; 0 otherwise.

    Called after the outputs are written: what was readable is kept either way.
    """
    for path in result.damaged:
        print(
            f"phonehome: error: {path}: damaged capture; the output holds what could be read "
            "(details in the warnings above)",
            file=sys.stderr,
        )
    return EXIT_BAD_INPUT if result.damaged else EXIT_OK


def _progress_printer() -> ProgressCallback:
    interactive = sys.stderr.isatty()

    def progress(path: str, count: int) -> None:
        if interactive:
            print(f"\r{path}: {count} records", end="", file=sys.stderr, flush=True)

    return progress
