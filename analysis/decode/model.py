"""The decoder's data types: what a decoded request looks like and the bounds on the work."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


class Field(NamedTuple):
    """One leaf value found in a request.

    location: url_path, query, header, cookie or body (DESIGN.md).
    path: where the value sits in the decoded request, e.g. `body.data_list[2].properties.url`.
    key: the innermost key name (`url` above), "" when positional.
    encodings: the chain undone to reach it, outermost first, e.g. ("form", "base64", "gzip", "json").

    A NamedTuple, not a frozen dataclass: the decoder makes one per leaf (182,000 on the varied
    5,000-request session of benchmarks/bench_peer.py), and a frozen dataclass's __init__ sets
    each attribute through object.__setattr__, which cost 0.12 s there against 0.05 s for a
    tuple. Immutable, hashable and printed the same; it also compares equal to the plain tuple
    of its values.
    """

    location: str
    path: str
    key: str
    encodings: tuple[str, ...]
    value: str


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on the work spent on one request, so hostile input cannot exhaust memory or time.

    max_decompressed_bytes: total output of all decompressions in one request (zip bombs).
    max_depth: encoding layers undone along one chain (`form>base64>gzip>json` is 4).
    max_fields: fields emitted per request.
    max_nesting: JSON/protobuf/msgpack container nesting followed per layer.
    max_protobuf_bytes: largest blob tried as schema-less protobuf (pure-Python parser, ~1 µs/byte).
    max_value_chars: longest leaf value kept (longer ones are cut, and the request marked truncated).
    """

    max_decompressed_bytes: int = 16 * 1024 * 1024
    max_depth: int = 12
    max_fields: int = 20_000
    max_nesting: int = 64
    max_protobuf_bytes: int = 256 * 1024
    max_value_chars: int = 1024 * 1024


DEFAULT_LIMITS = Limits()


@dataclass(slots=True)
class DecodedRequest:
    """The fields of one request; `truncated` says a bound was hit (what was decoded is kept).

    `opaque_bytes`: bytes of the body no decoder could open (encrypted, compressed in an unknown
    way, or an unknown binary format), so a report can say what it could not see.
    """

    fields: list[Field] = field(default_factory=list)
    truncated: bool = False
    notes: list[str] = field(default_factory=list)
    opaque_bytes: int = 0
