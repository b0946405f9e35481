"""HAR 1.2 files (Chrome, Firefox, Charles, Fiddler, HTTP Toolkit, PCAPdroid, mitmproxy) as records.

Each entry is first made whole (tools omit `response.content`, `httpVersion`, `time`, ...) and then
handed to mitmproxy's own HAR reader (`mitmproxy.io.har.request_to_flow`), so HAR support follows
mitmproxy's. Request bodies that the HAR stores base64-encoded (`postData.encoding`, as HTTP Toolkit
and PCAPdroid write them) are decoded here, since mitmproxy ignores that field. A damaged entry is
skipped with a warning naming its index; the other entries are still read.

Memory: the file's bytes are split into its entries' JSON texts without parsing them (msgspec's
`Raw`, 0.3 s and the file's size for a 214 MB HAR, where `json.load` took 3 s and 830 MB), and each
entry is parsed with the stdlib `json` when it is read, then dropped. For an uncompressed HAR only
where each text lies is kept (FileEntries): the bytes are dropped after the split and each entry is
read from the open file (os.pread) when it is needed, so neither this process nor the workers it
forks hold the file while its entries are analysed (a 100,000-entry HAR peaked at 647 MB holding
it). A compressed HAR keeps its inflated bytes. A document msgspec does not take as
`{"log": {"entries": [...]}}` (a lone entry, NaN, a lone surrogate escape, a BOM-less oddity) is
parsed whole by the stdlib as before, with the same errors.

Bounds: a HAR is JSON and is read whole, so files above MAX_HAR_BYTES are refused; a compressed
HAR (.zhar, zlib or zip) is inflated in chunks and refused once it passes `inflation_limit` (100x
its size, at least 64 MiB), so a 1 MB bomb never becomes 1 GiB in memory; each request body is cut
at MAX_BODY_BYTES (reported as a warning). Integers beyond Python's 4,300-digit conversion limit
are kept as text rather than failing the file.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import os
import re
import stat
import zipfile
import zlib
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, BinaryIO

# mitmproxy's light modules only: its flow classes (mitmproxy.http, mitmproxy.io.har: about 0.1 s
# of start-up) are imported where an entry needs mitmproxy's own Request (made_request,
# fixed_headers), which most entries do not (_plain_request).
from mitmproxy.net import encoding
from mitmproxy.net.http import url as mitm_url
from mitmproxy.net.http.headers import infer_content_encoding

from phonehome.analysis.records import ContactRecord, HttpRecord, Labels, SourceReport
from phonehome.analysis.sources import CaptureError
from phonehome.analysis.sources.flow_ids import file_tag
from phonehome.analysis.sources.flow_record import http_record

if TYPE_CHECKING:
    from mitmproxy import http

MAX_HAR_BYTES = 1 << 30
MAX_BODY_BYTES = 16 << 20
#: A compressed HAR may inflate to MAX_INFLATE_RATIO times its size (at least MIN_INFLATE_LIMIT).
MAX_INFLATE_RATIO = 100
MIN_INFLATE_LIMIT = 64 << 20


def inflation_limit(compressed_size: int) -> int:
    """Most bytes a compressed HAR of `compressed_size` bytes may inflate to before it is refused.

    HAR JSON compresses about 5-20x; a bomb (zlib reaches 1000x) is refused once it has produced
    MAX_INFLATE_RATIO times its own size (at least MIN_INFLATE_LIMIT), so memory follows the file's
    size, never the attacker's ratio."""
    return min(MAX_HAR_BYTES, max(MIN_INFLATE_LIMIT, MAX_INFLATE_RATIO * compressed_size))


def _inflate(path: Path, read, compressed_size: int) -> bytes:
    """All of a decompressing reader's output, refused (CaptureError) past inflation_limit."""
    limit = inflation_limit(compressed_size)
    out = bytearray()
    while True:
        piece = read(min(1 << 20, limit + 1 - len(out)))
        if not piece:
            return bytes(out)
        out += piece
        if len(out) > limit:
            raise CaptureError(
                path,
                f"compressed HAR inflates beyond {limit} bytes ({compressed_size} bytes compressed): "
                "refused as a decompression bomb",
            )


