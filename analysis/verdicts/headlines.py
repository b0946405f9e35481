"""Headlines: the facts per app a reader takes away, each with the key to what decides it.

Written as a careful researcher would say them: what left the device, where, how encoded, in which
mode. A headline never says "nothing was sent" in a mode whose coverage has holes (hosts not
decrypted, opaque payloads, UDP/QUIC): it says what was not seen. A mode of the study without
traffic is "not tested", never a clean result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import unquote_plus

import pandas as pd

from phonehome.analysis.modes import BASELINE
from phonehome.analysis.verdicts.coverage import describe_holes, holes
from phonehome.analysis.verdicts.evidence import evidence_id, join_ids
from phonehome.analysis.verdicts.frames import apps_of, modes_tested

BROWSING_TYPES: tuple[str, ...] = ("url", "search_query")

#: Headline kinds, so a renderer can style them: data that left, what was not seen, what was not tested.
KINDS: tuple[str, ...] = ("browsing", "identifiers", "none_found", "coverage", "not_tested")


@dataclass(frozen=True)
class Headline:
    """One sentence of a report's story, about one app (and usually one mode).

    app: the app label ("" = traffic without an app label); mode: the mode the sentence is about
    ("" when it is about the app as a whole); text: the sentence (plain text, unescaped);
    evidence_id: space-separated ids of what decides it — `ev-…` groups of the evidence table
    (findings of one app, mode, host and data type) or `cv-…` rows of the coverage table; "" when
    the sentence rests on an absence (nothing to link). kind: one of KINDS.
    `str(headline)` is its text, so code that printed the old string headlines keeps working.
    """

    app: str
    mode: str
    text: str
    evidence_id: str = ""
    kind: str = "browsing"

    def __str__(self) -> str:
        return self.text

    @property
    def evidence_ids(self) -> list[str]:
        return self.evidence_id.split()


def headlines(
    findings: pd.DataFrame,
    flows: pd.DataFrame,
    contacts: pd.DataFrame,
    coverage: pd.DataFrame,
    pairs: list[tuple[str, str]],
    known: Mapping[str, Sequence[str]] | None = None,
) -> list[Headline]:
    """Every app's headlines, app by app (apps sorted, unlabelled traffic last).

    `known`: the test inputs (a profile's `urls` and `search_terms`, a plan's canaries merged in), so
    a browsing headline can say "2 of 2 visited URLs"; without them it counts distinct values."""
    # only the columns read here: every filter below then copies 8 columns, not 20
    findings = findings[["app", "mode", "host", "owner", "data_type", "encodings", "field", "value"]]
    tested = modes_tested(flows, contacts)
    for app, mode in findings[["app", "mode"]].drop_duplicates().itertuples(index=False):
        tested.setdefault(str(app), set()).add(str(mode))
    decrypted = flows.groupby(["app", "mode"]).size() if not flows.empty else pd.Series(dtype=int)
    out: list[Headline] = []
    for app in apps_of(findings, flows, contacts):
        mine = findings[findings["app"] == app] if not findings.empty else findings
        used = _used_inputs(app, mine, flows, known or {})
        out += app_headlines(app, mine, tested.get(app, set()), decrypted, coverage, pairs, used)
    return out


#: profile key of the test inputs per browsing data type
INPUT_KEYS: dict[str, str] = {"url": "urls", "search_query": "search_terms"}
#: data types that identify a phone or person: one also sent in the baseline links the two modes
IDENTIFYING_PREFIXES: tuple[str, ...] = ("device_id.", "user_id", "token", "contact.")


def _used_inputs(
    app: str, findings: pd.DataFrame, flows: pd.DataFrame, known: Mapping[str, Sequence[str]]
) -> dict[tuple[str, str], set[str]]:
    """(mode, data type) -> the known test inputs used in that mode: opened or searched there (in a
    request URL of the mode, percent-decoded) or found in what the mode sent."""
    used: dict[tuple[str, str], set[str]] = {}
    mine = flows[flows["app"] == app] if not flows.empty else flows
    for data_type, key in INPUT_KEYS.items():
        inputs = {str(v) for v in known.get(key, []) or [] if str(v)}
        if not inputs:
            continue
        for mode in set(mine["mode"]) | set(findings["mode"]):
            urls = [unquote_plus(u).casefold() for u in mine.loc[mine["mode"] == mode, "url"].astype(str)]
            urls += [v.casefold() for v in findings.loc[findings["mode"] == mode, "value"].astype(str)]
            hits = {i for i in inputs if any(i.casefold() in u for u in urls)}
            if hits:
                used[(str(mode), data_type)] = hits
    return used


def _mode_order(pairs: list[tuple[str, str]], tested: set[str]) -> list[str]:
    others = [o for _, o in pairs]
    extra = sorted(tested - set(others) - {BASELINE})
    return [*others, *extra, BASELINE]


def app_headlines(
    app: str,
    findings: pd.DataFrame,
    tested: set[str],
    decrypted: pd.Series,
    coverage: pd.DataFrame,
    pairs: list[tuple[str, str]],
    used: dict[tuple[str, str], set[str]] | None = None,
) -> list[Headline]:
    """One app's headlines: browsing data by mode (private modes first), identifiers, then what
    each mode of the study could not show (not tested, holes)."""
    order = _mode_order(pairs, tested)
    lines: list[Headline] = []
    for mode in order:
        lines += _browsing(app, mode, findings, used or {})
    for mode in order:
        lines += _identifiers(app, mode, findings)
    if findings.empty and tested:
        total = int(sum(int(decrypted.get((app, m), 0)) for m in tested))
        lines.append(
            Headline(
                app, "", f"No personal data was found in the {total} decrypted request(s).", "", "none_found"
            )
        )
    if BASELINE not in tested:
        lines.append(
            Headline(
                app,
                BASELINE,
                f"{BASELINE.capitalize()} mode was not tested: no traffic of this app was captured in it, "
                "so no comparison can say what another mode changes.",
                "",
                "not_tested",
            )
        )
    for mode in order:
        if mode == BASELINE and BASELINE not in tested:
            continue
        lines += _mode_coverage(app, mode, findings, tested, decrypted, coverage)
    return lines


#: Browsing headlines per app and mode, one per destination; further destinations are summed up.
MAX_BROWSING_HEADLINES = 8
#: Hosts named in one sentence (and linked); the rest are counted.
MAX_NAMED_HOSTS = 6


def _named(hosts: list[str]) -> str:
    shown = ", ".join(hosts[:MAX_NAMED_HOSTS])
    return shown + (f" and {len(hosts) - MAX_NAMED_HOSTS} more" if len(hosts) > MAX_NAMED_HOSTS else "")


def _kinds(types: list[str]) -> str:
    words = {"url": "visited URLs", "search_query": "search terms"}
    return " and ".join(words[t] for t in types)


def _plural(n: int, one: str, many: str) -> str:
    return one if n == 1 else many


def _counts(mode: str, group: pd.DataFrame, types: list[str], used: dict[tuple[str, str], set[str]]) -> str:
    """'2 of 2 visited URLs and 1 of 1 search' (known test inputs used in the mode and how many of
    them reached this destination), else plain counts of the distinct values sent."""
    words = {"url": ("visited URL", "visited URLs"), "search_query": ("search", "searches")}
    parts = []
    for t in types:
        values = [v.casefold() for v in group.loc[group["data_type"] == t, "value"].astype(str)]
        inputs = used.get((mode, t), set())
        sent = {i for i in inputs if any(i.casefold() in v for v in values)}
        if sent:
            parts.append(f"{len(sent)} of {len(inputs)} {_plural(len(inputs), *words[t])}")
        else:
            n = len(set(values))
            parts.append(f"{n} distinct {_plural(n, *words[t])}")
    return " and ".join(parts)


def _links_baseline(mode: str, host: str, findings: pd.DataFrame) -> bool:
    """An identifier this destination got in `mode` was also sent (same value) in the baseline mode."""
    if mode == BASELINE:
        return False
    identifying = findings["data_type"].str.startswith(IDENTIFYING_PREFIXES)
    here = set(findings.loc[identifying & (findings["mode"] == mode) & (findings["host"] == host), "value"])
    return bool(here & set(findings.loc[identifying & (findings["mode"] == BASELINE), "value"]))


def _browsing(
    app: str, mode: str, findings: pd.DataFrame, used: dict[tuple[str, str], set[str]] | None = None
) -> list[Headline]:
    """One headline per destination that received browsing data in what the app itself sent (a body,
    a query, a header other than Referer), most telling first; destinations that only got the page
    address in a Referer header (the sites the pages loaded from) in one summing-up sentence."""
    if findings.empty:
        return []
    rows = findings[(findings["mode"] == mode) & findings["data_type"].isin(BROWSING_TYPES)]
    if rows.empty:
        return []
    referer_only = rows["field"].str.casefold().eq("header.referer").groupby(rows["host"]).all()
    sent = rows[~rows["host"].map(referer_only)]
    groups = sorted(
        sent.groupby(["host", "owner"], sort=True),
        key=lambda item: (
            -item[1]["data_type"].nunique() - (item[1]["encodings"] != "").any(),
            -len(item[1]),
        ),
    )
    out = []
    for (host, owner), group in groups[:MAX_BROWSING_HEADLINES]:
        types = [t for t in BROWSING_TYPES if (group["data_type"] == t).any()]
        chains = sorted({c.replace(">", "+") for c in group["encodings"] if c})
        how = f", {' / '.join(chains)}-encoded" if chains else ", in plain text"
        who = f" ({owner})" if owner else ""
        counted = _counts(mode, group, types, used or {})
        linked = (
            f", with an identifier that also appears in {BASELINE} mode"
            if _links_baseline(mode, host, findings)
            else ""
        )
        text = f"In {mode} mode, {_kinds(types)} left the device to {host}{who}{how}: {counted}{linked}."
        ids = join_ids([evidence_id(app, mode, host, t) for t in types])
        out.append(Headline(app, mode, text, ids, "browsing"))
    rest = [host for (host, _), _ in groups[MAX_BROWSING_HEADLINES:]]
    if rest:
        types = [t for t in BROWSING_TYPES if sent.loc[sent["host"].isin(rest), "data_type"].eq(t).any()]
        text = f"In {mode} mode, {_kinds(types)} also left the device to {len(rest)} more host(s): "
        text += f"{_named(rest)}."
        ids = [evidence_id(app, mode, h, t) for h in rest[:MAX_NAMED_HOSTS] for t in types]
        out.append(Headline(app, mode, text, join_ids(_existing(ids, app, mode, sent)), "browsing"))
    referers = sorted(h for h, only in referer_only.items() if only)
    if referers:
        text = (
            f"In {mode} mode, visited URLs were also sent in Referer headers to {len(referers)} host(s), "
            f"as browsers do when a page loads its parts: {_named(referers)}."
        )
        ids = [evidence_id(app, mode, h, "url") for h in referers[:MAX_NAMED_HOSTS]]
        out.append(Headline(app, mode, text, join_ids(ids), "browsing"))
    return out


def _existing(ids: list[str], app: str, mode: str, rows: pd.DataFrame) -> list[str]:
    """The ids among `ids` that name a group with findings (a host may have sent one type only)."""
    present = {evidence_id(app, mode, h, t) for h, t in zip(rows["host"], rows["data_type"], strict=True)}
    return [i for i in ids if i in present]


def _identifiers(app: str, mode: str, findings: pd.DataFrame) -> list[Headline]:
    if findings.empty:
        return []
    ids = findings[(findings["mode"] == mode) & findings["data_type"].str.startswith("device_id.")]
    if ids.empty:
        return []
    counts = ids.groupby("host").size().sort_values(ascending=False, kind="stable")
    hosts = sorted(counts.index[:MAX_NAMED_HOSTS]) + sorted(counts.index[MAX_NAMED_HOSTS:])
    named = set(hosts[:MAX_NAMED_HOSTS])
    keys = sorted({(h, t) for h, t in zip(ids["host"], ids["data_type"], strict=True) if h in named})
    text = f"In {mode} mode, device identifiers were sent to {len(hosts)} host(s): {_named(hosts)}."
    return [
        Headline(app, mode, text, join_ids([evidence_id(app, mode, h, t) for h, t in keys]), "identifiers")
    ]


def _mode_coverage(
    app: str,
    mode: str,
    findings: pd.DataFrame,
    tested: set[str],
    decrypted: pd.Series,
    coverage: pd.DataFrame,
) -> list[Headline]:
    """'not tested', or 'none found but not seen: …', or 'not everything was seen: …'."""
    if mode not in tested:
        return [
            Headline(
                app,
                mode,
                f"{mode.capitalize()} mode was not tested: no traffic of this app was captured in it, "
                f"so this report says nothing about {mode} mode.",
                "",
                "not_tested",
            )
        ]
    gaps = holes(coverage, app, mode)
    gap_ids = join_ids(list(gaps["coverage_id"])) if not gaps.empty else ""
    unseen = describe_holes(gaps) if not gaps.empty else ""
    seen = int(decrypted.get((app, mode), 0))
    browsing = (
        not findings.empty and ((findings["mode"] == mode) & findings["data_type"].isin(BROWSING_TYPES)).any()
    )
    if mode != BASELINE and not browsing:
        if unseen:
            text = (
                f"In {mode} mode, no visited URLs or search terms were found in the {seen} decrypted "
                f"request(s), but not everything was seen: {unseen}."
            )
            return [Headline(app, mode, text, gap_ids, "coverage")]
        text = (
            f"In {mode} mode, no visited URLs or search terms were found in the {seen} decrypted "
            f"request(s), and every connection the proxy saw in {mode} mode was decrypted."
        )
        return [Headline(app, mode, text, "", "none_found")]
    if unseen:
        return [
            Headline(app, mode, f"In {mode} mode, not everything was seen: {unseen}.", gap_ids, "coverage")
        ]
    return []
