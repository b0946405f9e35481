"""Helpers for the decoder tests: build HttpRecords directly and encode values through chains."""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from urllib.parse import quote

import brotli
import msgpack
import zstandard

from phonehome.analysis.records import HttpRecord, Labels


def record(
    path: str = "/",
    *,
    method: str = "POST",
    headers: dict[str, str] | list[tuple[str, str]] | None = None,
    body: bytes = b"",
    host: str = "t.example.com",
) -> HttpRecord:
    items = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    return HttpRecord(
        source="test",
        flow_id="f1",
        labels=Labels(session="s"),
        timestamp=0.0,
        method=method,
        scheme="https",
        host=host,
        port=443,
        path=path,
        request_headers=tuple(items),
        request_body=body,
    )


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_string(field: int, data: bytes) -> bytes:
    """One length-delimited protobuf field."""
    return varint(field << 3 | 2) + varint(len(data)) + data


# --- layer encoders for round-trip tests -------------------------------------------------------
# Each layer takes the inner payload (str for text layers, bytes for byte layers) and returns the
# outer payload. `kind` says what a layer consumes/produces: "t" text, "b" bytes.

KEY = "planted"


def _json_layer(inner: str) -> str:
    return json.dumps({"pad": 1, KEY: inner})


def _form_layer(inner: str) -> str:
    return f"a=1&{KEY}={quote(inner, safe='')}"


def _jwt_layer(inner: str) -> str:
    def b64(d: bytes) -> str:
        return base64.urlsafe_b64encode(d).rstrip(b"=").decode()

    head = b64(b'{"alg":"HS256","typ":"JWT"}')
    return f"{head}.{b64(json.dumps({KEY: inner}).encode())}.c2ln"


def _msgpack_layer(inner: str) -> bytes:
    return msgpack.packb({KEY: inner, "n": 1})


def _protobuf_layer(inner: str) -> bytes:
    return pb_string(1, b"example") + pb_string(2, inner.encode())


# text -> text layers
TEXT_LAYERS = {
    "json": _json_layer,
    "form": _form_layer,
    "jwt": _jwt_layer,
}
# text -> bytes (structure serialised as binary)
BINARY_STRUCT_LAYERS = {"msgpack": _msgpack_layer, "protobuf": _protobuf_layer}
# bytes -> bytes
COMPRESSORS = {
    "gzip": gzip.compress,
    "zlib": zlib.compress,
    "zstd": lambda d: zstandard.ZstdCompressor().compress(d),
}
# bytes -> text
TEXTIFIERS = {
    "base64": lambda d: base64.b64encode(d).decode(),
    "base64url": lambda d: base64.urlsafe_b64encode(d).rstrip(b"=").decode(),
    "hex": lambda d: d.hex(),
}
CONTENT_ENCODERS = {
    "gzip": ("gzip", gzip.compress),
    "deflate": ("deflate", zlib.compress),
    "br": ("brotli", brotli.compress),
    "zstd": ("zstd", lambda d: zstandard.ZstdCompressor().compress(d)),
}
