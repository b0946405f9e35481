"""Regenerate the bundled sample capture `captures/sample-mint-browser/`.

SYNTHETIC DATA. Nothing here was captured from a real phone or a real Xiaomi server. The flows
imitate, from public descriptions (W. Palant, "Are Xiaomi browsers spyware? Yes, they are...",
2020; the Sensors Analytics Android SDK's documented event format; Xiaomi mistat/tracking SDK
endpoints seen in decompiled code), what a Mint-Browser-like app sends while a tester browses in
normal mode, then in incognito mode, then in incognito mode with the vendor's "aggregated data
collection" switch turned off (mode `incognito-optout`, the switch Xiaomi shipped in May 2020 in
Mi Browser 12.1.4 / Mint Browser 3.4.3). Identifiers belong to no real device.

What the opt-out phase shows is an assumption, not a measurement: we found no published capture of
the app's traffic with that switch off (the 2020 coverage reports the switch, not a re-test of it).
The sample assumes the plausible middle: with the switch off, page views and searches are no longer
batched to the Sensors Analytics endpoint, but the SDK still reports the end of the session with
the same persistent `distinct_id` and device identifiers. So the sample's `opt_out_effective` claim
(about URLs and searches) comes out consistent, while the report still shows identifiers leaving
in that mode. A real capture may show something else; that is what the tool is for.

A refused TLS handshake (events.jsonl) imitates a pinning host: api.sec.intl.miui.com refuses the
proxy's certificate after other hosts of the app were decrypted, so coverage reads "pinning
suspected" (a refusal before any decryption could just be a CA the phone does not trust yet).

Each connection carries the TLS version and cipher it negotiated (TLS 1.2 for the vendor's hosts,
as reported in 2020; TLS 1.3 elsewhere).

The flows are written with mitmproxy's own FlowWriter, labelled in flow.metadata["phonehome"] as
DESIGN.md says, so the file opens in `mitmweb -r` and reads with `mitmproxy.io.FlowReader`.

Usage: python captures/make_sample.py [--no-optout] [OUT_DIR]   (default: captures/sample-mint-browser)
The shipped sample is the default (three modes); `--no-optout` leaves out the opt-out phase
(`--optout`, the former way to ask for it, is still accepted).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import sys
import uuid
import zlib
from pathlib import Path
from urllib.parse import quote, urlencode

import brotli
import msgpack
import zstandard
from mitmproxy import connection, dns, http
from mitmproxy.io import FlowWriter
from mitmproxy.proxy.mode_specs import ProxyMode

SESSION = "sample-mint-browser"
APP = "com.mi.globalbrowser.mini"
START = 1_700_000_000.0  # 2023-11-14T22:13:20Z, fixed so the file is reproducible
UA = (
    "Mozilla/5.0 (Linux; U; Android 10; en-gb; M2007J20CG Build/QKQ1.200512.002) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/89.0.4389.116 Mobile Safari/537.36 XiaoMi/MiuiBrowser/3.4.0"
)

# The synthetic test phone. profile.json holds the same values (the "known values").
PROFILE = {
    "imei": ["867530912345673"],
    "android_id": "3f9a2c41b7d05e18",
    "advertising_id": "a3c5e2f1-7b9d-4e8a-9c1f-2d4b6a8e0f13",
    "oaid": "b1c2d3e4f5a6b7c8",
    "serial": "f1a2b3c4",
    "mac": ["a4:50:46:1c:2e:7f"],
    "email": "tester@example.com",
    "location": [48.8566, 2.3522],
    "urls": [
        "https://www.example.org/health/clinic-near-me?id=42",
        "https://news.example.com/politics/article-123",
        "https://www.example.net/private/diagnosis-results",
    ],
    "search_terms": ["flu symptoms", "divorce lawyer near me"],
}
# opened and searched with the collection switched off (incognito-optout; in the profile with that phase)
OPTOUT_URL = "https://www.example.org/private/second-opinion"
OPTOUT_SEARCH = "second opinion oncology"
MODES = ("normal", "incognito")
OPTOUT_MODE = "incognito-optout"
DISTINCT_ID = "5d3b8f0e-2c7a-4e91-b6d4-0a9f8e7c6b5a"  # Sensors Analytics distinct_id: survives incognito
DEVICE = {"model": "M2007J20CG", "manufacturer": "Xiaomi", "android": "10", "note": "synthetic device"}


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


assert _luhn_ok(PROFILE["imei"][0]), "the sample IMEI must pass the Luhn check"


class Clock:
    """Monotonic synthetic time: each flow a little after the last."""

    def __init__(self) -> None:
        self.now = START

    def tick(self, seconds: float = 1.7) -> float:
        self.now += seconds
        return self.now


def _conn_id(kind: str, ts: float) -> str:
    """Deterministic connection ids, so regenerating the sample gives the same bytes."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"phonehome-sample/{kind}/{ts:.3f}"))


