"""`phonehome analyze CAPTURE... -o OUT_DIR`: the findings tables (DESIGN.md "Command line")."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from phonehome.analysis.cli.options import (
    EXIT_FINDINGS,
    EXIT_OK,
    InputOptions,
    add_input_arguments,
    add_redact_argument,
    damage_exit,
    run_analysis,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_input_arguments(parser)
    parser.add_argument(
        "-o",
        "--output",
        default="phonehome-out",
        metavar="OUT_DIR",
        help="where to write findings.csv, findings.parquet, flows.parquet (default: %(default)s)",
    )
    add_redact_argument(parser)
    parser.add_argument(
        "--fail-on",
        metavar="TYPES",
        help="exit 1 if any finding has one of these data types: comma-separated types (url), families "
        "(device_id = every device_id.*), or 'any'",
    )


def run(args: argparse.Namespace) -> int:
    """Write the tables; exit 2 if an input was damaged, 1 if --fail-on matched, else 0."""
    from phonehome.analysis.pipeline import write_tables
    from phonehome.analysis.verdicts.fail_on import failing, parse_fail_on

    fail_on = parse_fail_on(args.fail_on) if args.fail_on is not None else None  # checked before reading
    options = InputOptions.from_args(args)
    result = run_analysis(options)
    if args.redact:
        from phonehome.analysis.redact import profile_secrets, redact_tables

        result.findings, result.flows, result.contacts = redact_tables(
            result.findings, result.flows, result.contacts, profile_secrets(result.profile)
        )
    written = write_tables(result, args.output)
    if not options.quiet:
        print(
            f"{result.size('flows')} requests, {result.size('contacts')} other contacts, "
            f"{result.size('findings')} findings ({result.distinct('findings', 'data_type')} data types, "
            f"{result.distinct('findings', 'host')} hosts) -> {Path(args.output)}",
            file=sys.stderr,
        )
    stopped = result.count_true("flows", "decode_truncated")
    if stopped:  # even with -q: what these requests held was not all examined
        print(
            f"phonehome: {stopped} request(s) not fully decoded (a bound was hit or a decoder failed; "
            "flows.parquet column decode_truncated); their remaining content was not examined",
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
