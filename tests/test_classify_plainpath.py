"""classify_field's plain-value exit and classify_request's per-field plan (issue 20) answer
exactly as what they stand in front of.

classify_viewed returns None at once for a value of ASCII letters and digits under a key that no
run of key-gated rules reads and that is no IMEI context, outside cookies, unless it is a prefixed
token. A view with `early` forced on never takes that exit (and asks a run that answers nothing
for such a key: tests/test_classify_fastpath.py), so it is the reference here, on many keys,
paths, locations and plain values, prefixed tokens and cookie ids among them.

field_plan bundles, per (name, path), key_use, key_view and the coordinate-key test that
classify_request used to make field by field: compared with those.
"""

from __future__ import annotations

import random
import string

from phonehome.analysis.classify import fields
from phonehome.analysis.classify.fields import classify_field, classify_viewed, key_view, normalise_key
from phonehome.analysis.classify.request import _COORDINATE_KEYS, field_plan, key_use
from phonehome.analysis.decode import Field

_NAMES = [
    *sorted(
        {
            key
            for name, keys in vars(fields).items()
            if name.endswith("_KEYS") and isinstance(keys, frozenset)
            for key in keys
        }
    ),
    "", "id", "ID", "uuid", "value", "event", "$lib", "x-crashlytics-installation-id", "wrvUserID",
    "ssb_instance_id", "_kua_aa_id", "deviceImei", "hwid_x", "lat", "Latitude", "lng", "geo_lon", "14",
]  # fmt: skip
_PATHS = [
    "",
    "body",
    "body.x",
    "body.device.x",
    "body.user.x",
    "query.x",
    "cookie.x",
    "body.items[2].product.x",
]
_LOCATIONS = ("body", "query", "cookie", "header", "url_path")


def _plain_values(rng: random.Random, count: int) -> list[str]:
    """Plain values of every kind a rule could read: words, numbers, IMEIs, hex ids, serials,
    prefixed tokens (EAA...), long and empty ones, and a few near misses with a symbol or space."""
    alnum = string.ascii_letters + string.digits
    values = [
        "", "0", "true", "null", "unknown", "Android", "13", "358240051111110", "490154203237518",
        "9774d56d682e549c", "d41d8cd98f00b204e9800998ecf8427e", "R58M12ABCDE", "SERIAL12345",
        "310260000000000", "89014103211118510720", "020000445566", "1702345678901", "EAA" + "b" * 90,
        "EAAB" + "x1" * 45, "EAA" + "b" * 5000, "x" * 5000, " 12345", "12345\n", "é12345", "ya29." + "a" * 30,
    ]  # fmt: skip
    for _ in range(count):
        kind = rng.random()
        if kind < 0.3:
            values.append("".join(rng.choice(string.digits) for _ in range(rng.randrange(1, 25))))
        elif kind < 0.5:
            values.append(
                "".join(rng.choice("0123456789abcdef") for _ in range(rng.choice((12, 15, 16, 32))))
            )
        elif kind < 0.6:
            values.append("EAA" + "".join(rng.choice(alnum) for _ in range(rng.randrange(70, 100))))
        else:
            values.append("".join(rng.choice(alnum) for _ in range(rng.randrange(1, 40))))
    return values


def test_the_plain_value_exit_answers_as_the_rules():
    rng = random.Random(20)
    values = _plain_values(rng, 400)
    cases = exits = 0
    answered_in_exit_shape = 0
    for name in _NAMES:
        for path in rng.sample(_PATHS, 3):
            view = key_view(name, path)
            forced = view._replace(early=True)
            for location in _LOCATIONS:
                for value in rng.sample(values, 25):
                    field = Field(location, path, name, ("json",), value)
                    got = classify_viewed(field, view)
                    assert got == classify_viewed(field, forced), (name, path, location, value)
                    assert got == classify_field(field)
                    cases += 1
                    quiet = not (view.noise or view.early or view.late or view.imei_context)
                    if quiet and value.isascii() and value.isalnum():
                        exits += 1
                        answered_in_exit_shape += got is not None
    assert cases > 20000
    assert exits > 5000, "many cases reach the exit"
    assert answered_in_exit_shape > 50, "prefixed tokens and cookie ids under quiet keys still answer"


