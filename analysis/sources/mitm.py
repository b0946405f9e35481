"""mitmproxy flow dumps (any version mitmproxy's own reader migrates) as records.

Reads record by record with mitmproxy's tnetstring reader and migration, so a damaged dump
still yields every flow before the damage and the report says where reading stopped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mitmproxy import dns, flow, http, tcp
from mitmproxy.io import compat, tnetstring

from analysis.records import ContactRecord, HttpRecord, Labels, SourceReport
from analysis.sources import CaptureError

LABEL_KEY = "phonehome"


def labels_for(metadata: dict[str, Any], defaults: Labels) -> Labels:
    """Labels from flow.metadata["phonehome"], falling back to `defaults` field by field."""
    meta = metadata.get(LABEL_KEY) if isinstance(metadata, dict) else None
    if not isinstance(meta, dict):
        return defaults
    return Labels(
        session=str(meta.get("session") or defaults.session),
        app=meta.get("app") or defaults.app,
        mode=str(meta.get("mode") or defaults.mode),
        phase=meta.get("phase") or defaults.phase,
    )


def _headers(headers: http.Headers) -> tuple[tuple[str, str], ...]:
    return tuple((k, v) for k, v in headers.items(multi=True))


def http_record(f: http.HTTPFlow, source: str, defaults: Labels) -> HttpRecord:
    """An HttpRecord for a mitmproxy HTTPFlow; host is what the app meant (Host/authority/SNI)."""
    req = f.request
    host = req.pretty_host
    sni = f.client_conn.sni if f.client_conn else None
    if _is_ip(host) and sni:
        host = sni
    server_ip = None
    peer = f.server_conn.peername if f.server_conn else None
    if peer:
        server_ip = str(peer[0])
    elif _is_ip(req.host):
        server_ip = req.host
    resp = f.response
    return HttpRecord(
        source=source,
        flow_id=f.id,
        labels=labels_for(f.metadata, defaults),
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
    )


def contact_records(f: flow.Flow, source: str, defaults: Labels) -> Iterator[ContactRecord]:
    """DNS and raw TCP/UDP flows: hosts contacted whose HTTP content we did not see."""
    labels = labels_for(f.metadata, defaults)
    if isinstance(f, dns.DNSFlow):
        ts = f.request.timestamp or 0.0
        answers = []
        if f.response:
            answers = [str(a) for a in f.response.answers]
        for q in f.request.questions:
            yield ContactRecord(source, labels, float(ts), q.name.rstrip("."), "dns", "; ".join(answers))
    elif isinstance(f, tcp.TCPFlow) or f.type == "udp":
        sni = f.client_conn.sni if f.client_conn else None
        peer = f.server_conn.address if f.server_conn else None
        host = sni or (str(peer[0]) if peer else "")
        if host:
            yield ContactRecord(
                source,
                labels,
                float(f.timestamp_created or 0.0),
                host,
                f.type,
                str(f.error.msg) if f.error else "",
                str(peer[0]) if peer else None,
            )


def iter_flows(path: Path, report: SourceReport) -> Iterator[flow.Flow]:
    """mitmproxy Flow objects from a dump; stops at the first damaged record with a warning."""
    size = os.path.getsize(path)
    with path.open("rb") as fo:
        count = 0
        while True:
            position = fo.tell()
            if position >= size:
                return
            try:
                state = tnetstring.load(fo)
                f = flow.Flow.from_state(compat.migrate_flow(state))
            except Exception as exc:  # any damage ends reading; reported below
                problem = _describe(exc)
                if count == 0:
                    raise CaptureError(path, f"not a readable mitmproxy dump: {problem}", position) from None
                report.warnings.append(
                    f"{path}: damaged record at byte {position} of {size} ({problem}); "
                    f"kept the {count} flow(s) before it"
                )
                return
            count += 1
            yield f


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]


def read_dump(
    path: Path, defaults: Labels, report: SourceReport, *, allow_empty: bool = False
) -> Iterator[HttpRecord | ContactRecord]:
    """Records from a dump. An empty file is an error, unless it is a capture's (nothing recorded yet)."""
    source = str(path)
    if path.stat().st_size == 0:
        if not allow_empty:
            raise CaptureError(path, "empty file (no flows)")
        report.warnings.append(f"{path}: empty (no flows recorded)")
        return
    for f in iter_flows(path, report):
        if isinstance(f, http.HTTPFlow):
            report.records += 1
            yield http_record(f, source, defaults)
        else:
            for record in contact_records(f, source, defaults):
                report.records += 1
                yield record


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True
