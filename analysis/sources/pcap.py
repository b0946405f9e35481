"""pcap / pcapng files as records, streamed packet by packet with scapy's PcapReader.

What a packet capture can show without keys: DNS queries and answers (ContactRecord kind `dns`),
the server name of every TLS ClientHello (kind `sni_only`: host contacted, payload not visible),
and plaintext HTTP/1.x requests (HttpRecords). IP fragments are joined by scapy's IPSession, each
followed TCP stream is put in sequence order (retransmissions trimmed; scapy's TCPSession does
that only for protocols it has a class for), HTTP/1.x is parsed by h11 (chunked bodies de-chunked,
pipelined requests split), and a ClientHello is collected across segments before its server name
is read. The key-log pass decrypts with scapy's TCPSession and TLS layer.

Damage is never silent: a packet cut short, a file that ends inside a record or a block, or an
unreadable block is reported with the file and the packet number (SourceReport.damaged, exit 2),
and the packets before it are kept; scapy's own warnings are captured rather than printed.

Bounds: the file is never loaded whole; each client-to-server stream keeps at most
MAX_STREAM_BYTES of request body and at most MAX_STREAMS streams are followed at once.
With a TLS key log (SSLKEYLOGFILE format), a second streamed pass lets scapy's TLS layer follow
the TLS sessions found in the first pass and decrypt them; the client's application data is then
parsed as HTTP/1.x like plaintext (scheme https, host from the Host header, else the SNI).
scapy decrypts TLS 1.2 and TLS 1.3 (both tested); a session whose keys are missing stays a
`sni_only` contact.
"""

from __future__ import annotations

import gzip
import logging
import struct
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h11
from mitmproxy.net.http.url import parse_authority

from phonehome.analysis.records import ContactRecord, HttpRecord, Labels, SourceReport
from phonehome.analysis.sources import CaptureError
from phonehome.analysis.sources.flow_ids import file_tag

MAX_STREAM_BYTES = 1 << 20
MAX_STREAMS = 4096
MAX_HEADER_BYTES = 64 << 10
MAX_HELLO_BYTES = 64 << 10
#: IPSession keeps unfinished fragment trains; it is started afresh past this many.
MAX_TCP_SESSIONS = 100_000

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # scapy's import-time deprecation noise (cryptography)
    from scapy.config import conf as scapy_conf
    from scapy.error import Scapy_Exception
    from scapy.layers.dns import DNS
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.tls import session as _tls_session  # noqa: F401  (lets scapy use a DSB key log)
    from scapy.sessions import IPSession, TCPSession
    from scapy.utils import PcapReader

METHODS = (b"GET ", b"POST ", b"PUT ", b"HEAD ", b"DELETE ", b"PATCH ", b"OPTIONS ", b"CONNECT ", b"TRACE ")


def client_hello_sni(data: bytes) -> str | None:
    """The server_name of a TLS ClientHello at the start of `data`, or None."""
    try:
        if len(data) < 43 or data[0] != 0x16 or data[5] != 0x01:
            return None
        pos = 9 + 2 + 32  # record header 5, handshake header 4, version 2, random 32
        pos += 1 + data[pos]  # session id
        pos += 2 + int.from_bytes(data[pos : pos + 2], "big")  # cipher suites
        pos += 1 + data[pos]  # compression methods
        end = pos + 2 + int.from_bytes(data[pos : pos + 2], "big")
        pos += 2
        while pos + 4 <= min(end, len(data)):
            ext_type = int.from_bytes(data[pos : pos + 2], "big")
            ext_len = int.from_bytes(data[pos + 2 : pos + 4], "big")
            body = data[pos + 4 : pos + 4 + ext_len]
            if ext_type == 0 and len(body) >= 5 and body[2] == 0:
                name_len = int.from_bytes(body[3:5], "big")
                return body[5 : 5 + name_len].decode("ascii", errors="replace") or None
            pos += 4 + ext_len
    except IndexError:
        return None
    return None