def test_field_plan_equals_the_lookups_it_bundles():
    for name in [*_NAMES, "358240051111110", "a@b.co", "installed_apps", "apps"]:
        for path in _PATHS:
            plan = field_plan(name, path)
            use = key_use(name)
            assert plan.view == key_view(name, path)
            assert (plan.searchable, plan.installed, plan.lat, plan.lon) == tuple(use)
            assert plan.paired == (use.installed or use.lat or use.lon)
            assert plan.coordinate_key == bool(name and normalise_key(name) in _COORDINATE_KEYS)
    assert field_plan("lat", "body.lat").coordinate_key and field_plan("lat", "body.lat").paired
    assert not field_plan("", "body").coordinate_key


def test_plan_tables_carry_the_schemas_rules_of_each_path():
    """classify_request keeps one table of plans per tuple of schemas: each plan is field_plan
    with that tuple's rules_at for the path, and no rules without schemas."""
    from phonehome.analysis.classify import request
    from phonehome.analysis.classify.schemas import rules_at, shipped_schemas

    groups = [(), *((schema,) for schema in shipped_schemas()), tuple(shipped_schemas()[:3])]
    paths = ["body.x", "query.x", "body.data_list[0].distinct_id", "body.data_list.properties.$device_id"]
    for schema in shipped_schemas():
        for rule in schema.fields:
            paths.append(rule.pattern.pattern.replace(r"(?:\[\d+\])?", "[0]").replace(r"(?:.*\.)?", "a."))
    with_rules = 0
    for schemas in groups:
        table = request._plan_table(schemas)
        for path in paths:
            name = path.rsplit(".", 1)[-1]
            plan = table.get((name, path)) or request._new_plan(table, name, path, schemas)
            assert plan == field_plan(name, path)._replace(at=rules_at(schemas, path) if schemas else None)
            assert table[name, path] is plan and request._plan_table(schemas) is table
            with_rules += plan.at is not None
    assert with_rules > 20, "the paths do include schema fields"


def test_a_full_plan_table_starts_again(monkeypatch):
    from phonehome.analysis.classify import request

    monkeypatch.setattr(request, "MAX_PLANS", 10)
    monkeypatch.setattr(request, "_plans", {})
    table = request._plan_table(())
    for number in range(10):
        request._new_plan(table, f"k{number}", f"body.k{number}", ())
    assert request._plan_table(()) is table and len(table) == 10
    request._new_plan(table, "k10", "body.k10", ())
    fresh = request._plan_table(())
    assert fresh is not table and fresh == {}


def test_the_bare_patterns_classify_viewed_asks_first_are_the_shape_functions():
    """classify_viewed asks TOKEN_PREFIXES, `:APA91b` and `@` before the shape functions they
    stand in front of (each function needs them), and the URL and JWT patterns instead of
    is_url and is_jwt (the same below 8,192 characters)."""
    from phonehome.analysis.classify import shapes

    rng = random.Random(21)
    alphabet = string.ascii_letters + string.digits + "._-:@/+= "
    starts = ["", "ya29.", "xoxb-", "EAA", "ghp_", "gho_", "eyJ", "https://", "HTTP://", "ftp://", "a@"]
    values = [
        rng.choice(starts) + "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 120)))
        for _ in range(20000)
    ]
    values += ["abcdefghijk:APA91b" + "x" * 70, "ya29." + "a" * 4091, "EAA" + "b" * 4093, "EAA" + "b" * 90]
    hits = 0
    for value in values:
        if shapes.is_prefixed_token(value):
            assert shapes.TOKEN_PREFIXES.match(value), value
            hits += 1
        if shapes.is_fcm_token(value):
            assert ":APA91b" in value
            hits += 1
        if shapes.is_email(value):
            assert "@" in value
            hits += 1
        if len(value) <= 4096:
            assert (shapes.URL.match(value) is not None) == shapes.is_url(value), value
            assert bool(shapes.JWT.match(value)) == shapes.is_jwt(value), value
    assert hits > 500
    # a 4,096-character value of the token's shape is asked but is no prefixed token (as before)
    long_token = Field("body", "body.x", "x", (), "EAA" + "b" * 4093)
    assert classify_field(long_token) is None