class _ZlibReader:
    """A zlib stream read in pieces of at most n bytes, fed 64 KiB of input at a time."""

    def __init__(self, data: bytes):
        self.d = zlib.decompressobj()
        self.data = memoryview(data)
        self.pos = 0
        self.pending: bytes = b""

    def read(self, n: int) -> bytes:
        while not self.d.eof:
            if not self.pending:
                if self.pos >= len(self.data):
                    return b""
                self.pending = bytes(self.data[self.pos : self.pos + (1 << 16)])
                self.pos += 1 << 16
            out = self.d.decompress(self.pending, n)
            self.pending = self.d.unconsumed_tail
            if out:
                return out
        return b""


def _parse_int(digits: str) -> int | str:
    """JSON integers as int, except those Python refuses to convert (over 4300 digits): kept as text."""
    try:
        return int(digits)
    except ValueError:
        return digits


def _read(path: Path) -> bytes:
    """The HAR's JSON bytes: inflated when compressed, within the bounds above."""
    return _read_file(path, None)[0]


def _read_file(path: Path, file: BinaryIO | None) -> tuple[bytes, bool]:
    """(the HAR's JSON bytes, whether they are the file's own bytes rather than inflated ones), read
    from `file` (the open `path`) when given."""
    size = path.stat().st_size if file is None else os.fstat(file.fileno()).st_size
    if size > MAX_HAR_BYTES:
        raise CaptureError(path, f"HAR too large to parse ({size} bytes > {MAX_HAR_BYTES})")
    raw = path.read_bytes() if file is None else file.read()
    plain = False
    if raw[:2] == b"PK":  # .zhar / zipped HAR: the first member is the HAR
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
                if not names:
                    raise CaptureError(path, "empty zip archive, expected a HAR inside")
                with zf.open(names[0]) as member:
                    raw = _inflate(path, member.read, size)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError, RuntimeError) as exc:
            raise CaptureError(path, f"damaged zip archive: {exc}") from None
    elif raw[:1] == b"\x78":  # zlib-compressed HAR, as mitmproxy writes .zhar
        try:
            raw = _inflate(path, _ZlibReader(raw).read, size)
        except zlib.error as exc:
            raise CaptureError(path, f"damaged compressed HAR: {exc}") from None
    else:
        plain = True
    return raw, plain


def _split_entries(raw: bytes) -> list[Any] | None:
    """`log.entries` as the unparsed JSON text of each entry (msgspec.Raw), or None when msgspec does
    not take the document as `{"log": {"entries": [...]}}`: then the stdlib parses it whole.

    msgspec checks the whole document's syntax while it skips over the entries (it is at least as
    strict as `json`: tests/test_har_split.py), so a file is refused or read as before."""
    import msgspec

    document = memoryview(raw)[len(_BOM) :] if raw.startswith(_BOM) else raw  # a view, not a copy
    try:
        return msgspec.json.decode(document, type=_har_shell()).log.entries
    except (msgspec.DecodeError, RecursionError):  # ValidationError is a DecodeError
        return None


_BOM = b"\xef\xbb\xbf"


@functools.cache
def _har_shell() -> type:
    import msgspec

    log = msgspec.defstruct("Log", [("entries", list[msgspec.Raw])])  # other fields: skipped, checked
    return msgspec.defstruct("Har", [("log", log)])


#: Between two entries' texts in `log.entries` there is only JSON whitespace and one comma.
_BETWEEN_ENTRIES = re.compile(rb"[ \t\n\r]*,[ \t\n\r]*")


