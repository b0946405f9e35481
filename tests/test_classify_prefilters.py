"""The speed work's cheap guards (issue 20) answer exactly as the checks they stand in front of.

Each guard in classify/shapes.py skips a regex when the value cannot match it; each prefilter in
classify/known.py skips lookups at positions where no form can start. These tests compare the
guarded functions with the bare regexes and the brute-force search, on values chosen to sit at
the guards' edges (a final newline that `$` accepts, upper-case schemes, runs longer than the
lookup limit) and on random ones.
"""

from __future__ import annotations

import hashlib
import random
import re
import sys
from array import array

from phonehome.analysis.classify import shapes
from phonehome.analysis.classify.known import _HEX_RUN, MAX_HEX_RUN, KnownValues
from phonehome.analysis.profile import Profile
from tests.support_known import PHONE_VALUES

EDGE_VALUES = [
    "", "a", "\n", "aa:bb:cc:dd:ee:ff", "aa:bb:cc:dd:ee:ff\n", "AA-BB-CC-DD-EE-FF", "aabb.ccdd.eeff",
    "aabb.ccdd.eeff\n", "aa:bb:cc:dd:ee:f", "https://x.org/a", "HTTPS://X.ORG", "FtP://h/p", "xhttps://a",
    "  https://a.b", "http://", "eyJhbGciOi.eyJzdWIiOi.sig", "eyJ", "a@b.co", "a@b.co\n", "@", "no at",
    "52.5200, 13.4050", " 52.5200;13.4050 ", "52,13", "-33.8688/151.2093", "1.2.3.4",
]  # fmt: skip


def _random_values(count: int) -> list[str]:
    rng = random.Random(20)
    alphabet = "0123456789abcdefABCDEF:-.@/ \nhtpsfjJyeE,;"
    return ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 24))) for _ in range(count)]


def test_shape_guards_agree_with_the_bare_regexes():
    values = EDGE_VALUES + _random_values(20000)
    for value in values:
        assert shapes.is_mac(value) == bool(shapes.MAC_SEP.match(value) or shapes.MAC_DOTTED.match(value))
        assert shapes.is_email(value) == bool(shapes.EMAIL.match(value))
        assert shapes.is_jwt(value) == bool(shapes.JWT.match(value))
        assert shapes.is_url(value) == bool(shapes.URL.match(value))
        assert (shapes.gps_pair(value) is None) == (
            not shapes.GPS_PAIR.match(value) or _gps_out_of_range(value)
        )
    # the edge cases do exercise both answers of each guard
    assert shapes.is_mac("aa:bb:cc:dd:ee:ff\n") and shapes.is_mac("aabb.ccdd.eeff")
    assert shapes.is_url("HTTPS://X.ORG") and not shapes.is_url("xhttps://a")
    assert shapes.gps_pair(" 52.5200;13.4050 ") == (52.52, 13.405)


def _gps_out_of_range(value: str) -> bool:
    match = shapes.GPS_PAIR.match(value)
    lat, lon = float(match.group(1)), float(match.group(2))
    return not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat, lon) == (0.0, 0.0)


def _brute_force_hex(matcher: KnownValues, lowered: str) -> list[tuple[int, str, str, str]]:
    """The search before the prefilter: every start of every hex run, every length."""
    out = []
    for run in _HEX_RUN.finditer(lowered):
        text = run.group(0)
        for start in range(len(text)) if len(text) <= MAX_HEX_RUN else (0,):
            for length in sorted({len(form) for form in matcher._hex}):
                hit = matcher._hex.get(text[start : start + length])
                if hit is not None:
                    out.append((run.start() + start, text[start : start + length], hit[0], hit[1]))
    return out


