"""Small hand-built analyses for report tests: findings/flows/contacts frames with chosen values."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pandas as pd

from phonehome.analysis.classify import mark_persistence
from phonehome.analysis.findings import CONTACTS_COLUMNS, FLOWS_COLUMNS, Finding, findings_frame
from tests.support_sources import write_dump

XSS_PAYLOADS = (
    "<script>document.title='pwned'</script>",
    "<img src=x id=injected onerror=\"document.title='pwned'\">",
    "<a id=jslink href=\"javascript:document.title='pwned'\">x</a>",
    "<style>body{background:red}</style><div id=cssinj style='position:fixed'>",
    "| pipe | `tick` \n newline ** bold ** [link](http://evil)",
)


def finding(mode: str, host: str, data_type: str, value: str, **extra) -> Finding:
    base = dict(
        session="s1",
        app="com.example.browser",
        mode=mode,
        flow_id=f"{mode}-{host}-{data_type}",
        timestamp=1_700_000_000.0 + len(value),
        method="POST",
        host=host,
        site=".".join(host.split(".")[-2:]),
        owner="Xiaomi" if "miui" in host else "",
        category="analytics",
        party="third",
        url=f"https://{host}/log?v={value}",
        location="body",
        field="body.properties.x",
        encodings="form>base64>gzip>json",
        data_type=data_type,
        value=value,
        confidence="high",
        evidence="known-value",
    )
    base.update(extra)
    return Finding(**base)


def flows_for(findings: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for row in findings.drop_duplicates("flow_id").itertuples(index=False):
        rows.append(
            {
                **{c: "" for c in FLOWS_COLUMNS},
                "session": row.session,
                "app": row.app,
                "mode": row.mode,
                "phase": f"{row.mode}-browsing",
                "flow_id": row.flow_id,
                "timestamp": row.timestamp,
                "method": row.method,
                "host": row.host,
                "site": row.site,
                "owner": row.owner,
                "category": row.category,
                "party": row.party,
                "url": row.url,
                "status": 200,
                "request_size": 100,
                "response_size": 10,
                "fields": 1,
                "decode_truncated": False,
            }
        )
    return pd.DataFrame(rows, columns=list(FLOWS_COLUMNS))


def analysis_of(findings: list[Finding], contacts: list[dict] | None = None) -> SimpleNamespace:
    frame = mark_persistence(findings_frame(findings))  # as the pipeline does
    contact_rows = [{**{c: "" for c in CONTACTS_COLUMNS}, "timestamp": 0.0, **c} for c in contacts or []]
    return SimpleNamespace(
        findings=frame,
        flows=flows_for(frame),
        contacts=pd.DataFrame(contact_rows, columns=list(CONTACTS_COLUMNS)),
        warnings=[],
    )


# --- capture directories built with mitmproxy's own flow objects and writer ---------------------

#: A profile whose browsing values the capture helpers below send (known values: high confidence).
VISITED = ("https://clinic.example/visit-1", "https://bank.example/visit-2")
SEARCHED = ("rash on arm",)
ANDROID_ID = "9c2f41a7e3b5d810"


def http_flow(
    url: str,
    *,
    app: str | None,
    mode: str,
    ts: float,
    body: bytes = b"",
    session: str = "run",
    content_type: str = "application/json",
):
    """One decrypted request as the recorder stores it: a real mitmproxy HTTPFlow with its labels."""
    from mitmproxy import http
    from mitmproxy.test import tflow

    flow = tflow.tflow(resp=True)
    request = http.Request.make("POST" if body else "GET", url, body, {"Content-Type": content_type})
    request.timestamp_start, request.timestamp_end = ts, ts + 0.01
    flow.request = request
    flow.response.timestamp_start, flow.response.timestamp_end = ts + 0.1, ts + 0.11
    flow.timestamp_created = ts
    flow.metadata["phonehome"] = {"session": session, "app": app, "mode": mode, "phase": None}
    return flow


def encrypted_batch(size: int) -> bytes:
    """Bytes that look like an SDK's encrypted event batch (deterministic, high entropy)."""
    import hashlib

    out = b""
    while len(out) < size:
        out += hashlib.sha256(len(out).to_bytes(4, "big")).digest()
    return out[:size]


def tls_failure(
    host: str, *, app: str | None, mode: str, ts: float, error: str, session: str = "run"
) -> dict:
    """An events.jsonl line as addons/recorder.py writes it for a refused handshake."""
    return {
        "type": "tls_failed",
        "timestamp": ts,
        "host": host,
        "sni": host,
        "client": "192.168.1.23:40000",
        "server_ip": None,
        "error": error,
        "labels": {"session": session, "app": app, "mode": mode, "phase": None},
    }


def write_capture(directory, flows, events=(), profile: dict | None = None):
    """A capture directory: flows.mitm via mitmproxy.io.FlowWriter, events.jsonl, profile.json."""
    import json

    directory.mkdir(parents=True, exist_ok=True)
    write_dump(directory / "flows.mitm", flows)
    if events:
        (directory / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    if profile is not None:
        (directory / "profile.json").write_text(json.dumps(profile))
    return directory


def browsing_flows(
    app: str, mode: str, t0: float, *, session: str = "run", tracker: str = "sa.tracker.example"
):
    """An app's traffic in one mode: the visits themselves, and a tracker receiving them with the
    Android ID (the pattern of the motivating case)."""
    flows = []
    for i, url in enumerate(VISITED):
        flows.append(http_flow(url, app=app, mode=mode, ts=t0 + 10 * i, session=session))
        event = {"event": "page", "url": url, "android_id": ANDROID_ID, "q": SEARCHED[0] if i == 0 else ""}
        body = json.dumps({"events": [event]}).encode()
        flows.append(
            http_flow(
                f"https://{tracker}/log", app=app, mode=mode, ts=t0 + 10 * i + 1, body=body, session=session
            )
        )
    return flows


PROFILE = {"android_id": ANDROID_ID, "urls": list(VISITED), "search_terms": list(SEARCHED)}
