"""Request-level decoding: split a request into its parts (URL path, query, headers, cookies,
body) and hand each value to the walker with the right location and path prefix."""

from __future__ import annotations

import json
import traceback
from email import policy as email_policy
from email.parser import BytesParser
from pathlib import Path
from urllib.parse import parse_qsl, unquote

from phonehome.analysis.decode import codecs
from phonehome.analysis.decode.content_encoding import undo_content_encoding
from phonehome.analysis.decode.model import DEFAULT_LIMITS, DecodedRequest, Limits
from phonehome.analysis.decode.walk import Stop, Walker, join_path
from phonehome.analysis.records import HttpRecord, safe_text

#: Request headers that never carry data about the user/device (protocol plumbing).
SKIPPED_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-charset",
        "cache-control",
        "connection",
        "content-encoding",
        "content-length",
        "content-type",
        "expect",
        "host",
        "keep-alive",
        "pragma",
        "priority",
        "proxy-connection",
        "sec-fetch-dest",
        "sec-fetch-mode",
        "sec-fetch-site",
        "sec-fetch-user",
        "set-cookie",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "upgrade-insecure-requests",
    }
)


def decode_request(record: HttpRecord, limits: Limits = DEFAULT_LIMITS) -> DecodedRequest:
    """Every leaf value of `record` as a Field (DESIGN.md); never raises on any content."""
    walker = Walker(limits)
    for part in (_url_path, _query, _headers, _body):
        try:
            part(walker, record)
        except Stop:
            break
        except Exception as exc:  # a decoder bug must not lose the other parts or the run
            walker.truncate(f"internal error in {part.__name__.strip('_')}: {_where_raised(exc)}")
    return walker.result


def _where_raised(exc: BaseException) -> str:
    """`ValueError at walk.py:123`: the exception's type and where it was raised, never its text
    (which may quote the captured value it choked on)."""
    frames = traceback.extract_tb(exc.__traceback__)
    at = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    return type(exc).__name__ + at


def decode_value(
    data: bytes | str,
    *,
    location: str = "body",
    path: str | None = None,
    key: str = "",
    encodings: tuple[str, ...] = (),
    limits: Limits = DEFAULT_LIMITS,
) -> DecodedRequest:
    """Leaves of one value on its own: bytes are sniffed as content, text as a field value."""
    walker = Walker(limits)
    where = path if path is not None else location
    try:
        if isinstance(data, str):
            walker.text(data, location, where, key, encodings)
        else:
            walker.bytes_loose(data, location, where, key, encodings, whole_body=location == "body")
    except Stop:
        pass
    except Exception as exc:
        walker.truncate(f"internal error: {_where_raised(exc)}")
    return walker.result


def _url_path(w: Walker, record: HttpRecord) -> None:
    segments = [s for s in record.url_path.split("/") if s]
    for i, segment in enumerate(segments):
        w.text(safe_text(unquote(segment)), "url_path", f"url_path[{i}]", "", ())


def _query(w: Walker, record: HttpRecord) -> None:
    query = record.query
    if not query:
        return
    for k, v in parse_qsl(query, keep_blank_values=True):
        k = safe_text(k)
        w.text(safe_text(v), "query", join_path("query", k), k, ())


def _headers(w: Walker, record: HttpRecord) -> None:
    for name, raw_value in record.request_headers:
        lname = name.lower()
        if lname in SKIPPED_HEADERS or lname.startswith(":"):
            continue
        value = safe_text(raw_value)
        if lname == "cookie":
            _cookies(w, value)
        elif lname in ("authorization", "proxy-authorization"):
            _authorization(w, lname, value)
        else:
            w.text(value, "header", join_path("header", lname), lname, ())


def _cookies(w: Walker, header: str) -> None:
    for item in header.split(";"):
        name, sep, value = item.strip().partition("=")
        if not sep and not name:
            continue
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        w.text(value, "cookie", join_path("cookie", name), name, ())


def _authorization(w: Walker, lname: str, value: str) -> None:
    """`Bearer <token>` yields the token (and a JWT's claims); `Basic` yields `user:password`."""
    path = join_path("header", lname)
    scheme, _, credentials = value.strip().partition(" ")
    credentials = credentials.strip()
    if not credentials:
        w.text(value, "header", path, lname, ())
        return
    if scheme.lower() == "basic":
        decoded = codecs.unbase64(credentials)
        if decoded is not None:
            try:
                w.emit("header", path, lname, ("base64",), decoded[1].decode("utf-8"))
                return
            except UnicodeDecodeError:
                pass
    w.text(credentials, "header", path, lname, ())


