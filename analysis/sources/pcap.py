"""pcap / pcapng files as records, streamed packet by packet with scapy's PcapReader.

What a packet capture can show without keys: DNS queries and answers (ContactRecord kind `dns`),
the server name of every TLS ClientHello (kind `sni_only`: host contacted, payload not visible),
and plaintext HTTP/1.x requests, reassembled per TCP stream (HttpRecords).

Bounds: the file is never loaded whole; each client-to-server stream keeps at most
MAX_STREAM_BYTES of unparsed data and at most MAX_STREAMS streams are followed at once.
With a TLS key log (SSLKEYLOGFILE format), a second streamed pass lets scapy's TLS layer follow
the TLS sessions found in the first pass and decrypt them; the client's application data is then
parsed as HTTP/1.x like plaintext (scheme https, host from the Host header, else the SNI).
scapy decrypts TLS 1.2 and TLS 1.3 (both tested); a session whose keys are missing stays a
`sni_only` contact.
"""

from __future__ import annotations

import gzip
import struct
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

from phonehome.analysis.records import ContactRecord, HttpRecord, Labels, SourceReport
from phonehome.analysis.sources import CaptureError

MAX_STREAM_BYTES = 1 << 20
MAX_STREAMS = 4096
MAX_HEADER_BYTES = 64 << 10

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # scapy's import-time deprecation noise (cryptography)
    from scapy.error import Scapy_Exception
    from scapy.layers.dns import DNS
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.tls import session as _tls_session  # noqa: F401  (lets scapy use a DSB key log)
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


def parse_http_request(buf: bytes) -> tuple[tuple[str, str, str, list[tuple[str, str]], bytes], int] | None:
    """One complete HTTP/1.x request at the start of `buf`: (parts, bytes used), or None if incomplete."""
    ends = [
        (i, n)
        for i, n in ((buf.find(b"\r\n\r\n"), 4), (buf.find(b"\n\n"), 2), (buf.find(b"\n\r\n"), 3))
        if i >= 0
    ]
    if not ends:
        return None
    head_end, sep = min(ends)  # bare-LF line ends are tolerated, as servers do
    lines = [line.rstrip("\r") for line in buf[:head_end].decode("latin-1").split("\n")]
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise ValueError("bad request line")
    method, target, version = parts
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    length = 0
    for name, value in headers:
        if name.lower() == "content-length" and value.isdigit():
            length = int(value)
    if any(n.lower() == "transfer-encoding" and "chunked" in v.lower() for n, v in headers):
        end = buf.find(b"\r\n0\r\n\r\n", head_end + sep)
        if end < 0:
            return None
        body_end = end + 7
    else:
        body_end = head_end + sep + length
        if len(buf) < body_end:
            return None
    return (method, target, version, headers, buf[head_end + sep : body_end]), body_end


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


def read_pcap(
    path: str | Path, defaults: Labels, report: SourceReport, keylog: str | Path | None = None
) -> Iterator[HttpRecord | ContactRecord]:
    """Records from a pcap/pcapng (optionally gzip'd), streamed; damage ends reading with a warning."""
    path = Path(path)
    labels = defaults if defaults.session else Labels(path.stem, defaults.app, defaults.mode, defaults.phase)
    source = str(path)
    if keylog is not None and not Path(keylog).is_file():
        raise CaptureError(keylog, "TLS key log not found")
    fo = _open(path)
    try:
        reader = PcapReader(fo)
    except (Scapy_Exception, OSError, EOFError, ValueError) as exc:
        fo.close()
        raise CaptureError(path, f"not a readable pcap/pcapng: {exc}") from None
    streams: OrderedDict[tuple, bytearray] = OrderedDict()
    seen_sni: dict[tuple, str] = {}
    count = 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            while True:
                try:
                    pkt = reader.read_packet()
                except EOFError:
                    break
                except Exception as exc:  # damaged packet/block: keep what was read
                    problem = f"{type(exc).__name__}: {exc}"
                    report.damaged(f"reading stopped after packet {count}: {problem}")
                    break
                if pkt is None:
                    break
                count += 1
                yield from _packet(pkt, count, source, labels, streams, seen_sni, report)
    finally:
        fo.close()
    embedded = keylog is None and has_decryption_secrets(path)
    if (keylog is not None or embedded) and seen_sni:  # a file without TLS leaves a key log unused
        yield from _decrypted(path, Path(keylog) if keylog else None, seen_sni, source, labels, report)


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
        from scapy.sessions import TCPSession

    ports = {key[3] for key in seen_sni}
    found: list[HttpRecord] = []
    streams: OrderedDict[tuple, bytearray] = OrderedDict()
    counter = {"n": 0}

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
        fake = _Plain(key, data, float(pkt.time))
        for rec in _http_from_stream(fake, counter["n"], source, labels, streams, report):
            rec.scheme = "https"
            if rec.host == key[2]:
                rec.host = seen_sni[key]
            rec.sni = seen_sni[key] if seen_sni[key] != key[2] else None
            found.append(rec)

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


