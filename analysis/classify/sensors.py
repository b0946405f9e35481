"""Sensors Analytics batches: the checks its wire format allows beyond field meanings.

The SDK posts `crc=<hash>&gzip=<mode>&data_list=<payload>` (sensorsdata/sa-sdk-android
AnalyticsMessages.java; sa-sdk-ios SAFlushHTTPBodyInterceptor.m). `crc` is Java's
`String.hashCode()` of the base64 text put in `data_list`, so recomputing it proves the decoded
events are the bytes the app sent (and not, say, a retry we mis-joined). `gzip=1` is base64(gzip(JSON
array)); `gzip=9` is the encrypted mode: `data_list` then holds `ekey` (an RSA-wrapped AES key the
SDK keeps per install, so the same `ekey` on every request is itself a pseudonym), `pkv` (key
version) and `payloads` (opaque). An event of type `track_signup` links the anonymous id
(`original_id`) to the account (`distinct_id` becomes the login id).
"""

from __future__ import annotations

import json
import re
from array import array
from dataclasses import dataclass
from urllib.parse import parse_qsl

from phonehome.analysis.records import HttpRecord

MAX_BODY = 8 * 1024 * 1024


def java_string_hash(text: str) -> int:
    """Java's String.hashCode(): s[0]*31^(n-1) + ... + s[n-1] over UTF-16 units, as a signed int32."""
    units = text.encode("latin-1") if text.isascii() else array("H", text.encode("utf-16-le"))
    h = 0
    for unit in units:
        h = 31 * h + unit
        if h > 0xFFFFFFFFFFFF:  # keep the integer small; the low 32 bits are all that matter
            h &= 0xFFFFFFFF
    h &= 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


@dataclass(frozen=True, slots=True)
class SensorsBatch:
    crc_ok: bool | None  # None: no crc sent
    encrypted: bool  # gzip=9: ekey/pkv/payloads, opaque
    ekey: str


def read_batch(record: HttpRecord) -> SensorsBatch | None:
    """The batch framing of a Sensors Analytics upload, or None when the request is not one."""
    body = record.request_body
    if not body or len(body) > MAX_BODY or b"data_list=" not in body:
        return None
    try:
        form = dict(parse_qsl(body.decode("ascii", "replace"), keep_blank_values=True))
    except ValueError:
        return None
    data = form.get("data_list")
    if data is None:
        return None
    crc = form.get("crc")
    crc_ok: bool | None = None
    if crc is not None:
        try:
            crc_ok = java_string_hash(data) == int(crc)
        except ValueError:
            crc_ok = False
    encrypted = form.get("gzip") == "9"
    ekey = ""
    if encrypted:
        try:
            parsed = json.loads(data)
        except ValueError:
            parsed = None
        items = parsed if isinstance(parsed, list) else [parsed]
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("ekey"), str):
                ekey = item["ekey"]
                break
    return SensorsBatch(crc_ok, encrypted, ekey)


_EVENT = re.compile(r"^(body\.data_list(?:\[\d+\])?)\.type$")


def signup_events(paths_values: list[tuple[str, str]]) -> set[str]:
    """Path prefixes (`body.data_list[3]`) of `track_signup` events: their distinct_id is the login."""
    return {
        match.group(1)
        for path, value in paths_values
        if value == "track_signup" and (match := _EVENT.match(path)) is not None
    }
