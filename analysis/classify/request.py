"""Findings for one request: field verdicts, known values, and the navigation rule.

Never cry wolf: a request's own URL and host are navigation, not a leak. So the query and path of
a top-level navigation carry no `url`/`search_query` findings (a search on a search engine is the
user talking to that engine), a URL path never yields a `url`, and a Referer only counts when it
goes to another site.
"""

from __future__ import annotations

import re
from collections import defaultdict
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

from phonehome.analysis.classify.endpoints import Endpoint, site_of
from phonehome.analysis.classify.fields import (
    INSTALLED_KEYS,
    LAT_KEYS,
    LON_KEYS,
    KeyView,
    Verdict,
    classify_field,
    classify_viewed,
    key_view,
    normalise_key,
    verdict_of,
)
from phonehome.analysis.classify.known import KnownValues
from phonehome.analysis.classify.schemas import PathRules, Schema, rules_at, schemas_for
from phonehome.analysis.classify.sensors import read_batch, signup_events
from phonehome.analysis.classify.shapes import coordinate, gps_pair, is_package, is_url
from phonehome.analysis.decode import DecodedRequest, Field, decode_value
from phonehome.analysis.findings import Finding
from phonehome.analysis.profile import Profile
from phonehome.analysis.records import HttpRecord

NAVIGATION_TYPES = frozenset({"url", "search_query"})
CONFIDENCE_RANK = {"high": 3, "medium": 2, "low": 1}
_CONFIDENCE_OF_RANK = {rank: name for name, rank in CONFIDENCE_RANK.items()}
EVIDENCE_ORDER = ("known-value", "schema", "key-name", "value-shape", "persistence")
# Types that name a person or device: a field is one of them, not several.
IDENTIFIER_TYPES = ("device_id.", "user_id", "token")
STRONG_EVIDENCE = ("known-value", "schema")
# `key=value` / `key: value` pairs inside free text (log lines, messages, breadcrumbs)
_INNER_PAIR = re.compile(
    r"(?<![A-Za-z0-9_])([A-Za-z_$][A-Za-z0-9_$.-]{1,40})\s*[=:]\s*([^\s,;&)\]}\"']{4,200})"
)
_EMAIL_IN_TEXT = re.compile(
    r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}"
)
_ID_LIKE_KEY = re.compile(r"[0-9@:]|^.{24,}$")
# a nested parameter worth handing to the decoder: base64(url) text or JSON
_ENCODED = re.compile(r"^(?:[A-Za-z0-9+/_-]{16,}={0,2}|\s*[\[{].*)$", re.S)
# an international phone number in text: only with its leading + (bare digit runs are ids and times)
_PHONE_IN_TEXT = re.compile(
    r"(?<![\w+])\+[1-9]\d{0,2}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){2,4}(?!\w)"
)
INNER_TYPES = ("device_id.", "user_id", "contact.", "token", "network.local_ip")
MAX_URL_DEPTH = 3
# objects in which an SDK describes itself (name, version, homepage)
_SDK_PARENT = re.compile(
    r"(?:^|\.)(?:notifier|sdk|library|lib|agent|framework|client_info|sdk_info)\.[^.]+$", re.I
)
_INDEX = re.compile(r"\[\d+\]$")
_COORDINATE_KEYS = LAT_KEYS | LON_KEYS

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


class KeyUse(NamedTuple):
    """What classify_request does with a field because of its key name alone."""

    searchable: bool  # could be an identifier used as a JSON key (digits, @, long): searched
    installed: bool  # names a list of installed apps
    lat: bool  # names a latitude
    lon: bool  # names a longitude


@lru_cache(maxsize=16384)
def key_use(name: str) -> KeyUse:
    """The KeyUse of a field named `name`. Keys repeat from request to request, so each distinct
    name is read once (its regex, normalise_key and the set lookups)."""
    key = normalise_key(name)
    searchable = len(name) >= 6 and _ID_LIKE_KEY.search(name) is not None
    return KeyUse(searchable, key in INSTALLED_KEYS, key in LAT_KEYS, key in LON_KEYS)


class FieldPlan(NamedTuple):
    """All that classify_request reads from a field's key name and path, in one lookup."""

    view: KeyView  # classify_field's reading of the key (fields.key_view)
    searchable: bool  # KeyUse.searchable
    installed: bool  # KeyUse.installed
    lat: bool  # KeyUse.lat
    lon: bool  # KeyUse.lon
    paired: bool  # installed, lat or lon: the value may join a list or a coordinate pair
    coordinate_key: bool  # a lat or lon key: its value is paired as such, never read as "lat,lon"
    at: PathRules | None = None  # what the request's schemas say about the path (schemas.rules_at)


