"""HAR 1.2 out: a capture's requests with their findings, for HTTP Toolkit, TrackHAR and browsers.

Entries are made by mitmproxy's own HAR exporter (`mitmproxy.addons.savehar.SaveHar.make_har`)
from flows rebuilt from HttpRecords; each entry's `comment` lists the findings for that request
(`data_type at field [encodings] (confidence)`), and `_phonehome` carries the labels.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd
from mitmproxy import connection, http
from mitmproxy.addons.savehar import SaveHar

from analysis.records import HttpRecord


def record_to_flow(rec: HttpRecord) -> http.HTTPFlow:
    """An HTTPFlow carrying what the HttpRecord knows (request as sent, response headers)."""
    client = connection.Client(
        peername=("127.0.0.1", 0), sockname=("127.0.0.1", 0), timestamp_start=rec.timestamp
    )
    server = connection.Server(address=(rec.server_ip, rec.port) if rec.server_ip else None)
    f = http.HTTPFlow(client, server)
    f.request = http.Request(
        rec.host,
        rec.port,
        rec.method.encode(),
        rec.scheme.encode(),
        b"",
        rec.path.encode("utf-8", "surrogateescape"),
        rec.http_version.encode(),
        http.Headers(
            [
                (k.encode("utf-8", "surrogateescape"), v.encode("utf-8", "surrogateescape"))
                for k, v in rec.request_headers
            ]
        ),
        rec.request_body,
        None,
        rec.timestamp,
        rec.timestamp,
    )
    if rec.status is not None:
        f.response = http.Response(
            b"HTTP/1.1",
            rec.status,
            b"",
            http.Headers(
                [
                    (k.encode("utf-8", "surrogateescape"), v.encode("utf-8", "surrogateescape"))
                    for k, v in rec.response_headers
                ]
            ),
            b"",
            None,
            rec.timestamp,
            rec.timestamp,
        )
    return f


def finding_comment(rows: pd.DataFrame) -> str:
    """One line per finding: what data, where, under which encodings, how sure."""
    lines = []
    for row in rows.itertuples(index=False):
        enc = f" [{row.encodings}]" if row.encodings else ""
        lines.append(f"{row.data_type} at {row.field}{enc} ({row.confidence}, {row.evidence})")
    return "; ".join(lines)


def records_to_har(records: Iterable[HttpRecord], findings: pd.DataFrame | None = None) -> dict[str, Any]:
    """A HAR 1.2 document for `records`, with findings (matched by flow_id) as entry comments."""
    recs = [r for r in records if isinstance(r, HttpRecord)]
    flows = [record_to_flow(r) for r in recs]
    har = SaveHar().make_har(flows)
    har["log"]["creator"] = {"name": "phonehome", "version": "1", "comment": "findings in entry comments"}
    by_flow = {}
    if findings is not None and len(findings):
        by_flow = {k: g for k, g in findings.groupby("flow_id", sort=False)}
    for rec, entry in zip(recs, har["log"]["entries"], strict=True):
        rows = by_flow.get(rec.flow_id)
        entry["comment"] = finding_comment(rows) if rows is not None else ""
        entry["_phonehome"] = {
            "flow_id": rec.flow_id,
            "session": rec.labels.session,
            "app": rec.labels.app,
            "mode": rec.labels.mode,
            "phase": rec.labels.phase,
        }
        if rec.status is None:
            entry["response"]["content"].setdefault("text", "")
    return har
