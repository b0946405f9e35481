"""Payload decoding: every leaf value of a request, with where it sat and which encodings hid it.

`decode_request(record)` splits a request into url_path segments, query parameters, headers,
cookies and the body, and recursively undoes the layers telemetry hides data under: form and
query encoding, JSON (also inside strings), multipart, base64 (`base64`, URL-safe `base64url`),
hex, gzip/zlib/deflate/brotli/zstd (by Content-Encoding or magic bytes; brotli only by
Content-Encoding, having no magic), schema-less protobuf, msgpack, JWTs and nested
percent-encoding (`urlencoded`). Each leaf is a Field whose `encodings` is the chain undone,
outermost first.

Paths: `<location>.<key>`, then `.key` per object key, `[i]` per list index; protobuf field
numbers are keys (`body.1.3[0]`); URL path segments are `url_path[i]`; headers
`header.<lowercased-name>`; cookies `cookie.<name>`; JWT parts `<path>.jwt_header.<claim>` and
`<path>.jwt_payload.<claim>`. A key that is empty or holds `.`, `[`, `]`, `"` or whitespace is
written `["key"]` with JSON string quoting, e.g. `body.props["a.b"]`.

Work is bounded by Limits (decompressed bytes, chain depth, container nesting, field count,
protobuf size); when a bound is hit the fields decoded so far are kept and
DecodedRequest.truncated is set, with a note saying which bound.
"""

from __future__ import annotations

from phonehome.analysis.decode.model import DEFAULT_LIMITS, DecodedRequest, Field, Limits
from phonehome.analysis.decode.request import SKIPPED_HEADERS, decode_request, decode_value
from phonehome.analysis.decode.walk import join_path

__all__ = [
    "DEFAULT_LIMITS",
    "SKIPPED_HEADERS",
    "DecodedRequest",
    "Field",
    "Limits",
    "decode_request",
    "decode_value",
    "join_path",
]
