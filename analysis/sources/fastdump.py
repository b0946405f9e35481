"""A fast reader of mitmproxy dumps: tnetstring records straight into records.

mitmproxy's own FlowReader parses every value of every record (pure-Python tnetstring with a
memoryview slice per value) and then builds Flow, Request, Response, Client and Server objects,
about 0.4 ms per flow. An analysis needs a dozen fields of a flow. This reader parses only those:
it indexes a record's dicts by key without parsing the values, parses the values it needs, and
takes the response body's length without copying it.

It is the library's one dump reader. It gives records EQUAL to reading the dump with mitmproxy's
own objects (analysis.sources.mitm; tests/test_fastdump.py compares them on every dump we have):
HTTP and WebSocket flows, and DNS flows whose answers are addresses, are read here; anything it is
not sure about (another flow-format version needing migration, TCP/UDP flows, other DNS answers,
a record whose keys or value types are not the ones mitmproxy would accept, a parse error) is
handed to the mitmproxy path for that record, and damage is handled by the very same resync
code, with the same warnings.

It does not import mitmproxy's flow classes (about 0.15 s of a small capture's 0.5 s): the key
sets it checks records against are written out here, and tests/test_fastdump.py checks them
against mitmproxy's own dataclasses on every supported version; the mitmproxy path is imported
the first time a record needs it.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from mitmproxy import version  # cheap: no flow classes
from mitmproxy.net.http.url import parse_authority  # cheap: no flow classes

from phonehome.analysis.labels import internal_kind, labels_from_metadata
from phonehome.analysis.records import ContactRecord, HttpRecord, Labels, SourceReport, is_ip
from phonehome.analysis.sources import framing

Record = HttpRecord | ContactRecord

#: The flow-format version whose layout this reader knows; others go through mitmproxy's migration.
FAST_FORMAT_VERSION = 21
_FAST = version.FLOW_FORMAT_VERSION == FAST_FORMAT_VERSION

# The state keys of format 21, as mitmproxy's set_state/from_state accept them (they assert
# nothing else is left over). tests/test_fastdump.py::test_key_sets_are_mitmproxys compares each
# with mitmproxy's own classes, so a mitmproxy that changed them without a new format version
# fails the suite instead of being misread.
_COMMON_FLOW_KEYS = frozenset(
    {
        b"id",
        b"type",
        b"version",
        b"error",
        b"client_conn",
        b"server_conn",
        b"intercepted",
        b"is_replay",
        b"marked",
        b"metadata",
        b"comment",
        b"timestamp_created",
    }
)
_FLOW_KEYS = _COMMON_FLOW_KEYS | {b"request", b"response", b"websocket"}  # HTTPFlow
_DNS_FLOW_KEYS = _COMMON_FLOW_KEYS | {b"request", b"response"}  # DNSFlow
_FLOW_OPTIONAL = frozenset({b"backup"})
_MESSAGE_KEYS = frozenset(  # http.MessageData's fields, common to requests and responses
    {b"http_version", b"headers", b"content", b"trailers", b"timestamp_start", b"timestamp_end"}
)
_REQUEST_KEYS = _MESSAGE_KEYS | {b"host", b"port", b"method", b"scheme", b"authority", b"path"}  # RequestData
_RESPONSE_KEYS = _MESSAGE_KEYS | {b"status_code", b"reason"}  # ResponseData
_HTTP2_VERSIONS = (b"HTTP/2.0", b"HTTP/3")
_OPCODES = frozenset({0, 1, 2, 8, 9, 10})  # websocket.Opcode (wsproto's)

_DICT, _LIST, _BYTES, _STR, _INT, _FLOAT, _BOOL, _NULL = (ord(c) for c in "}],;#^!~")

Span = tuple[int, int, int]  # (type tag, start of payload, end of payload)


class Unsupported(Exception):
    """This record is for the mitmproxy path (not damage: mitmproxy may well read it)."""


def _element(buf: bytes, i: int) -> tuple[int, int, int, int]:
    """(tag, payload start, payload end, next element) of the tnetstring element at `i`."""
    colon = buf.index(b":", i, i + 13)
    start = colon + 1
    end = start + int(buf[i:colon])
    if end < start:
        raise ValueError("not a tnetstring: negative length")
    return buf[end], start, end, end + 1  # IndexError if the element runs past the buffer


def _value(buf: bytes, tag: int, start: int, end: int) -> Any:
    """The value of one element, parsed exactly as mitmproxy.io.tnetstring.parse would."""
    if tag == _BYTES:
        return buf[start:end]
    if tag == _STR:
        return buf[start:end].decode("utf8")
    if tag == _INT:
        return int(buf[start:end])
    if tag == _FLOAT:
        return float(buf[start:end])
    if tag == _NULL:
        if end != start:
            raise ValueError("not a tnetstring: invalid null literal")
        return None
    if tag == _BOOL:
        data = buf[start:end]
        if data == b"true":
            return True
        if data == b"false":
            return False
        raise ValueError("not a tnetstring: invalid boolean literal")
    if tag == _LIST:
        items = []
        i = start
        while i < end:
            t, s, e, i = _element(buf, i)
            items.append(_value(buf, t, s, e))
        if i != end:
            raise ValueError("not a tnetstring: list overruns")
        return items
    if tag == _DICT:
        out = {}
        i = start
        while i < end:
            t, s, e, i = _element(buf, i)
            key = _value(buf, t, s, e)
            t, s, e, i = _element(buf, i)
            out[key] = _value(buf, t, s, e)
        if i != end:
            raise ValueError("not a tnetstring: dict overruns")
        return out
    raise ValueError(f"unknown type tag: {tag}")


def _spans(buf: bytes, tag: int, start: int, end: int) -> dict[bytes, Span]:
    """A dict element's (ASCII str) keys, as bytes, mapped to their values' spans, unparsed.

    The hot loop of the reader, so _element is inlined here. A value running past the
    dict's end leaves `i` past `end`, which the final check rejects.
    """
    if tag != _DICT:
        raise Unsupported("not a dict")
    out: dict[bytes, Span] = {}
    index = buf.index
    i = start
    while i < end:
        colon = index(b":", i, i + 13)
        s = colon + 1
        e = s + int(buf[i:colon])
        key = buf[s:e]
        if e < s or buf[e] != _STR or not key.isascii():
            raise Unsupported("not an ASCII str key")
        i = e + 1
        colon = index(b":", i, i + 13)
        s = colon + 1
        e = s + int(buf[i:colon])
        if e < s:
            raise ValueError("not a tnetstring: negative length")
        out[key] = (buf[e], s, e)
        i = e + 1
    if i != end:
        raise ValueError("not a tnetstring: dict overruns")
    return out


class Layouts:
    """The key orders of each kind of dict (flow, request, response, connections) as the records
    read so far laid them out.

    mitmproxy's writer lays out every record of a dump alike, so a reader that knows the last
    record's keys can check the next record's with one `startswith` per key instead of parsing
    each key's length, bytes and tag: the reader's hot loop (`_spans`) reads the values' lengths
    only. A layout is the key order, never a value, and a record that differs (another key, a key
    written another way, a duplicate) is parsed in full and its layout learned. A few layouts
    are kept per kind, newest first, because a capture interleaves kinds of flow whose top-level
    dicts differ (an HTTP flow's and a DNS flow's).
    """

    __slots__ = ("known", "metadata")

    #: Layouts kept per kind of dict.
    KEEP = 3
    #: Distinct metadata texts remembered (a capture has one per labelled phase).
    METADATA_KEEP = 64

    def __init__(self) -> None:
        self.known: dict[str, tuple[tuple[tuple[bytes, bytes, int], ...], ...]] = {}
        #: a flow's metadata element (its bytes, tag included) -> its parsed value. The recorder
        #: writes the same labels on every flow of a phase, so the dicts repeat byte for byte.
        self.metadata: dict[bytes, Any] = {}


def _along(buf: bytes, start: int, end: int, layout: tuple[tuple[bytes, bytes, int], ...]) -> dict | None:
    """The dict element's spans read along `layout`, or None when the dict is not laid out so.

    Gives exactly _spans' dict when it gives one: a key token matches only the bytes
    `<len>:<key>;` that _spans would parse as that ASCII str key, and values are skipped alike.
    """
    out: dict[bytes, Span] = {}
    startswith = buf.startswith
    index = buf.index
    i = start
    for token, key, size in layout:
        if not startswith(token, i):
            return None
        i += size
        colon = index(b":", i, i + 13)
        s = colon + 1
        e = s + int(buf[i:colon])
        if e < s or e >= end:  # a negative length or a value past the dict: _spans says which
            return None
        out[key] = (buf[e], s, e)
        i = e + 1
    return out if i == end else None


def _spans_as(
    buf: bytes, tag: int, start: int, end: int, layouts: Layouts | None, kind: str
) -> dict[bytes, Span]:
    """_spans, reading the keys along a layout seen before for `kind` when the record has one.

    Gives exactly _spans' dict and raises where it raises (a dict no layout fits is parsed by
    _spans itself).
    """
    if layouts is None:
        return _spans(buf, tag, start, end)
    known = layouts.known.get(kind, ())
    if tag == _DICT:
        for layout in known:
            out = _along(buf, start, end, layout)
            if out is not None:
                return out
    out = _spans(buf, tag, start, end)
    tokens = tuple(b"%d:%s;" % (len(key), key) for key in out)
    learned = tuple((token, key, len(token)) for token, key in zip(tokens, out, strict=True))
    layouts.known[kind] = (learned, *known[: Layouts.KEEP - 1])
    return out


def _metadata(buf: bytes, top: dict[bytes, Span], layouts: Layouts | None) -> Any:
    """A flow's metadata, parsed; the same bytes as an earlier record's give that record's
    value. Readers only read it (labels.labels_from_metadata, labels.internal_kind)."""
    tag, start, end = top[b"metadata"]
    if layouts is None:
        return _value(buf, tag, start, end)
    key = buf[start : end + 1]
    memo = layouts.metadata
    value = memo.get(key)
    if value is None:
        value = _value(buf, tag, start, end)
        if len(memo) >= Layouts.METADATA_KEEP:
            memo.clear()
        memo[key] = value
    return value


def _headers(buf: bytes, tag: int, start: int, end: int) -> list[tuple[bytes, bytes]]:
    """A headers state (list of [name, value] bytes pairs) as mitmproxy's Headers holds it.

    Headers insists on bytes pairs; anything else is Unsupported (mitmproxy decides).
    """
    if tag != _LIST:
        raise Unsupported("headers are not a list")
    fields = []
    i = start
    while i < end:
        t, s, e, i = _element(buf, i)
        if t != _LIST:
            raise Unsupported("header is not a list")
        t1, s1, e1, j = _element(buf, s)
        t2, s2, e2, j = _element(buf, j)
        if j != e or t1 != _BYTES or t2 != _BYTES:
            raise Unsupported("header is not a bytes pair")
        fields.append((buf[s1:e1], buf[s2:e2]))
    if i != end:
        raise ValueError("not a tnetstring: list overruns")
    return fields


def _get(buf: bytes, spans: dict[bytes, Span], key: bytes) -> Any:
    tag, start, end = spans[key]
    return _value(buf, tag, start, end)


def _native(value: bytes) -> str:
    return value.decode("utf-8", "surrogateescape")


def _native_pairs(fields: list[tuple[bytes, bytes]]) -> tuple[tuple[str, str], ...]:
    """Headers as mitmproxy's Headers.fields would give them as text: (_native, _native) pairs."""
    return tuple(
        [(k.decode("utf-8", "surrogateescape"), v.decode("utf-8", "surrogateescape")) for k, v in fields]
    )