def test_hex_prefilter_finds_what_the_brute_force_search_finds():
    profile = Profile(
        values={"imei": "358240051111110", "android_id": "9774d56d682e549c", "mac": "02:00:00:44:55:66"}
    )
    matcher = KnownValues(profile)
    digests = list(matcher._hex)
    rng = random.Random(7)
    texts = []
    for _ in range(300):
        parts = []
        for _ in range(rng.randrange(1, 6)):
            choice = rng.random()
            if choice < 0.4:
                parts.append(rng.choice(digests))
            elif choice < 0.6:
                parts.append(rng.choice(digests)[: rng.randrange(1, 40)])
            else:
                parts.append("".join(rng.choice("0123456789abcdef") for _ in range(rng.randrange(0, 80))))
            parts.append(rng.choice(["", "", "x", "\x00", " ", "-"]))
        texts.append("".join(parts))
    # a run longer than the limit is looked up at its start only, both ways
    long_run = digests[0] + hashlib.sha256(b"x").hexdigest() * 9 + digests[1]
    texts += [long_run, "z" + long_run, long_run[:MAX_HEX_RUN], long_run[: MAX_HEX_RUN + 1]]
    # a digest at the edges of runs just under, at and over the limit
    for digest in (digests[0], max(digests, key=len)):
        for total in (MAX_HEX_RUN - 1, MAX_HEX_RUN, MAX_HEX_RUN + 1, 2 * MAX_HEX_RUN + 3):
            edges = {
                0,
                1,
                MAX_HEX_RUN - len(digest),
                MAX_HEX_RUN - len(digest) + 1,
                MAX_HEX_RUN,
                MAX_HEX_RUN + 1,
            }
            for offset in sorted(edges | {total - len(digest), total - len(digest) - 1}):
                if 0 <= offset <= total - len(digest):
                    run = "7" * offset + digest + "7" * (total - offset - len(digest))
                    texts += [f"z{run}z", run, f"{run}\x00{digest}"]
    found = 0
    for text in texts:
        expected = _brute_force_hex(matcher, text)
        # the brute force repeated a hit at a run's end (a longer slice cut short by the run's end
        # is the same shorter digest again); its callers keep the first of each key, so do we
        assert list(matcher._hex_matches(text)) == list(dict.fromkeys(expected))
        found += len(expected)
    assert found > 300, "the texts do contain derived digests"


def _java_hash_loop(text: str) -> int:
    """String.hashCode() one UTF-16 unit at a time, as Java computes it (the reference)."""
    h = 0
    for unit in array("H", text.encode("utf-16-le")):
        h = (31 * h + unit) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def test_block_wise_java_string_hash_equals_the_unit_by_unit_loop():
    from phonehome.analysis.classify.sensors import _BLOCK, _DIGIT_BLOCK, java_string_hash

    rng = random.Random(3)
    lengths = [0, 1, 2, 31, _BLOCK - 1, _BLOCK, _BLOCK + 1, 2 * _BLOCK, 3 * _BLOCK + 7, 50_000]
    lengths += [_DIGIT_BLOCK - 1, _DIGIT_BLOCK, _DIGIT_BLOCK + 1, 2 * _DIGIT_BLOCK, 5 * _DIGIT_BLOCK + 3]
    for n in lengths + [rng.randrange(0, 5000) for _ in range(40)]:
        # all of ASCII (base-31 digits in C), and beyond it (UTF-16 units, surrogate pairs)
        ascii_text = "".join(chr(rng.randrange(0, 128)) for _ in range(n))
        wide_text = "".join(
            chr(rng.choice([rng.randrange(32, 127), rng.randrange(0x80, 0xD000), 0x1F600])) for _ in range(n)
        )
        for text in (ascii_text, wide_text):
            assert java_string_hash(text) == _java_hash_loop(text), (n, text[:20])
    assert java_string_hash("hello") == 99162322  # "hello".hashCode() in Java
    assert java_string_hash("\x7f" * 7 + "u0z") == _java_hash_loop("\x7f" * 7 + "u0z")
    # the least limit on int() of a digit string one may set (PYTHONINTMAXSTRDIGITS) still reads a block
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(sys.int_info.str_digits_check_threshold)
    try:
        text = "".join(chr(rng.randrange(0, 128)) for _ in range(3 * _DIGIT_BLOCK + 5))
        assert java_string_hash(text) == _java_hash_loop(text)
    finally:
        sys.set_int_max_str_digits(limit)