def _entry_spans(raw: bytes, texts: list[Any]) -> tuple[array, array] | None:
    """Where each entry's text (a msgspec.Raw, a view into `raw`) lies in `raw`: (starts, lengths),
    or None where that cannot be known (no ctypes, as on PyPy).

    The first entry's place is its buffer address less `raw`'s; each next one follows the previous
    one past the whitespace and comma between them (JSON allows nothing else there, and msgspec
    has checked the syntax). The last entry's address confirms the walk; if it did not, every
    entry's address is taken (never seen: it would mean a misread separator)."""
    starts, lengths = array("q"), array("q")
    if not texts:
        return starts, lengths
    try:
        address = _buffer_address()
        base = address(raw)
    except (ImportError, AttributeError, OSError, TypeError):
        return None
    match = _BETWEEN_ENTRIES.match
    position = address(texts[0]) - base
    for text in texts:
        starts.append(position)
        length = len(text)
        lengths.append(length)
        between = match(raw, position + length)
        position = between.end() if between else -1
    if address(texts[-1]) - base != starts[-1]:
        starts = array("q", [address(text) - base for text in texts])
    return starts, lengths


@functools.cache
def _buffer_address() -> Callable[[Any], int]:
    """A function giving the address of the first byte of any object's buffer (its `buf`, through
    the C API's PyObject_GetBuffer), to place a msgspec.Raw within the bytes it is a view of."""
    import ctypes

    class PyBuffer(ctypes.Structure):  # Py_buffer, stable since Python 3.3
        _fields_ = [
            ("buf", ctypes.c_void_p),
            ("obj", ctypes.c_void_p),
            ("len", ctypes.c_ssize_t),
            ("itemsize", ctypes.c_ssize_t),
            ("readonly", ctypes.c_int),
            ("ndim", ctypes.c_int),
            ("format", ctypes.c_char_p),
            ("shape", ctypes.c_void_p),
            ("strides", ctypes.c_void_p),
            ("suboffsets", ctypes.c_void_p),
            ("internal", ctypes.c_void_p),
        ]

    get = ctypes.pythonapi.PyObject_GetBuffer
    get.argtypes = [ctypes.py_object, ctypes.POINTER(PyBuffer), ctypes.c_int]
    get.restype = ctypes.c_int
    release = ctypes.pythonapi.PyBuffer_Release
    release.argtypes = [ctypes.POINTER(PyBuffer)]
    release.restype = None

    def address(obj: Any) -> int:
        view = PyBuffer()
        get(obj, ctypes.byref(view), 0)  # PyBUF_SIMPLE; raises (BufferError) for a non-buffer
        try:
            return view.buf or 0
        finally:
            release(ctypes.byref(view))

    return address


class FileEntries:
    """A HAR's entries as byte spans of the open file, each entry's text read (`os.pread`) when it
    is asked for: the file's bytes are not held while its entries are analysed, by this process or
    by the workers it forks (which share the open file; pread has no file position to share).

    `entries[i]` is entry i's JSON text (bytes); a text that cannot be read whole (the file was
    cut short since it was split) raises OSError, which the reader reports as that entry's damage.
    """

    __slots__ = ("file", "lengths", "starts")

    def __init__(self, file: BinaryIO, starts: array, lengths: array):
        self.file, self.starts, self.lengths = file, starts, lengths

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> bytes:
        length = self.lengths[index]
        text = os.pread(self.file.fileno(), length, self.starts[index])
        if len(text) != length:
            raise OSError(f"the file ends before this entry does ({len(text)} of {length} bytes)")
        return text

    def close(self) -> None:
        self.file.close()


def parse_entry(text: Any) -> Any:
    """One entry's JSON text (msgspec.Raw or bytes) parsed as the whole file's stdlib parse would.

    msgspec parses it (2-3x faster than `json`) where it can; where it refuses the text, the
    stdlib parses it. msgspec refuses whatever it would read differently from the stdlib parse
    (tests/test_har_entry_parse.py): bytes that are not UTF-8 (read as surrogate escapes), lone
    surrogate escapes, NaN/Infinity, numbers beyond about 40 digits or beyond a double's range.
    Both stop at Python's recursion limit, msgspec a few levels deeper than `json`: a text with
    MAX_MSGSPEC_NESTING or more brackets (so at least as deep) is left to the stdlib."""
    data = text if isinstance(text, bytes) else bytes(text)
    if data.count(b"[") + data.count(b"{") < MAX_MSGSPEC_NESTING:
        try:
            return _entry_decoder()(data)
        except Exception:  # anything msgspec refuses, for any reason: the stdlib decides
            pass
    return json.loads(data.decode("utf-8", errors="surrogateescape"), parse_int=_parse_int)


