"""Redaction for sharing: every sensitive value, in every form phonehome can see, becomes a tag.

A value is sensitive when the classifier typed it as an identifier, token, user id, contact, location
or network address (at any confidence), when it travelled in a cookie or an auth-like header, or when
it is the value of a query/form parameter whose name marks a credential (`api_key`, `token`,
`secret`, `sig`...). Each such value is then removed from every output in every form the decoder
undoes or the classifier matches: any letter case; percent-encoding in either case, whole or
partial, single or double (`%40`, `%2540`); JSON `\\uXXXX` escapes; HTML character references;
`+` for a space; base64 in both alphabets at all three byte alignments (so inside a longer base64
string too); hex in either case; its md5/sha1/sha256 in hex or base64; a phone number with
separators; a MAC with or without them. Location pairs in URLs (`lat=..&lon=..`, `ll=..`) are
replaced wherever they appear as parameters.

What cannot be scrubbed in place, because the value sits under compression or a binary encoding
(gzip, protobuf, msgpack, a second base64 layer...), is withheld and marked WITHHELD, never shared
half-redacted. Tags are keyed (HMAC-SHA-256, a random key per run unless PHONEHOME_REDACTION_KEY is
set): the same value gets the same tag throughout one output, so links between modes and sessions
stay visible, but a tag cannot be brute-forced back into a low-entropy value such as a phone number.

Pure functions and one class on data; no pandas work beyond mapping columns, no matplotlib (the HAR
export imports this module).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import unquote_plus

import pandas as pd

from phonehome.analysis.findings import incomplete_mask

SENSITIVE_PREFIXES: tuple[str, ...] = ("device_id.", "token", "user_id", "contact.", "location.", "network.")
SENSITIVE_FIELD_WORDS: tuple[str, ...] = ("authorization", "cookie", "token", "session", "auth")
#: Parameter names whose values are credentials whatever the classifier said (whole name, lowercased).
SECRET_PARAM = re.compile(
    r"(?:.*[_\-.])?(?:api[_\-]?key|apikey|access[_\-]?key|app[_\-]?key|client[_\-]?secret|secret|"
    r"(?:access|auth|id|refresh|session|bearer)?[_\-]?token|auth|password|passwd|pwd|sig|signature|"
    r"session[_\-]?id|sessionid|sid|key)"
)
#: Parameter names that carry a location (latitude, longitude or a pair).
LOCATION_PARAM = re.compile(
    r"lat|latitude|lon|lng|long|longitude|ll|latlng|latlon|latlong|geo|gps|coords?|location"
)
#: Values too short or too common to replace without destroying unrelated text.
MIN_SECRET_CHARS = 4
JUNK_VALUES = frozenset({"null", "none", "true", "false", "undefined", "unknown", "nil", "0000", "00000000"})
#: Columns holding phonehome's own vocabulary (never captured text): left as they are.
VOCABULARY_COLUMNS = frozenset(
    {"location", "encodings", "data_type", "confidence", "evidence", "category", "party"}
)
#: Encodings a text scrub sees through (the value is still a substring of the decoded view).
TEXTUAL_ENCODINGS = frozenset({"", "form", "json", "multipart", "cookie", "urlencoded", "jwt"})
#: At most one of these layers can be seen through (its forms are generated from the value).
ONE_LAYER_ENCODINGS = frozenset({"base64", "base64url", "hex"})
WITHHELD = "[withheld by phonehome --redact]"
#: Forms longer than this are matched literally only (no encoded variants): bounds the regex.
MAX_FORM_SOURCE = 256

NOTICE = (
    "This output is redacted. Device identifiers, tokens, user ids, contact data, locations and network "
    "addresses (as typed by phonehome's classifier, at any confidence), cookies, Authorization-like headers "
    "and query parameters named like keys, tokens, secrets or signatures are replaced by tags "
    "(redacted- and 8 hex digits of a keyed HMAC-SHA-256): the same value gets the same tag throughout, "
    "so links between modes and sessions stay visible, but a tag cannot be guessed back into the value. "
    "Each value is removed in every form phonehome decodes: any letter case, percent-encoding (also "
    "partial or double), JSON \\u escapes, HTML character references, base64 (both alphabets, any "
    "alignment), hex, and its MD5/SHA-1/SHA-256; latitude/longitude parameters in URLs are replaced too. "
    "Where a value sits under compression or another binary encoding it cannot be scrubbed in place: that "
    f"URL part, header or body is withheld and shows {WITHHELD}. Visited URLs and search terms are kept, "
    "since they are the findings."
)
REDACTION_NOTICE = NOTICE  # the name the report renderers import


def _key() -> bytes:
    env = os.environ.get("PHONEHOME_REDACTION_KEY")
    return env.encode("utf-8") if env else secrets.token_bytes(32)


_KEY = _key()


def tag(value: str) -> str:
    """A short stable stand-in for a sensitive value (keyed, so it cannot be brute-forced)."""
    digest = hmac.new(_KEY, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
    return "redacted-" + digest[:8]


def is_sensitive(data_type: str, location: str, field: str) -> bool:
    """True for identifiers, tokens and anything carried in a cookie or an auth-like header."""
    if data_type.startswith(SENSITIVE_PREFIXES):
        return True
    if location == "cookie":
        return True
    return location == "header" and any(word in field.lower() for word in SENSITIVE_FIELD_WORDS)


def sensitive_mask(findings: pd.DataFrame) -> list[bool]:
    """Per findings row: does its value need hiding?"""
    if findings.empty:
        return []
    return [
        is_sensitive(str(t), str(loc), str(f))
        for t, loc, f in zip(findings["data_type"], findings["location"], findings["field"], strict=True)
    ]


def worth_redacting(value: str) -> bool:
    """Long and specific enough to replace everywhere without wrecking unrelated text."""
    v = value.strip()
    return len(v) >= MIN_SECRET_CHARS and v.lower() not in JUNK_VALUES and len(set(v)) > 1


def sensitive_values(findings: pd.DataFrame) -> list[str]:
    """The values to hide, longest first so overlapping values are replaced whole."""
    if findings.empty:
        return []
    values = {str(v) for v in findings.loc[sensitive_mask(findings), "value"] if worth_redacting(str(v))}
    return sorted(values, key=len, reverse=True)


def scrubbable(encodings: str) -> bool:
    """Whether a value found under `encodings` can be scrubbed by a text search of the raw request."""
    layers = [e for e in str(encodings or "").split(">") if e]
    rest = [e for e in layers if e not in TEXTUAL_ENCODINGS]
    return len(rest) <= 1 and all(e in ONE_LAYER_ENCODINGS for e in rest)


# --- the forms of one value ------------------------------------------------------------------


def _b64_cores(raw: bytes) -> list[str]:
    """Base64 of `raw` as it appears inside a longer base64 string, at each byte alignment."""
    forms = []
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + raw).decode()
        start = {0: 0, 1: 2, 2: 3}[pad]
        keep = (8 * (pad + len(raw))) // 6  # characters whose six bits all come from `raw`
        core = encoded[start:keep]
        if len(core) >= 6:
            forms += [core, core.replace("+", "-").replace("/", "_")]
    return forms


def _mac_variants(value: str) -> list[str]:
    bare = re.sub(r"[^0-9a-fA-F]", "", value)
    if len(bare) != 12:
        return []
    pairs = [bare[i : i + 2] for i in range(0, 12, 2)]
    return [bare, ":".join(pairs), "-".join(pairs), ".".join(bare[i : i + 4] for i in range(0, 12, 4))]


_PHONE = re.compile(r"\+?[\d\s().\-/]{7,24}")


def value_forms(value: str, data_type: str = "") -> tuple[set[str], set[str]]:
    """(case-insensitive forms, case-sensitive forms) of `value`, as they appear after the
    character-level escapes (percent, JSON, HTML) are undone; see Redactor.scrub."""
    folded: set[str] = set()
    exact: set[str] = set()
    texts = {value}
    if data_type == "device_id.mac" or re.fullmatch(r"(?:[0-9a-fA-F]{2}[:\-]){5}[0-9a-fA-F]{2}", value):
        texts.update(_mac_variants(value))
    if " " in value:
        texts.add(value.replace(" ", "+"))
    for text in texts:
        for variant in {text, text.lower(), text.upper()}:
            folded.add(variant.lower())
            raw = variant.encode("utf-8", "surrogatepass")
            folded.add(raw.hex())
            for name in ("md5", "sha1", "sha256"):
                digest = hashlib.new(name, raw).digest()
                folded.add(digest.hex())
                b64 = base64.b64encode(digest).decode().rstrip("=")
                exact.update({b64, b64.replace("+", "-").replace("/", "_")})
            exact.update(_b64_cores(raw))
    return ({f for f in folded if len(f) >= MIN_SECRET_CHARS}, {f for f in exact if len(f) >= 6})


def _trie_regex(words: Iterable[str]) -> str | None:
    """One regex matching any of `words`, longest first, shared prefixes factored (fast alternation)."""
    trie: dict = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}
    if not trie:
        return None

    def build(node: dict) -> str:
        prefix = []
        while len(node) == 1 and "" not in node:  # a chain: no recursion per character
            (ch, node) = next(iter(node.items()))
            prefix.append(re.escape(ch))
        ends = "" in node
        singles, alts = [], []
        for ch in sorted(k for k in node if k):
            sub = build(node[ch])
            if sub:
                alts.append(re.escape(ch) + sub)
            else:
                singles.append(ch)
        if singles:
            alts.append(
                re.escape(singles[0])
                if len(singles) == 1
                else "[" + "".join(map(_class_escape, singles)) + "]"
            )
        body = "" if not alts else alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        if body and ends:
            body = f"(?:{body})?"
        return "".join(prefix) + body

    return build(trie)


def _class_escape(ch: str) -> str:
    return "\\" + ch if ch in "\\]^-[" else ch


# --- the decoded view: percent, JSON and HTML escapes undone, positions kept -------------------

_ESCAPE = re.compile(
    r"(?:%25|%)[0-9A-Fa-f]{2}|\\{1,2}u[0-9A-Fa-f]{4}|&#[xX][0-9A-Fa-f]{1,6};|&#[0-9]{1,7};|&(?:amp|lt|gt|quot|apos);"
)


def decoded_views(text: str, passes: int = 3) -> list[tuple[str, list[int], list[int]]]:
    """`text` after each pass of undoing its escapes (repeatedly: `%5Cu0040` is a JSON escape once
    percent-decoded), each with every decoded character's start and end in `text`.

    Every intermediate view is kept, not only the last: a later pass can destroy what an earlier
    one revealed, when a stray `%` or backslash sits before an escaped value (`%` + `\\u0065\\u0033`
    decodes to `%e3`, which the next pass would take for a percent escape)."""
    views: list[tuple[str, list[int], list[int]]] = []
    view, starts, ends = text, None, None
    for _ in range(passes):
        step = _decode_once(view)
        if step is None or step[0] == view:
            break
        view, s2, e2 = step
        if starts is None or ends is None:
            starts, ends = s2, e2
        else:
            starts, ends = [starts[i] for i in s2], [ends[i - 1] for i in e2]
        views.append((view, starts, ends))
    return views


def decoded_view(text: str, passes: int = 3) -> tuple[str, list[int], list[int]] | None:
    """The last of decoded_views (all escapes undone), or None when `text` holds no escape."""
    views = decoded_views(text, passes)
    return views[-1] if views else None


def _decode_once(text: str) -> tuple[str, list[int], list[int]] | None:
    """One pass of decoded_view: each escape undone once."""
    if "%" not in text and "\\" not in text and "&" not in text:
        return None
    chars: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    pos = 0
    pending: list[tuple[int, int, int]] = []  # percent-decoded bytes waiting to form a character

    def flush_bytes() -> None:
        i = 0
        while i < len(pending):
            lead = pending[i][0]
            n = (
                1
                if lead < 0x80
                else 2
                if lead >> 5 == 6
                else 3
                if lead >> 4 == 14
                else 4
                if lead >> 3 == 30
                else 1
            )
            chunk = bytes(b for b, _, _ in pending[i : i + n])
            try:
                ch = chunk.decode("utf-8")
            except UnicodeDecodeError:
                ch, n = chr(lead), 1
            chars.append(ch)
            starts.append(pending[i][1])
            ends.append(pending[i + n - 1][2])
            i += n
        pending.clear()

    for m in _ESCAPE.finditer(text):
        a, b = m.span()
        if a > pos or not m.group().startswith("%"):
            flush_bytes()
        for i in range(pos, a):
            chars.append(text[i])
            starts.append(i)
            ends.append(i + 1)
        unit = m.group()
        if unit.startswith("%"):
            pending.append((int(unit[-2:], 16), a, b))
        elif unit.startswith("\\"):
            chars.append(chr(int(unit[-4:], 16)))
            starts.append(a)
            ends.append(b)
        else:
            chars.append(html.unescape(unit))
            starts.append(a)
            ends.append(b)
        pos = b
    flush_bytes()
    for i in range(pos, len(text)):
        chars.append(text[i])
        starts.append(i)
        ends.append(i + 1)
    return "".join(chars), starts, ends


# --- URL parameters ---------------------------------------------------------------------------

_PARAM = re.compile(r"(?P<sep>^|[?&;])(?P<key>[^=&?#;\s\"'<>]{1,64})=(?P<value>[^&#;\s\"'<>]*)")


def _param_kind(key: str) -> str | None:
    name = unquote_plus(key).strip().lower()
    if LOCATION_PARAM.fullmatch(name):
        return "location"
    if SECRET_PARAM.fullmatch(name):
        return "secret"
    return None


def secret_params(text: str) -> list[str]:
    """Decoded values of credential-named parameters in a URL or form text (the API key nobody typed)."""
    out = []
    for m in _PARAM.finditer(text):
        if _param_kind(m.group("key")) == "secret":
            value = unquote_plus(m.group("value"))
            if worth_redacting(value) and len(value) >= 6:
                out.append(value)
    return out


# --- the redactor -----------------------------------------------------------------------------


@dataclass
class Redactor:
    """Scrubs a fixed set of sensitive values (and location/credential parameters) from any text.

    `opaque`: flow_id -> locations (query, url_path, header.<name>, body) whose sensitive values sit
    under an encoding a text scrub cannot see through; those parts are withheld. A request not fully
    decoded has UNREAD_PLACES: every part (`header.*`: every request header), since what was not
    examined cannot be scrubbed.
    """

    values: list[str]
    types: dict[str, str] = field(default_factory=dict)
    opaque: dict[str, set[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.canonical: dict[str, str] = {}  # form -> the value whose tag replaces it
        folded_words: dict[str, str] = {}
        exact_words: dict[str, str] = {}
        self.long_values: list[str] = []
        for value in sorted(set(self.values), key=lambda v: (-len(v), v)):
            key = value.lower()
            self.canonical.setdefault(key, value)
            canon = self.canonical[key]
            if len(value) > MAX_FORM_SOURCE:
                self.long_values.append(value)
                continue
            folded, exact = value_forms(value, self.types.get(value, ""))
            for form in folded:
                folded_words.setdefault(form, canon)
            for form in exact:
                exact_words.setdefault(form, canon)
        self._folded = folded_words
        self._exact = exact_words
        self._phones = self._phone_patterns()
        f = _trie_regex(folded_words)
        e = _trie_regex(exact_words)
        self._folded_re = re.compile(f, re.IGNORECASE) if f else None
        self._exact_re = re.compile(e) if e else None
        self._cache: dict[str, str] = {}

    def _phone_patterns(self) -> list[tuple[re.Pattern[str], str]]:
        out = []
        for value in self.values:
            if self.types.get(value) == "contact.phone" or (
                _PHONE.fullmatch(value) and sum(c.isdigit() for c in value) >= 7
            ):
                digits = re.sub(r"\D", "", value)
                if len(digits) >= 7:
                    sep = r"[\s().\-/]*"
                    out.append((re.compile(r"\+?" + sep.join(digits[-9:])), self.canonical[value.lower()]))
        return out

    @property
    def empty(self) -> bool:
        return not self.values

    def tag_for(self, value: str) -> str:
        return tag(self.canonical.get(value.lower(), value))

    def _spans(self, view: str) -> list[tuple[int, int, str]]:
        spans = []
        if self._folded_re is not None:
            for m in self._folded_re.finditer(view):
                spans.append((m.start(), m.end(), self._folded.get(m.group().lower(), m.group())))
        if self._exact_re is not None:
            for m in self._exact_re.finditer(view):
                spans.append((m.start(), m.end(), self._exact[m.group()]))
        lowered = view.lower()
        for value in self.long_values:
            start = lowered.find(value.lower())
            while start >= 0:
                spans.append((start, start + len(value), self.canonical[value.lower()]))
                start = lowered.find(value.lower(), start + len(value))
        for pattern, canon in self._phones:
            spans += [(m.start(), m.end(), canon) for m in pattern.finditer(view)]
        return spans

    def scrub_values(self, text: str) -> str:
        """`text` with every form of every sensitive value replaced by the value's tag."""
        if not self.values or not text:
            return text
        spans = self._spans(text)  # as written too: "100%" + id decodes to "%10"...
        for view, starts, ends in decoded_views(text):  # after each pass, back to positions in `text`
            spans += [(starts[a], ends[b - 1], canon) for a, b, canon in self._spans(view)]
        if not spans:
            return text
        spans.sort(key=lambda s: (s[0], -s[1]))
        out, pos = [], 0
        for a, b, canon in spans:
            if a < pos:  # overlapping a replaced span: extend it
                if b > pos:
                    pos = b
                continue
            out.append(text[pos:a])
            out.append(tag(canon))
            pos = b
        out.append(text[pos:])
        return "".join(out)

    def scrub_params(self, text: str) -> str:
        """Location and credential parameters (`lat=`, `lon=`, `api_key=`...) replaced by tags."""
        if "=" not in text:
            return text

        def repl(m: re.Match[str]) -> str:
            kind = _param_kind(m.group("key"))
            value = m.group("value")
            if kind is None or not value or value.startswith("redacted-"):
                return m.group()
            return f"{m.group('sep')}{m.group('key')}={tag(unquote_plus(value))}"

        return _PARAM.sub(repl, text)

    def scrub(self, text: str) -> str:
        """Everything this redactor hides, hidden in `text` (cached per distinct text)."""
        if not isinstance(text, str) or not text:
            return text
        hit = self._cache.get(text)
        if hit is None:
            hit = self.scrub_params(self.scrub_values(text))
            if len(self._cache) < 200_000:
                self._cache[text] = hit
        return hit

    def withhold_url(self, url: str, flow_id: str) -> str:
        """`url` with the parts holding unscrubbable values (query, path) withheld."""
        places = self.opaque.get(flow_id)
        if not places or not isinstance(url, str):
            return url
        head, sep, query = url.partition("?")
        if "query" in places and sep:
            query = WITHHELD
        if "url_path" in places:
            scheme, slashes, rest = head.partition("://")
            host = rest.split("/", 1)[0]
            head = f"{scheme}{slashes}{host}/{WITHHELD}" if slashes else WITHHELD
        return head + (sep + query if sep else "")

    # -- tables ---------------------------------------------------------------------------------

    def frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """A copy of `frame` with every captured text column scrubbed (and URLs withheld in part)."""
        out = frame.copy()
        for column in out.columns:
            if column in VOCABULARY_COLUMNS or not pd.api.types.is_string_dtype(out[column]):
                continue
            out[column] = out[column].map(self.scrub, na_action="ignore")
        if "url" in out.columns and "flow_id" in out.columns and self.opaque:
            out["url"] = [
                self.withhold_url(u, str(f)) for u, f in zip(out["url"], frame["flow_id"], strict=True)
            ]
        return out

    def findings(self, findings: pd.DataFrame) -> pd.DataFrame:
        """The findings with sensitive values replaced whole by their tags, and every column scrubbed."""
        if findings.empty:
            return findings.copy()
        mask = sensitive_mask(findings)
        values = [
            self.tag_for(str(v)) if hit and worth_redacting(str(v)) else (WITHHELD if hit else v)
            for v, hit in zip(findings["value"], mask, strict=True)
        ]
        out = self.frame(findings.assign(value=values))
        return out


