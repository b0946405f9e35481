"""What one decoded field is, from its key name and its value's shape.

Rules are ordered from the most specific (a shape that is unambiguous on its own) to the most
general (an id-shaped value under an id-ish key). Each answer carries its evidence so a reader
can check it: `key-name`, `value-shape`, or both.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

from phonehome.analysis.classify import shapes
from phonehome.analysis.decode import Field


class Verdict(NamedTuple):
    """What one field is (a DESIGN.md data type), how sure, and why (`key-name+value-shape`).

    A NamedTuple, not a frozen dataclass: the classifier makes about one per field that says
    anything (100,000 on the varied 5,000-request session), and a frozen dataclass's __init__
    sets each attribute through object.__setattr__ (0.70 against 0.37 us per Verdict here)."""

    data_type: str
    confidence: str
    evidence: str


@lru_cache(maxsize=1024)
def verdict_of(data_type: str, confidence: str, evidence: str) -> Verdict:
    """The Verdict of these three names, made once and shared: verdicts are a small vocabulary
    (types, confidences, evidence names), and making a NamedTuple runs a Python-level __new__
    (0.23 us, against 0.08 for this cache's hit); the classifier makes about 90,000 per 5,000
    requests."""
    return Verdict(data_type, confidence, evidence)


_NON_ALNUM = re.compile(r"[^a-z0-9]")


@lru_cache(maxsize=16384)
def normalise_key(key: str) -> str:
    """`$device_id`, `deviceId`, `device-id` -> `deviceid`."""
    return _NON_ALNUM.sub("", key.lower())


def _keys(*names: str) -> frozenset[str]:
    return frozenset(normalise_key(n) for n in names)


IMEI_KEYS = _keys(
    "imei", "imei1", "imei2", "deviceimei", "meid", "imeimd5", "imei_sha1", "hashedimei", "imeisha256"
)
ANDROID_ID_KEYS = _keys("android_id", "androidid", "ssaid")
AD_ID_KEYS = _keys(
    "gaid", "adid", "advertising_id", "advertiserid", "advertiser_id", "gps_adid", "google_ad_id",
    "googleadid",
    "idfa", "aaid", "ad_id", "adidentifier", "advertisingid", "gadid", "ifa", "google_aid", "adv_id",
    "google_advertising_id", "advertising_identifier", "gaid_md5", "advertisingTrackingId", "aifa", "rdid",
    "gpid", "device_aaid", "ads_id", "adsid", "advertisingIdentifier", "googleAdId", "ad_tracking_id",
)  # fmt: skip
OAID_KEYS = _keys("oaid", "oaid_md5", "msa_oaid")
SERIAL_KEYS = _keys(
    "serial", "serialno", "serial_number", "serialnumber", "sn", "device_serial", "ro_serialno"
)
MAC_KEYS = _keys(
    "mac", "mac_address", "macaddress", "wifi_mac", "wifimac", "btmac", "bluetooth_mac", "eth_mac"
)
WIFI_KEYS = _keys("bssid", "ssid", "wifi_ssid", "wifi_bssid", "wifiname", "wifi_name")
IMSI_KEYS = _keys("imsi", "subscriberid", "subscriber_id")
ICCID_KEYS = _keys("iccid", "simserial", "sim_serial", "simserialnumber")
PHONE_KEYS = _keys(
    "phone", "phone_number", "phonenumber", "msisdn", "tel", "mobile", "mobile_number", "line1number"
)
EMAIL_KEYS = _keys("email", "e_mail", "mail", "email_address", "emailaddress", "user_email")
LAT_KEYS = _keys("lat", "latitude", "$latitude", "geo_lat", "loc_lat")
LON_KEYS = _keys("lon", "lng", "long", "longitude", "$longitude", "geo_lon", "geo_lng", "loc_lon")
GPS_KEYS = _keys(
    "loc", "location", "gps", "latlng", "latlon", "ll", "coords", "coordinates", "geo", "position"
)
IP_KEYS = _keys("ip", "local_ip", "localip", "ip_address", "ipaddress", "lan_ip", "wifi_ip", "client_ip")
TOKEN_KEYS = _keys(
    "token", "access_token", "accesstoken", "auth_token", "authtoken", "refresh_token", "refreshtoken",
    "session_token", "sessiontoken", "id_token", "idtoken", "authorization", "auth", "bearer", "sessionid",
    "session_id", "sid", "jsessionid", "phpsessid", "passtoken", "servicetoken", "push_token", "pushtoken",
    "fcm_token", "fcmtoken", "registration_id", "registrationid", "device_token", "devicetoken", "csrftoken",
)  # fmt: skip
USER_KEYS = _keys(
    "user_id", "userid", "uid", "account_id", "accountid", "member_id", "memberid", "customer_id",
    "customerid",
    "xiaomi_id", "xiaomiid", "mi_id", "miid", "cuid", "login_id", "loginid", "username", "user_name", "sub",
    "external_user_id", "externaluserid", "player_id", "playerid", "customer_user_id", "customeruserid",
)  # fmt: skip
DEVICE_ID_KEYS = _keys(
    "device_id", "deviceid", "$device_id", "distinct_id", "anonymous_id", "anonymousid", "anon_id", "anonid",
    "uuid", "udid", "install_id", "installid", "installation_id", "installationid", "instance_id",
    "instanceid",
    "app_instance_id", "appinstanceid", "hardware_id", "hardwareid", "device_fingerprint_id", "fingerprint",
    "identity_id", "client_id", "clientid", "cid", "vaid", "aaid_hash", "guid", "dev_id", "devid", "did",
    "device_uuid", "deviceuuid", "appsflyer_id", "appsflyerid", "af_id", "adjust_id", "adjustid", "mid",
    "visitor_id", "visitorid", "tracking_id", "trackingid", "persistent_id", "user_pseudo_id", "utdid",
    "android_uuid", "androiduuid", "deviceuid", "device_uid", "af_uid", "afuid", "fid",
    "firebase_instance_id", "firebase_installation_id", "instance_uuid", "install_uuid", "device_guid",
    "anonymization_id",
)  # fmt: skip
URL_KEYS = _keys(
    "url", "$url", "page_url", "pageurl", "current_url", "currenturl", "referrer", "$referrer", "referer",
    "href", "link", "landing_url", "landingurl", "dl", "dr", "source_url", "sourceurl", "web_url", "weburl",
    "location_href", "plh", "page", "$screen_url", "openurl", "open_url", "visit_url", "visiturl",
)  # fmt: skip
SEARCH_KEYS = _keys(
    "q", "query", "keyword", "keywords", "search_word", "searchword", "search_term", "searchterm", "search",
    "search_query", "searchquery", "wd", "kw", "search_key", "searchkey", "query_text", "querytext", "term",
    "search_text", "searchtext", "oq",
)  # fmt: skip
MODEL_KEYS = _keys(
    "model", "$model", "device_model", "devicemodel", "phone_model", "phonemodel", "md", "ro_product_model",
    "hardware_model", "dm", "device_name", "devicename", "device_model_name",
)  # fmt: skip
OS_VERSION_KEYS = _keys(
    "os_version", "osversion", "$os_version", "android_version", "androidversion", "osv", "os_ver", "sdk_int",
    "sdkint", "api_level", "apilevel", "system_version", "miui_version", "rom_version", "romversion",
    "device_os", "deviceos", "platform_version", "androidApiLevel", "os_version_android",
    "os_display_version", "os_build_version", "device_os_version", "device_api_level", "os_api_level",
)  # fmt: skip
APP_ID_KEYS = _keys(
    "package", "package_name", "packagename", "pkg", "pkg_name", "pkgname", "bundle_id", "bundleid",
    "app_package", "apppackage", "application_id", "applicationid", "app_id_pkg", "app_id", "appid", "pn",
    "application_package_name", "android_package", "bundle_identifier", "package_id", "app_package_name",
    "process_name", "processName",
)  # fmt: skip
INSTALLED_KEYS = _keys(
    "installed_apps", "installedapps", "apps", "app_list", "applist", "pkg_list", "pkglist", "packages",
    "installed_packages", "installedpackages", "app_names", "installed",
)  # fmt: skip
# Keys whose values are per-request noise, never identifiers even when they look random.
NOISE_KEYS = _keys(
    "nonce", "crc", "crc32", "sign", "signature", "sig", "hash", "checksum", "md5", "ts", "timestamp", "time",
    "_track_id", "track_id", "requestid", "request_id", "req_id", "event_id", "eventid", "msgid", "msg_id",
    "seq", "sequence", "_flush_time", "flush_time", "random", "rand", "r", "cb", "_", "v", "ver", "version",
    "etag", "trace_id", "traceid", "span_id", "spanid", "batch_id", "batchid", "message_id", "messageid",
)  # fmt: skip


# Known keys of any kind: a vendor-prefixed key (x-crashlytics-installation-id, wrvUserID) is read by its
# longest known suffix of at least two words, or one of these unambiguous single words.
ALL_KEYS = (
    IMEI_KEYS
    | ANDROID_ID_KEYS
    | AD_ID_KEYS
    | OAID_KEYS
    | SERIAL_KEYS
    | MAC_KEYS
    | WIFI_KEYS
    | IMSI_KEYS
    | ICCID_KEYS
    | PHONE_KEYS
    | EMAIL_KEYS
    | IP_KEYS
    | TOKEN_KEYS
    | USER_KEYS
    | DEVICE_ID_KEYS
    | URL_KEYS
    | MODEL_KEYS
    | OS_VERSION_KEYS
    | APP_ID_KEYS
)
SINGLE_WORD_SUFFIXES = _keys(
    "imei", "oaid", "idfa", "gaid", "aaid", "imsi", "iccid", "msisdn", "email", "bssid"
)
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
# A bare `model` key is a device model only outside product/catalogue data.
_PRODUCT_CONTEXT = re.compile(
    r"product|item|car\b|vehicle|offer|cart|sku|catalog|goods|listing", re.IGNORECASE
)
_DEVICE_WORDS = re.compile(r"imei|meid|device|dev|hardware|hwid|udid|did\b", re.IGNORECASE)


@lru_cache(maxsize=8192)
def suffix_key(key: str) -> str:
    """The longest known key that `key` ends with, word-wise (`x-crashlytics-device-model` ->
    `devicemodel`, `ssb_instance_id` -> `instanceid`), or "" when none."""
    words = [w.lower() for w in _WORDS.findall(key)]
    for start in range(1, len(words)):
        tail = words[start:]
        candidate = "".join(tail)
        if (len(tail) >= 2 or candidate in SINGLE_WORD_SUFFIXES) and candidate in ALL_KEYS:
            return candidate
    return ""


# Keys under which 16 hex digits are the Android ID (elsewhere, e.g. a web analytics id, they are not).
ANDROID_SHAPED_KEYS = _keys(
    "device_id", "deviceid", "$device_id", "did", "dev_id", "devid", "udid", "deviceid2", "hardware_id"
)

# Generic keys that only say something together with their parent: device.id, user.id.
GENERIC_KEYS = frozenset({"id", "uuid", "value", "identifier"})
LOCATION_NAMES = frozenset({"url_path", "query", "header", "cookie", "body"})
SESSION_KEYS = _keys("sessionid", "session_id", "sid", "session")


def effective_key(field: Field) -> str:
    """The normalised key, prefixed with its parent's name when the key alone is generic."""
    key = normalise_key(field.key)
    if key in GENERIC_KEYS and "." in field.path:
        parent = field.path.rsplit(".", 1)[0].rsplit(".", 1)[-1].split("[", 1)[0]
        if parent not in LOCATION_NAMES:
            return normalise_key(parent) + key
    return key


# The key-gated rules of classify_field come in two runs; a key in none of a run's sets skips it.
_EARLY_KEYS = (
    IMEI_KEYS | ANDROID_ID_KEYS | AD_ID_KEYS | OAID_KEYS | MAC_KEYS | WIFI_KEYS | IMSI_KEYS | ICCID_KEYS
    | SERIAL_KEYS | PHONE_KEYS
)  # fmt: skip
_LATE_KEYS = (
    TOKEN_KEYS | URL_KEYS | SEARCH_KEYS | MODEL_KEYS | OS_VERSION_KEYS | APP_ID_KEYS | USER_KEYS
    | DEVICE_ID_KEYS | AD_ID_KEYS
)  # fmt: skip


class KeyView(NamedTuple):
    """What a field's key name (and, for a generic name, its parent's) tells the rules."""

    key: str  # the key the rules read: effective_key, or the known key it ends with
    suffixed: bool  # `key` is a known suffix of the name (x-crashlytics-installation-id)
    noise: bool  # a per-request noise key (nonce, crc, ts): never an identifier
    imei_context: bool  # an id key or device words (imei, dev, hwid...): 15 Luhn digits are an IMEI
    early: bool  # `key` is in one of the sets the first run of key-gated rules reads
    late: bool  # ... of the second run
    product_context: bool  # the path names product or catalogue data: a bare `model` is no device's


@lru_cache(maxsize=16384)
def key_view(name: str, path: str) -> KeyView:
    """The KeyView of a field named `name` at `path`. Keys and paths repeat from request to
    request (values do not), so this is decided once per distinct pair, not per field."""
    key = effective_key(Field("", path, name, (), ""))
    noise = key in NOISE_KEYS
    suffixed = False
    if not noise and key not in ALL_KEYS and name:
        suffixed = bool(suffix_key(name))
        key = suffix_key(name) or key
    imei_context = key in DEVICE_ID_KEYS or _DEVICE_WORDS.search(name) is not None
    return KeyView(
        key,
        suffixed,
        noise,
        imei_context,
        key in _EARLY_KEYS,
        key in _LATE_KEYS,
        _PRODUCT_CONTEXT.search(path) is not None,  # a regex over the path: once, not per field
    )


def classify_field(field: Field) -> Verdict | None:
    """The data type of one field from its key and value, or None when it is nothing of note."""
    return classify_viewed(field, key_view(field.key, field.path))


def classify_viewed(field: Field, view: KeyView) -> Verdict | None:
    """classify_field of a field whose KeyView (`key_view(field.key, field.path)`) the caller
    has already: classify_request looks it up once per field with the rest of what the key
    decides (request.field_plan)."""
    if view.noise:
        return None
    value = field.value
    plain = value.isascii() and value.isalnum()  # ASCII letters and digits only: nothing to strip
    # The commonest field: a plain word or number under a key no rule reads. Of the rules below
    # only a prefixed token and a cookie id answer such a value whatever the key; the rest need a
    # symbol (`symbols`) or a key of a run or an IMEI context (tests/test_classify_plainpath.py).
    if (
        plain
        and not (view.early or view.late or view.imei_context)
        and field.location != "cookie"
        and not shapes.TOKEN_PREFIXES.match(value)
    ):
        return None
    if not plain:
        value = value.strip()
        if not value:
            return None
    if len(value) > 4096:
        return None
    key = view.key
    # Most values are plain words and numbers. The shapes asked under `symbols` all need a
    # character other than an ASCII letter or digit (`://`, `:APA91b`, `.`, `@`, `:` or `-`), so
    # for a plain value they are not asked (tests/test_classify_prefilters.py checks each one).
    symbols = not plain and not (value.isascii() and value.isalnum())

    # Shapes asked of nearly every value are asked first as their bare compiled patterns (a C call,
    # failing at the first characters of other values) or the one character they need: a Python
    # call per field cost more than the check. Each is the shapes.is_* function on the values that
    # reach it (tests/test_classify_prefilters.py: the URL and JWT patterns are the functions below
    # 8,192 characters; a value here has at most 4,096).
    url_shaped = symbols and shapes.URL.match(value) is not None  # asked up to four times below: once

    # shapes that name what they are
    if (symbols and ":APA91b" in value and shapes.is_fcm_token(value)) or (
        shapes.TOKEN_PREFIXES.match(value) and shapes.is_prefixed_token(value)
    ):
        return verdict_of("token", "high", "value-shape")
    if symbols and value.startswith("GA1.") and shapes.GA_COOKIE.match(value):
        return verdict_of("device_id.other", "high", "value-shape")

    # unambiguous shapes first
    if symbols and shapes.JWT.match(value):
        return verdict_of("token", "high", "value-shape")
    if symbols and "@" in value and shapes.is_email(value):
        return verdict_of("contact.email", "high" if key in EMAIL_KEYS else "medium", _ev(key in EMAIL_KEYS))

    if view.early:
        verdict = _early_keyed(key, value)
        if verdict is not None:
            return verdict
    if symbols and shapes.is_mac(value):
        return verdict_of("device_id.mac", "medium", "value-shape")
    if view.imei_context and shapes.is_plausible_imei(value):
        # context before shape: 15 Luhn-valid digits alone are as often a pixel or order id
        return verdict_of("device_id.imei", "medium", "key-name+value-shape")
    if symbols and (key in GPS_KEYS or key == "") and shapes.gps_pair(value):
        return verdict_of("location.gps", "high" if key in GPS_KEYS else "medium", _ev(key in GPS_KEYS))
    if symbols and shapes.local_ip(value):
        return verdict_of("network.local_ip", "high" if key in IP_KEYS else "medium", _ev(key in IP_KEYS))
    if view.late:
        verdict = _late_keyed(key, view, field, value, url_shaped)
        if verdict is not None:
            return verdict
    # an identifier cookie: a random-looking id (or one holding a UUID or a 32-hex id) under any
    # cookie name that is not a login, the "ID cookie" of web measurement studies (Englehardt et al.,
    # "Cookies that give you away", WWW 2015: long-lived, >= 8 characters, random, set per browser)
    if field.location == "cookie" and key not in TOKEN_KEYS and not url_shaped and shapes.is_cookie_id(value):
        return verdict_of("device_id.other", "low", "value-shape")
    if url_shaped and field.location in ("query", "body", "cookie"):
        return verdict_of("url", "low", "value-shape")
    return None


def _early_keyed(key: str, value: str) -> Verdict | None:
    """The rules of a key naming a device or SIM identifier, an address or a phone number."""
    if key in IMEI_KEYS:
        if shapes.is_imei(value):
            return verdict_of("device_id.imei", "high", "key-name+value-shape")
        if shapes.HEX_HASH.match(value):
            return verdict_of("device_id.imei", "medium", "key-name+value-shape")
    if key in ANDROID_ID_KEYS and (shapes.is_android_id(value) or shapes.HEX_HASH.match(value)):
        return verdict_of("device_id.android_id", "high", "key-name+value-shape")
    if key in AD_ID_KEYS and shapes.is_uuid(value):
        return verdict_of("device_id.advertising_id", "high", "key-name+value-shape")
    if key in OAID_KEYS and (
        shapes.is_uuid(value) or shapes.HEX16.match(value) or shapes.HEX_HASH.match(value)
    ):
        return verdict_of("device_id.oaid", "high", "key-name+value-shape")
    if key in MAC_KEYS and (shapes.is_mac(value) or shapes.is_mac_bare(value)):
        return verdict_of("device_id.mac", "high", "key-name+value-shape")
    if key in WIFI_KEYS and value.lower() not in ("<unknown ssid>", "unknown"):
        return verdict_of(
            "location.wifi", "medium" if shapes.is_mac(value) or key.endswith("ssid") else "low", "key-name"
        )
    if key in IMSI_KEYS and shapes.is_imsi(value):
        return verdict_of("device_id.imsi", "high", "key-name+value-shape")
    if key in ICCID_KEYS and shapes.is_iccid(value):
        return verdict_of("device_id.iccid", "high", "key-name+value-shape")
    serial_shaped = 6 <= len(value) <= 24 and value.isalnum() and not value.isdigit()
    if key in SERIAL_KEYS and serial_shaped and value.lower() not in ("unknown", "undefined"):
        return verdict_of("device_id.serial", "medium", "key-name+value-shape")
    if key in PHONE_KEYS and shapes.is_phone(value):
        return verdict_of("contact.phone", "high", "key-name+value-shape")
    return None


def _late_keyed(key: str, view: KeyView, field: Field, value: str, url_shaped: bool) -> Verdict | None:
    """The rules of a key naming a token, URL, search, device model, OS, app or user/device id."""
    # an analytics "session id" in a body or query is per-session noise; in a cookie it is a login
    if (
        key in TOKEN_KEYS
        and (field.location in ("cookie", "header") or key not in SESSION_KEYS)
        and len(value) >= 12
        and shapes.is_identifier_like(value)
    ):
        return verdict_of("token", "medium", "key-name+value-shape")
    if key in URL_KEYS and url_shaped:
        return verdict_of("url", "medium", "key-name+value-shape")
    if (
        key in SEARCH_KEYS
        and not url_shaped
        and not value.replace(".", "").isdigit()
        and value.lower() not in ("true", "false", "null", "none")
    ):
        return verdict_of("search_query", "medium", "key-name")
    if key in MODEL_KEYS and 2 <= len(value) <= 64 and not value.isdigit() and not view.product_context:
        return verdict_of("device.model", "medium", "key-name")
    if key in OS_VERSION_KEYS and len(value) <= 32:
        return verdict_of("device.os_version", "medium", "key-name")
    if key in APP_ID_KEYS and shapes.is_package_loose(value):
        return verdict_of("app.id", "medium", "key-name+value-shape")
    if key in USER_KEYS and shapes.is_user_id_like(value):
        return verdict_of("user_id", "medium", "key-name+value-shape")
    if key in DEVICE_ID_KEYS:
        if key in ANDROID_SHAPED_KEYS and shapes.is_android_id(value):
            return verdict_of("device_id.android_id", "medium", "key-name+value-shape")
        if key == "fid" and shapes.FIREBASE_FID.match(value):
            return verdict_of("device_id.other", "medium", "key-name+value-shape")
        if shapes.is_identifier_like(value):
            return verdict_of("device_id.other", "low", "key-name+value-shape")
    # an advertising id without its UUID shape only under the key itself (`_kua_aa_id` is no AAID)
    if key in AD_ID_KEYS and not view.suffixed and shapes.is_identifier_like(value):
        return verdict_of("device_id.advertising_id", "low", "key-name+value-shape")
    return None


def _ev(keyed: bool) -> str:
    return "key-name+value-shape" if keyed else "value-shape"
