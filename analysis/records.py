"""Source-agnostic records: what every capture reader yields and every later stage consumes.

Readers (mitmproxy dumps, HAR, pcap) turn their formats into these few plain types so that
decoding, classification and reporting never need to know where a request came from.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

Headers = tuple[tuple[str, str], ...]

#: Told (path, records read so far) while a capture is read; the CLI draws a progress line with it.
ProgressCallback = Callable[[str, int], None]


@dataclass(frozen=True, slots=True)
class Labels:
    """Who/what/when a record belongs to (DESIGN.md: flow.metadata["phonehome"])."""

    session: str = ""
    app: str | None = None
    mode: str = "normal"
    phase: str | None = None


@dataclass(slots=True)
class HttpRecord:
    """One HTTP request (and, if seen, its response) as the app sent it.

    `host` is the host the app meant (Host header / SNI), never a proxy-side IP.
    `request_body` is the body as sent on the wire: Content-Encoding is *not* undone here,
    because undoing it (and recording that it was undone) is the decoder's job.
    """

    source: str
    flow_id: str
    labels: Labels
    timestamp: float
    method: str
    scheme: str
    host: str
    port: int
    path: str  # path plus query string, as on the request line
    http_version: str = "HTTP/1.1"
    request_headers: Headers = ()
    request_body: bytes = b""
    status: int | None = None
    response_headers: Headers = ()
    response_size: int | None = None
    server_ip: str | None = None
    sni: str | None = None
    # TLS the destination negotiated (the proxy's connection to the server), e.g. "TLSv1.2".
    # Connection metadata, not the request: left out of equality (the live inspector's payload,
    # which rebuilds a request's record, does not carry it).
    tls_version: str | None = field(default=None, compare=False)
    tls_cipher: str | None = field(default=None, compare=False)
    # A WebSocket's messages from the app to the server, as (index among all the flow's messages,
    # content): payload sent home like a body (server messages are not).
    ws_messages: tuple[tuple[int, bytes], ...] = ()

    @property
    def url(self) -> str:
        default_port = {"http": 80, "https": 443}.get(self.scheme)
        netloc = self.host if self.port in (default_port, 0, None) else f"{self.host}:{self.port}"
        if ":" in self.host and not self.host.startswith("["):
            netloc = (
                f"[{self.host}]" if self.port in (default_port, 0, None) else f"[{self.host}]:{self.port}"
            )
        return f"{self.scheme}://{netloc}{self.path}"

    @property
    def url_path(self) -> str:
        return _split_target(self.path)[0]

    @property
    def query(self) -> str:
        return _split_target(self.path)[1]

    def header(self, name: str, default: str | None = None) -> str | None:
        """First request header called `name` (case-insensitive)."""
        lname = name.lower()
        for key, value in self.request_headers:
            if key.lower() == lname:
                return value
        return default

    def response_header(self, name: str, default: str | None = None) -> str | None:
        lname = name.lower()
        for key, value in self.response_headers:
            if key.lower() == lname:
                return value
        return default


@dataclass(frozen=True, slots=True)
class ContactRecord:
    """A host the device contacted whose HTTP content we did not see.

    kind: `tls_failed` (client refused our certificate: pinning), `sni_only` (TLS seen in a pcap
    without keys), `dns` (a DNS query/answer), `tcp` (a non-HTTP connection).
    """

    source: str
    labels: Labels
    timestamp: float
    host: str
    kind: str
    detail: str = ""
    server_ip: str | None = None


@dataclass(slots=True)
class SourceReport:
    """What a reader could not read: kept alongside the records so nothing is lost silently."""

    path: str
    records: int = 0
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # worth saying, not a problem (e.g. dedup)
    damage: list[str] = field(default_factory=list)  # data that was there but could not be read
    modes: tuple[str, ...] = ()  # modes the capture declares (session.json): labels in them are expected

    def damaged(self, message: str) -> None:
        """Record lost data (a damaged or skipped record): a warning, and exit code 2 at the end."""
        self.damage.append(message)
        self.warnings.append(message)

    def warn_once(self, message: str) -> None:
        """A warning that thousands of records may repeat (an odd label): said once per input."""
        if message not in self.warnings:
            self.warnings.append(message)


@functools.lru_cache(maxsize=4096)  # asked for every flow's host, and hosts repeat
def is_ip(host: str) -> bool:
    """Whether `host` is an IPv4 or IPv6 address (brackets allowed), not a name."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def content_codings(header: str | None) -> list[str]:
    """The Content-Encoding tokens of `header` in the order to undo them, `identity` left out.

    The last coding listed was applied last, so it is undone first (RFC 9110, 8.4).
    """
    tokens = [c.strip().lower() for c in (header or "").split(",")]
    return [c for c in reversed(tokens) if c and c != "identity"]


def _split_target(target: str) -> tuple[str, str]:
    """(path, query) of a request target, as urlsplit gives them for the usual `/a/b?q=1`.

    An origin-form target has no authority, so a leading `//` (an app joining a base URL
    ending in `/` to a path starting with one) stays in the path instead of making its first
    segment a host; and what urlsplit refuses (a `[` where it looks for an IPv6 host) is split
    at the first `?` rather than losing the path and query.
    """
    try:
        parts = urlsplit("http://h" + target if target.startswith("//") else target)
    except ValueError:
        path, _, query = target.partition("#")[0].partition("?")
        return path, query
    return parts.path, parts.query


def safe_text(value: str) -> str:
    """`value` as valid UTF-8 text: undecodable bytes (surrogate escapes) become `\\xNN`.

    mitmproxy keeps non-UTF-8 header and URL bytes as lone surrogates; tables and reports
    must show them, not crash on them.
    """
    if value.isascii():  # nearly every value: no encoding attempt needed
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return _escape_surrogates(value)
    return value


def _escape_surrogates(value: str) -> str:
    out = []
    for ch in value:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # a byte smuggled in by surrogateescape
            out.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code <= 0xDFFF:  # any other lone surrogate
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)