def _host_header(fields: list[tuple[bytes, bytes]]) -> str | None:
    """Headers.get("Host"): every Host value, folded with ", " as mitmproxy does."""
    values = [_native(v) for k, v in fields if k.lower() == b"host"]
    return ", ".join(values) if values else None


def _authority(raw: bytes) -> str:
    try:
        return raw.decode("idna")
    except UnicodeError:
        return raw.decode("utf8", "surrogateescape")


def records_from_record(
    buf: bytes,
    source: str,
    defaults: Labels,
    report: SourceReport | None = None,
    layouts: Layouts | None = None,
) -> list[Record]:
    """The records of one whole tnetstring record of a current-format flow, as
    analysis.sources.mitm.flow_records gives them: an HTTP flow's HttpRecord, a DNS flow's
    contacts. Raises Unsupported for anything else (the mitmproxy path reads it).

    `layouts`, shared by the records of one dump, makes reading them faster, never different.
    """
    if not _FAST:
        raise Unsupported("mitmproxy's flow format is not the one this reader knows")
    tag, start, end, after = _element(buf, 0)
    if after != len(buf):
        raise ValueError("not a tnetstring: trailing bytes")
    top = _spans_as(buf, tag, start, end, layouts, "flow")
    if _get(buf, top, b"version") != FAST_FORMAT_VERSION:
        raise Unsupported("another flow-format version")
    kind = _get(buf, top, b"type")
    if kind == "http":
        return [_http_record(buf, top, source, defaults, report, layouts)]
    if kind == "dns":
        return _dns_records(buf, top, source, defaults, report, layouts)
    raise Unsupported("another flow type")


