"""Known values: find the test phone's own identifiers wherever and however they were sent.

Every profile value is expanded once into the forms an SDK might send it in — plain, URL-encoded,
hex, base64 (at all three byte alignments, so it is found inside a longer base64 string), and
md5/sha1/sha256 in hex or base64; a MAC with or without separators; hash chains of the hex
digests (sha256(md5(x)) and the like), the first 16 characters of a hex or base64url digest
(truncated hashes), and digests of two device identifiers joined (md5(IMEI + "_" + MAC)), which
name both. Matching a field is then a single pass of one multi-literal search over the lowered
text (analysis/literals.py), which finds the case-insensitive forms, the derived digests in hex
runs, and candidates for the case-sensitive base64 forms, each kept where the text itself holds
the form (see `_scan`).
"""

from __future__ import annotations

import base64
import hashlib
import re
from bisect import bisect_right
from itertools import accumulate, repeat
from operator import add
from typing import NamedTuple
from urllib.parse import quote, quote_plus

from phonehome.analysis.literals import leftmost_longest, literal_search
from phonehome.analysis.profile import Profile

# profile key -> data type (DESIGN.md vocabulary)
PROFILE_TYPES = {
    "imei": "device_id.imei",
    "android_id": "device_id.android_id",
    "advertising_id": "device_id.advertising_id",
    "oaid": "device_id.oaid",
    "serial": "device_id.serial",
    "mac": "device_id.mac",
    "imsi": "device_id.imsi",
    "iccid": "device_id.iccid",
    "phone": "contact.phone",
    "email": "contact.email",
    "account_id": "user_id",
    "urls": "url",
    "search_terms": "search_query",
}
MIN_KNOWN_LENGTH = 6  # shorter values match by accident
HASHES = ("md5", "sha1", "sha256")
TRUNCATED = 16  # characters kept of a truncated digest: 64 bits of hex, 96 of base64
# identifiers SDKs join before hashing (one device fingerprint from several ids)
JOINABLE = ("imei", "android_id", "mac", "serial", "advertising_id", "oaid", "imsi")
JOINERS = ("", "_", "-", ":", "|")
_HEX_RUN = re.compile(r"[0-9a-f]{16,}")
MAX_HEX_RUN = 512  # longer hex runs (hex-encoded blobs) are looked up at their start only
_HEX_DIGITS = frozenset("0123456789abcdef")
_HEX_AHEAD = re.compile(f"[0-9a-f]{{0,{MAX_HEX_RUN + 1}}}")  # enough to tell a run longer than the limit
MEMO_SIZE = 16384  # distinct JSON keys remembered per matcher (find_repeated)


class KnownMatch(NamedTuple):
    """One known value found in a field. A NamedTuple, as fields.Verdict: a frozen dataclass's
    __init__ sets each attribute through object.__setattr__ (20,000 matches on the varied
    5,000-request session)."""

    profile_key: str
    data_type: str
    form: str  # how it was sent: plain, urlencoded, hex, base64, md5-hex, ...
    text: str  # the matched text as it appeared in the field


def _b64_forms(raw: bytes) -> list[str]:
    """Base64 of `raw` as it appears inside a longer base64 string, for each byte alignment."""
    forms = []
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + raw).decode()
        # drop characters that depend on the neighbouring bytes
        start = {0: 0, 1: 2, 2: 3}[pad]
        tail = (pad + len(raw)) % 3
        end = len(encoded) - {0: 0, 1: 3, 2: 2}[tail]
        core = encoded[start:end].rstrip("=")
        if len(core) >= 6:
            forms.append(core)
            forms.append(core.replace("+", "-").replace("/", "_"))
    return forms


def _variants(key: str, value: str) -> tuple[dict[str, str], dict[str, str]]:
    """(case-insensitive forms, case-sensitive forms) -> form name."""
    folded: dict[str, str] = {}
    exact: dict[str, str] = {}
    texts = [value]
    if key == "mac":
        bare = re.sub(r"[^0-9a-fA-F]", "", value)
        if len(bare) == 12:
            texts = [bare, ":".join(bare[i : i + 2] for i in range(0, 12, 2)),
                     "-".join(bare[i : i + 2] for i in range(0, 12, 2))]  # fmt: skip
    for text in texts:
        raw = text.encode()
        for variant in (text.lower(), text.upper()):
            folded.setdefault(variant.lower(), "plain")
            folded.setdefault(quote(variant, safe="").lower(), "urlencoded")
            folded.setdefault(quote_plus(variant).lower(), "urlencoded")
            folded.setdefault(variant.encode().hex(), "hex")
            for name in HASHES:
                digest = hashlib.new(name, variant.encode()).digest()
                folded.setdefault(digest.hex(), f"{name}-hex")
                exact.setdefault(base64.b64encode(digest).decode().rstrip("="), f"{name}-base64")
                folded.setdefault(digest.hex()[:TRUNCATED], f"{name}-hex-truncated")
                exact.setdefault(
                    base64.urlsafe_b64encode(digest).decode()[:TRUNCATED], f"{name}-base64-truncated"
                )
                for outer in HASHES:  # hash chains over the hex digest: sha256(md5(x))
                    chained = hashlib.new(outer, digest.hex().encode()).hexdigest()
                    folded.setdefault(chained, f"{outer}-of-{name}-hex")
        for form in _b64_forms(raw):
            exact.setdefault(form, "base64")
    return ({k: v for k, v in folded.items() if len(k) >= MIN_KNOWN_LENGTH},
            {k: v for k, v in exact.items() if len(k) >= MIN_KNOWN_LENGTH})  # fmt: skip