@lru_cache(maxsize=16384)
def field_plan(name: str, path: str) -> FieldPlan:
    """The FieldPlan of a field named `name` at `path`, before any schema. Names and paths repeat
    from request to request (values do not): one cached lookup per field instead of three
    (key_use, key_view, the coordinate-key test)."""
    use = key_use(name)
    return FieldPlan(
        key_view(name, path),
        *use,
        use.installed or use.lat or use.lon,
        bool(name) and normalise_key(name) in _COORDINATE_KEYS,
    )


# (name, path) -> FieldPlan with the schemas' rules, one table per tuple of schemas (few: a
# request's schemas depend on its host and path)
_plans: dict[tuple[Schema, ...], dict[tuple[str, str], FieldPlan]] = {}
MAX_PLANS = 16384  # per table; a full table starts again (names and paths are a bounded vocabulary)


def _plan_table(schemas: tuple[Schema, ...]) -> dict[tuple[str, str], FieldPlan]:
    """The table of FieldPlans for requests with `schemas`, filled by `_new_plan`."""
    table = _plans.get(schemas)
    if table is None or len(table) > MAX_PLANS:
        if len(_plans) > 64:
            _plans.clear()
        table = _plans[schemas] = {}
    return table


def _new_plan(table: dict, name: str, path: str, schemas: tuple[Schema, ...]) -> FieldPlan:
    plan = field_plan(name, path)
    if schemas:
        plan = plan._replace(at=rules_at(schemas, path))
    table[name, path] = plan
    return plan


def is_navigation(record: HttpRecord) -> bool:
    """A top-level page load: its URL is where the user went, not something sent about them."""
    mode = (record.header("sec-fetch-mode") or "").lower()
    dest = (record.header("sec-fetch-dest") or "").lower()
    if mode == "navigate" or dest in ("document", "iframe", "frame"):
        return True
    accept = (record.header("accept") or "").lower()
    return record.method == "GET" and accept.startswith("text/html")


@lru_cache(maxsize=1024)  # a handful of evidence names: few combinations, merged on every request
def join_evidence(*parts: str) -> str:
    names = {name for part in parts for name in part.split("+") if name}
    return "+".join(name for name in EVIDENCE_ORDER if name in names)


@lru_cache(maxsize=4096)  # verdicts are a small vocabulary (types, confidences, evidence names)
def merged(old: Verdict, new: Verdict) -> Verdict:
    """Two verdicts of one type on one field as one: the higher confidence, both evidences.
    Half the verdicts offered on the varied session merge with an earlier one (a schema or a
    known value confirming a key-name rule), each pair of verdicts the same few again."""
    confidence = _CONFIDENCE_OF_RANK[max(CONFIDENCE_RANK[old.confidence], CONFIDENCE_RANK[new.confidence])]
    return Verdict(old.data_type, confidence, join_evidence(old.evidence, new.evidence))


def _not_a_leak(record: HttpRecord, field: Field, data_type: str, navigation: bool) -> bool:
    """The navigation rule: is this url/search value just the request's own address?"""
    if data_type not in NAVIGATION_TYPES:
        return False
    if field.location == "url_path":
        return True
    if field.location == "query" and navigation:
        return True
    value = field.value.strip()
    # record.url is built on each read; every URL has a "://", most values offered here do not
    if ("://" in value and value == record.url) or value == record.path:
        return True
    if field.location == "header" and normalise_key(field.key) in ("referer", "origin"):
        referred = site_of(_host_of(value))
        return not referred or referred == site_of(record.host)
    # an SDK naming its own homepage (Bugsnag's notifier.url) is no visited page
    return data_type == "url" and _in_sdk_object(field.path) and _is_own_homepage(value, record.host)


@lru_cache(maxsize=4096)  # paths repeat from request to request
def _in_sdk_object(path: str) -> bool:
    """The field sits in an object in which an SDK describes itself (notifier, sdk, library...)."""
    return _SDK_PARENT.search(path) is not None


def _is_own_homepage(value: str, host: str) -> bool:
    """A bare origin URL (no path, no query) on the request's own site."""
    if not is_url(value):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:  # a captured value such as http://[abc/ (urlsplit refuses its host): not an origin
        return False
    return parts.path in ("", "/") and not parts.query and site_of(parts.hostname or "") == site_of(host)