#: What is withheld of a request not fully decoded (flows' decode_truncated): all of it.
UNREAD_PLACES = frozenset({"url_path", "query", "header.*", "body"})


def opaque_places(findings: pd.DataFrame) -> dict[str, set[str]]:
    """flow_id -> where (query, url_path, header.<name>, cookie, body) a sensitive value sits under an
    encoding a text scrub cannot see through."""
    places: dict[str, set[str]] = {}
    if findings.empty:
        return places
    sensitive = findings[sensitive_mask(findings)]
    for flow_id, location, fld, encodings in zip(
        sensitive["flow_id"], sensitive["location"], sensitive["field"], sensitive["encodings"], strict=True
    ):
        if scrubbable(str(encodings)):
            continue
        where = str(location)
        if where == "header":
            where = "header." + str(fld).split(".", 1)[-1].split("[", 1)[0].lower()
        places.setdefault(str(flow_id), set()).add(where)
    return places


def redactor_for(
    findings: pd.DataFrame,
    *texts: Iterable[str],
    extra_values: Iterable[str] = (),
    unread: Iterable[str] = (),
) -> Redactor:
    """The Redactor for one output: the findings' sensitive values, credential parameters found in
    `texts` (URLs, bodies), and `extra_values` (e.g. a profile's identifiers); the requests whose
    flow ids are in `unread` (not fully decoded) are withheld whole."""
    values = set(sensitive_values(findings))
    values.update(v for v in extra_values if isinstance(v, str) and worth_redacting(v))
    for column in texts:
        for text in column:
            if isinstance(text, str) and "=" in text:
                values.update(secret_params(text))
    types: dict[str, str] = {}
    if not findings.empty:
        for v, t in zip(findings["value"], findings["data_type"], strict=True):
            types.setdefault(str(v), str(t))
    places = opaque_places(findings)
    for flow_id in unread:
        places.setdefault(str(flow_id), set()).update(UNREAD_PLACES)
    return Redactor(sorted(values), types, places)