def _body(w: Walker, record: HttpRecord) -> None:
    body = record.request_body
    if not body:
        return
    undone = undo_content_encoding(body, record.header("content-encoding"), w.inflate)
    body, enc = undone.body, undone.chain
    if undone.problem and not (undone.failed and w.result.truncated):
        w.note(f"body: {undone.problem}, decoded as is")
    ctype = record.header("content-type") or ""
    media = ctype.split(";", 1)[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None and not codecs.has_control_chars(text):
            w.form(text, "body", "body", (*enc, "form"))
            return
    elif media.startswith("multipart/"):
        if _multipart(w, body, ctype, enc):
            return
    elif media.startswith("application/grpc"):
        if _grpc(w, body, (record.header("grpc-encoding") or "").lower(), enc):
            return
    elif media.endswith("json"):
        text = body.decode("utf-8", "replace")
        if text.strip()[:1] not in ("{", "["):
            obj = _json_scalar(text)
            if obj is not None:
                w.emit("body", "body", "", (*enc, "json"), obj)
                return
    prefer = None
    if "protobuf" in media or media.endswith(("x-proto", "/proto")):
        prefer = "protobuf"
    elif "msgpack" in media:
        prefer = "msgpack"
    w.bytes_loose(body, "body", "body", "", enc, prefer=prefer, whole_body=True)


def _json_scalar(text: str) -> str | None:
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if isinstance(obj, (dict, list)) or obj is None:
        return None
    return obj if isinstance(obj, str) else json.dumps(obj)


def _multipart(w: Walker, body: bytes, ctype: str, enc: tuple[str, ...]) -> bool:
    """multipart/form-data: each part is a field `body.<name>` with chain `multipart>...`.

    Parsed by the standard library's MIME parser (email.parser, HTTP policy): boundaries, part
    headers, quoted names and Content-Transfer-Encoding as RFC 2046/7578 say, not by hand."""
    if "boundary=" not in ctype.lower():
        return False
    head = b"Content-Type: " + ctype.encode("utf-8", "surrogateescape").replace(b"\r", b"").replace(
        b"\n", b""
    )
    try:
        message = BytesParser(policy=email_policy.HTTP).parsebytes(head + b"\r\n\r\n" + body)
        parts = list(message.iter_parts()) if message.is_multipart() else []
    except Exception:  # the MIME parser on hostile input: not multipart then
        return False
    if not parts:
        return False
    enc = (*enc, "multipart")
    for index, part in enumerate(parts):
        try:
            name = part.get_param("name", header="content-disposition")
            content = part.get_payload(decode=True)
            part_type = part.get_content_type()
        except Exception:  # a damaged part header: the part as raw text
            name, content, part_type = None, str(part.get_payload()).encode("utf-8", "surrogateescape"), ""
        if isinstance(name, tuple):  # RFC 2231 (charset, language, value)
            name = name[2]
        name = str(name) if name is not None else str(index)
        if not isinstance(content, bytes):
            content = b""
        prefer = "protobuf" if "protobuf" in part_type else "msgpack" if "msgpack" in part_type else None
        w.bytes_loose(content, "body", join_path("body", name), name, enc, prefer=prefer)
    return True


def _grpc(w: Walker, body: bytes, grpc_encoding: str, enc: tuple[str, ...]) -> bool:
    """gRPC length-prefixed messages (1-byte compressed flag, 4-byte length): `body[i]`."""
    frames = []
    pos = 0
    while pos + 5 <= len(body):
        flag, length = body[pos], int.from_bytes(body[pos + 1 : pos + 5], "big")
        if flag > 1 or pos + 5 + length > len(body):
            return False
        frames.append((flag, body[pos + 5 : pos + 5 + length]))
        pos += 5 + length
    if pos != len(body) or not frames:
        return False
    for i, (flag, message) in enumerate(frames):
        frame_enc = enc
        name = codecs.CONTENT_CODINGS.get(grpc_encoding) if flag else None
        if name:
            res = w.inflate(name, message)
            if res is not None:
                message, frame_enc = res.data, (*enc, name)
        w.bytes_loose(message, "body", f"body[{i}]", "", frame_enc, prefer="protobuf")
    return True