def _joined(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Digests of two device identifiers joined: hex form -> "key1|key2"."""
    ids = []
    for key, value in pairs:
        if key in JOINABLE and len(value) >= MIN_KNOWN_LENGTH:
            forms = {value, value.lower(), value.upper()}
            if key == "mac":
                bare = re.sub(r"[^0-9a-fA-F]", "", value)
                forms |= {bare.lower(), bare.upper()}
            ids.extend((key, form) for form in sorted(forms))
    ids = ids[:24]
    out: dict[str, str] = {}
    for i, (key_a, a) in enumerate(ids):
        for key_b, b in ids[i + 1 :]:
            if key_a == key_b:
                continue
            for first, second in ((a, b), (b, a)):
                for joiner in JOINERS:
                    text = f"{first}{joiner}{second}".encode()
                    for name in HASHES:
                        out.setdefault(hashlib.new(name, text).hexdigest(), f"{key_a}|{key_b}")
    return out


class KnownValues:
    """A compiled matcher for one profile."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self._folded: dict[str, tuple[str, str]] = {}
        self._exact: dict[str, tuple[str, str]] = {}
        for key, value in profile.known_values():
            base_key = key.split(".", 1)[0]
            if len(value) < MIN_KNOWN_LENGTH:
                continue
            folded, exact = _variants(base_key, value)
            for form, how in folded.items():
                self._folded.setdefault(form, (key, how))
            for form, how in exact.items():
                self._exact.setdefault(form, (key, how))
        # derived digests (chains, truncations, joined ids) are many and all hex: found anywhere in a
        # run of 16+ hex digits, overlapping ones too, not only where the folded forms' longest-match
        # scan would stop (a truncated digest is the start of a longer one)
        self._hex: dict[str, tuple[str, str]] = {}
        for form, (_key, how) in list(self._folded.items()):
            if how.endswith("-truncated") or "-of-" in how:
                self._hex[form] = self._folded.pop(form)
        for form, keys in _joined(profile.known_values()).items():
            self._hex.setdefault(form, (keys, "joined-hash-hex"))
        self._hex = {form: hit for form, hit in self._hex.items() if _HEX_RUN.fullmatch(form)}
        # Folded forms and digests are lower case, and a base64 form is found in a text only where
        # its lowered copy is found in the lowered text: one search of the lowered text finds all
        # three (`_scan`). A case-sensitive search of the original reads mixed-case text slowly
        # (base64 forms start almost everywhere in it): on the varied 5,000-request session the two
        # searches took 0.056 + 0.091 s, the one search 0.079 s.
        self._exact_lowered = frozenset(form.lower() for form in self._exact)
        self._search = literal_search([*self._folded, *self._hex, *self._exact_lowered])
        # the base64 forms alone, for a text whose lower() is longer (positions then differ)
        self._exact_search = literal_search(self._exact)
        location = profile.values.get("location")
        self.location = tuple(location) if isinstance(location, list | tuple) and len(location) == 2 else None
        self._memo: dict[str, tuple[KnownMatch, ...]] = {}

    def find(self, value: str) -> list[KnownMatch]:
        """Known values inside `value` (each profile key once)."""
        found: dict[str, KnownMatch] = {}
        if len(value) < MIN_KNOWN_LENGTH:
            return []
        lowered = value.lower()
        folded, exact, digests = self._scan(value, lowered)
        for start, end in folded:
            keys, how = self._folded[lowered[start:end]]
            text = value[start:end] if len(lowered) == len(value) else lowered[start:end]
            for key in keys.split("|"):
                found.setdefault(key, KnownMatch(key, _type_of(key), how, text))
        for start, end in exact:
            text = value[start:end]
            key, how = self._exact[text]
            found.setdefault(key, KnownMatch(key, _type_of(key), how, text))
        for _, text, keys, how in digests:
            for key in keys.split("|"):
                found.setdefault(key, KnownMatch(key, _type_of(key), how, text))
        return list(found.values())

    def find_repeated(self, text: str) -> tuple[KnownMatch, ...]:
        """find() of a text that repeats from request to request (a JSON key), searched once.

        Only for texts of a bounded vocabulary: values differ from request to request, so a memo
        of them would only grow. The memo keeps its first MEMO_SIZE texts; later ones are searched
        every time."""
        found = self._memo.get(text)
        if found is None:
            found = tuple(self.find(text))
            if len(self._memo) < MEMO_SIZE:
                self._memo[text] = found
        return found

    def _scan(
        self, text: str, lowered: str
    ) -> tuple[list[tuple[int, int]], list[tuple[int, int]], list[tuple[int, str, str, str]]]:
        """One search of `lowered` (text.lower()): (start, end) of the folded forms in `lowered`
        and of the base64 forms in `text`, each as a longest-first regex alternation of its forms
        would find them (leftmost, longest there, non-overlapping), and (position, text, keys, how)
        of the derived digests, every one in a hex run, by position then length.

        A base64 form is searched lowered: where `text` holds the form, `lowered` holds its lowered
        copy at the same position (when lower() keeps the length), so each such candidate is kept
        if `text` there is a form. Kept in the order the search gives (by start, longest first),
        the leftmost-longest choice among them is the case-sensitive search's
        (tests/test_classify_onescan.py compares the two)."""
        if self._search is None:
            return [], [], []
        aligned = len(lowered) == len(text)
        exact_lowered, exact = self._exact_lowered, self._exact
        folded_spans = []
        exact_spans = []
        digests = []
        for start, end in self._search.occurrences(lowered):
            form = lowered[start:end]
            if form in self._folded:
                folded_spans.append((start, end))
            if aligned and form in exact_lowered and text[start:end] in exact:
                exact_spans.append((start, end))
            hit = self._hex.get(form)
            if hit is not None and _counts_in_run(lowered, start, end):
                digests.append((start, form, hit[0], hit[1]))
        if len(digests) > 1:
            digests.sort(key=lambda digest: (digest[0], len(digest[1])))
        if not aligned and self._exact_search is not None:
            exact_spans = self._exact_search.occurrences(text)
        return leftmost_longest(folded_spans), leftmost_longest(exact_spans), digests

    def _lowered_matches(self, lowered: str) -> tuple[list[tuple[int, int]], list[tuple[int, str, str, str]]]:
        """(start, end) of the folded forms and the derived digests in a lowered text (`_scan`)."""
        folded, _, digests = self._scan(lowered, lowered)
        return folded, digests

    def _hex_matches(self, lowered: str) -> list[tuple[int, str, str, str]]:
        """(position, text, keys, how) of derived digests inside the hex runs of `lowered`."""
        return self._scan(lowered, lowered)[2]

    def find_all(self, values: list[str]) -> list[list[KnownMatch]]:
        """find() for many values in one pass (fields of one request)."""
        found = self.find_each(values)
        return [found.get(index, []) for index in range(len(values))]

    def find_each(self, values: list[str]) -> dict[int, list[KnownMatch]]:
        """find() for many values in one search (fields of one request): index -> its matches,
        only the values that hold a known value (most fields hold none)."""
        results: dict[int, list[KnownMatch]] = {}
        if not values:
            return results
        joined = "\x00".join(values)
        lowered = joined.lower()
        # lower() can change lengths for a few non-ASCII characters: then fall back per value
        if len(lowered) != len(joined):
            return {index: found for index, value in enumerate(values) if (found := self.find(value))}
        folded, exact, digests = self._scan(joined, lowered)
        if not (folded or exact or digests):
            return results
        # where each value starts in `joined` (its length and a separator after each), in C
        starts = list(accumulate(map(add, map(len, values), repeat(1)), initial=0))
        seen: set[tuple[int, str]] = set()
        for spans, table, source in ((folded, self._folded, lowered), (exact, self._exact, joined)):
            for start, end in spans:
                index = bisect_right(starts, start) - 1
                keys, how = table[source[start:end]]
                text = joined[start:end]
                for key in keys.split("|"):
                    if (index, key) in seen:
                        continue
                    seen.add((index, key))
                    results.setdefault(index, []).append(KnownMatch(key, _type_of(key), how, text))
        for position, text, keys, how in digests:
            index = bisect_right(starts, position) - 1
            for key in keys.split("|"):
                if (index, key) not in seen:
                    seen.add((index, key))
                    results.setdefault(index, []).append(KnownMatch(key, _type_of(key), how, text))
        return results

    def near_location(self, lat: float, lon: float, tolerance: float = 0.01) -> bool:
        if self.location is None:
            return False
        return (
            abs(lat - float(self.location[0])) <= tolerance
            and abs(lon - float(self.location[1])) <= tolerance
        )


def _type_of(key: str) -> str:
    if key.startswith("extra."):
        return "device_id.other"
    return PROFILE_TYPES.get(key, "device_id.other")


def _counts_in_run(lowered: str, start: int, end: int) -> bool:
    """Whether a digest found at [start, end) is looked up there: anywhere in a run of hex digits
    up to MAX_HEX_RUN long, only at the start of a longer run (a hex-encoded blob)."""
    begin = start
    while begin and lowered[begin - 1] in _HEX_DIGITS:
        begin -= 1
        if start - begin > MAX_HEX_RUN:
            return False  # a longer run, and the digest is not at its start
    if begin == start:
        return True
    stop = _HEX_AHEAD.match(lowered, end).end()  # the run's end, or far enough to know it is long
    return stop - begin <= MAX_HEX_RUN