# Negotiated TLS: the vendor's servers spoke TLS 1.2 in 2020 (as reported in press coverage of the
# research); other hosts TLS 1.3. The phone's side to the proxy is TLS 1.3 (Android 10 and mitmproxy).
TLS12 = ("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256")
TLS13 = ("TLSv1.3", "TLS_AES_128_GCM_SHA256")
VENDOR_SUFFIXES = (".miui.com", ".xiaomi.com")


def _client(ts: float, sni: str | None) -> connection.Client:
    client = connection.Client(
        id=_conn_id("client", ts),
        peername=("192.168.1.23", 40000 + int(ts) % 20000),
        sockname=("192.168.1.10", 8080),
        timestamp_start=ts - 0.05,
        sni=sni,
        proxy_mode=ProxyMode.parse("regular"),
    )
    if sni:
        client.tls_version, client.cipher = TLS13
        client.timestamp_tls_setup = ts - 0.01
    return client


def _server(host: str, ts: float, ip: str) -> connection.Server:
    server = connection.Server(address=(host, 443), id=_conn_id("server", ts))
    server.peername = (ip, 443)
    server.timestamp_start = ts - 0.04
    server.timestamp_tcp_setup = ts - 0.03
    server.timestamp_tls_setup = ts - 0.02
    server.sni = host
    server.tls_version, server.cipher = TLS12 if host.endswith(VENDOR_SUFFIXES) else TLS13
    return server


def _flow_id(n: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"phonehome-sample/{n}"))