def _unbase64_reference(text: str):
    """decode.codecs.unbase64 as written with the base64 module's functions (before issue 20)."""
    import base64
    import binascii

    from phonehome.analysis.decode.codecs import _B64_CHARS

    if not _B64_CHARS.fullmatch(text):
        return None
    body = text.rstrip("=")
    if len(body) % 4 == 1:
        return None
    urlsafe = "-" in body or "_" in body
    if urlsafe and ("+" in body or "/" in body):
        return None
    padded = body + "=" * (-len(body) % 4)
    try:
        if urlsafe:
            return "base64url", base64.urlsafe_b64decode(padded)
        return "base64", base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None


def test_unbase64_through_binascii_equals_the_base64_module():
    from phonehome.analysis.decode.codecs import unbase64

    rng = random.Random(64)
    alphabet = "ABCxyz0189+/-_=é \n"
    values = [
        "",
        "=",
        "QQ",
        "QQ=",
        "QQ==",
        "QQ===",
        "Zm9vYmFy",
        "Zm9v-_8",
        "Zm9v+/8",
        "a-b+",
        "YQ==\n",
        "aé==",
    ]
    values += ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 24))) for _ in range(30000)]
    decoded = 0
    for value in values:
        expected = _unbase64_reference(value)
        assert unbase64(value) == expected, value
        decoded += expected is not None
    assert decoded > 1000, "the random values do include base64"


def _texts_with_known_forms(matcher: KnownValues, count: int, seed: int) -> list[str]:
    """Random texts made of the matcher's own forms (whole, cut, upper-cased) and noise, some
    with characters whose lower() is longer (`İ`), which sends find_all down its fallback."""
    forms = list(matcher._folded) + list(matcher._exact) + list(matcher._hex)
    rng = random.Random(seed)
    noise = '0123456789abcdefABCDEFxyzXYZ+/=_-:.@ %"{}[]'
    texts = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randrange(0, 5)):
            choice = rng.random()
            form = rng.choice(forms)
            if choice < 0.3:
                parts.append(form)
            elif choice < 0.45:
                parts.append(form.upper())
            elif choice < 0.6:
                parts.append(form[rng.randrange(0, len(form)) :])
            else:
                parts.append("".join(rng.choice(noise) for _ in range(rng.randrange(0, 30))))
            if rng.random() < 0.02:
                parts.append("İ")
        texts.append("".join(parts))
    return texts


def _matcher() -> KnownValues:
    return KnownValues(Profile(values=PHONE_VALUES))


def test_find_all_answers_find_value_by_value():
    """find_all (one scan over the joined fields) is find() of each field, in the same order;
    find_repeated (JSON keys, searched once each) is find() as a tuple, also when asked again."""
    matcher = _matcher()
    texts = _texts_with_known_forms(matcher, 3000, seed=11)
    found = 0
    for start in range(0, len(texts), 30):
        chunk = texts[start : start + 30]
        expected = [matcher.find(text) for text in chunk]
        assert matcher.find_all(chunk) == expected
        found += sum(map(len, expected))
    # the folded forms, searched together with the derived digests, match as their own alternation
    alternation = re.compile("|".join(re.escape(f) for f in sorted(matcher._folded, key=len, reverse=True)))
    for text in texts:
        lowered = text.lower()
        expected = [match.span() for match in alternation.finditer(lowered)]
        assert matcher._lowered_matches(lowered)[0] == expected
    for text in texts[:500]:
        assert matcher.find_repeated(text) == tuple(matcher.find(text))
        assert matcher.find_repeated(text) == tuple(matcher.find(text))
    assert found > 1000, "the texts do contain known values"


