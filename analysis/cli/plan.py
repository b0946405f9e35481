"""`phonehome plan`: write plan.json (canaries per mode) and print the tester's checklist."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--modes",
        default="normal,incognito",
        help="comma-separated modes to test, in order (default: %(default)s; e.g. normal,incognito,"
        "incognito-optout)",
    )
    parser.add_argument(
        "-o", "--output", default="plan.json", metavar="plan.json", help="where to write the plan"
    )
    parser.add_argument("--app", help="the app under test: adds its marker as the first step")
    parser.add_argument("--urls", type=int, default=3, metavar="N", help="canary URLs per mode (default: 3)")
    parser.add_argument(
        "--searches", type=int, default=2, metavar="N", help="canary search terms per mode (default: 2)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="do not print the checklist")
    parser.add_argument(
        "--force",
        action="store_true",
        help="overwrite an existing plan (its canaries can no longer be counted)",
    )


def run(args: argparse.Namespace) -> int:
    from phonehome.analysis.modes import LabelError
    from phonehome.analysis.plan import checklist, make_plan, write_plan

    modes = [m for m in args.modes.split(",") if m.strip()]
    try:
        plan = make_plan(modes, urls=args.urls, searches=args.searches, app=args.app)
    except (ValueError, LabelError) as exc:
        print(f"phonehome: error: --modes/--urls/--searches/--app: {exc}", file=sys.stderr)
        return 2
    if Path(args.output).exists() and not args.force:
        print(
            f"phonehome: error: {args.output}: a plan is already there (its canaries may be in use); "
            "choose another -o or pass --force",
            file=sys.stderr,
        )
        return 2
    try:
        path = write_plan(plan, Path(args.output))
    except OSError as exc:
        print(
            f"phonehome: error: {args.output}: cannot write the plan ({exc.strerror or exc})", file=sys.stderr
        )
        return 2
    if not args.quiet:
        print(checklist(plan), end="")
    print(f"plan: {path}  (copy it into the capture folder: captures/<session>/plan.json)", file=sys.stderr)
    return 0


def read_study_inputs(captures: list[str], claims_path: str | None) -> tuple[list, list]:
    """(claims files, plans): the claims file given with --claims plus any claims.toml in the capture
    folders, and the plan.json of the capture folders. Read before the analysis, so a malformed file
    fails at once (ClaimsError / PlanError: one line naming the file and line; exit 2)."""
    from phonehome.analysis.claims import find_claims, load_claims
    from phonehome.analysis.plan import find_plans

    paths = [Path(claims_path)] if claims_path else []
    paths += [p for p in find_claims(list(captures)) if not paths or p.resolve() != paths[0].resolve()]
    return [load_claims(p) for p in paths], find_plans(list(captures))


def add_study_tables(report, analysis, captures: list[str], claims_path: str | None, study=None) -> None:
    """Fill a report's claims and canary tables (DESIGN.md "Claims", "Test plan and canaries").

    The I/O edge for both (`study` is read_study_inputs' result, read now when not given); the
    verdicts themselves are pure (analysis.verdicts.claims, analysis.verdicts.canaries).
    """
    from phonehome.analysis.verdicts import canaries as canary_verdicts
    from phonehome.analysis.verdicts import claims as claim_verdicts

    files, plans = study if study is not None else read_study_inputs(captures, claims_path)
    profile = getattr(analysis, "profile", None)
    known = claim_verdicts.known_identifiers(profile.values if profile is not None else None)
    verdicts = claim_verdicts.judge_claims(files, analysis.findings, analysis.flows, analysis.contacts, known)
    report.claims = claim_verdicts.claims_table(verdicts)
    report.canaries = canary_verdicts.canary_recall(
        plans, analysis.findings, analysis.flows, analysis.contacts
    )
    # judged on the captured tables (random_token compares values); shown with the report's:
    # evidence ids as its evidence table has them (a host or mode spelt otherwise there gives
    # another id), and scrubbed like its other tables when redacted (a host name may hold an id)
    if report.claims.empty and report.canaries.empty:
        return
    renamed = _evidence_renames(analysis.findings, report.findings)
    for name in ("claims", "canaries"):
        table = getattr(report, name)
        if renamed and "evidence_ids" in table.columns:
            ids = [" ".join(renamed.get(i, i) for i in str(cell).split()) for cell in table["evidence_ids"]]
            table = table.assign(evidence_ids=ids)
        if report.redacted and report.redactor is not None and not table.empty:
            table = report.redactor.frame(table)
        setattr(report, name, table)


def _evidence_renames(captured, shown) -> dict[str, str]:
    """Evidence id from the captured findings -> the id of the same row in the report's findings
    (rows in the same order; only the ids that differ)."""
    from phonehome.analysis.verdicts.evidence import evidence_ids

    if len(captured) != len(shown) or captured.empty:
        return {}
    return {a: b for a, b in zip(evidence_ids(captured), evidence_ids(shown), strict=True) if a != b}