class SampleBuilder:
    def __init__(self) -> None:
        self.clock = Clock()
        self.flows: list = []
        self.mode = "normal"
        self.phase = "normal-browsing"
        self.phases: list[dict] = []
        self.events: list[dict] = []  # events.jsonl: TLS handshakes the phone refused

    def refuse_tls(self, host: str) -> None:
        """The phone refuses the proxy's certificate for `host` (a pinned host), just after the last
        flow (no clock tick, so later flows keep their times)."""
        self.events.append(
            {
                "type": "tls_failed",
                "timestamp": round(self.clock.now + 0.5, 3),
                "host": host,
                "sni": host,
                "client": "192.168.1.23:40123",
                "server_ip": None,
                "error": "client rejected the proxy certificate (certificate pinning?)",
                "labels": {"session": SESSION, "app": APP, "mode": self.mode, "phase": self.phase},
            }
        )

    def start_phase(self, mode: str, phase: str) -> None:
        now = self.clock.tick(5)
        if self.phases:
            self.phases[-1]["end"] = now
        self.mode, self.phase = mode, phase
        self.phases.append(
            {"name": phase, "mode": mode, "app": APP, "phase": phase, "start": now, "end": None}
        )

    def add(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        status: int = 200,
        response_type: str = "application/json",
        response_body: bytes = b'{"code":0}',
        server_ip: str = "203.0.113.10",
    ) -> http.HTTPFlow:
        ts = self.clock.tick()
        request = http.Request.make(method, url, body, {"User-Agent": UA, **(headers or {})})
        request.timestamp_start = ts
        request.timestamp_end = ts + 0.01
        # make() set Content-Length for the body; keep the raw body exactly as the app sent it
        request.raw_content = body
        response = http.Response.make(status, response_body, {"Content-Type": response_type})
        response.timestamp_start = ts + 0.12
        response.timestamp_end = ts + 0.13
        f = http.HTTPFlow(_client(ts, request.host), _server(request.host, ts, server_ip))
        f.request = request
        f.response = response
        f.id = _flow_id(len(self.flows))
        f.timestamp_created = ts - 0.05
        f.metadata["phonehome"] = {"session": SESSION, "app": APP, "mode": self.mode, "phase": self.phase}
        self.flows.append(f)
        return f

    def add_dns(self, name: str, ip: bytes) -> None:
        ts = self.clock.tick(0.3)
        message_cls = getattr(dns, "DNSMessage", None) or dns.Message
        common = dict(
            id=len(self.flows) + 1,
            op_code=dns.op_codes.QUERY,
            authoritative_answer=False,
            truncation=False,
            recursion_desired=True,
            reserved=0,
            response_code=dns.response_codes.NOERROR,
            questions=[dns.Question(name, dns.types.A, dns.classes.IN)],
            authorities=[],
            additionals=[],
        )
        query = message_cls(timestamp=ts, query=True, recursion_available=False, answers=[], **common)
        answer = message_cls(
            timestamp=ts + 0.02,
            query=False,
            recursion_available=True,
            answers=[dns.ResourceRecord(name, dns.types.A, dns.classes.IN, 300, ip)],
            **common,
        )
        client = _client(ts, None)
        client.proxy_mode = ProxyMode.parse("wireguard")
        client.transport_protocol = "udp"
        server = connection.Server(
            address=("10.0.0.53", 53), transport_protocol="udp", id=_conn_id("dns-server", ts)
        )
        f = dns.DNSFlow(client, server)
        f.request, f.response = query, answer
        f.timestamp_created = ts
        f.id = _flow_id(len(self.flows))
        f.metadata["phonehome"] = {"session": SESSION, "app": APP, "mode": self.mode, "phase": self.phase}
        self.flows.append(f)


# --- payload builders: each imitates one real SDK's documented wire format ------------------


def java_hash_code(text: str) -> int:
    """Java's String.hashCode() (s[0]*31^(n-1) + ... + s[n-1], signed 32-bit), as the SDK computes
    `crc`. Written here the plain way on purpose, apart from the library's verifier
    (analysis/classify/sensors.py), so the sample checks that verifier instead of sharing its bugs."""
    raw = text.encode("utf-16-le")  # Java strings are UTF-16 code units
    h = 0
    for i in range(0, len(raw), 2):
        h = (31 * h + (raw[i] | raw[i + 1] << 8)) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def sensors_batch(events: list[dict]) -> bytes:
    """Sensors Analytics Android SDK: form body data_list=base64(gzip(JSON array)), gzip=1, and
    crc = String.valueOf(data_list.hashCode()) (sa-sdk-android AnalyticsMessages.java)."""
    packed = base64.b64encode(gzip.compress(json.dumps(events).encode(), mtime=0)).decode()
    return urlencode({"crc": str(java_hash_code(packed)), "gzip": "1", "data_list": packed}).encode()


def sa_event(builder: SampleBuilder, event: str, props: dict) -> dict:
    base = {
        "$lib": "Android",
        "$lib_version": "4.3.2",
        "$app_version": "3.4.0",
        "$os": "Android",
        "$os_version": "10",
        "$model": DEVICE["model"],
        "$manufacturer": DEVICE["manufacturer"],
        "$screen_width": 1080,
        "$screen_height": 2340,
        "$wifi": True,
        "$network_type": "WIFI",
        "$device_id": PROFILE["android_id"],
        "imei_md5": hashlib.md5(PROFILE["imei"][0].encode()).hexdigest(),
        "is_incognito": builder.mode != "normal",
    }
    base.update(props)
    return {
        "_track_id": int(builder.clock.now * 1000) % 2_147_483_647,
        "time": int(builder.clock.now * 1000),
        "type": "track",
        "distinct_id": DISTINCT_ID,
        "anonymous_id": DISTINCT_ID,
        "event": event,
        "properties": base,
        "lib": {"$lib": "Android", "$lib_method": "code", "$lib_version": "4.3.2"},
    }