class _Plain:
    """A decrypted chunk of one client-to-server stream, shaped for _http_from_stream."""

    def __init__(self, key: tuple, data: bytes, ts: float):
        self.key, self.data, self.ts = key, data, ts


def _packet(pkt, count, source, labels, streams, seen_sni, report) -> Iterator[HttpRecord | ContactRecord]:
    ts = float(pkt.time)
    ip = pkt.getlayer(IP) or pkt.getlayer(IPv6)
    if ip is None:
        return
    src, dst = str(ip.src), str(ip.dst)
    dns = pkt.getlayer(DNS)
    if dns is not None and (pkt.haslayer(UDP) or pkt.haslayer(TCP)):
        try:
            for rec in _dns_records(dns, ts, source, labels, src if dns.qr else dst):
                report.records += 1
                yield rec
        except Exception as exc:
            report.warnings.append(f"packet {count}: undecodable DNS ({type(exc).__name__})")
        return
    tcp = pkt.getlayer(TCP)
    if tcp is None:
        return
    payload = bytes(tcp.payload)
    if not payload:
        return
    key = (src, int(tcp.sport), dst, int(tcp.dport))
    if key not in streams and payload[:1] == b"\x16":
        if key not in seen_sni and len(payload) > 5 and payload[5] == 0x01:  # a ClientHello
            sni = client_hello_sni(payload)
            seen_sni[key] = sni or dst
            report.records += 1
            detail = f"TLS to {dst}:{tcp.dport}" + ("" if sni else " (no SNI)")
            yield ContactRecord(source, labels, ts, sni or dst, "sni_only", detail, dst)
        return
    for rec in _http_from_stream(_Plain(key, payload, ts), count, source, labels, streams, report):
        report.records += 1
        yield rec


def _http_from_stream(chunk, count, source, labels, streams, report) -> Iterator[HttpRecord]:
    """Append a chunk to its client-to-server stream; yield the HTTP/1.x requests now complete."""
    key, payload, ts = chunk.key, chunk.data, chunk.ts
    src, sport, dst, dport = key
    buf = streams.get(key)
    if buf is None:
        if not payload.startswith(METHODS):
            return
        buf = streams[key] = bytearray()
        if len(streams) > MAX_STREAMS:
            streams.popitem(last=False)
    streams.move_to_end(key)
    buf += payload
    if len(buf) > MAX_STREAM_BYTES:
        report.warnings.append(f"packet {count}: stream {src}:{sport} over {MAX_STREAM_BYTES} bytes, dropped")
        del streams[key]
        return
    while buf:
        try:
            parsed = parse_http_request(bytes(buf))
        except ValueError:
            del streams[key]
            return
        if parsed is None:
            if len(buf) > MAX_HEADER_BYTES and b"\r\n\r\n" not in buf:
                del streams[key]
            return
        (method, target, version, headers, body), used = parsed
        del buf[:used]
        host = next((v for n, v in headers if n.lower() == "host"), "") or dst
        hostname, _, port = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
        yield HttpRecord(
            source=source,
            flow_id=f"{Path(source).stem}#{count}",
            labels=labels,
            timestamp=ts,
            method=method,
            scheme="http",
            host=hostname,
            port=int(port) if port.isdigit() else int(dport),
            path=target,
            http_version=version,
            request_headers=tuple(headers),
            request_body=body,
            server_ip=dst,
        )