def _keys_are(keys: Any, required: frozenset[bytes]) -> bool:
    """A flow's keys are those mitmproxy's set_state takes: all required, at most `backup` more."""
    return keys >= required and keys - required <= _FLOW_OPTIONAL


def _http_record(
    buf: bytes,
    top: dict[bytes, Span],
    source: str,
    defaults: Labels,
    report: SourceReport | None,
    layouts: Layouts | None,
) -> HttpRecord:
    """Mirrors analysis.sources.mitm.http_record field by field (same mitmproxy property
    semantics: pretty_host, surrogate-escaped text); raises Unsupported for anything else."""
    if not _keys_are(top.keys(), _FLOW_KEYS):
        raise Unsupported("unexpected flow keys")

    request = _spans_as(buf, *top[b"request"], layouts, "request")
    if request.keys() != _REQUEST_KEYS:
        raise Unsupported("unexpected request keys")
    req_host = _get(buf, request, b"host")
    port = _get(buf, request, b"port")
    http_version = _get(buf, request, b"http_version")
    method = _get(buf, request, b"method")
    scheme = _get(buf, request, b"scheme")
    path = _get(buf, request, b"path")
    authority = _get(buf, request, b"authority")
    content = _get(buf, request, b"content")
    timestamp = _get(buf, request, b"timestamp_start")
    fields = _headers(buf, *request[b"headers"])
    if not (
        isinstance(req_host, str)
        and isinstance(port, int)
        and all(isinstance(v, bytes) for v in (http_version, method, scheme, path, authority))
        and (content is None or isinstance(content, bytes))
    ):
        raise Unsupported("unexpected request value types")

    client = _spans_as(buf, *top[b"client_conn"], layouts, "client")
    server = _spans_as(buf, *top[b"server_conn"], layouts, "server")
    sni = _get(buf, client, b"sni")
    peer = _get(buf, server, b"peername")
    tls_version = _get(buf, server, b"tls_version") if b"tls_version" in server else None
    tls_cipher = _get(buf, server, b"cipher") if b"cipher" in server else None

    if http_version in _HTTP2_VERSIONS:
        host_header = _authority(authority) or _host_header(fields)
    else:
        host_header = _host_header(fields)
    pretty_host = parse_authority(host_header, check=False)[0] if host_header else req_host
    host = pretty_host
    if is_ip(host) and sni:
        host = sni
    server_ip = None
    if peer:
        server_ip = str(peer[0])
    elif is_ip(req_host):
        server_ip = req_host

    status = None
    response_headers: tuple[tuple[str, str], ...] = ()
    response_size = None
    rtag, rstart, rend = top[b"response"]
    if rtag != _NULL:
        response = _spans_as(buf, rtag, rstart, rend, layouts, "response")
        if response.keys() != _RESPONSE_KEYS:
            raise Unsupported("unexpected response keys")
        status = _get(buf, response, b"status_code")
        response_headers = _native_pairs(_headers(buf, *response[b"headers"]))
        ctag, cstart, cend = response[b"content"]
        if ctag == _BYTES:
            response_size = cend - cstart
        elif ctag == _NULL and cend == cstart:
            response_size = 0
        else:
            raise Unsupported("unexpected response content")

    messages = _ws_messages(buf, *top[b"websocket"])
    metadata = _metadata(buf, top, layouts)
    if internal_kind(metadata, pretty_host) is not None:
        raise Unsupported("a flow the proxy answered itself (rare: mitmproxy's path leaves it out)")
    return HttpRecord(
        source=source,
        flow_id=_get(buf, top, b"id"),
        labels=labels_from_metadata(metadata, defaults, report),
        timestamp=float(timestamp or 0.0),
        method=_native(method).upper(),
        scheme=_native(scheme),
        host=host,
        port=port,
        path=_native(path),
        http_version=_native(http_version),
        request_headers=_native_pairs(fields),
        request_body=content or b"",
        status=status,
        response_headers=response_headers,
        response_size=response_size,
        server_ip=server_ip,
        sni=sni,
        tls_version=tls_version,
        tls_cipher=tls_cipher,
        ws_messages=messages,
    )