def jwt(payload: dict) -> str:
    def seg(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).rstrip(b"=").decode()

    signature = base64.urlsafe_b64encode(hashlib.sha256(b"sample-signature").digest()).rstrip(b"=").decode()
    return f"{seg({'alg': 'HS256', 'typ': 'JWT'})}.{seg(payload)}.{signature}"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def pb_field(number: int, value: bytes | int) -> bytes:
    """One protobuf wire-format field: varint for ints, length-delimited for bytes."""
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def firebase_measurement(builder: SampleBuilder) -> bytes:
    """A Firebase app-measurement batch shape: nested messages with app id and ad id."""
    bundle = b"".join(
        [
            pb_field(1, 1),
            pb_field(2, pb_field(1, b"screen_view") + pb_field(4, int(builder.clock.now * 1000))),
            pb_field(8, b"android"),
            pb_field(9, b"10"),
            pb_field(10, DEVICE["model"].encode()),
            pb_field(14, APP.encode()),
            pb_field(16, b"3.4.0"),
            pb_field(19, PROFILE["advertising_id"].encode()),
            pb_field(21, b"1:123456789012:android:0a1b2c3d4e5f6789"),
        ]
    )
    return pb_field(1, bundle)


def profile(optout: bool = True) -> dict:
    """The synthetic phone's known values (with the opt-out phase's URL and search when it has one)."""
    if not optout:
        return PROFILE
    return {
        **PROFILE,
        "urls": [*PROFILE["urls"], OPTOUT_URL],
        "search_terms": [*PROFILE["search_terms"], OPTOUT_SEARCH],
    }


