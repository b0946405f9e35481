"""`phonehome export CAPTURE... --har OUT.har`: a capture's requests as HAR, findings as comments."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--har OUT plus the shared capture options, if cli.py has not added them."""
    if not any(a.dest == "captures" for a in parser._actions):
        from phonehome.analysis.cli.main import add_input_arguments

        add_input_arguments(parser)
    parser.add_argument("--har", required=True, metavar="OUT.har", help="write the requests as HAR 1.2 here")
    parser.add_argument(
        "--redact",
        action="store_true",
        help="replace identifiers, tokens, cookies and Authorization values with short stable hashes;"
        " withhold bodies whose identifiers are encoded",
    )


def run(args: argparse.Namespace) -> int:
    """Exit 0 on success, 2 for bad input (one line naming the file)."""
    from phonehome.analysis.export import records_to_har, redact_records
    from phonehome.analysis.pipeline import analyze
    from phonehome.analysis.profile import Profile
    from phonehome.analysis.records import HttpRecord
    from phonehome.analysis.sources import CaptureError

    try:
        profile = Profile.load(args.profile) if getattr(args, "profile", None) else None
        everything: list = []
        result = analyze(
            args.captures,
            profile=profile,
            app=args.app,
            mode=args.mode,
            keylog=getattr(args, "keylog", None),
            endpoint_lists=getattr(args, "endpoints", ()) or (),
            records_out=everything,
        )
        records = [r for r in everything if isinstance(r, HttpRecord)]
    except CaptureError as exc:
        print(f"phonehome export: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"phonehome export: {exc}", file=sys.stderr)
        return 2
    for warning in result.warnings:
        print(f"phonehome: warning: {warning}", file=sys.stderr)
    if getattr(args, "redact", False):
        records = redact_records(records, result.findings)
    har = records_to_har(records, result.findings)
    out = Path(args.har)
    try:
        # user-only, like every capture and report: a HAR holds the tester's identifiers and tokens
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(har, indent=1, ensure_ascii=True))
        os.chmod(out, 0o600)
    except OSError as exc:
        print(f"phonehome export: {out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if not getattr(args, "quiet", False):
        print(
            f"wrote {out}: {len(har['log']['entries'])} entries, {len(result.findings)} findings",
            file=sys.stderr,
        )
    from phonehome.analysis.cli.main import damage_exit

    return damage_exit(result)