def _schema_paths_and_hosts():
    """Hosts (each schema's, a subdomain, upper case, a trailing dot, look-alikes) and field paths
    (each pattern's literal spelling with indices, prefixes, near misses) to try the lookups on."""
    from phonehome.analysis.classify.schemas import shipped_schemas

    hosts, paths = ["example.org", "evilgraph.facebook.com.example", ""], ["", "body", "query.x"]
    for schema in shipped_schemas():
        for host in schema.hosts:
            hosts += [host, "a." + host, host.upper() + ".", "x" + host]
        for rule in [*schema.fields, *((p, "") for p, _ in schema.not_fields), *schema.scans]:
            pattern = rule[0] if isinstance(rule, tuple) else rule.pattern
            literal = pattern.pattern.replace(r"(?:\[\d+\])?", "[0]").replace(r"(?:.*\.)?", "x.")
            literal = literal.replace(r"[^.\[]*", "any").replace("\\", "")
            paths += [literal, literal + "x", "body." + literal, literal.replace("[0]", "")]
    url_paths = ["/", "/a", "/v1/", "/v2.3/123/activities", "/v12.0/app/x", "/meval/1", "/mping", "/b/a"]
    return hosts, paths, url_paths


def test_schema_lookups_by_host_then_path_equal_matching_every_schema():
    """schemas_for (schemas of the host cached, then their path regex) and rules_at (one lookup
    per field path, None when no rule names it) answer what matching every schema's host, path
    and field patterns one by one answers."""
    from phonehome.analysis.classify.schemas import SHAPES, rules_at, schemas_for, shipped_schemas

    hosts, paths, url_paths = _schema_paths_and_hosts()
    named = 0
    for host in hosts:
        for url_path in url_paths:
            folded = host.lower().rstrip(".")
            expected = tuple(
                s
                for s in shipped_schemas()
                if any(folded == h or folded.endswith("." + h) for h in s.hosts)
                and (s.path is None or s.path.search(url_path) is not None)
            )
            schemas = schemas_for(host, url_path)
            assert schemas == expected, (host, url_path)
            if not schemas or url_path != "/":
                continue
            for path in paths:
                rules = [
                    (r.data_type, r.shape) for s in schemas for r in s.fields if r.pattern.fullmatch(path)
                ]
                scans = [(f, t) for s in schemas for p, f, t in s.scans if p.fullmatch(path)]
                refuted = {
                    t for s in schemas for p, types in s.not_fields if p.fullmatch(path) for t in types
                }
                at = rules_at(schemas, path)
                if not (rules or scans or refuted):
                    assert at is None, (host, path)
                    continue
                named += 1
                assert (list(at.rules), list(at.scans), set(at.refuted)) == (rules, scans, refuted)
                for value in (
                    "",
                    "0",
                    "null",
                    "12345",
                    "com.example.app",
                    "38400000-8cf0-11bd-b23e-10b96e40000d",
                ):
                    types = []
                    for data_type, shape in rules:
                        if data_type not in types and SHAPES[shape](value):
                            types.append(data_type)
                    assert at.field_types(value) == types
    assert named > 100, "the paths do reach the schemas' rules"


def test_a_lone_unrefuted_type_is_never_dropped():
    """classify_request skips _dropped for a field with one data type and nothing refuted."""
    from phonehome.analysis.classify.fields import Verdict
    from phonehome.analysis.classify.request import _dropped
    from phonehome.analysis.decode import Field

    field = Field("body", "body.x", "x", ("json",), "v")
    for data_type in ("device_id.imei", "device_id.other", "user_id", "token", "url", "contact.email"):
        for evidence in ("known-value", "schema", "key-name+value-shape", "value-shape"):
            best = {("body.x", data_type): (field, Verdict(data_type, "high", evidence), "v")}
            assert _dropped("body.x", [data_type], best, frozenset()) == []