# A DNS message's state (dns.Message in mitmproxy 11, dns.DNSMessage in 12: same keys) and
# the Python types mitmproxy's from_state takes for them, read strictly (an int where a bool is
# expected, a float for an int, None for the timestamp, which mitmproxy 11 refuses and 12 takes:
# all left to mitmproxy to decide).
_DNS_MESSAGE_SCALARS = {
    "id": int,
    "query": bool,
    "op_code": int,
    "authoritative_answer": bool,
    "truncation": bool,
    "recursion_desired": bool,
    "recursion_available": bool,
    "reserved": int,
    "response_code": int,
}
_DNS_MESSAGE_LISTS = ("questions", "answers", "authorities", "additionals")
_DNS_MESSAGE_KEYS = frozenset({*_DNS_MESSAGE_SCALARS, *_DNS_MESSAGE_LISTS, "timestamp"})
_DNS_QUESTION = {"name": str, "type": int, "class_": int}
_DNS_RECORD = {"name": str, "type": int, "class_": int, "ttl": int, "data": bytes}
_DNS_ADDRESSES = {1: (4, ipaddress.IPv4Address), 28: (16, ipaddress.IPv6Address)}  # A, AAAA


def _typed(state: Any, types: dict[str, type]) -> bool:
    """A state dict with exactly these keys, each value of exactly that type."""
    return (
        isinstance(state, dict)
        and state.keys() == types.keys()
        and all(type(state[key]) is kind for key, kind in types.items())
    )


