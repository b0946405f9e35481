"""Findings for one request: field verdicts, known values, and the navigation rule.

Never cry wolf: a request's own URL and host are navigation, not a leak. So the query and path of
a top-level navigation carry no `url`/`search_query` findings (a search on a search engine is the
user talking to that engine), a URL path never yields a `url`, and a Referer only counts when it
goes to another site.
"""

from __future__ import annotations

import re
from collections import defaultdict

from phonehome.analysis.classify.endpoints import Endpoint, site_of
from phonehome.analysis.classify.fields import (
    INSTALLED_KEYS,
    LAT_KEYS,
    LON_KEYS,
    Verdict,
    classify_field,
    normalise_key,
)
from phonehome.analysis.classify.known import KnownValues
from phonehome.analysis.classify.shapes import coordinate, is_package
from phonehome.analysis.decode import DecodedRequest, Field
from phonehome.analysis.findings import Finding
from phonehome.analysis.profile import Profile
from phonehome.analysis.records import HttpRecord

NAVIGATION_TYPES = frozenset({"url", "search_query"})
CONFIDENCE_RANK = {"high": 3, "medium": 2, "low": 1}
EVIDENCE_ORDER = ("known-value", "key-name", "value-shape", "persistence")
_INDEX = re.compile(r"\[\d+\]$")

_matchers: dict[int, tuple[Profile, KnownValues]] = {}


def known_values_for(profile: Profile | None) -> KnownValues | None:
    """The compiled matcher for `profile`, built once per profile object."""
    if profile is None or not profile.values:
        return None
    cached = _matchers.get(id(profile))
    if cached is None or cached[0] is not profile:
        if len(_matchers) > 16:
            _matchers.clear()
        cached = _matchers[id(profile)] = (profile, KnownValues(profile))
    return cached[1]


def is_navigation(record: HttpRecord) -> bool:
    """A top-level page load: its URL is where the user went, not something sent about them."""
    mode = (record.header("sec-fetch-mode") or "").lower()
    dest = (record.header("sec-fetch-dest") or "").lower()
    if mode == "navigate" or dest in ("document", "iframe", "frame"):
        return True
    accept = (record.header("accept") or "").lower()
    return record.method == "GET" and accept.startswith("text/html")


def join_evidence(*parts: str) -> str:
    names = {name for part in parts for name in part.split("+") if name}
    return "+".join(name for name in EVIDENCE_ORDER if name in names)


def _not_a_leak(record: HttpRecord, field: Field, data_type: str, navigation: bool) -> bool:
    """The navigation rule: is this url/search value just the request's own address?"""
    if data_type not in NAVIGATION_TYPES:
        return False
    if field.location == "url_path":
        return True
    if field.location == "query" and navigation:
        return True
    value = field.value.strip()
    if value == record.url or value == record.path:
        return True
    if field.location == "header" and normalise_key(field.key) in ("referer", "origin"):
        referred = site_of(_host_of(value))
        return not referred or referred == site_of(record.host)
    return False


def _host_of(url: str) -> str:
    rest = url.split("://", 1)[1] if "://" in url else ""
    host = rest.split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]
    return host.split(":", 1)[0] if not host.startswith("[") else host


def _parent(path: str) -> str:
    return _INDEX.sub("", path).rsplit(".", 1)[0] if "." in path else path


def classify_request(
    record: HttpRecord,
    decoded: DecodedRequest,
    endpoint: Endpoint,
    profile: Profile | None = None,
) -> list[Finding]:
    """Every finding in one request, at most one per (field, data type)."""
    matcher = known_values_for(profile)
    navigation = is_navigation(record)
    best: dict[tuple[str, str], tuple[Field, Verdict, str]] = {}

    def offer(field: Field, verdict: Verdict, value: str | None = None) -> None:
        if _not_a_leak(record, field, verdict.data_type, navigation):
            return
        slot = (field.path, verdict.data_type)
        previous = best.get(slot)
        if previous is None:
            best[slot] = (field, verdict, value if value is not None else field.value)
            return
        old = previous[1]
        rank = max(CONFIDENCE_RANK[old.confidence], CONFIDENCE_RANK[verdict.confidence])
        confidence = next(name for name, r in CONFIDENCE_RANK.items() if r == rank)
        merged = Verdict(old.data_type, confidence, join_evidence(old.evidence, verdict.evidence))
        best[slot] = (previous[0], merged, previous[2])

    lists: dict[str, list[Field]] = defaultdict(list)
    coords: dict[str, dict[str, tuple[Field, float]]] = defaultdict(dict)
    known = matcher.find_all([f.value for f in decoded.fields]) if matcher is not None else None
    for index, field in enumerate(decoded.fields):
        verdict = classify_field(field)
        if verdict is not None:
            offer(field, verdict)
        if known is not None:
            for match in known[index]:
                # inside a binary or very long value, show the identifier itself, not the blob
                blob = len(field.value) > 256 or "\\x" in field.value
                offer(field, Verdict(match.data_type, "high", "known-value"), match.text if blob else None)
        key = normalise_key(field.key)
        if key in INSTALLED_KEYS and is_package(field.value):
            lists[_INDEX.sub("", field.path)].append(field)
        elif key in LAT_KEYS and (lat := coordinate(field.value, 90)) is not None:
            coords[_parent(field.path)]["lat"] = (field, lat)
        elif key in LON_KEYS and (lon := coordinate(field.value, 180)) is not None:
            coords[_parent(field.path)]["lon"] = (field, lon)

    for path, members in lists.items():
        if len(members) >= 2:
            first = members[0]
            as_list = Field(first.location, path, first.key, first.encodings, "")
            offer(as_list, Verdict("app.installed_list", "high", "key-name+value-shape"),
                  ", ".join(m.value for m in members))  # fmt: skip
    for pair in coords.values():
        if "lat" in pair and "lon" in pair:
            (lat_field, lat), (_, lon) = pair["lat"], pair["lon"]
            known = matcher is not None and matcher.near_location(lat, lon)
            verdict = Verdict(
                "location.gps", "high", "known-value+key-name" if known else "key-name+value-shape"
            )
            offer(lat_field, verdict, f"{lat},{lon}")
    if matcher is not None and matcher.location is not None:
        for field in decoded.fields:
            if field.key and normalise_key(field.key) in LAT_KEYS | LON_KEYS:
                continue
            from phonehome.analysis.classify.shapes import gps_pair

            pair_value = gps_pair(field.value)
            if pair_value and matcher.near_location(*pair_value):
                offer(field, Verdict("location.gps", "high", "known-value"))

    labels = record.labels
    findings = []
    for field, verdict, value in best.values():
        findings.append(
            Finding(
                labels.session,
                labels.app or "",
                labels.mode,
                record.flow_id,
                record.timestamp,
                record.method,
                record.host,
                endpoint.site,
                endpoint.owner,
                endpoint.category,
                endpoint.party,
                record.url,
                field.location,
                field.path,
                ">".join(field.encodings),
                verdict.data_type,
                value,
                verdict.confidence,
                verdict.evidence,
            )
        )
    return findings
