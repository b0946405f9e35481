"""`phonehome`: the command line (DESIGN.md "Command line").

Exit codes: 0 ok, 1 a findings-level failure the user asked to fail on, 2 bad input (one line
naming the file and the problem, never a traceback).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from phonehome.analysis import __version__
from phonehome.analysis.classify import EndpointListError
from phonehome.analysis.profile import Profile, ProfileError
from phonehome.analysis.sources import CaptureError
from phonehome.analysis.verdicts.fail_on import FailOnError, failing, parse_fail_on

EXIT_OK, EXIT_FINDINGS, EXIT_BAD_INPUT = 0, 1, 2

# Subcommands whose code lives in their own module: name -> (module, add_arguments, run, help).
PLUGGED_COMMANDS: dict[str, tuple[str, str, str, str]] = {
    "record": (
        "phonehome.analysis.cli.record",
        "add_arguments",
        "run",
        "record a phone's traffic through mitmproxy",
    ),
    "report": (
        "phonehome.analysis.cli.report",
        "add_report_arguments",
        "run_report",
        "build a per-app leakage report (HTML or Markdown)",
    ),
    "demo": (
        "phonehome.analysis.cli.report",
        "add_demo_arguments",
        "run_demo",
        "report on the bundled sample capture",
    ),
    "plan": (
        "phonehome.analysis.cli.plan",
        "add_arguments",
        "run",
        "write a canary test plan (plan.json) and print its checklist",
    ),
    "export": (
        "phonehome.analysis.cli.export",
        "add_arguments",
        "run",
        "export a capture's flows as HAR with findings",
    ),
}


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every command that reads captures shares (analyze, report, export)."""
    parser.add_argument(
        "captures", nargs="+", metavar="CAPTURE", help="capture dirs, dumps, HAR or pcap files"
    )
    parser.add_argument("--profile", metavar="profile.json", help="device profile: known values to look for")
    parser.add_argument("--app", help="label for flows that carry no app label (e.g. com.example.browser)")
    parser.add_argument("--mode", help="label for flows that carry no mode label (normal, incognito, ...)")
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
        type=_positive_int,
        default=None,
        metavar="N",
        help="worker processes for big dumps (default: every core, or $PHONEHOME_WORKERS; 1 = none)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress or summary on stderr")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def load_profile_arg(path: str | None) -> Profile | None:
    return Profile.load(path) if path else None


def run_analysis(args: argparse.Namespace):
    """phonehome.analysis.pipeline.analyze with the shared input options; progress and warnings on stderr."""
    from phonehome.analysis.pipeline import analyze

    progress = None if args.quiet else _progress_printer()
    result = analyze(
        args.captures,
        profile=load_profile_arg(args.profile),
        app=args.app,
        mode=args.mode,
        keylog=args.keylog,
        progress=progress,
        endpoint_lists=getattr(args, "endpoints", ()),
        workers=getattr(args, "jobs", None),
    )
    if progress is not None and sys.stderr.isatty():
        print(file=sys.stderr)  # end the progress line
    from phonehome.analysis.verdicts.inputs import empty_input_warnings

    for warning in [*result.warnings, *empty_input_warnings(result)]:
        print(f"phonehome: warning: {warning}", file=sys.stderr)
    if not args.quiet:
        for note in result.notes:
            print(f"phonehome: {note}", file=sys.stderr)
    return result


def damage_exit(result) -> int:
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


def _progress_printer():
    interactive = sys.stderr.isatty()

    def progress(path: str, count: int) -> None:
        if interactive:
            print(f"\r{path}: {count} records", end="", file=sys.stderr, flush=True)

    return progress


def cmd_analyze(args: argparse.Namespace) -> int:
    from phonehome.analysis.pipeline import write_tables

    fail_on = parse_fail_on(args.fail_on) if args.fail_on is not None else None  # checked before reading
    result = run_analysis(args)
    if args.redact:
        from phonehome.analysis.report.redact import redact_tables

        result.findings, result.flows, result.contacts = redact_tables(
            result.findings, result.flows, result.contacts
        )
    written = write_tables(result, args.output)
    if not args.quiet:
        findings = result.findings
        print(
            f"{len(result.flows)} requests, {len(result.contacts)} other contacts, "
            f"{len(findings)} findings ({findings['data_type'].nunique()} data types, "
            f"{findings['host'].nunique()} hosts) -> {Path(args.output)}",
            file=sys.stderr,
        )
    for path in written:
        print(path)
    if result.damaged:
        return damage_exit(result)
    if fail_on is not None:
        hit = failing(result.findings, fail_on)
        if not hit.empty:
            print(
                f"phonehome: {len(hit)} finding(s) of type {', '.join(sorted(set(hit['data_type'])))}",
                file=sys.stderr,
            )
            return EXIT_FINDINGS
    return EXIT_OK


def cmd_addons_path(args: argparse.Namespace) -> int:
    """Print where the installed addons are, for `mitmdump -s "$(phonehome addons-path)/recorder.py"`."""
    from phonehome.analysis.installed import addons_dir, recorder_addon

    print(recorder_addon() if args.recorder else addons_dir())
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="phonehome", description="Show, with evidence, what an Android phone and its apps send home."
    )
    parser.add_argument("--version", action="version", version=f"phonehome {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    analyze = sub.add_parser("analyze", help="decode and classify captures into findings tables")
    add_input_arguments(analyze)
    analyze.add_argument(
        "-o",
        "--output",
        default="phonehome-out",
        metavar="OUT_DIR",
        help="where to write findings.csv, findings.parquet, flows.parquet (default: %(default)s)",
    )
    analyze.add_argument(
        "--redact",
        action="store_true",
        help="replace identifier, token and cookie values with short stable hashes, for sharing",
    )
    analyze.add_argument(
        "--fail-on",
        metavar="TYPES",
        help="exit 1 if any finding has one of these data types: comma-separated types (url), families "
        "(device_id = every device_id.*), or 'any'",
    )
    analyze.set_defaults(func=cmd_analyze)

    addons_path = sub.add_parser(
        "addons-path",
        help="print the folder of the installed mitmproxy addons (for mitmdump -s)",
        description='Print the installed addons folder: mitmdump -s "$(phonehome addons-path)/recorder.py"',
    )
    addons_path.add_argument(
        "--recorder", action="store_true", help="print the recorder addon's file instead"
    )
    addons_path.set_defaults(func=cmd_addons_path)

    for name, (module_name, add_name, run_name, help_text) in PLUGGED_COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # that capability is not installed in this build
        command = sub.add_parser(name, help=help_text)
        getattr(module, add_name)(command)
        command.set_defaults(func=getattr(module, run_name))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "report":  # an unknown report suffix is refused before any reading
            from phonehome.analysis.report.write import ReportPathError, report_format

            try:
                report_format(args.output)
            except ReportPathError as exc:
                print(f"phonehome: error: {exc}", file=sys.stderr)
                return EXIT_BAD_INPUT
        return int(args.func(args) or 0)
    except (CaptureError, ProfileError, EndpointListError, FailOnError) as exc:
        print(f"phonehome: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("phonehome: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