def build(optout: bool = True) -> SampleBuilder:
    b = SampleBuilder()
    url_health, url_news, url_private = PROFILE["urls"][:3]
    nav = {
        "Accept": "text/html,application/xhtml+xml",
        "Sec-Fetch-Mode": "navigate",
        "Sec-Fetch-Dest": "document",
    }
    html = b"<!doctype html><title>page</title>"

    # -- normal mode ----------------------------------------------------------------------
    b.start_phase("normal", "normal-browsing")
    b.add_dns("sa.api.intl.miui.com", b"\xcb\x00\x71\x0b")
    b.add("GET", url_health, headers=nav, response_type="text/html", response_body=html)
    b.add(
        "GET",
        "https://connect.facebook.net/en_US/fbevents.js",
        headers={"Referer": url_health, "Accept": "*/*"},
        response_type="application/javascript",
        response_body=b"/* sdk */",
        server_ip="157.240.1.35",
    )
    b.add(
        "POST",
        "https://sa.api.intl.miui.com/sa?project=global_browser_mini",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        body=sensors_batch(
            [
                sa_event(b, "$AppStart", {"$is_first_time": False}),
                sa_event(
                    b, "page_view", {"$url": url_health, "$title": "Clinics near me", "page_type": "web"}
                ),
            ]
        ),
        server_ip="203.0.113.11",
    )
    b.add(
        "GET",
        "https://www.google.com/search?q=flu+symptoms&ie=UTF-8",
        headers=nav,
        response_type="text/html",
        response_body=html,
        server_ip="142.250.74.4",
    )
    b.add(
        "POST",
        "https://sa.api.intl.miui.com/sa?project=global_browser_mini",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        body=sensors_batch(
            [
                sa_event(
                    b,
                    "search",
                    {
                        "search_word": PROFILE["search_terms"][0],
                        "search_engine": "google",
                        "$url": url_health,
                    },
                )
            ]
        ),
        server_ip="203.0.113.11",
    )
    tracking = {
        "gaid": PROFILE["advertising_id"],
        "oaid": PROFILE["oaid"],
        "mac": PROFILE["mac"][0].replace(":", "").upper(),
        "package": APP,
        "installed_apps": [
            "com.whatsapp",
            "com.grindrapp.android",
            "org.telegram.messenger",
            "com.bank.example",
        ],
        "ts": int(b.clock.now),
    }
    b.add(
        "POST",
        f"https://tracking.intl.miui.com/track/v4/{PROFILE['android_id']}/event",
        headers={"Content-Type": "application/json"},
        body=json.dumps(
            {
                "appId": "2882303761517492012",
                "data": base64.urlsafe_b64encode(zlib.compress(json.dumps(tracking).encode()))
                .decode()
                .rstrip("="),
                "nonce": uuid.uuid5(uuid.NAMESPACE_OID, "n1").hex,
            }
        ).encode(),
        server_ip="203.0.113.12",
    )
    # the security-check SDK pins its certificate: refused, after the app's other hosts were decrypted
    b.refuse_tls("api.sec.intl.miui.com")
    mistat = {
        "ip": "192.168.1.23",
        "loc": f"{PROFILE['location'][0]},{PROFILE['location'][1]}",
        "sn": PROFILE["serial"],
    }
    b.add(
        "GET",
        "https://data.mistat.intl.xiaomi.com/mistats/v2?"
        + urlencode({"mistatv": "2.1.0", "size": "3", "value": json.dumps(mistat).encode().hex()}),
        server_ip="203.0.113.13",
    )
    token = jwt({"sub": "user-8812", "device": PROFILE["android_id"], "iat": int(START)})
    b.add(
        "POST",
        "https://api.browser.intl.miui.com/api/v1/news/feed",
        headers={
            "Content-Type": "application/json",
            "Content-Encoding": "br",
            "Authorization": f"Bearer {token}",
            "Cookie": f"uid=user-8812; imei={PROFILE['imei'][0]}; lang=en",
        },
        body=brotli.compress(
            json.dumps(
                {"imei": PROFILE["imei"][0], "country": "FR", "page": 1, "email": PROFILE["email"]}
            ).encode()
        ),
        server_ip="203.0.113.14",
    )
    b.add(
        "POST",
        "https://app-measurement.com/a",
        headers={
            "Content-Type": "application/x-www-form-urlencoded"
        },  # Firebase really sends this, body is protobuf
        body=firebase_measurement(b),
        server_ip="142.250.74.14",
    )
    b.add(
        "POST",
        "https://api.ad.intl.xiaomi.com/u/getAds",
        headers={"Content-Type": "application/octet-stream"},
        body=zstandard.ZstdCompressor().compress(
            msgpack.packb(
                {"oaid": PROFILE["oaid"], "ua": UA, "lat": 48.8566, "lon": 2.3522, "slot": "feed_1"}
            )
        ),
        server_ip="203.0.113.15",
    )
    b.add(
        "GET", url_news, headers=nav, response_type="text/html", response_body=html, server_ip="198.51.100.20"
    )
    b.add(
        "POST",
        "https://sa.api.intl.miui.com/sa?project=global_browser_mini",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        body=sensors_batch(
            [sa_event(b, "page_view", {"$url": url_news, "$title": "Politics", "page_type": "web"})]
        ),
        server_ip="203.0.113.11",
    )

    # -- incognito mode -------------------------------------------------------------------
    b.start_phase("incognito", "incognito-browsing")
    b.add(
        "GET",
        url_private,
        headers=nav,
        response_type="text/html",
        response_body=html,
        server_ip="198.51.100.30",
    )
    b.add(
        "POST",
        "https://sa.api.intl.miui.com/sa?project=global_browser_mini",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        body=sensors_batch(
            [sa_event(b, "page_view", {"$url": url_private, "$title": "Results", "page_type": "web"})]
        ),
        server_ip="203.0.113.11",
    )
    b.add(
        "GET",
        "https://www.bing.com/search?" + urlencode({"q": PROFILE["search_terms"][1]}),
        headers=nav,
        response_type="text/html",
        response_body=html,
        server_ip="204.79.197.200",
    )
    b.add(
        "POST",
        "https://sa.api.intl.miui.com/sa?project=global_browser_mini",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        body=sensors_batch(
            [
                sa_event(
                    b,
                    "search",
                    {"search_word": PROFILE["search_terms"][1], "search_engine": "bing", "$url": url_private},
                )
            ]
        ),
        server_ip="203.0.113.11",
    )
    tracking["ts"] = int(b.clock.now)
    b.add(
        "POST",
        f"https://tracking.intl.miui.com/track/v4/{PROFILE['android_id']}/event",
        headers={"Content-Type": "application/json"},
        body=json.dumps(
            {
                "appId": "2882303761517492012",
                "data": base64.urlsafe_b64encode(zlib.compress(json.dumps(tracking).encode()))
                .decode()
                .rstrip("="),
                "nonce": uuid.uuid5(uuid.NAMESPACE_OID, "n2").hex,
            }
        ).encode(),
        server_ip="203.0.113.12",
    )
    b.add(
        "GET",
        "https://connect.facebook.net/en_US/fbevents.js",
        headers={"Referer": url_private, "Accept": "*/*"},
        response_type="application/javascript",
        response_body=b"/* sdk */",
        server_ip="157.240.1.35",
    )
    b.add(
        "GET",
        "https://www.example.net/static/app.js?v=" + quote("3.4.0"),
        headers={"Referer": url_private, "Accept": "*/*"},
        response_type="application/javascript",
        response_body=b"/* site script */",
        server_ip="198.51.100.30",
    )

    if optout:
        add_optout_phase(b)
    b.phases[-1]["end"] = b.clock.tick(2)
    return b