def _query_of(url: str) -> str:
    """urlsplit(url).query of a URL that is_url accepts (scheme://, no whitespace), without
    urlsplit's work where it cannot differ: an ASCII URL without brackets has a plain netloc
    (urlsplit checks only bracketed or non-ASCII ones, and may raise there), so its query is what
    lies after the first "?" before the first "#" (tests/test_classify_plainpath.py)."""
    if not url.isascii() or "[" in url or "]" in url:
        try:
            return urlsplit(url).query
        except ValueError:  # a host urlsplit refuses (http://[abc/?a=1): its query is still there
            pass
    return url.partition("#")[0].partition("?")[2]


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
    schemas = schemas_for(record.host, record.url_path)
    refuted: dict[str, frozenset[str]] = {}
    batch = read_batch(record) if any(s.id == "sensorsdata" for s in schemas) else None
    signups: set[str] = set()
    if batch is not None:
        signups = signup_events([(f.path, f.value) for f in decoded.fields if f.value == "track_signup"])

    def offer(field: Field, verdict: Verdict, value: str | None = None) -> None:
        data_type = verdict.data_type
        if data_type in NAVIGATION_TYPES and _not_a_leak(record, field, data_type, navigation):
            return
        slot = (field.path, data_type)
        previous = best.get(slot)
        if previous is None:
            best[slot] = (field, verdict, value if value is not None else field.value)
            return
        best[slot] = (previous[0], merged(previous[1], verdict), previous[2])

    # a Sensors batch whose crc does not match its data makes every schema verdict less sure
    schema_confidence = "medium" if batch is not None and batch.crc_ok is False else "high"
    lists: dict[str, list[Field]] = defaultdict(list)
    coords: dict[str, dict[str, tuple[Field, float]]] = defaultdict(dict)
    known = matcher.find_each([f.value for f in decoded.fields]) if matcher is not None else None
    # values that may be a "lat,lon" pair near the profile's location, offered after the loop
    locate = matcher is not None and matcher.location is not None
    gps_values: list[tuple[Field, tuple[float, float]]] = []
    plans = _plan_table(schemas)
    for index, field in enumerate(decoded.fields):
        plan = plans.get((field.key, field.path)) or _new_plan(plans, field.key, field.path, schemas)
        verdict = classify_viewed(field, plan.view)
        if verdict is not None:
            offer(field, verdict)
        if (at := plan.at) is not None:
            for data_type in at.field_types(field.value.strip()):
                if signups and field.path.endswith(".distinct_id") and field.path[:-12] in signups:
                    data_type = "user_id"  # track_signup: distinct_id is now the login id
                offer(field, verdict_of(data_type, schema_confidence, "schema"))
            if at.scans:
                for data_type, text in at.scanned(field.value):
                    offer(field, verdict_of(data_type, "high", "schema"), text)
            if at.refuted:
                refuted[field.path] = at.refuted
        value = field.value
        # _inner_verdicts reads URLs (`://`) and free text (a space or newline): nothing else
        if (
            len(value) >= 12
            and field.location != "url_path"
            and ("://" in value or " " in value or "\n" in value)
        ):
            for inner_field, inner in _inner_verdicts(record, field, navigation):
                offer(field, inner, inner_field.value)
        if plan.searchable and matcher is not None:
            # an identifier used as a JSON key: only keys that could be one (digits, @, long) are
            # searched, each distinct key once (keys repeat from request to request, values do not)
            for match in matcher.find_repeated(field.key):
                offer(field, verdict_of(match.data_type, "high", "known-value"), match.text)
        if known and index in known:
            for match in known[index]:
                # inside a binary or very long value, show the identifier itself, not the blob
                blob = len(value) > 256 or "\\x" in value
                offer(field, verdict_of(match.data_type, "high", "known-value"), match.text if blob else None)
        if plan.paired:
            if plan.installed and is_package(value):
                lists[_INDEX.sub("", field.path)].append(field)
            elif plan.lat and (lat := coordinate(value, 90)) is not None:
                coords[_parent(field.path)]["lat"] = (field, lat)
            elif plan.lon and (lon := coordinate(value, 180)) is not None:
                coords[_parent(field.path)]["lon"] = (field, lon)
        # a lat or lon key's value is paired above; gps_pair needs a "." (most values have none)
        if locate and "." in value and not plan.coordinate_key and (pair := gps_pair(value)) is not None:
            gps_values.append((field, pair))

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
    for field, (lat, lon) in gps_values:
        if matcher is not None and matcher.near_location(lat, lon):
            offer(field, Verdict("location.gps", "high", "known-value"))

    labels = record.labels
    # the request's own columns, the same in each of its findings
    head = (
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
    )
    phase = labels.phase or ""
    findings = []
    by_path: dict[str, list[str]] = defaultdict(list)
    for path, dtype in best:
        by_path[path].append(dtype)
    for path, dtypes in by_path.items():
        if len(dtypes) == 1 and path not in refuted:
            continue  # nothing to refute, no second identifier type: _dropped would keep it
        for dtype in _dropped(path, dtypes, best, refuted.get(path, frozenset())):
            del best[(path, dtype)]
    for field, verdict, value in best.values():
        findings.append(
            Finding(
                *head,
                field.location,
                field.path,
                ">".join(field.encodings),
                verdict.data_type,
                value,
                verdict.confidence,
                verdict.evidence,
                phase,
            )
        )
    return findings