def _local_ip_before(value: str) -> bool:
    """shapes.local_ip as of 612a470, before its first exit."""
    import ipaddress

    if len(value) > 45 or not (value[:1].isdigit() or ":" in value):
        return False
    if value.count(".") != 3 and value.count(":") < 2:
        return False
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    if address.is_unspecified:
        return False
    return address.is_private or address.is_link_local or address.is_loopback


def test_local_ips_first_exit_answers_as_before():
    from phonehome.analysis.classify import shapes

    rng = random.Random(22)
    values = ["192.168.1.20", "10.0.0.1", "::1", "fe80::1", "fe80::1%eth0", "8.8.8.8", "0.0.0.0",
              "4.3.2", "1.2.3.4.5", "127.0.0.1", "a.b.c.d", ":", "::", "1:2", "172.16.0.1 ", ""]  # fmt: skip
    values += [
        "".join(rng.choice("0123456789abcdef.:% ") for _ in range(rng.randrange(0, 20))) for _ in range(30000)
    ]
    values += [
        ".".join(str(rng.choice((10, 127, 169, 172, 192, 254, 16, 168))) for _ in range(4))
        for _ in range(500)
    ]
    private = 0
    for value in values:
        assert shapes.local_ip(value) == _local_ip_before(value), value
        private += shapes.local_ip(value)
    assert private > 200


def test_every_record_url_has_the_separator_not_a_leak_looks_for_first():
    """_not_a_leak compares a value with record.url only when the value has a "://", which every
    record's URL has, whatever its scheme, host (IPv6 too), port and path."""
    from phonehome.analysis.classify.request import _SDK_PARENT, _in_sdk_object
    from phonehome.analysis.records import HttpRecord, Labels

    for scheme in ("http", "https", "ws", ""):
        for host in ("example.org", "::1", "[::1]", "10.0.0.1", ""):
            for port in (0, 80, 443, 8080, None):
                for path in ("", "/", "/a?b=c", "*"):
                    record = HttpRecord("t", "1", Labels(), 0.0, "GET", scheme, host, port, path)
                    assert "://" in record.url, record
    for path in ["body.notifier.url", "body.sdk.homepage", "body.Library.x", "body.user.url", "notifier", ""]:
        assert _in_sdk_object(path) == (_SDK_PARENT.search(path) is not None)
    assert _in_sdk_object("body.notifier.url") and not _in_sdk_object("body.user.url")


def test_the_query_of_an_accepted_url_is_urlsplits():
    from urllib.parse import urlsplit

    from phonehome.analysis.classify import shapes
    from phonehome.analysis.classify.request import _query_of

    rng = random.Random(23)
    pieces = ["https://", "HTTP://", "ftp://", "a.b", "/", "?", "#", "&", "=", "%20", "[", "]", "::1", "é",
              "x", "@", ":80", ";", "\x01", "q=1", "%3F"]  # fmt: skip
    urls = [
        "https://a.org/p?q=1#f?x",
        "https://a.org#f?x",
        "https://[::1]:80/p?q",
        "https://a.org/p?",
        "http://x",
    ]
    urls += [
        rng.choice(pieces[:3]) + "".join(rng.choice(pieces) for _ in range(rng.randrange(1, 14)))
        for _ in range(20000)
    ]
    checked = with_query = refused = 0
    for url in urls:
        if not shapes.is_url(url):
            continue
        try:
            expected = urlsplit(url).query
        except ValueError:
            # a host urlsplit refuses (a captured value: it must not stop the analysis): the
            # query is still what follows the first "?" before the first "#"
            assert _query_of(url) == url.partition("#")[0].partition("?")[2], url
            refused += 1
            continue
        assert _query_of(url) == expected, url
        checked += 1
        with_query += bool(expected)
    assert checked > 5000 and with_query > 2000 and refused > 100
