"""Small hand-built analyses for report tests: findings/flows/contacts frames with chosen values."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd

from phonehome.analysis.classify import mark_persistence
from phonehome.analysis.findings import CONTACTS_COLUMNS, FLOWS_COLUMNS, Finding, findings_frame

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
