"""Varied Mi-Browser-like sessions of N requests, as a mitmproxy dump and as a HAR file.

make_dumps.py repeats the 18 bodies of the bundled sample, so anything that remembers what it
already decoded looks fast on it. Here every request is generated afresh from a seeded RNG:
each URL, query, id, timestamp and payload differs, and no two telemetry bodies are alike.
The mix imitates a Mint/Mi Browser session (see captures/make_sample.py for the sources of each
wire format): Sensors Analytics batches (form > base64 > gzip > JSON, 1-6 events each, visited
URLs, titles and search words inside), page loads and their sub-resources, searches, the MIUI
tracking endpoint (JSON with a urlsafe-base64 zlib blob), mistat beacons (hex JSON in the query),
the news feed API (brotli JSON, a JWT, cookies), Firebase app-measurement protobuf and the ad SDK
(zstd msgpack). The device identifiers are the sample's (its profile.json, copied to
known-values.json beside the files), so known-value matching has work to do; the first half is
labelled `normal`, the second `incognito`. Only HTTP flows, so the dump and the HAR hold the same requests.

Both files are written by mitmproxy's own code in one streamed pass (constant memory):
`mitmproxy.io.FlowWriter` for the dump and `mitmproxy.addons.savehar.SaveHar.flow_entry` for each
HAR entry, inside the envelope `SaveHar.make_har` writes.

    python benchmarks/varied_session.py 5000 50000 --out ~/.cache/phonehome-bench
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.util
import json
import random
import sys
import uuid
import zlib
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = Path.home() / ".cache" / "phonehome-bench"
GENERATOR_VERSION = 1  # bump when the output changes, so cached files are regenerated
SEED = 20

WORDS = (
    "health", "clinic", "flu", "symptoms", "divorce", "lawyer", "near", "me", "news", "politics",
    "football", "weather", "paris", "lyon", "recipe", "pasta", "cheap", "flights", "hotel", "loan",
    "credit", "card", "bank", "pregnancy", "test", "depression", "therapy", "job", "salary", "rent",
    "apartment", "used", "car", "insurance", "vaccine", "dentist", "pharmacy", "diet", "running",
    "shoes", "phone", "review", "election", "protest", "church", "mosque", "synagogue", "lgbt", "dating",
    "visa", "asylum", "tax", "refund",
)  # fmt: skip
TLDS = ("com", "org", "net", "fr", "de", "co.uk", "io", "info")


def _sample_module():
    """captures/make_sample.py, for its identifiers and wire-format helpers (written once there)."""
    spec = importlib.util.spec_from_file_location("make_sample", ROOT / "captures" / "make_sample.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_sample", module)
    spec.loader.exec_module(module)
    return module


class Session:
    """Generates one varied request at a time as a mitmproxy HTTPFlow."""

    def __init__(self, total: int, seed: int = SEED) -> None:
        from mitmproxy import http

        self.http = http
        self.s = _sample_module()
        self.rng = random.Random(seed)
        self.total = total
        self.now = self.s.START
        self.n = 0
        self.sites = [self._host() for _ in range(400)]
        self.last_page = "https://www.example.org/"

    # -- varied pieces ------------------------------------------------------------------------
    def _word(self) -> str:
        return self.rng.choice(WORDS)

    def _host(self) -> str:
        prefix = self.rng.choice(("www.", "m.", "news.", ""))
        return f"{prefix}{self._word()}-{self.rng.randrange(10**4)}.{self.rng.choice(TLDS)}"

    def _url(self) -> str:
        path = "/".join(self._word() for _ in range(self.rng.randint(1, 4)))
        query = urlencode({self._word(): self.rng.randrange(10**6) for _ in range(self.rng.randint(0, 3))})
        return f"https://{self.rng.choice(self.sites)}/{path}-{self.rng.randrange(10**6)}" + (
            f"?{query}" if query else ""
        )

    def _terms(self) -> str:
        return " ".join(self._word() for _ in range(self.rng.randint(1, 4)))

    def _hex(self, nbytes: int) -> str:
        return self.rng.randbytes(nbytes).hex()

    @property
    def mode(self) -> str:
        return "normal" if self.n < self.total // 2 else "incognito"

    # -- flows --------------------------------------------------------------------------------
    def _flow(self, method, url, *, headers=None, body=b"", response_type="application/json", resp=None):
        s, http = self.s, self.http
        self.now += self.rng.uniform(0.05, 3.0)
        ts = self.now
        request = http.Request.make(method, url, body, {"User-Agent": s.UA, **(headers or {})})
        request.timestamp_start, request.timestamp_end = ts, ts + 0.01
        request.raw_content = body
        if resp is None:
            resp = json.dumps({"code": 0, "req": self._hex(6)}).encode()
        response = http.Response.make(200, resp, {"Content-Type": response_type})
        response.timestamp_start, response.timestamp_end = ts + 0.12, ts + 0.13
        ip = f"203.0.{self.rng.randrange(256)}.{self.rng.randrange(1, 255)}"
        f = http.HTTPFlow(s._client(ts, request.host), s._server(request.host, ts, ip))
        f.request, f.response = request, response
        f.id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"phonehome-varied/{self.total}/{self.n}"))
        f.timestamp_created = ts - 0.05
        f.metadata["phonehome"] = {"session": "varied", "app": s.APP, "mode": self.mode, "phase": self.mode}
        self.n += 1
        return f

    def _sa_event(self, event: str, props: dict) -> dict:
        s = self.s
        base = {
            "$lib": "Android",
            "$lib_version": "4.3.2",
            "$app_version": "3.4.0",
            "$os": "Android",
            "$os_version": "10",
            "$model": s.DEVICE["model"],
            "$manufacturer": s.DEVICE["manufacturer"],
            "$screen_width": 1080,
            "$screen_height": 2340,
            "$wifi": self.rng.random() < 0.7,
            "$network_type": self.rng.choice(("WIFI", "4G", "5G")),
            "$device_id": s.PROFILE["android_id"],
            "imei_md5": hashlib.md5(s.PROFILE["imei"][0].encode()).hexdigest(),
            "is_incognito": self.mode == "incognito",
            "$event_duration": round(self.rng.uniform(0, 120), 3),
            "session_id": self._hex(8),
        }
        base.update(props)
        return {
            "_track_id": self.rng.randrange(2**31),
            "time": int(self.now * 1000) + self.rng.randrange(1000),
            "type": "track",
            "distinct_id": s.DISTINCT_ID,
            "anonymous_id": s.DISTINCT_ID,
            "event": event,
            "properties": base,
            "lib": {"$lib": "Android", "$lib_method": "code", "$lib_version": "4.3.2"},
        }

    def sensors(self):
        events = []
        for _ in range(self.rng.randint(1, 6)):
            kind = self.rng.random()
            if kind < 0.5:
                events.append(self._sa_event("page_view", {"$url": self._url(), "$title": self._terms()}))
            elif kind < 0.7:
                words = self._terms()
                events.append(
                    self._sa_event(
                        "search", {"search_word": words, "search_engine": "google", "$url": self._url()}
                    )
                )
            else:
                events.append(
                    self._sa_event(self.rng.choice(("$AppStart", "$AppEnd", "click")), {"x": self._hex(4)})
                )
        return self._flow(
            "POST",
            "https://sa.api.intl.miui.com/sa?project=global_browser_mini&r=" + self._hex(4),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            body=self.s.sensors_batch(events),
        )

    def page(self):
        self.last_page = self._url()
        return self._flow(
            "GET",
            self.last_page,
            headers={"Accept": "text/html", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"},
            response_type="text/html",
            resp=f"<!doctype html><title>{self._terms()}</title>".encode(),
        )

    def subresource(self):
        host = self.rng.choice([*self.sites, "connect.facebook.net", "www.googletagmanager.com"])
        ext = self.rng.choice(("js", "css", "png", "woff2"))
        return self._flow(
            "GET",
            f"https://{host}/static/{self._hex(6)}.{ext}?v={self.rng.randrange(10**5)}",
            headers={"Referer": self.last_page, "Accept": "*/*"},
            response_type="application/javascript",
            resp=f"/* {self._hex(8)} */".encode(),
        )

    def search(self):
        engine = self.rng.choice(("https://www.google.com/search?", "https://www.bing.com/search?"))
        return self._flow(
            "GET",
            engine + urlencode({"q": self._terms(), "ie": "UTF-8", "ei": self._hex(8)}),
            headers={"Accept": "text/html", "Sec-Fetch-Mode": "navigate"},
            response_type="text/html",
            resp=b"<!doctype html><title>results</title>",
        )

    def tracking(self):
        p = self.s.PROFILE
        payload = {
            "gaid": p["advertising_id"],
            "oaid": p["oaid"],
            "mac": p["mac"][0].replace(":", "").upper(),
            "package": self.s.APP,
            "installed_apps": self.rng.sample(
                [
                    "com.whatsapp",
                    "org.telegram.messenger",
                    "com.bank.example",
                    "com.grindrapp.android",
                    "com.spotify.music",
                    "com.tinder",
                ],
                3,
            ),
            "ts": int(self.now),
            "seq": self.n,
        }
        blob = base64.urlsafe_b64encode(zlib.compress(json.dumps(payload).encode())).decode().rstrip("=")
        return self._flow(
            "POST",
            f"https://tracking.intl.miui.com/track/v4/{p['android_id']}/event?seq={self.n}",
            headers={"Content-Type": "application/json"},
            body=json.dumps({"appId": "2882303761517492012", "data": blob, "nonce": self._hex(16)}).encode(),
        )

    def mistat(self):
        p = self.s.PROFILE
        lat, lon = p["location"]
        value = {
            "ip": f"192.168.1.{self.rng.randrange(2, 250)}",
            "loc": f"{lat + self.rng.uniform(-0.01, 0.01):.5f},{lon + self.rng.uniform(-0.01, 0.01):.5f}",
            "sn": p["serial"],
            "ev": self._word(),
            "t": int(self.now),
        }
        return self._flow(
            "GET",
            "https://data.mistat.intl.xiaomi.com/mistats/v2?"
            + urlencode({"mistatv": "2.1.0", "size": "3", "value": json.dumps(value).encode().hex()}),
        )

    def feed(self):
        import brotli

        p = self.s.PROFILE
        token = self.s.jwt(
            {"sub": f"user-{self.rng.randrange(10**5)}", "device": p["android_id"], "iat": int(self.now)}
        )
        body = {
            "imei": p["imei"][0],
            "country": "FR",
            "page": self.rng.randrange(50),
            "email": p["email"],
            "topics": [self._word() for _ in range(3)],
            "cursor": self._hex(10),
        }
        return self._flow(
            "POST",
            "https://api.browser.intl.miui.com/api/v1/news/feed?req=" + self._hex(5),
            headers={
                "Content-Type": "application/json",
                "Content-Encoding": "br",
                "Authorization": f"Bearer {token}",
                "Cookie": f"uid=user-8812; imei={p['imei'][0]}; lang=en; sid={self._hex(8)}",
            },
            body=brotli.compress(json.dumps(body).encode()),
        )

    def firebase(self):
        s = self.s
        pb = s.pb_field
        bundle = b"".join(
            [
                pb(1, 1),
                pb(2, pb(1, self._word().encode()) + pb(4, int(self.now * 1000))),
                pb(8, b"android"),
                pb(10, s.DEVICE["model"].encode()),
                pb(14, s.APP.encode()),
                pb(19, s.PROFILE["advertising_id"].encode()),
                pb(21, f"1:{self.rng.randrange(10**12)}:android:{self._hex(8)}".encode()),
            ]
        )
        return self._flow(
            "POST",
            f"https://app-measurement.com/a?x={self._hex(4)}",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            body=pb(1, bundle),
        )

    def ads(self):
        import msgpack
        import zstandard

        p = self.s.PROFILE
        body = {
            "oaid": p["oaid"],
            "ua": self.s.UA,
            "lat": p["location"][0],
            "lon": p["location"][1],
            "slot": f"feed_{self.rng.randrange(100)}",
            "req": self._hex(8),
        }
        return self._flow(
            "POST",
            "https://api.ad.intl.xiaomi.com/u/getAds?t=" + str(int(self.now * 1000)),
            headers={"Content-Type": "application/octet-stream"},
            body=zstandard.ZstdCompressor().compress(msgpack.packb(body)),
        )

    KINDS = (
        ("sensors", 30), ("page", 18), ("subresource", 15), ("search", 5), ("tracking", 8),
        ("mistat", 8), ("feed", 6), ("firebase", 5), ("ads", 5),
    )  # fmt: skip

    def flows(self):
        names = [k for k, _ in self.KINDS]
        weights = [w for _, w in self.KINDS]
        while self.n < self.total:
            yield getattr(self, self.rng.choices(names, weights)[0])()


def paths(out: Path, requests: int) -> tuple[Path, Path]:
    """(dump, HAR) of the cached session of `requests` requests."""
    base = out / f"varied-v{GENERATOR_VERSION}-{requests}"
    return base / "flows.mitm", base / "flows.har"


def known_values(dump: Path) -> Path:
    """The session's device profile. Not named profile.json: phonehome picks up a profile.json
    beside a capture file by itself, and a run without known values must be possible."""
    return dump.parent / "known-values.json"


def write_session(out: Path, requests: int) -> tuple[Path, Path]:
    """Write the dump and the HAR of a varied session (one streamed pass; mitmproxy's writers)."""
    from mitmproxy.addons.savehar import SaveHar
    from mitmproxy.io import FlowWriter

    dump, har = paths(out, requests)
    dump.parent.mkdir(parents=True, exist_ok=True)
    saver = SaveHar()
    servers_seen: set = set()
    head, tail = json.dumps(saver.make_har([])).split('"entries": []')
    dump_tmp, har_tmp = dump.with_suffix(".mitm.partial"), har.with_suffix(".har.partial")
    with dump_tmp.open("wb") as fd, har_tmp.open("w") as fh:
        writer = FlowWriter(fd)
        fh.write(head + '"entries": [')
        for n, flow in enumerate(Session(requests).flows()):
            writer.add(flow)
            fh.write(("," if n else "") + json.dumps(saver.flow_entry(flow, servers_seen)))
        fh.write("]" + tail)
    dump_tmp.replace(dump)
    har_tmp.replace(har)
    write_known_values(dump)
    return dump, har


def write_known_values(dump: Path) -> Path:
    path = known_values(dump)
    path.write_text(json.dumps(_sample_module().PROFILE, indent=2) + "\n")
    stale = dump.parent / "profile.json"  # what version 1 of this script wrote
    if stale.exists():
        stale.unlink()
    return path


def ensure_session(out: Path, requests: int) -> tuple[Path, Path]:
    dump, har = paths(out, requests)
    if not (dump.exists() and har.exists()):
        write_session(out, requests)
    if not known_values(dump).exists() or (dump.parent / "profile.json").exists():
        write_known_values(dump)
    return dump, har


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[5_000])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    for size in args.sizes:
        dump, har = write_session(args.out, size)
        print(f"{dump}: {dump.stat().st_size / 1e6:.1f} MB; {har}: {har.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
