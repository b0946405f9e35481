"""HAR 1.2 out: a capture's requests with their findings, for HTTP Toolkit, TrackHAR and browsers.

Entries are made by mitmproxy's own HAR exporter (`mitmproxy.addons.savehar.SaveHar.make_har`)
from flows rebuilt from HttpRecords; each entry's `comment` lists the findings for that request
(`data_type at field [encodings] (confidence)`), and `_phonehome` carries the labels.

For sharing, `redact_records` makes copies scrubbed by analysis.redact (URL, host, request and
response headers, body, labels; unscrubbable parts withheld); `records_to_har` then builds the
comments from the redacted findings too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable
from typing import Any

import pandas as pd
from mitmproxy import connection, http
from mitmproxy.addons.savehar import SaveHar

from phonehome.analysis import redact as redaction
from phonehome.analysis.records import HttpRecord

#: Headers whose whole value is a credential: replaced outright under --redact.
CREDENTIAL_HEADERS = frozenset({"cookie", "authorization", "proxy-authorization", "x-api-key"})
WITHHELD_BODY = b"[request body withheld by phonehome --redact: it carries encoded identifiers]"
WITHHELD_UNREAD_BODY = (
    b"[request body withheld by phonehome --redact: its decoding stopped early, "
    b"so what it carries is unknown]"
)


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
    redactor = getattr(records, "redactor", None)
    if redactor is not None and findings is not None:  # comments from redacted findings only
        findings = redactor.findings(findings)
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


class RedactedRecords(list):
    """Records made fit to share by redact_records, carrying the Redactor that made them so that
    records_to_har builds entry comments and labels from redacted findings too."""

    redactor: redaction.Redactor


#: Response headers kept (scrubbed) of a request not fully decoded, whose other headers are withheld.
PLUMBING_HEADERS = frozenset({"content-type", "content-length", "content-encoding", "date"})


def _scrub_headers(
    headers: Iterable[tuple[str, str]],
    redactor: redaction.Redactor,
    opaque: set[str],
    credentials: frozenset[str],
    plumbing: frozenset[str] = frozenset(),
) -> tuple[tuple[str, str], ...]:
    out = []
    for k, v in headers:
        name = k.lower()
        if name in credentials:
            out.append((k, redaction.tag(v)))
        elif f"header.{name}" in opaque or ("header.*" in opaque and name not in plumbing):
            out.append((k, redaction.WITHHELD))
        else:
            out.append((redactor.scrub(k), redactor.scrub(v)))
    return tuple(out)


def _scrub_body(body: bytes, redactor: redaction.Redactor, withheld: bool) -> bytes:
    if withheld:
        return WITHHELD_BODY
    if not body or redactor.empty:
        return body
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return WITHHELD_BODY  # binary: whatever it hides cannot be searched for
    return redactor.scrub(text).encode("utf-8")


def redact_records(
    records: Iterable[HttpRecord],
    findings: pd.DataFrame,
    extra_values: Iterable[str] = (),
    unread: Collection[str] = (),
) -> RedactedRecords:
    """Copies of `records` fit to share: every sensitive value, in every form, replaced by its tag.

    Values come from the findings (the same ones the reports redact), from credential-named query
    and form parameters, and `extra_values`; credential headers (request Cookie, Authorization...,
    response Set-Cookie) are replaced whole; every other header, request and response, the URL,
    the host and the labels are scrubbed; a URL part, header or body whose sensitive values sit
    under an encoding a text search cannot see through (gzip, protobuf, a second base64...) is
    withheld, as is any binary body once there is something to hide (see analysis.redact). A
    request in `unread` (flow ids not fully decoded: flows' `decode_truncated`) keeps only its
    method and host: its URL path and query, header values and body are withheld, since what was
    not examined cannot be scrubbed.
    """
    recs = [r for r in records if isinstance(r, HttpRecord)]
    texts = [r.path for r in recs] + [
        r.request_body.decode("utf-8", "replace") for r in recs if b"=" in r.request_body[: 1 << 20]
    ]
    redactor = redaction.redactor_for(findings, texts, extra_values=extra_values, unread=unread)
    out = RedactedRecords()
    out.redactor = redactor
    for rec in recs:
        opaque = redactor.opaque.get(rec.flow_id, set())
        unread_request = opaque >= redaction.UNREAD_PLACES
        if unread_request and rec.request_body:
            body = WITHHELD_UNREAD_BODY
        else:
            body = _scrub_body(rec.request_body, redactor, "body" in opaque)
        headers = _scrub_headers(rec.request_headers, redactor, opaque, CREDENTIAL_HEADERS)
        if body is WITHHELD_BODY or body is WITHHELD_UNREAD_BODY:  # plain text now, whatever it was
            headers = tuple(
                (k, "text/plain" if k.lower() == "content-type" else v)
                for k, v in headers
                if k.lower() not in ("content-encoding", "content-length")
            )
        path = redactor.scrub(rec.path)
        if opaque & {"query", "url_path"}:
            path = redactor.withhold_url("http://h" + path, rec.flow_id).removeprefix("http://h")
        labels = rec.labels
        out.append(
            dataclasses.replace(
                rec,
                flow_id=redactor.scrub(rec.flow_id),
                host=redactor.scrub(rec.host),
                sni=redactor.scrub(rec.sni) if rec.sni else rec.sni,
                path=path,
                request_headers=headers,
                # a response may echo what the request held (a Location with its query)
                response_headers=_scrub_headers(
                    rec.response_headers,
                    redactor,
                    {"header.*"} if unread_request else set(),
                    frozenset({"set-cookie"}),
                    PLUMBING_HEADERS,
                ),
                request_body=body,
                labels=dataclasses.replace(
                    labels,
                    **{
                        k: redactor.scrub(getattr(labels, k))
                        for k in ("session", "app", "mode", "phase")
                        if isinstance(getattr(labels, k), str)
                    },
                ),
            )
        )
    return out
