"""HAR 1.2 out: a capture's requests with their findings, for HTTP Toolkit, TrackHAR and browsers.

Entries are made by mitmproxy's own HAR exporter (`mitmproxy.addons.savehar.SaveHar.make_har`)
from flows rebuilt from HttpRecords; each entry's `comment` lists the findings for that request
(`data_type at field [encodings] (confidence)`), and `_phonehome` carries the labels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

import pandas as pd
from mitmproxy import connection, http
from mitmproxy.addons.savehar import SaveHar

from phonehome.analysis.records import HttpRecord
from phonehome.analysis.report import redact as redaction

#: Headers whose whole value is a credential: replaced outright under --redact.
CREDENTIAL_HEADERS = frozenset({"cookie", "authorization", "proxy-authorization", "x-api-key"})
#: Encodings a text search can see through; a sensitive value found under any other (base64,
#: gzip, protobuf...) cannot be scrubbed in place, so the body is withheld instead.
TEXTUAL_ENCODINGS = frozenset({"", "form", "json", "multipart", "cookie", "urlencoded"})
WITHHELD_BODY = b"[request body withheld by phonehome --redact: it carries encoded identifiers]"


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


def _scrub_all(text: str, values: list[str]) -> str:
    """`text` with each value replaced, also where it appears percent-encoded."""
    for value in values:
        for form in {value, quote(value, safe=""), quote_plus(value, safe="")}:
            if form in text:
                text = text.replace(form, redaction.tag(value))
    return text


def redact_records(records: Iterable[HttpRecord], findings: pd.DataFrame) -> list[HttpRecord]:
    """Copies of `records` fit to share: identifiers, tokens and credentials replaced by tags.

    Values come from the findings (the same ones the reports redact); credential headers are
    replaced whole; a body whose sensitive values sit under an encoding a text search cannot
    see through (base64, gzip, protobuf...) is withheld rather than shared half-redacted.
    """
    values = redaction.sensitive_values(findings)
    opaque: set[str] = set()
    if len(findings):
        sensitive = findings[redaction.sensitive_mask(findings)]
        for flow_id, location, encodings in zip(
            sensitive["flow_id"], sensitive["location"], sensitive["encodings"], strict=True
        ):
            if location == "body" and not set(str(encodings).split(">")) <= TEXTUAL_ENCODINGS:
                opaque.add(str(flow_id))
    out = []
    for rec in records:
        headers = tuple(
            (k, redaction.tag(v) if k.lower() in CREDENTIAL_HEADERS else _scrub_all(v, values))
            for k, v in rec.request_headers
        )
        response_headers = tuple(
            (k, redaction.tag(v) if k.lower() == "set-cookie" else v) for k, v in rec.response_headers
        )
        body = rec.request_body
        if rec.flow_id in opaque:
            body = WITHHELD_BODY
        elif body:
            try:
                body = _scrub_all(body.decode("utf-8"), values).encode("utf-8")
            except UnicodeDecodeError:
                body = WITHHELD_BODY if values else body
        if body is WITHHELD_BODY:  # it is plain text now, whatever the original was
            headers = tuple(
                (k, "text/plain" if k.lower() == "content-type" else v)
                for k, v in headers
                if k.lower() not in ("content-encoding", "content-length")
            )
        out.append(
            dataclasses.replace(
                rec,
                path=_scrub_all(rec.path, values),
                request_headers=headers,
                response_headers=response_headers,
                request_body=body,
            )
        )
    return out
