"""Byte-level layers: decompression (bounded), base64/hex recognition, protobuf, msgpack, JWT.

Every function here is total: on input it cannot decode it returns None instead of raising,
because the walker tries them on whatever an app (or an attacker) put on the wire.
"""

from __future__ import annotations

import binascii
import re
import zlib
from typing import Any

import brotli
import brotlicffi
import msgpack
import zstandard

from phonehome.analysis.protobuf_wire import framing_ok

#: Brotli >= 1.2 limits the output of one call itself (mitmproxy 11 pins Brotli <= 1.1, where the
#: maintained binding brotlicffi >= 1.2 provides the same API).
_BROTLI_LIMITS = hasattr(brotli.Decompressor(), "can_accept_more_data")
_BrotliError = (brotli.error, brotlicffi.error)

# --- compression -------------------------------------------------------------------------

#: Content-Encoding tokens -> our encoding names.
CONTENT_CODINGS = {
    "gzip": "gzip",
    "x-gzip": "gzip",
    "deflate": "deflate",
    "br": "brotli",
    "zstd": "zstd",
}


#: Every first byte sniff_compression can name a format for (gzip 1f, zstd 28, and a zlib header's
#: first byte: method 8, window up to 7): any other first byte needs no call.
COMPRESSION_FIRST_BYTES = frozenset([0x1F, 0x28, *(b for b in range(256) if b & 0x0F == 8 and b >> 4 <= 7)])


def sniff_compression(data: bytes) -> str | None:
    """The compression format announced by `data`'s magic bytes (brotli has none)."""
    if data[:2] == b"\x1f\x8b":
        return "gzip"
    if data[:4] == b"\x28\xb5\x2f\xfd":
        return "zstd"
    if len(data) >= 2 and data[0] & 0x0F == 8 and data[0] >> 4 <= 7 and ((data[0] << 8) | data[1]) % 31 == 0:
        return "zlib"
    return None


class Inflated:
    """Result of a bounded decompression: the output, whether a bound cut it short (and which:
    `bound` names a codec's own cap such as MAX_GZIP_MEMBERS; it is empty when the cut is the
    caller's `max_out`, which only the caller can name), and whether the stream ended properly (a
    stream cut in transit yields its prefix)."""

    __slots__ = ("bound", "complete", "data", "truncated")

    def __init__(self, data: bytes, truncated: bool, complete: bool = True, bound: str = ""):
        self.data = data
        self.truncated = truncated
        self.complete = complete
        self.bound = bound


def decompress(kind: str, data: bytes, max_out: int) -> Inflated | None:
    """Undo `kind` on `data`, producing at most `max_out` bytes; None if `data` is not `kind`.

    Memory stays within about `max_out` plus one input chunk, and time is linear in the input:
    every codec is streamed in chunks of INPUT_CHUNK bytes with an output limit per call.
    """
    try:
        if kind == "gzip":
            return _zlib(data, 31, max_out)
        if kind == "zlib":
            return _zlib(data, 15, max_out)
        if kind == "deflate":  # HTTP "deflate" is zlib-wrapped in theory, raw in some servers
            try:
                return _zlib(data, 15, max_out) or _zlib(data, -15, max_out)
            except zlib.error:
                return _zlib(data, -15, max_out)
        if kind == "brotli":
            return _brotli(data, max_out)
        if kind == "zstd":
            return _zstd(data, max_out)
    except (zlib.error, *_BrotliError, zstandard.ZstdError, ValueError, MemoryError):
        return None
    return None


#: Input handed to a decompressor per call. Small enough that the copy zlib makes of the unused
#: input at the end of each gzip member stays cheap (multi-member gzip is linear, not quadratic).
INPUT_CHUNK = 16 * 1024
#: Concatenated gzip members followed in one body; more is a bomb of tiny members, cut and marked.
MAX_GZIP_MEMBERS = 4096
#: Largest zstd window accepted (RFC 9659 asks HTTP encoders for <= 8 MiB); a frame asking for
#: more would make the decoder allocate it, so it is not decoded.
MAX_ZSTD_WINDOW = 32 * 1024 * 1024


class _Out:
    """Decompressed chunks with a running total, cut at `limit` bytes."""

    __slots__ = ("chunks", "limit", "total")

    def __init__(self, limit: int):
        self.chunks: list[bytes] = []
        self.total = 0
        self.limit = limit

    def add(self, piece: bytes) -> bool:
        """Keep `piece`; True when the bound is now exceeded."""
        if piece:
            self.chunks.append(piece)
            self.total += len(piece)
        return self.total > self.limit

    def room(self) -> int:
        """Output to ask for next: one byte past the bound, so reaching the bound is seen."""
        return self.limit - self.total + 1

    def result(self, truncated: bool, complete: bool = True) -> Inflated:
        return Inflated(b"".join(self.chunks)[: self.limit], truncated, complete)