#: An entry's text with this many '[' and '{' (within strings too) is parsed by the stdlib alone.
MAX_MSGSPEC_NESTING = 256


@functools.cache
def _entry_decoder() -> Callable[[Any], Any]:
    import msgspec

    return msgspec.json.Decoder().decode


def _parse(path: Path, raw: bytes) -> Any:
    text = raw.decode("utf-8-sig", errors="surrogateescape")
    del raw
    try:
        return json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise CaptureError(
            path, f"not valid HAR JSON: {exc.msg} (line {exc.lineno} column {exc.colno})", exc.pos
        ) from None
    except RecursionError:
        raise CaptureError(path, "not valid HAR JSON: nested too deeply") from None
    except ValueError as exc:  # anything else json refuses (e.g. a huge exponent in a float)
        raise CaptureError(path, f"not valid HAR JSON: {exc}") from None


def _headers(value: Any) -> list[dict[str, str]]:
    out = []
    if not isinstance(value, list):
        return out
    for h in value:
        if isinstance(h, dict) and "name" in h:
            out.append({"name": str(h.get("name", "")), "value": str(h.get("value", ""))})
        elif isinstance(h, list | tuple) and len(h) >= 2:
            out.append({"name": str(h[0]), "value": str(h[1])})
    return out


def _request_body(post: Any, report: SourceReport, index: int) -> tuple[str, bytes | None]:
    """(text for mitmproxy, raw bytes if the HAR stored them base64-encoded)."""
    if not isinstance(post, dict):
        return "", None
    text = post.get("text")
    if not isinstance(text, str):
        params = post.get("params")
        if isinstance(params, list):  # form without text: rebuild it
            from urllib.parse import urlencode

            pairs = [(str(p.get("name", "")), str(p.get("value", ""))) for p in params if isinstance(p, dict)]
            text = urlencode(pairs)
        else:
            text = ""
    if str(post.get("encoding", "")).lower() == "base64":
        try:
            raw = base64.b64decode(text[: MAX_BODY_BYTES * 4 // 3 + 4], validate=False)
        except (binascii.Error, ValueError):
            report.warnings.append(f"entry {index}: request body marked base64 but is not; kept as text")
            return text, None
        return "", raw
    return text, None


def normalise_entry(entry: Any) -> dict[str, Any]:
    """A HAR entry with every field mitmproxy's reader needs, filled with neutral defaults."""
    if not isinstance(entry, dict):
        raise ValueError("entry is not an object")
    req = entry.get("request")
    if not isinstance(req, dict) or not isinstance(req.get("url"), str):
        raise ValueError("entry has no request URL")
    resp = entry.get("response") if isinstance(entry.get("response"), dict) else {}
    content = resp.get("content") if isinstance(resp.get("content"), dict) else {}
    status = resp.get("status")
    started = entry.get("startedDateTime")
    return {
        "startedDateTime": started if isinstance(started, str) and started else "1970-01-01T00:00:00Z",
        "time": entry.get("time") if isinstance(entry.get("time"), int | float) else 0,
        "serverIPAddress": entry.get("serverIPAddress") or None,
        "request": {
            "method": str(req.get("method") or "GET"),
            "url": req["url"],
            "httpVersion": str(req.get("httpVersion") or "HTTP/1.1"),
            "headers": _headers(req.get("headers")),
        },
        "response": {
            "status": status if isinstance(status, int) and 0 <= status < 1000 else 0,
            "httpVersion": str(resp.get("httpVersion") or "HTTP/1.1"),
            "headers": [h for h in _headers(resp.get("headers")) if h["name"].lower() != "content-encoding"],
            "content": {"text": content.get("text") if isinstance(content.get("text"), str) else ""}
            | ({"encoding": "base64"} if content.get("encoding") == "base64" else {}),
        },
    }


_EPOCH = "1970-01-01T00:00:00Z"
# request_to_flow's mapping of HAR httpVersion strings (everything else is HTTP/1.1)
_HTTP_VERSIONS = {"http/2.0": "HTTP/2", "HTTP/2": "HTTP/2", "HTTP/3": "HTTP/3"}


def _timestamp(started: str) -> float:
    """As mitmproxy.io.har.request_to_flow parses startedDateTime (ValueError if it cannot)."""
    return datetime.fromisoformat(started.replace("Z", "+00:00")).timestamp()


def _response_size(content: dict[str, Any], content_type: str) -> int:
    """len(raw_content) of the Response request_to_flow builds (binascii.Error on bad base64), its
    headers' Content-Type being `content_type` (their folded value, or "").

    normalise_entry has dropped the response's Content-Encoding header, so the final
    `encoding.encode(..., "identity")` of request_to_flow leaves the bytes as they are.
    """
    text = content.get("text", "")
    if content.get("encoding") == "base64":
        return len(base64.b64decode(text))
    try:
        body = encoding.encode(text, _charset(content_type))
    except ValueError:
        body = text.encode("utf-8", errors="surrogateescape")
    return len(body)


class _Fields(tuple):
    """Header (name, value) pairs, read as http_record reads a mitmproxy Headers'."""

    __slots__ = ()

    def items(self, multi: bool = False) -> _Fields:
        return self


def _plain_fields(headers: list[dict[str, str]]) -> list[tuple[str, str]] | None:
    """`headers` (normalise_entry's) as the (name, value) pairs mitmproxy's Headers built by
    fix_headers gives back, or None where they might not be those: a name that is not ASCII
    (Headers compare names as lowercased bytes, not as str.lower does) or a value that is not
    UTF-8 (fix_headers raises)."""
    fields = []
    for header in headers:
        name, value = header["name"], header["value"]
        if not name.isascii():
            return None
        if not value.isascii():
            try:
                value.encode()
            except UnicodeError:
                return None
        fields.append((name, value))
    return fields


def _folded(fields: list[tuple[str, str]], name: str, names: list[str] | None = None) -> str | None:
    """Headers.get(name) of these fields: every value of the (lowercase) name, joined by ", ".
    `names`: the fields' names lowercased, when the caller has them."""
    if names is None:
        names = [key.lower() for key, _ in fields]
    if name not in names:
        return None
    return ", ".join([value for (_, value), key in zip(fields, names, strict=True) if key == name])


@functools.lru_cache(maxsize=1024)
def _charset(content_type: str) -> str:
    """mitmproxy's infer_content_encoding of a Content-Type for a message without a body yet (as
    Message.set_text and request_to_flow ask it): a pure function of a value captures repeat."""
    return infer_content_encoding(content_type)


def _set_header(fields: list[tuple[str, str]], name: str, value: str) -> None:
    """Headers[name] = value on these fields: the first field of the name (lowercase) keeps its
    spelling and takes the value, the others go; with none, (name, value) is added at the end."""
    first = -1
    for index in range(len(fields) - 1, -1, -1):
        if fields[index][0].lower() == name:
            if first >= 0:
                del fields[first]
            first = index
    if first >= 0:
        fields[first] = (fields[first][0], value)
    else:
        fields.append((name, value))


#: A URL whose parts mitmproxy's url.parse (urlparse, IDNA, is_valid_host) gives back as they are
#: written (tests/test_har_plain.py): lowercase http(s), a host of IDNA-free DNS labels, a port of
#: digits, a path of visible ASCII. _plain_url refuses the few such paths urlparse changes.
_PLAIN_URL = re.compile(
    r"(https?)://((?:[A-Za-z0-9_-]{1,63}\.)*[A-Za-z0-9_-]{1,63}\.?)(?::([0-9]{1,5}))?(/[!-~]*)?"
)


def _plain_url(url: str) -> tuple[str, str, int, str] | None:
    """(scheme, host, port, path) as mitmproxy's Request.url setter sets them from `url`, or None
    where the URL is not one whose parts are plain to see (then mitmproxy's url.parse reads it).

    urlparse's rejoining of the path changes it where it holds ';' before its query (params),
    a '#' (fragment), an empty query ('/p?'), or starts with '//' (rejoined differently by Python
    versions); a host with 'xn--' is IDNA-decoded; port 0 is the default port."""
    match = _PLAIN_URL.fullmatch(url)
    if match is None:
        return None
    scheme, host, port_text, path = match.groups()
    host = host.lower()
    if len(host) > 253 or "xn--" in host:
        return None
    if path is None:
        path = "/"
    else:
        query = path.find("?")
        if "#" in path or path.startswith("//") or query == len(path) - 1:
            return None
        if ";" in (path if query < 0 else path[:query]):
            return None
    port = int(port_text) if port_text else 0
    if port > 65535:
        return None
    return scheme, host, port or (443 if scheme == "https" else 80), path


def _plain_request(request: dict[str, Any], timestamp: float) -> SimpleNamespace | None:
    """What http_record reads of the Request that `Request.make(method, url, text, fix_headers(
    headers))` builds, with `http_version` and `timestamp_start` set as record_of_entry sets them,
    computed without building it; None where a part is not plain (then Request.make builds it).

    Request.make type-checks its data and parses the URL through urllib; this follows the same
    steps with mitmproxy's own helpers where they decide something (content encodings, charsets,
    authority): the URL setter rewrites a Host header to the host[:port] it parsed, `text` is
    encoded by the charset of Content-Type then by Content-Encoding, and Content-Length is set
    unless Transfer-Encoding is. Any exception (an unknown encoding, an unencodable text) also
    gives None: Request.make then raises, or recovers, as it does."""
    parts = _plain_url(request["url"])
    fields = _plain_fields(request["headers"])
    if parts is None or fields is None:
        return None
    scheme, host, port, path = parts
    try:
        method = request["method"].encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")
        names = [key.lower() for key, _ in fields]
        authority = None  # the Host header after the URL setter: host[:port] alone
        if "host" in names:
            authority = mitm_url.hostport(scheme, host, port)
            _set_header(fields, "host", authority)
            names = [key.lower() for key, _ in fields]
        post = request.get("postData")
        content = encoding.encode(
            post["text"] if post else "", _charset(_folded(fields, "content-type", names) or "")
        )
        if not isinstance(content, bytes):  # a charset that makes text (Message.set_content refuses it)
            return None
        raw = encoding.encode(content, _folded(fields, "content-encoding", names) or "identity")
    except (ValueError, TypeError, LookupError):
        return None
    if "transfer-encoding" not in names:
        _set_header(fields, "content-length", str(len(raw)))
    return SimpleNamespace(
        pretty_host=mitm_url.parse_authority(authority, check=False)[0] if authority else host,
        host=host,
        timestamp_start=timestamp,
        method=method.upper(),
        scheme=scheme,
        port=port,
        path=path,
        http_version=_HTTP_VERSIONS.get(request["httpVersion"], "HTTP/1.1"),
        headers=_Fields(fields),
        raw_content=raw,
    )


def made_request(request: dict[str, Any]) -> http.Request:
    """mitmproxy's own `Request.make` of a normalised HAR entry's request (as its request_to_flow
    makes it): the body encoded by the headers' Content-Encoding, Host and Content-Length set."""
    from mitmproxy import http

    post = request.get("postData")
    return http.Request.make(
        request["method"],
        request["url"],
        post["text"] if post else "",
        fixed_headers(request["headers"]),
    )


def fixed_headers(headers: list[Any]) -> http.Headers:
    """mitmproxy's `har.fix_headers`: a HAR's header list as mitmproxy Headers."""
    from mitmproxy.io import har as mitm_har

    return mitm_har.fix_headers(headers)


def record_of_entry(fixed: dict[str, Any], source: str, labels: Labels) -> HttpRecord:
    """The record of a normalised HAR entry, without building a mitmproxy HTTPFlow.

    mitmproxy's `request_to_flow` builds a whole flow per entry (type-checked connections, a
    re-encoded response, a request body compressed twice): about a quarter of a HAR analysis
    (docs/performance.md). A record needs only the request, as mitmproxy's own `Request.make`
    builds it, and three numbers of the response; tests/test_har_fast.py checks the records equal
    those made through `request_to_flow` on every HAR in tests/data. Most entries do not need the
    Request either (_plain_request: its parts computed as it computes them, tests/test_har_plain.py);
    the others are built by Request.make."""
    response = fixed["response"]
    plain_response = _plain_fields(response["headers"])
    response_headers: Any = (
        _Fields(plain_response) if plain_response is not None else fixed_headers(response["headers"])
    )
    content_type = (
        _folded(plain_response, "content-type")
        if plain_response is not None
        else response_headers.get("content-type")
    )
    try:
        timestamp = _timestamp(fixed["startedDateTime"])
        response_size = _response_size(response["content"], content_type or "")
    except (ValueError, binascii.Error):  # read_har's fallback: epoch, no response body
        timestamp = _timestamp(_EPOCH)
        response_size = 0
    request = fixed["request"]
    req: Any = _plain_request(request, timestamp)
    if req is None:
        req = made_request(request)
        req.timestamp_start = timestamp
        req.http_version = _HTTP_VERSIONS.get(request["httpVersion"], "HTTP/1.1")
    server = fixed.get("serverIPAddress")
    port = 80 if request["url"].startswith("http://") else 443
    # what http_record reads of a flow: the request, the connections' sni/peername, the response
    flow = SimpleNamespace(
        id="",
        metadata={},
        request=req,
        client_conn=SimpleNamespace(sni=None),
        # request_to_flow's Server(address=(ip, port)) has no peername until connected
        server_conn=SimpleNamespace(peername=None, address=(server, port) if server else None),
        response=SimpleNamespace(
            status_code=response["status"],
            headers=response_headers,
            raw_content=b"",  # http_record takes only its length: set below
        ),
    )
    record = http_record(flow, source, labels)  # type: ignore[arg-type]
    record.response_size = response_size
    return record


@dataclass(slots=True)
class HarEntries:
    """A HAR file's entries, ready to become records, in whole or by index ranges.

    Parsing the JSON is a tenth of reading a HAR (0.1 s of 1.05 s at 5,000 entries); building
    records is the rest. analysis.parallel splits the file once in the parent and lets forked
    workers turn index ranges of the same entries into records (tests/test_har_parallel.py).
    `entries[i]` is entry number `offset + i` of the file (a part sent to a worker that was not
    forked holds a slice). Close it (`close()`, or use it in a `with`) when done: the entries of
    an uncompressed HAR are read from the open file (FileEntries).
    """

    path: Path
    #: parsed entries, or their unparsed JSON texts: msgspec.Raw views of the inflated bytes of a
    #: compressed HAR, bytes in a part, FileEntries for an uncompressed HAR
    entries: list[Any] | FileEntries
    labels: Labels
    offset: int = 0
    #: entries are unparsed JSON texts, parsed one by one as they are read
    unparsed: bool = False
    #: what its records' flow ids start with (sources.flow_ids.file_tag), taken when it was loaded
    tag: str = ""

    @property
    def count(self) -> int:
        """Entries in the whole file (or up to the end of this part)."""
        return self.offset + len(self.entries)

    def part(self, start: int, end: int) -> HarEntries:
        """Entries [start, end) alone, numbered as in the file (to pickle for a worker)."""
        if self.unparsed:  # its own bytes, not a view of the whole file nor the open file
            part = [bytes(self.entries[index - self.offset]) for index in range(start, end)]
        else:
            part = self.entries[start - self.offset : end - self.offset]
        return HarEntries(self.path, part, self.labels, start, self.unparsed, self.tag)

    def close(self) -> None:
        """Close the file the entries are read from, if any (the entries cannot be read after)."""
        if isinstance(self.entries, FileEntries):
            self.entries.close()

    def __enter__(self) -> HarEntries:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def load_har(path: str | Path, defaults: Labels) -> HarEntries:
    """The entries of a HAR file (CaptureError when it is no HAR at all), to be closed when done.

    An uncompressed HAR that msgspec splits is read whole once, to find where each entry's text
    lies; the bytes are then dropped and each entry is read from the open file when it is needed
    (FileEntries), so a 214 MB HAR costs 214 MB only while it is split. A compressed HAR keeps its
    inflated bytes, its entries views of them; a document msgspec does not take is parsed whole."""
    path = Path(path)
    file: BinaryIO | None = path.open("rb", buffering=0)
    try:
        raw, plain = _read_file(path, file)
        labels = (
            defaults if defaults.session else Labels(path.stem, defaults.app, defaults.mode, defaults.phase)
        )
        texts = _split_entries(raw)
        if texts is not None:
            readable = plain and hasattr(os, "pread") and stat.S_ISREG(os.fstat(file.fileno()).st_mode)
            spans = _entry_spans(raw, texts) if readable else None  # a pipe cannot be read again
            if spans is None:
                return HarEntries(path, texts, labels, unparsed=True, tag=file_tag(path))
            del texts, raw  # every view of the bytes first, then the bytes: freed here
            entries, file = FileEntries(file, *spans), None  # the entries own the file now
            return HarEntries(path, entries, labels, unparsed=True, tag=file_tag(path))
        doc = _parse(path, raw)
        del raw
    finally:
        if file is not None:
            file.close()
    log = doc.get("log") if isinstance(doc, dict) else None
    entries = log.get("entries") if isinstance(log, dict) else None
    if entries is None and isinstance(doc, dict) and "request" in doc:
        entries = [doc]  # a lone entry, as some tools export one request
    if not isinstance(entries, list):
        raise CaptureError(path, "not a HAR file: no log.entries list")
    return HarEntries(path, entries, labels, tag=file_tag(path))


def read_har(
    path: str | Path,
    defaults: Labels,
    report: SourceReport,
    *,
    entry_record: Callable[[dict[str, Any], str, Labels], HttpRecord] | None = None,
) -> Iterator[HttpRecord | ContactRecord]:
    """HttpRecords for every readable entry of a HAR file; damaged entries become warnings.

    `entry_record` builds a record from a normalised entry: by default `record_of_entry`, which
    needs no mitmproxy flow; the tests pass the one built through mitmproxy's own
    `request_to_flow` and check that both give the same records and warnings.
    """
    with load_har(path, defaults) as har:
        yield from har_records(har, report, entry_record=entry_record, release=True)


def har_records(
    har: HarEntries,
    report: SourceReport,
    start: int | None = None,
    end: int | None = None,
    *,
    entry_record: Callable[[dict[str, Any], str, Labels], HttpRecord] | None = None,
    release: bool = False,
) -> Iterator[HttpRecord]:
    """Records of entries [start, end) of `har` (default: all it holds), in order; a damaged entry
    is a warning naming its index in the file, and the others are still read.

    `release`: drop each entry once read, so its record replaces it in memory rather than adding
    to it (for a reader that owns `har`; never for entries a worker may still need; entries read
    from the file are never held)."""
    build = entry_record or record_of_entry
    path, labels, source = har.path, har.labels, str(har.path)
    tag = har.tag or file_tag(path)
    entries, offset, unparsed = har.entries, har.offset, har.unparsed
    release = release and isinstance(entries, list)
    start = offset if start is None else start
    end = har.count if end is None else end
    for index in range(start, end):
        try:
            entry = entries[index - offset]  # FileEntries: read here (OSError: the file was cut)
            if release:
                entries[index - offset] = None
            if unparsed:
                entry = parse_entry(entry)
            fixed = normalise_entry(entry)
            text, raw = _request_body(entry["request"].get("postData"), report, index)
            if text:
                fixed["request"]["postData"] = {"text": text}
            record = build(fixed, source, labels)
            record.flow_id = f"{tag}#{index}"
            if fixed["response"]["status"] == 0:
                record.status = None
                record.response_headers = ()
                record.response_size = None
            body = raw if raw is not None else (record.request_body if text else b"")
            if len(body) > MAX_BODY_BYTES:
                report.warnings.append(f"entry {index}: request body cut at {MAX_BODY_BYTES} bytes")
                body = body[:MAX_BODY_BYTES]
            record.request_body = body
        except Exception as exc:  # one bad entry must not lose the others
            report.damaged(f"entry {index} skipped: {type(exc).__name__}: {str(exc)[:200]}")
            continue
        report.records += 1
        yield record