def _dns_message(buf: bytes, span: Span) -> dict[str, Any]:
    """A DNS message's state, parsed, if mitmproxy would load it just so; else Unsupported."""
    tag, start, end = span
    if tag != _DICT:
        raise Unsupported("a DNS message that is not a dict")
    message = _value(buf, tag, start, end)
    if not (
        message.keys() == _DNS_MESSAGE_KEYS
        and all(type(message[key]) is kind for key, kind in _DNS_MESSAGE_SCALARS.items())
        and type(message["timestamp"]) in (int, float)
        and isinstance(message["questions"], list)
        and all(_typed(q, _DNS_QUESTION) for q in message["questions"])
        and all(
            isinstance(message[key], list) and all(_typed(r, _DNS_RECORD) for r in message[key])
            for key in _DNS_MESSAGE_LISTS[1:]
        )
    ):
        raise Unsupported("unexpected DNS message state")
    return message


def _dns_answer(record: dict[str, Any]) -> str:
    """str() of mitmproxy's ResourceRecord for an address answer (A, AAAA); other answers'
    texts differ between mitmproxy versions and are left to mitmproxy."""
    size, address = _DNS_ADDRESSES.get(record["type"], (None, None))
    if address is None or len(record["data"]) != size:
        raise Unsupported("a DNS answer other than an address")
    return str(address(record["data"]))


def _dns_records(
    buf: bytes,
    top: dict[bytes, Span],
    source: str,
    defaults: Labels,
    report: SourceReport | None,
    layouts: Layouts | None,
) -> list[ContactRecord]:
    """Mirrors analysis.sources.mitm.contact_records for a DNS flow: one contact per question,
    with the answers' addresses; raises Unsupported for anything else."""
    if not _keys_are(top.keys(), _DNS_FLOW_KEYS):
        raise Unsupported("unexpected DNS flow keys")
    _spans_as(buf, *top[b"client_conn"], layouts, "client")  # parsed as mitmproxy would, unused
    _spans_as(buf, *top[b"server_conn"], layouts, "server")
    request = _dns_message(buf, top[b"request"])
    answers: list[str] = []
    rtag, rstart, rend = top[b"response"]
    if not (rtag == _NULL and rstart == rend):
        answers = [_dns_answer(r) for r in _dns_message(buf, top[b"response"])["answers"]]
    labels = labels_from_metadata(_metadata(buf, top, layouts), defaults, report)
    timestamp = float(request["timestamp"] or 0.0)
    detail = "; ".join(answers)
    return [
        ContactRecord(source, labels, timestamp, q["name"].rstrip("."), "dns", detail)
        for q in request["questions"]
    ]


