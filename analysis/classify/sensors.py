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
import operator
import re
from array import array
from dataclasses import dataclass
from urllib.parse import unquote

from phonehome.analysis.records import HttpRecord

MAX_BODY = 8 * 1024 * 1024


_BLOCK = 1024
_MASK = 0xFFFFFFFF
# 31^(BLOCK-1), ..., 31^1, 31^0 modulo 2^32: one block of the polynomial as a dot product
_POWERS = [pow(31, _BLOCK - 1 - i, 1 << 32) for i in range(_BLOCK)]
_BLOCK_SHIFT = pow(31, _BLOCK, 1 << 32)


# ASCII text as two strings of base-31 digits: code = 31 * (code // 31) + code % 31, digit values
# below 31 written 0-9a-u, so that int(..., 31) evaluates the polynomial in C
_DIGITS = b"0123456789abcdefghijklmnopqrstu"
_HIGH = bytes(_DIGITS[code // 31] if code < 128 else 0 for code in range(256))
_LOW = bytes(_DIGITS[code % 31] if code < 128 else 0 for code in range(256))
# digits per int() call: within the least limit on integer string conversion CPython lets one set
# (640, sys.int_info.str_digits_check_threshold), so no PYTHONINTMAXSTRDIGITS can refuse a block;
# and short, as int(..., 31) costs more per digit the longer the string (quadratic): on the
# varied session's 1,510 batches 0.022 s with 640, 0.015 s with 192
_DIGIT_BLOCK = 192
_DIGIT_SHIFT = pow(31, _DIGIT_BLOCK, 1 << 32)


def java_string_hash(text: str) -> int:
    """Java's String.hashCode(): s[0]*31^(n-1) + ... + s[n-1] over UTF-16 units, as a signed int32.

    Computed modulo 2^32 block by block (h = h * 31^block + the block's value), which is the same
    sum. An ASCII block's value is 31 * int(high digits, 31) + int(low digits, 31), each unit split
    into two base-31 digits (a Sensors `data_list` is base64, ASCII: 40 ns per unit by the dot
    product below, 20 by this); other text takes the dot product of its UTF-16 units with the
    powers of 31, a C-level `sum(map(...))` instead of a Python loop per unit."""
    if text.isascii():
        data = text.encode("ascii")
        h = 0
        for start in range(0, len(data), _DIGIT_BLOCK):
            block = data[start : start + _DIGIT_BLOCK]
            value = 31 * int(block.translate(_HIGH), 31) + int(block.translate(_LOW), 31)
            shift = _DIGIT_SHIFT if len(block) == _DIGIT_BLOCK else pow(31, len(block), 1 << 32)
            h = (h * shift + value) & _MASK
        return h - (1 << 32) if h >= 1 << 31 else h
    units = array("H", text.encode("utf-16-le"))
    h = 0
    n = len(units)
    head = n % _BLOCK  # the first, partial block uses the last powers
    if head:
        h = sum(map(operator.mul, units[:head], _POWERS[_BLOCK - head :])) & _MASK
    for start in range(head, n, _BLOCK):
        block = sum(map(operator.mul, units[start : start + _BLOCK], _POWERS))
        h = (h * _BLOCK_SHIFT + block) & _MASK
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
    form = form_fields(body.decode("ascii", "replace"))
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


def form_fields(text: str) -> dict[str, str]:
    """`dict(parse_qsl(text, keep_blank_values=True))`, with a batch's base64 unquoted in C.

    parse_qsl unquotes a value with a Python loop per `%XX`; the base64 text in `data_list`
    escapes `+`, `/` and `=` as %2B, %2F and %3D, hundreds of times in a batch. A value in which
    every `%` starts one of those three is unquoted by str.replace; any other value by unquote,
    as parse_qsl does (tests/test_classify_sensors_form.py compares the two)."""
    form = {}
    for pair in text.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        form[unquote(name.replace("+", " "))] = _unquote_plus(value)
    return form


def _unquote_plus(value: str) -> str:
    value = value.replace("+", " ")
    if "%" not in value:
        return value
    if value.count("%") == value.count("%2B") + value.count("%2F") + value.count("%3D"):
        return value.replace("%2B", "+").replace("%2F", "/").replace("%3D", "=")
    return unquote(value)


_EVENT = re.compile(r"^(body\.data_list(?:\[\d+\])?)\.type$")


def signup_events(paths_values: list[tuple[str, str]]) -> set[str]:
    """Path prefixes (`body.data_list[3]`) of `track_signup` events: their distinct_id is the login."""
    return {
        match.group(1)
        for path, value in paths_values
        if value == "track_signup" and (match := _EVENT.match(path)) is not None
    }
