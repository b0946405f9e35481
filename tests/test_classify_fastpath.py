"""classify_field's per-key shortcuts (issue 20) answer exactly as the rules they stand in front of.

classify_field reads a field's key name once per distinct (name, path) (`key_view`, cached), and
skips each run of key-gated rules when the key is in none of the sets that run reads. These
tests compare the cached view with the uncached functions it is made of, and classify_field with
its runs forced open (every rule asked, as before the shortcut) on many keys, paths and values.
"""

from __future__ import annotations

import random

from phonehome.analysis.classify import fields
from phonehome.analysis.classify.fields import (
    _DEVICE_WORDS,
    ALL_KEYS,
    DEVICE_ID_KEYS,
    NOISE_KEYS,
    classify_field,
    effective_key,
    key_view,
    suffix_key,
)
from phonehome.analysis.decode import Field

_SETS = [
    value for name, value in vars(fields).items() if name.endswith("_KEYS") and isinstance(value, frozenset)
]
_NAMES = [
    *sorted({key for keys in _SETS for key in keys}),
    "", "id", "ID", "uuid", "value", "identifier", "x-crashlytics-installation-id", "wrvUserID",
    "ssb_instance_id", "_kua_aa_id", "car_model", "deviceImei", "hwid_x", "$device_id", "Session-Id",
    "advertiser_id_collection_enabled", "x", "event", "$lib", "time", "imei_md5", "did", "udid",
]  # fmt: skip
_PATHS = [
    "", "body", "body.x", "body.device.x", "body.user.x", "body.properties.x", "query.x", "header.x",
    "cookie.x", "body.items[2].product.x", "body.advertiser.x", "body.data_list[0].lib.x", "a.b.c.d",
]  # fmt: skip
_VALUES = [
    "", " ", "1", "true", "false", "null", "unknown", "0", "12345", "1702345678901", "358240051111110",
    "490154203237518", "35824005111111", "89014103211118510720", "310260000000000", "9774d56d682e549c",
    "9774D56D682E549C", "38400000-8cf0-11bd-b23e-10b96e40000d", "00000000-0000-0000-0000-000000000000",
    "d41d8cd98f00b204e9800998ecf8427e", "da39a3ee5e6b4b0d3255bfef95601890afd80709", "02:00:00:44:55:66",
    "020000445566", "aabb.ccdd.eeff", "a@b.co", "user@example.org", "+49 30 1234567", "0301234567",
    "52.5200, 13.4050", "52.5200", "13.4050", "192.168.1.20", "10.0.0.1", "::1", "fe80::1", "8.8.8.8",
    "https://example.org/a?b=c", "http://x", "eyJhbGciOi.eyJzdWIiOi.sig", "ya29.abcdefghijklmnopqrstuvwxyz",
    "GA1.2.1234567890.1700000000", "cdefghijklmnopqrstuvw", "fABCDEFGHIJKLMNOPQRSTU",
    "abc:APA91b" + "x" * 70, "Pixel 7", "Android", "13", "5.0.1", "com.example.app", "com.android.vending",
    "user-8812", "SERIAL12345", "R58M12ABCDE", "<unknown ssid>", "HomeWifi", "some search words",
    "1550877338208-2569651653562673536", "v=2&38400000-8cf0-11bd-b23e-10b96e40000d", "x" * 5000,
]  # fmt: skip


def _reference_view(name: str, path: str) -> fields.KeyView:
    """The key as classify_field read it field by field before the cache (7ba390a)."""
    field = Field("body", path, name, (), "")
    key = effective_key(field)
    suffixed = False
    if key not in NOISE_KEYS and key not in ALL_KEYS and name:
        suffixed = bool(suffix_key(name))
        key = suffix_key(name) or key
    return fields.KeyView(
        key,
        suffixed,
        effective_key(field) in NOISE_KEYS,
        key in DEVICE_ID_KEYS or bool(_DEVICE_WORDS.search(name)),
        key in fields._EARLY_KEYS,
        key in fields._LATE_KEYS,
        bool(fields._PRODUCT_CONTEXT.search(path)),  # what _late_keyed searched field by field
    )


def test_key_view_equals_the_uncached_key_functions():
    for name in _NAMES:
        for path in _PATHS:
            assert key_view(name, path) == _reference_view(name, path), (name, path)


def test_the_keyed_runs_skip_nothing_that_would_answer(monkeypatch):
    """Every field classified twice: as shipped, and with both runs of key-gated rules forced
    open for every key. The answers must be the same."""
    rng = random.Random(20)
    cases = []
    for name in _NAMES:
        for path in rng.sample(_PATHS, 4):
            for location in ("body", "query", "cookie", "header", "url_path"):
                for value in rng.sample(_VALUES, 12):
                    cases.append(Field(location, path, name, ("json",), value))
    shipped = [classify_field(field) for field in cases]

    real_view = fields.key_view.__wrapped__

    def open_view(name: str, path: str) -> fields.KeyView:
        return real_view(name, path)._replace(early=True, late=True)

    monkeypatch.setattr(fields, "key_view", open_view)
    forced = [classify_field(field) for field in cases]
    assert forced == shipped
    answered = sum(verdict is not None for verdict in shipped)
    assert len(cases) > 20000 and answered > 3000, "the cases do reach the rules"
    assert len({v.data_type for v in shipped if v is not None}) >= 15


def test_key_use_equals_the_checks_it_caches():
    """classify_request reads a key name once (key_use): whether it is searched for known values
    as a JSON key, and whether it names an installed-app list, a latitude or a longitude."""
    from phonehome.analysis.classify.fields import INSTALLED_KEYS, LAT_KEYS, LON_KEYS, normalise_key
    from phonehome.analysis.classify.request import _ID_LIKE_KEY, key_use

    names = [*_NAMES, "358240051111110", "a@b.co", "user:1", "x" * 24, "x" * 23, "abc12", "abcd12"]
    for name in names:
        key = normalise_key(name)
        searchable = bool(len(name) >= 6 and _ID_LIKE_KEY.search(name))
        expected = (searchable, key in INSTALLED_KEYS, key in LAT_KEYS, key in LON_KEYS)
        assert tuple(key_use(name)) == expected, name
    assert sum(key_use(name).searchable for name in names) >= 5
    assert any(key_use(name).installed for name in names) and any(key_use(name).lon for name in names)