def _open(path: Path):
    with path.open("rb") as fo:
        magic = fo.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else path.open("rb")


def has_decryption_secrets(path: Path, max_blocks: int = 100_000) -> bool:
    """Whether a pcapng holds a TLS key log in a Decryption Secrets Block (as PCAPdroid writes)."""
    with _open(path) as fo:
        head = fo.read(12)
        if len(head) < 12 or head[:4] != b"\x0a\x0d\x0d\x0a":
            return False
        endian = "<" if head[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
        length = struct.unpack(endian + "I", head[4:8])[0]
        fo.seek(length)
        for _ in range(max_blocks):
            header = fo.read(12)
            if len(header) < 12:
                return False
            block_type, length, secrets_type = struct.unpack(endian + "III", header)
            if block_type == 0x0000000A and secrets_type == 0x544C534B:
                return True
            if length < 12 or length % 4:
                return False
            fo.seek(length - 12, 1)
    return False


def _dns_records(dns, ts: float, source: str, labels: Labels, server: str | None) -> Iterator[ContactRecord]:
    qname = ""
    if dns.qd:
        qname = dns.qd[0].qname.decode("ascii", errors="replace").rstrip(".")
    if not qname:
        return
    answers = []
    for i in range(dns.ancount or 0):
        try:
            rr = dns.an[i]
        except (IndexError, TypeError):
            break
        rdata = getattr(rr, "rdata", None)
        if rdata is not None:
            answers.append(rdata.decode(errors="replace") if isinstance(rdata, bytes) else str(rdata))
    detail = ("answer " + ",".join(answers)) if dns.qr else "query"
    yield ContactRecord(source, labels, ts, qname, "dns", detail[:500], server)


class _Tracked:
    """The capture's file object, counting reads that came back short: scapy reports a file that
    ends inside a record or block as a plain end of file, so the short read is how we know."""

    def __init__(self, fo):
        self.fo = fo
        self.short_reads = 0

    def read(self, n: int = -1) -> bytes:
        data = self.fo.read(n)
        if n is not None and n > 0 and 0 < len(data) < n:
            self.short_reads += 1
        return data

    def __getattr__(self, name: str):
        return getattr(self.fo, name)


class _Captured(logging.Handler):
    """scapy's runtime warnings (\"Pcap: packet has been truncated\"...), kept for our own message."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _scapy_warnings_captured():
    logger = logging.getLogger("scapy.runtime")
    handler = _Captured()
    old = (logger.propagate, scapy_conf.warning_threshold)
    logger.addHandler(handler)
    logger.propagate = False  # said once, by us, with the file and packet
    scapy_conf.warning_threshold = 0  # every warning, not one per 5 s
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)
        logger.propagate, scapy_conf.warning_threshold = old


def read_pcap(
    path: str | Path, defaults: Labels, report: SourceReport, keylog: str | Path | None = None
) -> Iterator[HttpRecord | ContactRecord]:
    """Records from a pcap/pcapng (optionally gzip'd), streamed; damage is reported with the packet
    number (exit 2) and the packets before it are kept."""
    path = Path(path)
    labels = defaults if defaults.session else Labels(path.stem, defaults.app, defaults.mode, defaults.phase)
    source = str(path)
    if keylog is not None and not Path(keylog).is_file():
        raise CaptureError(keylog, "TLS key log not found")
    fo = _Tracked(_open(path))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reader = PcapReader(fo)
    except (Scapy_Exception, OSError, EOFError, ValueError, struct.error) as exc:
        fo.close()
        raise CaptureError(path, f"not a readable pcap/pcapng: {exc}") from None
    ctx = _Streams(source, labels, report)
    count = 0
    try:
        with warnings.catch_warnings(), _scapy_warnings_captured() as scapy_said:
            warnings.simplefilter("ignore")
            while True:
                said, short = len(scapy_said), fo.short_reads
                try:
                    pkt = reader.read_packet()
                except EOFError as exc:
                    problem = str(exc) or "; ".join(scapy_said[said:])
                    if not problem and fo.short_reads > short:
                        problem = "the file ends inside it (capture cut short)"
                    if not problem and _has_more(fo):
                        problem = "unreadable data where it should start"
                    if problem:
                        report.damaged(
                            f"packet {count + 1}: {problem}; reading stopped, {count} packets kept"
                        )
                    break
                except Exception as exc:  # damaged packet/block: keep what was read
                    problem = f"{type(exc).__name__}: {str(exc)[:200]}"
                    report.damaged(f"packet {count + 1}: {problem}; reading stopped, {count} packets kept")
                    break
                if pkt is None:
                    break
                count += 1
                if len(scapy_said) > said or fo.short_reads > short:
                    what = "; ".join(scapy_said[said:]) or "cut short"
                    report.damaged(f"packet {count}: {what} (its captured bytes are incomplete)")
                yield from ctx.packet(pkt, count)
        yield from ctx.finish(count)
    finally:
        fo.close()
    embedded = keylog is None and has_decryption_secrets(path)
    if (keylog is not None or embedded) and ctx.seen_sni:  # a file without TLS leaves a key log unused
        yield from _decrypted(path, Path(keylog) if keylog else None, ctx.seen_sni, source, labels, report)


def _has_more(fo) -> bool:
    try:
        return bool(fo.read(1))
    except (OSError, EOFError, ValueError):
        return True


def _decrypted(path, keylog, seen_sni, source, labels, report) -> Iterator[HttpRecord]:
    """HTTP requests inside the TLS sessions of `seen_sni`, decrypted by scapy with `keylog`.

    keylog None: the keys are in the pcapng's Decryption Secrets Block, which scapy's pcapng
    reader loads itself when the TLS layer is loaded.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from scapy.config import conf
        from scapy.layers.tls.record import TLS, TLSApplicationData
        from scapy.layers.tls.record_tls13 import TLS13
        from scapy.packet import bind_layers, split_layers
        from scapy.sendrecv import sniff

    ports = {key[3] for key in seen_sni}
    found: list[HttpRecord] = []
    ctx = _Streams(source, labels, report)
    counter = {"n": 0}

    def keep(key: tuple, rec: HttpRecord) -> None:
        rec.scheme = "https"
        if rec.host == key[2]:
            rec.host = seen_sni[key]
        rec.sni = seen_sni[key] if seen_sni[key] != key[2] else None
        found.append(rec)

    def on_packet(pkt) -> None:
        counter["n"] += 1
        tls = pkt.getlayer(TLS) or pkt.getlayer(TLS13)
        tcp = pkt.getlayer(TCP)
        ip = pkt.getlayer(IP) or pkt.getlayer(IPv6)
        if tls is None or tcp is None or ip is None:
            return
        key = (str(ip.src), int(tcp.sport), str(ip.dst), int(tcp.dport))
        if key not in seen_sni:
            return
        data = b""
        layer = tls
        while isinstance(layer, TLS | TLS13):
            # TLS 1.2 records carry their messages; TLS 1.3 ones hide them in the decrypted inner plaintext
            inner = getattr(layer, "inner", None) if isinstance(layer, TLS13) else layer
            for msg in getattr(inner, "msg", None) or []:
                if isinstance(msg, TLSApplicationData):
                    data += bytes(msg.data)
            layer = layer.payload
        if not data:
            return
        stream = ctx.streams.get(key)
        if stream is None:
            if not data.startswith(METHODS):
                return
            stream = _HttpStream(key, ctx)
        for rec in ctx.feed(key, stream, data, counter["n"], float(pkt.time)):
            keep(key, rec)

    old = (conf.tls_session_enable, conf.tls_nss_filename)
    for port in ports:
        bind_layers(TCP, TLS, dport=port)
        bind_layers(TCP, TLS, sport=port)
    conf.tls_sessions.sessions.clear()  # scapy keeps TLS sessions globally: start each file clean
    try:
        conf.tls_session_enable = True
        if keylog is not None:
            conf.tls_nss_filename = str(keylog)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with _open(path) as fo:
                sniff(offline=fo, session=TCPSession, prn=on_packet, store=False)
        for stream in list(ctx.streams.values()):  # requests the capture cut off: kept, said
            if isinstance(stream, _HttpStream) and stream.request is not None:
                report.warnings.append(
                    f"packet {stream.first_packet}: decrypted request incomplete at the end of the capture"
                )
                keep(stream.key, stream.record(counter["n"]))
    except Exception as exc:  # scapy's TLS layer on damaged data: keep what was decrypted
        report.damaged(f"TLS decryption stopped: {type(exc).__name__}: {str(exc)[:200]}")
    finally:
        conf.tls_session_enable, conf.tls_nss_filename = old
        conf.tls_sessions.sessions.clear()
        for port in ports:
            if port != 443:
                split_layers(TCP, TLS, dport=port)
                split_layers(TCP, TLS, sport=port)
    if not found:
        report.warnings.append("TLS keys given but no HTTP request could be decrypted")
    for rec in found:
        report.records += 1
        yield rec


class _HttpStream:
    """One client-to-server TCP stream parsed as HTTP/1.x by h11 (chunked bodies de-chunked,
    pipelined requests split); requests come out as HttpRecords when complete."""

    def __init__(self, key: tuple, ctx: _Streams):
        self.key, self.ctx = key, ctx
        self.order = _Order()
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        self.request: h11.Request | None = None
        self.body = bytearray()
        self.started = 0.0
        self.first_packet = 0

    def feed(self, data: bytes, count: int, ts: float) -> Iterator[HttpRecord]:
        """Hand `data` to the parser; yield the requests it completes. Raises _Drop when done with."""
        if not self.request and not self.first_packet:
            self.first_packet, self.started = count, ts
        try:
            self.conn.receive_data(data)
            while True:
                event = self.conn.next_event()
                if event is h11.NEED_DATA:
                    return
                if isinstance(event, h11.Request):
                    self.request, self.started = event, self.started or ts
                    self.first_packet = self.first_packet or count
                elif isinstance(event, h11.Data):
                    self.body += event.data
                    if len(self.body) > MAX_STREAM_BYTES:
                        raise _Drop(
                            f"packet {count}: request body over {MAX_STREAM_BYTES} bytes, stream dropped"
                        )
                elif isinstance(event, h11.EndOfMessage):
                    yield self.record(count)
                    rest, closed = self.conn.trailing_data
                    self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
                    self.request, self.body, self.started, self.first_packet = None, bytearray(), 0.0, 0
                    if closed:
                        raise _Drop(None)
                    if rest:
                        self.first_packet, self.started = count, ts
                        self.conn.receive_data(bytes(rest))
                else:  # PAUSED (CONNECT, Upgrade), ConnectionClosed: nothing more to read as HTTP/1
                    raise _Drop(None)
        except h11.RemoteProtocolError as exc:
            src, sport, dst, dport = self.key
            why = str(exc).split(":", 1)[0][:80]  # h11 quotes the offending bytes after a colon: not repeated
            raise _Drop(
                f"packet {count}: stream {src}:{sport} -> {dst}:{dport} is not valid HTTP/1 ({why})"
            ) from None

    def record(self, count: int) -> HttpRecord:
        assert self.request is not None
        dst, dport = self.key[2], self.key[3]
        headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in self.request.headers.raw_items()]
        authority = next((v for n, v in headers if n.lower() == "host"), "") or dst
        try:
            hostname, port = parse_authority(authority, check=False)  # mitmproxy's, as for live flows
        except ValueError:
            hostname, port = authority, None
        return HttpRecord(
            source=self.ctx.source,
            flow_id=self.ctx.flow_id(count),
            labels=self.ctx.labels,
            timestamp=self.started,
            method=self.request.method.decode("latin-1"),
            scheme="http",
            host=hostname,
            port=port if isinstance(port, int) and 0 < port < 65536 else int(dport),
            path=self.request.target.decode("latin-1"),
            http_version="HTTP/" + self.request.http_version.decode("latin-1"),
            request_headers=tuple(headers),
            request_body=bytes(self.body),
            server_ip=dst,
        )


class _HelloStream:
    """The first bytes of a TLS connection, collected across segments until the ClientHello
    record is whole, so its server name is found however the segments were cut."""

    def __init__(self, key: tuple, ctx: _Streams):
        self.key, self.ctx = key, ctx
        self.order = _Order()
        self.buf = bytearray()
        self.started = 0.0

    def feed(self, data: bytes, count: int, ts: float) -> Iterator[ContactRecord]:
        self.started = self.started or ts
        self.buf += data
        need = 5 + int.from_bytes(self.buf[3:5], "big") if len(self.buf) >= 5 else MAX_HELLO_BYTES
        if len(self.buf) < min(need, MAX_HELLO_BYTES):
            return
        yield self.contact()
        raise _Drop(None)

    def contact(self) -> ContactRecord:
        dst, dport = self.key[2], self.key[3]
        sni = client_hello_sni(bytes(self.buf))
        self.ctx.seen_sni[self.key] = sni or dst
        detail = f"TLS to {dst}:{dport}" + ("" if sni else " (no SNI)")
        return ContactRecord(
            self.ctx.source, self.ctx.labels, self.started, sni or dst, "sni_only", detail, dst
        )


class _Order:
    """Sequence-number order for one direction of a TCP stream: retransmitted bytes are trimmed and
    segments that arrive early wait (at most MAX_PENDING of them) for the gap before them.

    Written here because scapy's TCPSession only orders payloads of protocols it has a class for
    (HTTP on port 80, TLS on 443...): for anything else it hands each segment over as it comes."""

    MAX_PENDING = 64

    def __init__(self) -> None:
        self.next: int | None = None
        self.pending: dict[int, bytes] = {}

    def take(self, seq: int, data: bytes) -> bytes:
        """The bytes now in order, starting at `data` (seq) if it is next, else b""."""
        if self.next is None:
            self.next = (seq + len(data)) & 0xFFFFFFFF
            return data
        ahead = (seq - self.next) & 0xFFFFFFFF
        if ahead >= 1 << 31:  # starts before what was delivered: a retransmission, maybe longer
            behind = (1 << 32) - ahead
            if behind >= len(data):
                return b""
            data, ahead = data[behind:], 0
        if ahead:
            if len(self.pending) < self.MAX_PENDING:
                self.pending[seq & 0xFFFFFFFF] = data
            return b""
        out = [data]
        self.next = (self.next + len(data)) & 0xFFFFFFFF
        while self.pending:
            nxt = self.pending.pop(self.next, None)
            if nxt is None:
                break
            out.append(nxt)
            self.next = (self.next + len(nxt)) & 0xFFFFFFFF
        return b"".join(out)


class _Drop(Exception):
    """A stream is done with (ended, not HTTP, too big); the message, if any, is a warning."""


class _Streams:
    """The first pass's state: scapy's IPSession (fragments), and the TCP streams being followed."""

    def __init__(self, source: str, labels: Labels, report: SourceReport):
        self.source, self.labels, self.report = source, labels, report
        self.tag = file_tag(source)  # flow ids: <tag>#<packet that completed the request>
        self.completed: dict[int, int] = {}  # packet -> requests it completed (pipelining, the end)
        self.ip = IPSession()
        self.streams: OrderedDict[tuple, _HttpStream | _HelloStream] = OrderedDict()
        self.seen_sni: dict[tuple, str] = {}

    def flow_id(self, packet: int) -> str:
        """`<tag>#<packet>` for the first request that packet completes, `<tag>#<packet>.<k>` for
        the k-th more (pipelined requests in one segment; requests cut off by the capture's end)."""
        more = self.completed.get(packet, 0)
        self.completed[packet] = more + 1
        return f"{self.tag}#{packet}" + (f".{more}" if more else "")

    def packet(self, raw_pkt, count: int) -> Iterator[HttpRecord | ContactRecord]:
        if len(self.ip.fragments) > MAX_TCP_SESSIONS:
            self.ip = IPSession()
        try:
            pkt = self.ip.process(raw_pkt)  # IP fragments reassembled by scapy
        except Exception as exc:  # scapy on a damaged packet: read it as it is
            self.report.warnings.append(f"packet {count}: IP reassembly failed ({type(exc).__name__})")
            pkt = raw_pkt
        if pkt is not None:
            yield from self._records(pkt, count)

    def _records(self, pkt, count: int) -> Iterator[HttpRecord | ContactRecord]:
        for rec in _packet(pkt, count, self):
            self.report.records += 1
            yield rec

    def feed(
        self, key: tuple, stream, data: bytes, count: int, ts: float, seq: int | None = None
    ) -> Iterator:
        if seq is not None:
            data = stream.order.take(seq, data)
            if not data:
                return
        self.streams[key] = stream
        self.streams.move_to_end(key)
        if len(self.streams) > MAX_STREAMS:
            self.streams.popitem(last=False)
        try:
            yield from stream.feed(data, count, ts)
        except _Drop as done:
            self.streams.pop(key, None)
            if done.args[0]:
                self.report.warnings.append(done.args[0])

    def finish(self, count: int) -> Iterator[HttpRecord | ContactRecord]:
        """At the end of the capture: requests and ClientHellos cut off by it, kept with a warning."""
        for stream in self.streams.values():
            if isinstance(stream, _HttpStream) and stream.request is not None:
                self.report.warnings.append(
                    f"packet {stream.first_packet}: request incomplete at the end of the capture, "
                    f"kept with the {len(stream.body)} body bytes seen"
                )
                self.report.records += 1
                yield stream.record(count)
            elif isinstance(stream, _HelloStream) and stream.key not in self.seen_sni:
                self.report.records += 1
                yield stream.contact()
        self.streams.clear()


def _packet(pkt, count: int, ctx: _Streams) -> Iterator[HttpRecord | ContactRecord]:
    ts = float(pkt.time)
    ip = pkt.getlayer(IP) or pkt.getlayer(IPv6)
    if ip is None:
        return
    src, dst = str(ip.src), str(ip.dst)
    dns = pkt.getlayer(DNS)
    if dns is not None and (pkt.haslayer(UDP) or pkt.haslayer(TCP)):
        try:
            yield from _dns_records(dns, ts, ctx.source, ctx.labels, src if dns.qr else dst)
        except Exception as exc:
            ctx.report.warnings.append(f"packet {count}: undecodable DNS ({type(exc).__name__})")
        return
    tcp = pkt.getlayer(TCP)
    if tcp is None:
        return
    payload = bytes(tcp.payload)
    if not payload:
        return
    key = (src, int(tcp.sport), dst, int(tcp.dport))
    stream = ctx.streams.get(key)
    if stream is None:
        if key in ctx.seen_sni:
            return
        if payload[:1] == b"\x16" and len(payload) > 5 and payload[5] == 0x01:  # a ClientHello
            stream = _HelloStream(key, ctx)
        elif payload.startswith(METHODS):
            stream = _HttpStream(key, ctx)
        else:
            return
    yield from ctx.feed(key, stream, payload, count, ts, int(tcp.seq))