def _plain_values() -> list[str]:
    """ASCII letters and digits only, at the shapes' edges: hex of a MAC's, an Android ID's and a
    digest's length, digit runs of an IMEI's, IMSI's, timestamp's length, the prefixes of JWTs,
    GA cookies, URLs and bearer tokens, and random mixes."""
    rng = random.Random(5)
    hexdigits, alnum = (
        "0123456789abcdefABCDEF",
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    )
    values = [
        "a",
        "0",
        "GA1",
        "eyJ",
        "eyJhbGciOi",
        "https",
        "httpsexampleorg",
        "APA91b",
        "ya29",
        "xoxb",
        "ghp",
    ]
    for length in range(1, 100):
        values.append("".join(rng.choice(hexdigits) for _ in range(length)))
        values.append("".join(rng.choice("0123456789") for _ in range(length)))
        values.append("EAA" + "".join(rng.choice(alnum) for _ in range(length)))
        values.append("eyJ" + "".join(rng.choice(alnum) for _ in range(length)))
        values += ["".join(rng.choice(alnum) for _ in range(length)) for _ in range(20)]
    return values


def test_shapes_skipped_for_plain_values_never_match_them():
    """classify_field asks these shapes only of values with a character other than an ASCII
    letter or digit: on plain values each of them answers no anyway."""
    values = _plain_values()
    assert all(v.isascii() and v.isalnum() for v in values)
    for value in values:
        assert not shapes.is_url(value), value
        assert not shapes.is_fcm_token(value), value
        assert not (value.startswith("GA1.") and shapes.GA_COOKIE.match(value)), value
        assert not shapes.is_jwt(value), value
        assert not shapes.is_email(value), value
        assert not shapes.is_mac(value), value
        assert shapes.gps_pair(value) is None, value
        assert not shapes.local_ip(value), value
    # the shape kept for plain values does answer yes on some of them
    assert any(shapes.is_prefixed_token(v) for v in values)


def test_free_text_scans_need_their_character():
    """_inner_verdicts scans free text for e-mails only with an `@`, phone numbers only with a
    `+`, `key=value` / `key: value` pairs only with `=` or `:`; without it each scan finds nothing."""
    from phonehome.analysis.classify.request import _EMAIL_IN_TEXT, _INNER_PAIR, _PHONE_IN_TEXT

    rng = random.Random(9)
    alphabet = "ab xyz09_$.-@+=:;,()/\n\t%"
    texts = [
        "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko)",
        "mail me at someone@example.org", "call +49 30 1234567 now", "device_id=9774d56d682e549c; x",
        "token: abcdefgh", "a = b", "user:x@y.zz +1 202 555 0143",
    ]  # fmt: skip
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 60))) for _ in range(20000)]
    for _ in range(500):  # near misses: what each scan finds, then the same without its character
        noise = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 20)))
        phone = "+" + " ".join(
            str(rng.randrange(low, high)) for low, high in ((1, 99), (10, 999), (100, 9999)) * 2
        )
        email = f"u{rng.randrange(1000)}@host{rng.randrange(99)}.org"
        for piece in (phone, email, f"k{rng.randrange(9)}={email}"):
            texts.append(f"{noise} {piece} {noise}")
            texts.append(f"{noise} {piece} {noise}".replace("+", " ").replace("@", "a").replace("=", " "))
    found = {"@": 0, "+": 0, "=:": 0}
    for text in texts:
        for needs, regex in (("@", _EMAIL_IN_TEXT), ("+", _PHONE_IN_TEXT), ("=:", _INNER_PAIR)):
            hit = regex.search(text) is not None
            if not any(ch in text for ch in needs):
                assert not hit, (needs, text)
            found[needs] += hit
    assert min(found.values()) > 10, found