def _zlib(data: bytes, wbits: int, max_out: int) -> Inflated | None:
    view = memoryview(data)
    pos = 0
    out = _Out(max_out)
    members = 0
    d = zlib.decompressobj(wbits)
    pending: bytes | memoryview = b""
    while True:
        if d.eof:
            members += 1
            rest = d.unused_data  # at most one input chunk: the copy is cheap
            if wbits != 31:  # only gzip has concatenated members
                break
            if len(rest) < 2 and pos < len(view):
                rest += bytes(view[pos : pos + INPUT_CHUNK])
                pos = min(len(view), pos + INPUT_CHUNK)
            if rest[:2] != b"\x1f\x8b":  # end of input, or trailing bytes that are not a member
                break
            if members >= MAX_GZIP_MEMBERS:
                result = out.result(True)
                result.bound = f"MAX_GZIP_MEMBERS ({MAX_GZIP_MEMBERS}) reached"
                return result
            d = zlib.decompressobj(wbits)
            pending = rest
        if not pending:
            if pos >= len(view):
                break
            pending = view[pos : pos + INPUT_CHUNK]
            pos += len(pending)
        if out.add(d.decompress(pending, out.room())):
            return out.result(True)
        pending = d.unconsumed_tail
    if not d.eof:
        # a truncated stream: keep what it gave, if anything
        return out.result(False, complete=False) if out.total else None
    return out.result(False)


def _brotli_decompressor() -> Any:
    """brotli's own Decompressor when it can limit its output (Brotli >= 1.2), else brotlicffi's."""
    if _BROTLI_LIMITS:
        return brotli.Decompressor()
    return brotlicffi.Decompressor()


def _brotli(data: bytes, max_out: int) -> Inflated | None:
    d = _brotli_decompressor()
    view = memoryview(data)
    out = _Out(max_out)
    for pos in range(0, len(view), INPUT_CHUNK):
        piece = d.process(bytes(view[pos : pos + INPUT_CHUNK]), output_buffer_limit=min(out.room(), 1 << 20))
        if out.add(piece):
            return out.result(True)
        while not d.can_accept_more_data():  # output held back by the limit: drain it
            if out.add(d.process(b"", output_buffer_limit=min(out.room(), 1 << 20))):
                return out.result(True)
        if d.is_finished():
            break
    if not d.is_finished():
        return None
    return out.result(False)


def _zstd(data: bytes, max_out: int) -> Inflated | None:
    decompressor = zstandard.ZstdDecompressor(max_window_size=MAX_ZSTD_WINDOW)
    reader = decompressor.stream_reader(data, read_across_frames=True, read_size=INPUT_CHUNK)
    out = _Out(max_out)
    while True:
        piece = reader.read(min(1 << 20, out.room()))
        if not piece:
            break
        if out.add(piece):
            return out.result(True)
    return out.result(False)


# --- base64 / hex ------------------------------------------------------------------------

_B64_CHARS = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")
_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_HEX_CHARS = re.compile(r"[0-9a-fA-F]+")


def unbase64(text: str) -> tuple[str, bytes] | None:
    """(`base64`|`base64url`, bytes) if `text` is syntactically base64 (padded or not)."""
    if not _B64_CHARS.fullmatch(text):
        return None
    body = text.rstrip("=")
    if len(body) % 4 == 1:
        return None
    urlsafe = "-" in body or "_" in body
    if urlsafe and ("+" in body or "/" in body):
        return None
    padded = (body + "=" * (-len(body) % 4)).encode("ascii")  # ASCII: the regex above allows no other
    # binascii directly: what base64.urlsafe_b64decode / b64decode(validate=True) call after their
    # argument handling, which cost as much as the decoding on the many short ids tried here
    try:
        if urlsafe:
            return "base64url", binascii.a2b_base64(padded.translate(_URLSAFE_TO_STANDARD))
        return "base64", binascii.a2b_base64(padded, strict_mode=True)
    except (binascii.Error, ValueError):
        return None


def unhex(text: str) -> bytes | None:
    if len(text) % 2 or not _HEX_CHARS.fullmatch(text):
        return None
    return bytes.fromhex(text)


# --- plausibility --------------------------------------------------------------------------

_ASCII_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_ASCII_LETTER = re.compile(rb"[A-Za-z]")
_REPLACEMENT_UTF8 = "\ufffd".encode()
_PUNCT = frozenset(" \t\r\n!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


#: First bytes plausible_text always refuses, whatever follows: the ASCII controls it rejects (all
#: but tab, LF and CR; DEL too) and the bytes no UTF-8 character starts with (continuation bytes
#: 80-BF, the overlong leads C0 and C1, F5-FF). Random bytes start with one 42 % of the time.
NOT_TEXT_FIRST_BYTES = frozenset(
    [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0xC2), *range(0xF5, 0x100)]
)


