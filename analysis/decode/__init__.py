"""Payload decoding: every leaf value of a request, with where it sat and which encodings hid it.

PLACEHOLDER (foundation): only query strings, form bodies and plain JSON. Issue 3 replaces this
package with the full recursive decoder; the public interface below stays.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote

from analysis.records import HttpRecord


@dataclass(frozen=True, slots=True)
class Field:
    """One leaf value found in a request.

    location: url_path, query, header, cookie or body (DESIGN.md).
    path: where the value sits in the decoded request, e.g. `body.data_list[2].properties.url`.
    key: the innermost key name (`url` above), "" when positional.
    encodings: the chain undone to reach it, outermost first, e.g. ("form", "base64", "gzip", "json").
    """

    location: str
    path: str
    key: str
    encodings: tuple[str, ...]
    value: str


@dataclass(frozen=True, slots=True)
class Limits:
    max_decompressed_bytes: int = 16 * 1024 * 1024
    max_depth: int = 12
    max_fields: int = 20_000


DEFAULT_LIMITS = Limits()


@dataclass(slots=True)
class DecodedRequest:
    fields: list[Field] = field(default_factory=list)
    truncated: bool = False
    notes: list[str] = field(default_factory=list)


def decode_request(record: HttpRecord, limits: Limits = DEFAULT_LIMITS) -> DecodedRequest:
    """Every leaf value of `record` as a Field."""
    out = DecodedRequest()
    for i, segment in enumerate(s for s in record.url_path.split("/") if s):
        out.fields.append(Field("url_path", f"url_path[{i}]", "", (), unquote(segment)))
    for key, value in parse_qsl(record.query, keep_blank_values=True):
        out.fields.append(Field("query", f"query.{key}", key, (), value))
    ctype = (record.header("content-type") or "").lower()
    body = record.request_body
    if body and "x-www-form-urlencoded" in ctype:
        for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
            out.fields.append(Field("body", f"body.{key}", key, ("form",), value))
    elif body and "json" in ctype:
        try:
            _walk_json(json.loads(body), "body", "", ("json",), out)
        except ValueError:
            pass
    return out


def _walk_json(obj: object, path: str, key: str, enc: tuple[str, ...], out: DecodedRequest) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _walk_json(v, f"{path}.{k}", str(k), enc, out)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _walk_json(v, f"{path}[{i}]", key, enc, out)
    elif obj is not None:
        out.fields.append(Field("body", path, key, enc, str(obj)))