def _inner_verdicts(record: HttpRecord, field: Field, navigation: bool, depth: int = 0):
    """Findings inside one value: a URL's own query parameters (recursively, through repeated
    percent-encoding), `key=value` pairs and e-mail addresses in free text."""
    value = field.value.strip()
    if len(value) > 8192:
        return
    if is_url(value):
        if depth >= MAX_URL_DEPTH or _not_a_leak(record, field, "url", navigation):
            return
        query = _query_of(value)
        for key, inner_value in parse_qsl(query, keep_blank_values=False)[:200]:
            if "%" in inner_value:
                inner_value = unquote(inner_value)
            inner = Field(field.location, field.path, key, field.encodings, inner_value)
            verdict = classify_field(inner)
            if verdict is not None and verdict.data_type != "url":
                yield inner, Verdict(verdict.data_type, verdict.confidence, verdict.evidence)
            if is_url(inner_value.strip()):
                yield from _inner_verdicts(record, inner, navigation, depth + 1)
            elif len(inner_value) >= 16 and verdict is None and _ENCODED.match(inner_value):
                # base64/JSON inside the nested parameter: the decoder's own layers, bounded as ever
                nested = decode_value(
                    inner_value, location=field.location, path=field.path, key=key, encodings=field.encodings
                )
                for leaf in nested.fields[:200]:
                    if leaf.encodings != field.encodings:
                        leaf_verdict = classify_field(leaf)
                        if leaf_verdict is not None and leaf_verdict.data_type != "url":
                            yield leaf, leaf_verdict
        return
    if " " not in value and "\n" not in value:
        return
    # each scan below needs a character most free text (a User-Agent, a page title) lacks
    for match in _EMAIL_IN_TEXT.finditer(value) if "@" in value else ():
        email = match.group(0)
        yield (
            Field(field.location, field.path, "", field.encodings, email),
            Verdict("contact.email", "medium", "value-shape"),
        )
    for match in _PHONE_IN_TEXT.finditer(value) if "+" in value else ():
        phone = match.group(0)
        if 10 <= sum(c.isdigit() for c in phone) <= 15:
            yield (
                Field(field.location, field.path, "", field.encodings, phone),
                Verdict("contact.phone", "low", "value-shape"),
            )
    for match in _INNER_PAIR.finditer(value) if "=" in value or ":" in value else ():
        key, inner_value = match.group(1), match.group(2)
        inner = Field(field.location, field.path, key.rsplit(".", 1)[-1], field.encodings, inner_value)
        verdict = classify_field(inner)
        if (
            verdict is not None
            and verdict.data_type.startswith(INNER_TYPES)
            and verdict.data_type != "contact.email"
        ):
            yield inner, verdict


def _evidence_of(slot: tuple[Field, Verdict, str]) -> set[str]:
    return set(slot[1].evidence.split("+"))


def _dropped(path: str, dtypes: list[str], best: dict, refuted: frozenset[str]) -> list[str]:
    """Types to drop on one field: what its schema refutes, and all but one identifier type.

    A field is one identifier. A known value decides its type; else the schema's type, unless the
    schema only says "some device id" (device_id.other) and the value's own shape and key say which
    (a Branch hardware_id that is the Android ID); else every heuristic guess stands.
    """
    drop = [t for t in dtypes if t in refuted and "known-value" not in _evidence_of(best[(path, t)])]
    ids = [t for t in dtypes if t.startswith(IDENTIFIER_TYPES) and t not in drop]
    if len(ids) < 2:
        return drop
    known = [t for t in ids if "known-value" in _evidence_of(best[(path, t)])]
    schema = [t for t in ids if "schema" in _evidence_of(best[(path, t)])]
    if known:
        keep = set(known)
    elif schema == ["device_id.other"] and any(
        t.startswith("device_id.") and t != "device_id.other" for t in ids
    ):
        keep = {t for t in ids if t.startswith("device_id.") and t != "device_id.other"}
    elif schema:
        keep = set(schema)
    else:
        keep = set(ids)
    return drop + [t for t in ids if t not in keep]