def plausible_text(data: bytes, min_chars: int = 4) -> str | None:
    """`data` as text if it reads like text a human or program wrote, else None.

    Strict on purpose: random bytes that a short word or an id turns into when misread as
    base64/hex must fail here (valid UTF-8, no control characters, mostly letters/digits/
    punctuation, at least one letter).
    """
    if len(data) < min_chars:
        return None
    if data.isascii():  # fast path: printable ASCII is all letters, digits and punctuation
        if _ASCII_CONTROL.search(data) or not _ASCII_LETTER.search(data):
            return None
        return data.decode("ascii")
    text = data.decode("utf-8", "replace")  # no exception to raise and catch on random bytes
    if "\ufffd" in text:  # bytes that are not UTF-8, or UTF-8 of U+FFFD itself
        if _REPLACEMENT_UTF8 not in data:
            return None
        try:  # both perhaps: the strict codec decides
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return None
    good = 0
    letters = 0
    for ch in text:
        if ch.isalnum():
            good += 1
            if ch.isalpha():
                letters += 1
        elif ch in _PUNCT:
            good += 1
        elif not ch.isprintable():
            return None
    if not letters or good < 0.9 * len(text):
        return None
    return text


_CONTROL_ESCAPES = {
    c: f"\\x{c:02x}" for c in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0xA0))
}


def binary_text(data: bytes) -> str:
    """Binary shown as text: invalid UTF-8 and control bytes become `\\xNN`, ASCII stays searchable."""
    return data.decode("utf-8", "backslashreplace").translate(_CONTROL_ESCAPES)


def has_control_chars(text: str) -> bool:
    """True if `text` holds C0/C1 controls other than tab/CR/LF: binary, not text."""
    return _TEXT_CONTROL.search(text) is not None


# --- protobuf / msgpack ---------------------------------------------------------------------


#: First bytes a protobuf message can start with: a tag's low byte with a wire type of 0, 1, 2 or 5
#: and, if it is the whole tag, a field number other than 0.
PROTOBUF_FIRST_BYTES = frozenset(b for b in range(256) if b >> 3 != 0 and (b & 7) in (0, 1, 2, 5))


def protobuf_looks_possible(data: bytes) -> bool:
    """Cheap pre-check of the first tag before handing `data` to the (slow) wire parser."""
    return len(data) >= 2 and data[0] in PROTOBUF_FIRST_BYTES


def parse_protobuf(data: bytes) -> dict[str, Any] | None:
    """Schema-less protobuf via blackboxprotobuf (bbpb); None unless the whole buffer parses."""
    if not framing_ok(data):  # cannot be one message: skip the parser (issue 20's measured win)
        return None
    import blackboxprotobuf  # imported lazily: only binary bodies need it

    try:
        message, _typedef = blackboxprotobuf.decode_message(data)
    except Exception:  # bbpb raises DecoderException, but also IndexError/RecursionError/...
        return None
    return message if isinstance(message, dict) and message else None


def protobuf_is_convincing(message: dict[str, Any], nesting: int = 0) -> bool:
    """Random bytes often parse as protobuf; real messages carry small field numbers and text."""
    for key in message:
        try:
            if int(str(key).split("-")[0]) > 1 << 15:
                return False
        except ValueError:
            return False
    for value in message.values():
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, str) and len(item) >= 3 and not has_control_chars(item):
                return True
            if isinstance(item, dict) and nesting < 8 and protobuf_is_convincing(item, nesting + 1):
                return True
    return False


def parse_msgpack(data: bytes) -> Any:
    """msgpack if the whole buffer is exactly one object, else None."""
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False, timestamp=0)
    except Exception:  # ExtraData, FormatError, StackError, UnicodeDecodeError, ValueError...
        return None


def msgpack_is_convincing(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(k, str) for k in obj)


#: Where a msgpack map's first key starts, by the map's first byte (fixmap, map16, map32).
_MSGPACK_FIRST_KEY_AT = {**{b: 1 for b in range(0x81, 0x90)}, 0xDE: 3, 0xDF: 5}
#: First bytes of a msgpack str (fixstr, str8, str16, str32): what unpackb turns into a str key.
_MSGPACK_STR_START = frozenset([*range(0xA0, 0xC0), 0xD9, 0xDA, 0xDB])


def msgpack_may_convince(data: bytes) -> bool:
    """False only if `data` cannot unpack to a convincing map (msgpack_is_convincing): it does not
    start with a non-empty map, or the map's first key is not a string. Checked on the first key's
    first byte, without unpacking, so that noise costs no msgpack call and no exception."""
    at = _MSGPACK_FIRST_KEY_AT.get(data[0]) if data else None
    return at is not None and len(data) > at and data[at] in _MSGPACK_STR_START


# --- JWT -----------------------------------------------------------------------------------

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def split_jwt(text: str) -> tuple[bytes, bytes] | None:
    """(header JSON bytes, payload JSON bytes) of a compact JWS, else None."""
    if not _JWT.fullmatch(text):
        return None
    head, payload, _sig = text.split(".")
    h = unbase64(head)
    p = unbase64(payload)
    if h is None or p is None:
        return None
    return h[1], p[1]