def add_optout_phase(b: SampleBuilder) -> None:
    """Incognito with the vendor's collection switch off (synthetic: no page views or searches are
    batched any more, but the SDK still reports the end of the session with its identifiers)."""
    nav = {
        "Accept": "text/html,application/xhtml+xml",
        "Sec-Fetch-Mode": "navigate",
        "Sec-Fetch-Dest": "document",
    }
    html = b"<!doctype html><title>page</title>"
    b.start_phase(OPTOUT_MODE, "incognito-optout-browsing")
    b.add(
        "GET",
        OPTOUT_URL,
        headers=nav,
        response_type="text/html",
        response_body=html,
        server_ip="198.51.100.40",
    )
    b.add(
        "GET",
        "https://www.bing.com/search?" + urlencode({"q": OPTOUT_SEARCH}),
        headers=nav,
        response_type="text/html",
        response_body=html,
        server_ip="204.79.197.200",
    )
    b.add(
        "POST",
        "https://sa.api.intl.miui.com/sa?project=global_browser_mini",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        body=sensors_batch([sa_event(b, "$AppEnd", {"event_duration": 42.5})]),
        server_ip="203.0.113.11",
    )


def write(out_dir: Path, optout: bool = True) -> None:
    b = build(optout)
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "flows.mitm").open("wb") as fo:
        writer = FlowWriter(fo)
        for f in b.flows:
            writer.add(f)
    session = {
        "schema": 1,
        "session": SESSION,
        "created": START,
        "synthetic": True,
        "device": DEVICE,
        "modes": [*MODES, OPTOUT_MODE] if optout else list(MODES),  # the study's modes, declared
        "phases": b.phases,
        "tool": {"phonehome": "sample generator (captures/make_sample.py)"},
    }
    (out_dir / "session.json").write_text(json.dumps(session, indent=2) + "\n")
    (out_dir / "profile.json").write_text(json.dumps(profile(optout), indent=2) + "\n")
    (out_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in b.events))


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a not in ("--optout", "--no-optout")]
    target = Path(args[0]) if args else Path(__file__).parent / SESSION
    write(target, optout="--no-optout" not in sys.argv[1:])
    print(f"wrote {target}")