_WEBSOCKET_KEYS = frozenset(
    {b"messages", b"closed_by_client", b"close_code", b"close_reason", b"timestamp_end"}
)


def _ws_messages(buf: bytes, tag: int, start: int, end: int) -> tuple[tuple[int, bytes], ...]:
    """sources.mitm.ws_messages of a flow's websocket state (null when the flow has none).

    A message state is [opcode, from_client, content, timestamp, dropped, injected]; anything
    else is Unsupported (mitmproxy decides).
    """
    if tag == _NULL and start == end:
        return ()
    state = _spans(buf, tag, start, end)
    if state.keys() != _WEBSOCKET_KEYS:
        raise Unsupported("unexpected websocket keys")
    messages = _get(buf, state, b"messages")
    if not isinstance(messages, list):
        raise Unsupported("websocket messages are not a list")
    out = []
    for i, message in enumerate(messages):
        if not (
            isinstance(message, list)
            and len(message) == 6
            and message[0] in _OPCODES
            and isinstance(message[1], bool)
            and isinstance(message[2], bytes)
        ):
            raise Unsupported("unexpected websocket message")
        if message[1]:
            out.append((i, message[2]))
    return tuple(out)


def _read_record(fo: BinaryIO, position: int, length: int) -> bytes:
    fo.seek(position)
    return fo.read(framing.record_size(length))


class DamageInRange(Exception):
    """A worker met damage inside its byte range; the whole file must be read sequentially."""


def iter_dump(
    path: Path,
    defaults: Labels,
    report: SourceReport,
    *,
    start: int = 0,
    end: int | None = None,
    stop_on_damage: bool = False,
) -> Iterator[Record]:
    """Records of the dump's flows that begin in [start, end), as read_dump gives them.

    No empty-file check (read_dump has it). Same damage handling as
    analysis.sources.mitm.iter_flows (resync, same warnings) when
    reading the whole file; with stop_on_damage (a worker's range), damage raises
    DamageInRange so the caller can fall back to one sequential pass.
    """
    source = str(path)
    size = os.path.getsize(path)
    limit = size if end is None else end
    count = 0
    layouts = Layouts()
    with path.open("rb") as fo:
        position = start
        while position < limit:
            fo.seek(position)
            length = framing.peek_length(fo)
            bogus = None
            if length is not None and length > framing.MAX_RECORD_BYTES:
                if stop_on_damage:
                    raise DamageInRange(position)
                if framing.genuine_oversized(fo, position, length, size):
                    report.damaged(framing.oversized(path, position, length))
                    position += framing.record_size(length)
                    continue
                bogus = ValueError(framing.bogus_length(length))  # damage: resync as below
            records: list[Record] | None = None
            if length is not None and bogus is None:
                buf = _read_record(fo, position, length)
                try:
                    records = records_from_record(buf, source, defaults, report, layouts)
                    position += len(buf)
                except Exception:  # Unsupported or not parseable here: mitmproxy decides
                    records = None
            if records is None:
                from phonehome.analysis.sources.mitm import flow_records, load_flow, skip_damage

                fo.seek(position)
                try:
                    if bogus is not None:
                        raise bogus
                    f = load_flow(fo)
                    position = fo.tell()
                except Exception as exc:
                    if stop_on_damage:
                        raise DamageInRange(position) from None
                    f = skip_damage(fo, path, position, size, count, exc, report)
                    if f is None:
                        return
                    position = fo.tell()
                records = flow_records(f, source, defaults, report)
            count += 1
            for record in records:
                report.records += 1
                yield record


def read_dump(
    path: Path, defaults: Labels, report: SourceReport, *, allow_empty: bool = False
) -> Iterator[Record]:
    """Records from a dump, in order. An empty file is an error, unless it is a capture's
    (allow_empty: nothing recorded yet), then a warning."""
    if framing.has_records(path, report, allow_empty=allow_empty):
        yield from iter_dump(path, defaults, report)