def redact_frame(frame: pd.DataFrame, values: list[str], columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """A copy of frame with the given values scrubbed from its text columns (`columns` kept for
    compatibility: every captured text column is scrubbed)."""
    return Redactor(values).frame(frame)


def tables_redactor(
    findings: pd.DataFrame, flows: pd.DataFrame, extra_values: Iterable[str] = ()
) -> Redactor:
    """The Redactor redact_tables uses, for scrubbing anything else a redacted output shows from the
    same analysis (reader warnings, titles): `tables_redactor(f, fl).scrub(text)`."""
    urls = [*findings.get("url", []), *flows.get("url", [])]
    return redactor_for(findings, urls, extra_values=extra_values, unread=unread_flow_ids(flows))


def unread_flow_ids(flows: pd.DataFrame) -> set[str]:
    """The flow ids of requests not fully decoded: withheld whole (UNREAD_PLACES)."""
    if "flow_id" not in flows:
        return set()
    return {str(f) for f in flows.loc[incomplete_mask(flows), "flow_id"]}


# What a profile lists that is the finding itself, not a secret: visited URLs and searched words stay.
PROFILE_KEYS_KEPT = frozenset({"urls", "search_terms"})


def profile_secrets(profile: object) -> list[str]:
    """The tester's own identifiers from a profile (its `known_values`), to redact wherever they
    appear — also where the classifier named nothing (a value too short to look for, an unusual
    key). Visited URLs and search terms are the findings and are kept."""
    if profile is None:
        return []
    return [value for key, value in profile.known_values() if key not in PROFILE_KEYS_KEPT]


def redact_tables(
    findings: pd.DataFrame, flows: pd.DataFrame, contacts: pd.DataFrame, extra_values: Iterable[str] = ()
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The three tables with every sensitive value, in every form, replaced by its tag."""
    redactor = tables_redactor(findings, flows, extra_values)
    return redactor.findings(findings), redactor.frame(flows), redactor.frame(contacts)


def scrub(text: str, values: list[str]) -> str:
    """text with every sensitive value (in every form) replaced by its tag."""
    return Redactor(values).scrub(text)
