"""A labelled corpus of requests in the documented wire formats of real Android SDKs.

Each request carries the data a real SDK of that kind sends (field names from the SDKs' public
documentation and captures published by TrackHAR / tweasel, NoMoAds and the Android TCF study),
with the values of a synthetic test phone planted in them, plus the per-request noise real SDKs
add (nonces, CRCs, timestamps, SDK keys, version strings) that must NOT become findings.

`labels` lists every (data_type, value) a perfect classifier reports for the request.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from phonehome.analysis.profile import Profile
from phonehome.analysis.records import HttpRecord, Labels

IMEI = "356938035643809"
ANDROID_ID = "9c2f41a7e3b5d810"
AAID = "38400000-8cf0-11bd-b23e-10b96e40000d"
OAID = "f2c1e9a4-5d3b-4c7a-8e61-0b9d2f4a6c13"
MAC = "3c:5a:b4:12:9e:7d"
SERIAL = "R58M123ABC"
EMAIL = "jane.tester@example.org"
PHONE = "+33612345678"
URL = "https://www.example.com/clinic/results?id=7"
SEARCH = "cheap flights berlin"
INSTALL_UUID = "7b0e4c2a-91d3-4f6e-a8b5-3c2d1e0f9a87"
MODEL = "Pixel 7"

PROFILE = Profile.from_dict(
    {
        "imei": [IMEI],
        "android_id": ANDROID_ID,
        "advertising_id": AAID,
        "oaid": OAID,
        "serial": SERIAL,
        "mac": [MAC],
        "email": EMAIL,
        "phone": PHONE,
        "location": [52.52, 13.405],
        "urls": [URL],
        "search_terms": [SEARCH],
    }
)


@dataclass
class Case:
    name: str
    record: HttpRecord
    labels: set[tuple[str, str]]


def _record(
    n: int, method: str, url: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> HttpRecord:
    parts = urlsplit(url)
    return HttpRecord(
        source="corpus",
        flow_id=f"corpus-{n}",
        labels=Labels("corpus", "com.example.app", "normal"),
        timestamp=1_700_000_000.0 + n,
        method=method,
        scheme=parts.scheme,
        host=parts.hostname or "",
        port=parts.port or 443,
        path=parts.path + (f"?{parts.query}" if parts.query else ""),
        request_headers=tuple((headers or {}).items()),
        request_body=body,
    )


def cases() -> list[Case]:
    out: list[Case] = []
    add = out.append
    json_h = {"Content-Type": "application/json"}
    form_h = {"Content-Type": "application/x-www-form-urlencoded"}

    # Adjust: GET /session (adjust.com docs; TrackHAR adjust adapter)
    q = urlencode(
        {
            "gps_adid": AAID,
            "android_uuid": INSTALL_UUID,
            "package_name": "com.example.app",
            "created_at": "2024-01-01T10:00:00.000Z+0100",
            "sent_at": "2024-01-01T10:00:01.000Z+0100",
            "app_version": "1.2.3",
            "os_version": "13",
            "device_name": MODEL,
            "app_token": "abc123def456",
            "event_buffering_enabled": "0",
            "tracking_enabled": "1",
            "needs_response_details": "1",
            "session_count": "3",
        }
    )
    add(
        Case(
            "adjust",
            _record(1, "POST", f"https://app.adjust.com/session?{q}"),
            {
                ("device_id.advertising_id", AAID),
                ("device_id.other", INSTALL_UUID),
                ("app.id", "com.example.app"),
                ("device.os_version", "13"),
                ("device.model", MODEL),
            },
        )
    )

    # AppsFlyer: POST androidevent (TrackHAR appsflyer adapter)
    af = {
        "advertiserId": AAID,
        "uid": "1699999999999-1234567890123456789",
        "imei": IMEI,
        "android_id": ANDROID_ID,
        "model": MODEL,
        "brand": "google",
        "af_timestamp": "1699999999999",
        "counter": "3",
        "iaecounter": "0",
        "date1": "2024-01-01_100000+0100",
        "network": "WIFI",
        "lang": "English",
        "operator": "",
        "deviceData": {
            "cpu_abi": "arm64-v8a",
            "build_display_id": "TQ3A.230901.001",
            "dim": {"x_px": "1080"},
        },
        "sdk": "33",
        "app_version_name": "1.2.3",
        "af_events_api": "1",
        "customer_user_id": "10482213",
    }
    add(
        Case(
            "appsflyer",
            _record(
                2,
                "POST",
                "https://t.appsflyer.com/api/v6.9/androidevent?app_id=com.example.app&buildnumber=6.9.0",
                json_h,
                json.dumps(af).encode(),
            ),
            {
                ("device_id.advertising_id", AAID),
                ("device_id.other", "1699999999999-1234567890123456789"),
                ("device_id.imei", IMEI),
                ("device_id.android_id", ANDROID_ID),
                ("device.model", MODEL),
                ("app.id", "com.example.app"),
                ("user_id", "10482213"),
                # sdk = Build.VERSION.SDK_INT (AppsFlyer ServerParameters.ANDROID_SDK_INT)
                ("device.os_version", "33"),
            },
        )
    )

    # Facebook Android SDK: POST /activities (TrackHAR facebook adapter; tweasel captures)
    extinfo = json.dumps(["a2", "com.example.app", 1, "1.2.3", "13", MODEL, "en_US", "CET", "", 1080, 2400])
    custom = json.dumps(
        [
            {
                "_eventName": "fb_mobile_activate_app",
                "_logTime": 1699999999,
                "_ui": "unknown",
                "_session_id": "0f4e8a2b-6c1d-4e3f-9a7b-5d2c8e1f3a64",
            }
        ]
    )
    fb = urlencode(
        {
            "event": "CUSTOM_APP_EVENTS",
            "advertiser_id": AAID,
            "anon_id": f"XZ{INSTALL_UUID}",
            "application_tracking_enabled": "1",
            "advertiser_tracking_enabled": "1",
            "extinfo": extinfo,
            "custom_events": custom,
            "format": "json",
            "sdk": "android",
            "sdk_version": "16.0.0",
        }
    )
    add(
        Case(
            "facebook",
            _record(
                3, "POST", "https://graph.facebook.com/v16.0/1234567890123456/activities", form_h, fb.encode()
            ),
            {
                ("device_id.advertising_id", AAID),
                ("device_id.other", f"XZ{INSTALL_UUID}"),
                ("device.model", MODEL),
                # extinfo positions 1 and 4 (facebook-android-sdk Utility.setAppEventExtendedDeviceInfoParameters)
                ("app.id", "com.example.app"),
                ("device.os_version", "13"),
            },
        )
    )

    # Branch: POST /v1/open (TrackHAR branch adapter)
    br = {
        "hardware_id": ANDROID_ID,
        "is_hardware_id_real": True,
        "brand": "google",
        "model": MODEL,
        "os": "Android",
        "os_version": 33,
        "google_advertising_id": AAID,
        "lat_val": 0,
        "identity_id": "1234567890123456789",
        "device_fingerprint_id": "1234567890123456780",
        "app_version": "1.2.3",
        "sdk": "android5.7.0",
        "retryNumber": 0,
        "branch_key": "key_live_abcdefghijklmnopqrstuvwxyz123456",
        "local_ip": "192.168.178.24",
        "screen_dpi": 420,
        "ui_mode": "UI_MODE_TYPE_NORMAL",
        "cd": {"mv": "-1", "pn": "com.example.app"},
    }
    add(
        Case(
            "branch",
            _record(4, "POST", "https://api2.branch.io/v1/open", json_h, json.dumps(br).encode()),
            {
                ("device_id.android_id", ANDROID_ID),
                ("device.model", MODEL),
                ("device.os_version", "33"),
                # identity_id is Branch's id of the user identity (Defines.Jsonkey.IdentityID), not the device's
                ("device_id.advertising_id", AAID),
                ("user_id", "1234567890123456789"),
                ("device_id.other", "1234567890123456780"),
                ("network.local_ip", "192.168.178.24"),
                ("app.id", "com.example.app"),
            },
        )
    )

    # Sensors Analytics: form data_list=base64(gzip(json)) (sensorsdata Android SDK)
    events = [
        {
            "_track_id": 1234567,
            "time": 1699999999123,
            "type": "track",
            "distinct_id": INSTALL_UUID,
            "event": "search",
            "properties": {
                "$device_id": ANDROID_ID,
                "$model": MODEL,
                "$os_version": "13",
                "$lib_version": "6.6.0",
                "$url": URL,
                "keyword": SEARCH,
                "$screen_width": 1080,
            },
        }
    ]
    packed = base64.b64encode(gzip.compress(json.dumps(events).encode(), mtime=0)).decode()
    body = urlencode({"crc": "1839283812", "gzip": "1", "data_list": packed}).encode()
    add(
        Case(
            "sensors",
            _record(5, "POST", "https://sdk.sensorsdata.cn/sa?project=default", form_h, body),
            {
                ("device_id.other", INSTALL_UUID),
                ("device_id.android_id", ANDROID_ID),
                ("device.model", MODEL),
                ("device.os_version", "13"),
                ("url", URL),
                ("search_query", SEARCH),
            },
        )
    )

    # Umeng-style envelope header (U-App SDK field names)
    um = {
        "header": {
            "appkey": "5f1a2b3c4d5e6f7a8b9c0d1e",
            "imei": IMEI,
            "mac": MAC.replace(":", "").upper(),
            "serial": SERIAL,
            "device_model": MODEL,
            "os_version": "13",
            "idmd5": hashlib.md5(IMEI.encode()).hexdigest(),
            "utdid": "XyZ1aBcD2eFgH3iJkL4mNoP5",
            "sdk_version": "9.6.3",
            "req_time": 1699999999123,
        }
    }
    add(
        Case(
            "umeng",
            _record(6, "POST", "https://ulogs.umeng.com/unify_logs", json_h, json.dumps(um).encode()),
            {
                ("device_id.imei", IMEI),
                ("device_id.mac", MAC.replace(":", "").upper()),
                ("device_id.serial", SERIAL),
                ("device.model", MODEL),
                ("device.os_version", "13"),
                ("device_id.imei", hashlib.md5(IMEI.encode()).hexdigest()),
                ("device_id.other", "XyZ1aBcD2eFgH3iJkL4mNoP5"),
            },
        )
    )

    # Yandex AppMetrica startup (query parameters)
    dev, uu = "a1b2c3d4e5f60718293a4b5c6d7e8f90", "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    q = urlencode(
        {
            "deviceid": dev,
            "uuid": uu,
            "adv_id": AAID,
            "app_platform": "android",
            "model": MODEL,
            "manufacturer": "Google",
            "os_version": "13",
            "screen_width": "1080",
            "app_id": "com.example.app",
            "app_build_number": "123",
            "analytics_sdk_version_name": "5.3.0",
        }
    )
    add(
        Case(
            "appmetrica",
            _record(7, "GET", f"https://startup.mobile.yandex.net/analytics/startup?{q}"),
            {
                ("device_id.other", dev),
                ("device_id.other", uu),
                ("device_id.advertising_id", AAID),
                ("device.model", MODEL),
                ("device.os_version", "13"),
                ("app.id", "com.example.app"),
            },
        )
    )

    # OneSignal: POST /api/v1/players
    push = "fcm:" + "A" * 20 + "bC1dE2fG3hI4jK5lM6nO7pQ8rS9tU0vW"
    os_body = {
        "app_id": "5eb5a37e-b458-11e3-ac11-000c2940e62c",
        "device_type": 1,
        "identifier": push,
        "ad_id": AAID,
        "device_model": MODEL,
        "device_os": "13",
        "sdk": "040805",
        "timezone": 3600,
        "language": "en",
        "net_type": 0,
        "lat": 52.52,
        "long": 13.405,
        "loc_acc": 12.0,
    }
    add(
        Case(
            "onesignal",
            _record(8, "POST", "https://onesignal.com/api/v1/players", json_h, json.dumps(os_body).encode()),
            {
                ("token", push),
                ("device_id.advertising_id", AAID),
                ("device.model", MODEL),
                ("device.os_version", "13"),
                ("location.gps", "52.52,13.405"),
            },
        )
    )

    # Bugsnag session (tweasel captures)
    bs = {
        "notifier": {"name": "Android Bugsnag Notifier", "version": "5.28.4"},
        "device": {
            "id": INSTALL_UUID,
            "osName": "android",
            "osVersion": "13",
            "manufacturer": "Google",
            "model": MODEL,
            "cpuAbi": ["arm64-v8a"],
            "jailbroken": False,
            "locale": "en_US",
        },
        "app": {
            "id": "com.example.app",
            "version": "1.2.3",
            "versionCode": 123,
            "releaseStage": "production",
        },
        "sessions": [
            {
                "id": "2d4f6a8c-1e3b-4d5f-a7c9-0b2d4f6a8c1e",
                "startedAt": "2024-01-01T10:00:00.000Z",
                "user": {"id": "u-10482213"},
            }
        ],
    }
    add(
        Case(
            "bugsnag",
            _record(9, "POST", "https://sessions.bugsnag.com/", json_h, json.dumps(bs).encode()),
            {
                ("device_id.other", INSTALL_UUID),
                ("device.os_version", "13"),
                ("device.model", MODEL),
                ("app.id", "com.example.app"),
                ("user_id", "u-10482213"),
            },
        )
    )

    # Google Analytics 4 measurement protocol from a WebView
    q = urlencode(
        {
            "v": "2",
            "tid": "G-ABC123XYZ",
            "cid": "1234567890.1699999999",
            "dl": URL,
            "dt": "Results",
            "sid": "1699999999",
            "_p": "123456789",
            "seg": "1",
        }
    )
    add(
        Case(
            "ga4",
            _record(10, "POST", f"https://region1.google-analytics.com/g/collect?{q}"),
            {("device_id.other", "1234567890.1699999999"), ("url", URL)},
        )
    )

    # Firebase app-measurement: protobuf, the AAID without a key name (found by profile only)
    def pb(num: int, val: bytes) -> bytes:
        return bytes([num << 3 | 2, len(val)]) + val

    fa = pb(1, pb(14, b"com.example.app") + pb(19, AAID.encode()) + pb(16, b"1.2.3"))
    add(
        Case(
            "firebase",
            _record(11, "POST", "https://app-measurement.com/a", form_h, fa),
            {("device_id.advertising_id", AAID)},
        )
    )

    # Xiaomi tracking: the Android ID as a bare URL path segment (profile only)
    add(
        Case(
            "xiaomi-track",
            _record(
                12,
                "POST",
                f"https://tracking.intl.miui.com/track/v4/{ANDROID_ID}/event",
                json_h,
                b'{"appId":"2882303761517492012","ts":1699999999}',
            ),
            {("device_id.android_id", ANDROID_ID)},
        )
    )

    # An account API: contact data under plain keys
    acct = {
        "email": EMAIL,
        "phone": PHONE,
        "user_id": "10482213",
        "locale": "en_US",
        "marketing_opt_in": True,
    }
    add(
        Case(
            "account",
            _record(13, "POST", "https://api.example-shop.com/v1/account", json_h, json.dumps(acct).encode()),
            {("contact.email", EMAIL), ("contact.phone", PHONE), ("user_id", "10482213")},
        )
    )

    # Hashed identifiers (sha256 of the e-mail, sha1 of the Android ID) under opaque keys: profile only
    hashed = {
        "em": hashlib.sha256(EMAIL.encode()).hexdigest(),
        "x1": hashlib.sha1(ANDROID_ID.encode()).hexdigest(),
    }
    add(
        Case(
            "hashed",
            _record(14, "POST", "https://tr.example-ads.com/e", json_h, json.dumps(hashed).encode()),
            {("contact.email", hashed["em"]), ("device_id.android_id", hashed["x1"])},
        )
    )

    # Navigation and subresources: nothing here is a leak
    nav = {"Accept": "text/html", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
    add(
        Case(
            "navigation",
            _record(15, "GET", "https://www.example.com/search?q=cheap+flights+berlin", nav),
            set(),
        )
    )
    add(Case("same-site", _record(16, "GET", "https://static.example.com/app.js", {"Referer": URL}), set()))
    add(
        Case(
            "third-party-referer",
            _record(17, "GET", "https://px.example-ads.com/p.gif", {"Referer": URL}),
            {("url", URL)},
        )
    )

    # Pure noise: nonces, CRCs, timestamps, request ids, versions, SDK keys
    noise = {
        "nonce": "6f1c2a9e4b7d3f08a1c5e9b2d4f6a8c0",
        "crc": "2873461923",
        "ts": 1699999999123,
        "request_id": "a7c3e9f1-2b4d-4f6a-8c0e-1d3f5a7b9c2e",
        "event_id": "3e5g7i9k",
        "sdk_version": "21.3.0",
        "app_version": "1.2.3",
        "build": "TQ3A.230901.001",
        "api_key": "pk_live_51HxYzAbCdEfGhIjKlMn",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "signature": "dGhpcyBpcyBub3QgYSBzZWNyZXQgdmFsdWU",
        "count": 42,
        "duration_ms": 1532,
        "country": "DE",
        "os": "android",
        "enabled": True,
    }
    add(
        Case(
            "noise",
            _record(
                18, "POST", "https://telemetry.example-sdk.io/v1/batch", json_h, json.dumps(noise).encode()
            ),
            set(),
        )
    )
    return out
