"""A record of an HTTP flow: what the analysis reads of mitmproxy's flow objects, or of anything
shaped like them.

Kept apart from analysis.sources.mitm (which imports mitmproxy's flow classes to read dumps) so that
readers building flow-shaped objects of their own (a HAR's entries: sources.har; the live
inspector's flows) get the same record without importing mitmproxy's flow, connection and
certificate modules (about 0.1 s of a run's start-up).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from phonehome.analysis.labels import labels_from_metadata
from phonehome.analysis.records import HttpRecord, Labels, SourceReport, is_ip

if TYPE_CHECKING:
    from mitmproxy import http


def _headers(headers: http.Headers) -> tuple[tuple[str, str], ...]:
    return tuple((k, v) for k, v in headers.items(multi=True))


def http_record(
    f: http.HTTPFlow, source: str, defaults: Labels, report: SourceReport | None = None
) -> HttpRecord:
    """An HttpRecord for a mitmproxy HTTPFlow; host is what the app meant (Host/authority/SNI).

    Label problems (phonehome.analysis.labels) are warned about in `report`, when given.
    """
    req = f.request
    host = req.pretty_host
    sni = f.client_conn.sni if f.client_conn else None
    if is_ip(host) and sni:
        host = sni
    server_ip = None
    peer = f.server_conn.peername if f.server_conn else None
    if peer:
        server_ip = str(peer[0])
    elif is_ip(req.host):
        server_ip = req.host
    resp = f.response
    return HttpRecord(
        source=source,
        flow_id=f.id,
        labels=labels_from_metadata(f.metadata, defaults, report),
        timestamp=float(req.timestamp_start or 0.0),
        method=req.method,
        scheme=req.scheme,
        host=host,
        port=req.port,
        path=req.path,
        http_version=req.http_version,
        request_headers=_headers(req.headers),
        request_body=req.raw_content or b"",
        status=resp.status_code if resp else None,
        response_headers=_headers(resp.headers) if resp else (),
        response_size=len(resp.raw_content or b"") if resp else None,
        server_ip=server_ip,
        sni=sni,
        tls_version=getattr(f.server_conn, "tls_version", None),  # duck-typed flows (HAR, live payloads)
        tls_cipher=getattr(f.server_conn, "cipher", None),
        ws_messages=ws_messages(getattr(f, "websocket", None)),
    )


def ws_messages(websocket: object) -> tuple[tuple[int, bytes], ...]:
    """A WebSocket's messages from the client, as (index among all its messages, content)."""
    if websocket is None:
        return ()
    return tuple((i, m.content) for i, m in enumerate(websocket.messages) if m.from_client)
