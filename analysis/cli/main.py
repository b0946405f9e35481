"""`phonehome`: the command line (DESIGN.md "Command line").

One module per command (analyze, report and demo, export, plan, record), each with
`add_arguments(parser)` and `run(args) -> exit code`; the commands that read captures share
cli/options.py. This module builds the parser and is the one place errors become exit codes.

Exit codes: 0 ok, 1 a findings-level failure the user asked to fail on, 2 bad input (one line
naming the file and the problem, never a traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from phonehome.analysis import __version__
from phonehome.analysis.cli import analyze, export, plan, record, report
from phonehome.analysis.cli.options import EXIT_BAD_INPUT, EXIT_OK
from phonehome.analysis.sources import CaptureError

# name -> (help, add_arguments, run), in the order `phonehome --help` lists them
COMMANDS = {
    "record": ("record a phone's traffic through mitmproxy", record.add_arguments, record.run),
    "plan": ("write a canary test plan (plan.json) and print its checklist", plan.add_arguments, plan.run),
    "analyze": ("decode and classify captures into findings tables", analyze.add_arguments, analyze.run),
    "report": (
        "build a per-app leakage report (HTML or Markdown)",
        report.add_report_arguments,
        report.run_report,
    ),
    "export": ("export a capture's flows as HAR with findings", export.add_arguments, export.run),
    "demo": ("report on the bundled sample capture", report.add_demo_arguments, report.run_demo),
}


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
    for name, (help_text, add_arguments, run) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text)
        add_arguments(command)
        command.set_defaults(func=run)
    addons_path = sub.add_parser(
        "addons-path",
        help="print the folder of the installed mitmproxy addons (for mitmdump -s)",
        description='Print the installed addons folder: mitmdump -s "$(phonehome addons-path)/recorder.py"',
    )
    addons_path.add_argument(
        "--recorder", action="store_true", help="print the recorder addon's file instead"
    )
    addons_path.set_defaults(func=cmd_addons_path)
    return parser


def error_line(exc: BaseException) -> str:
    """The one line a user sees for bad input: `<file>: <what>` wherever the file is known."""
    if isinstance(exc, OSError) and exc.filename is not None:
        text = f"{exc.filename}: {exc.strerror or exc}"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())  # one line, whatever the message held


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; bad input of any kind is one line on stderr and exit 2.

    Bad input is a CaptureError, any ValueError the library raises for what it was given
    (ProfileError, ClaimsError, PlanError, EndpointListError, LabelError, FailOnError,
    ReportPathError: each names its file) or an OSError on a file the user named.
    """
    args = build_parser().parse_args(argv)
    # Arrow memory from the C library's malloc, which gives freed blocks back to the system at
    # once: pyarrow's default mimalloc keeps them for reuse, and the tables are built and written
    # a slice at a time, so that held 60-90 MB more at 100,000 flows (402 instead of 488 MB
    # peak), for no measurable speed. Read when pyarrow first allocates; a user's own choice stays.
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    try:
        return int(args.func(args) or 0)
    except (CaptureError, ValueError, OSError) as exc:
        print(f"phonehome: error: {error_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("phonehome: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
