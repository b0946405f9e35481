"""`phonehome export CAPTURE... --har OUT.har`: a capture's requests as HAR, findings as comments."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from phonehome.analysis.cli.options import (
    InputOptions,
    add_input_arguments,
    add_redact_argument,
    damage_exit,
    run_analysis,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--har OUT plus the shared capture options."""
    add_input_arguments(parser)
    parser.add_argument("--har", required=True, metavar="OUT.har", help="write the requests as HAR 1.2 here")
    add_redact_argument(parser)


def run(args: argparse.Namespace) -> int:
    """Exit 0 on success, 2 for a damaged input (bad input raises; `main` reports it)."""
    from phonehome.analysis.export import records_to_har, redact_records
    from phonehome.analysis.records import HttpRecord

    options = InputOptions.from_args(args)
    everything: list = []
    result = run_analysis(options, records_out=everything)  # one read: records and findings
    records = [r for r in everything if isinstance(r, HttpRecord)]
    if args.redact:
        from phonehome.analysis.redact import profile_secrets, unread_flow_ids

        unread = unread_flow_ids(result.flows)
        records = redact_records(records, result.findings, profile_secrets(result.profile), unread)
    har = records_to_har(records, result.findings)
    out = Path(args.har)
    # user-only, like every capture and report: a HAR holds the tester's identifiers and tokens
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(har, indent=1, ensure_ascii=True))
    os.chmod(out, 0o600)
    if not options.quiet:
        print(
            f"wrote {out}: {len(har['log']['entries'])} entries, {len(result.findings)} findings",
            file=sys.stderr,
        )
    return damage_exit(result)
