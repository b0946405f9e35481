"""Redaction specifics (issue 15): each leak the filer found, closed; unscrubbable parts withheld."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import subprocess
import sys

import pandas as pd

from phonehome.analysis import redact
from phonehome.analysis.export import records_to_har, redact_records
from phonehome.analysis.records import HttpRecord, Labels
from phonehome.analysis.redact import WITHHELD, Redactor, redact_tables, tag
from tests.support_redact import leaks

IMEI = "867530912345673"
EMAIL = "tester@example.com"
MAC = "a4:50:46:1c:2e:7f"
PHONE = "+33 6 12 34 56 78"


def rec(path: str, headers=(), body: bytes = b"", response_headers=(), flow_id: str = "f#1") -> HttpRecord:
    return HttpRecord(
        source="t",
        flow_id=flow_id,
        labels=Labels(session="s", app="com.example", mode="normal"),
        timestamp=1.0,
        method="POST" if body else "GET",
        scheme="https",
        host="t.example.com",
        port=443,
        path=path,
        request_headers=tuple(headers),
        request_body=body,
        status=200,
        response_headers=tuple(response_headers),
    )


def findings_for(rows: list[tuple[str, str, str, str, str]]) -> pd.DataFrame:
    """(flow_id, location, field, encodings, data_type, value) rows as a findings table."""
    return pd.DataFrame(
        [
            {
                "session": "s",
                "app": "com.example",
                "mode": "normal",
                "flow_id": f,
                "timestamp": 1.0,
                "method": "GET",
                "host": "t.example.com",
                "url": "https://t.example.com/",
                "location": loc,
                "field": fld,
                "encodings": enc,
                "data_type": dt,
                "value": value,
                "confidence": "low",
                "evidence": "value-shape",
            }
            for f, loc, fld, enc, dt, value in rows
        ]
    )


FINDINGS = findings_for(
    [
        ("f#1", "query", "query.imei", "", "device_id.imei", IMEI),
        ("f#1", "query", "query.e", "", "contact.email", EMAIL),
        ("f#1", "query", "query.m", "", "device_id.mac", MAC),
        ("f#1", "query", "query.p", "", "contact.phone", PHONE),
    ]
)


def test_each_form_the_filer_found_is_scrubbed():
    r = Redactor([IMEI, EMAIL, MAC], {MAC: "device_id.mac"})
    cases = {
        "b64": base64.b64encode(b"x" + IMEI.encode() + b"yz").decode(),
        "b64url": base64.urlsafe_b64encode(b"??" + EMAIL.encode() + b">").decode(),
        "hex": IMEI.encode().hex().upper(),
        "lower-percent-mac": "a4%3a50%3a46%3a1c%3a2e%3a7f",
        "upper-mac-bare": "A450461C2E7F",
        "at-inside": "ref=foo%40bar-" + EMAIL.replace("@", "%40") + "-end",
        "json-escape": json.dumps({"e": EMAIL}).replace("@", "\\u0040"),
        "md5": hashlib.md5(IMEI.encode()).hexdigest(),
        "sha256-upper": hashlib.sha256(EMAIL.encode()).hexdigest().upper(),
        "upper-copy": EMAIL.upper(),
    }
    for name, text in cases.items():
        out = r.scrub(text)
        assert "redacted-" in out, name
        for secret in (IMEI, EMAIL, MAC):
            assert not leaks(out, secret), (name, out)


def test_plus_encoded_phone_and_phone_with_spaces():
    r = Redactor([PHONE], {PHONE: "contact.phone"})
    for text in ("tel=%2B33612345678", "n=+33 6 12 34 56 78", "n=06.12.34.56.78", "n=0612345678"):
        assert "12345678" not in r.scrub(text).replace(" ", "").replace(".", ""), text


def test_location_pairs_and_api_keys_in_urls():
    frame = findings_for([("f#1", "query", "query.x", "", "url", "https://a.example/")])
    flows = pd.DataFrame(
        {
            "flow_id": ["f#1"],
            "url": [
                "https://maps.example/?lat=48.85&lon=2.35&ll=48.85%2C2.35&api_key=AIzaSyA1b2C3d4E5f6&q=x"
            ],
        }
    )
    _, out, _ = redact_tables(frame, flows, pd.DataFrame({"host": []}))
    url = out["url"][0]
    assert "48.85" not in url and "2.35" not in url and "AIzaSyA1b2C3d4E5f6" not in url
    assert url.endswith("&q=x")  # what is not sensitive stays readable


def test_case_variants_share_the_canonical_tag():
    frame = findings_for(
        [
            ("f#1", "query", "query.a", "", "device_id.android_id", "3f9a2c41b7d05e18"),
            ("f#2", "header", "header.x-id", "", "device_id.android_id", "3F9A2C41B7D05E18"),
        ]
    )
    out, _, _ = redact_tables(frame, pd.DataFrame({"url": []}), pd.DataFrame({"host": []}))
    assert out["value"].nunique() == 1 and out["value"][0].startswith("redacted-")


def test_short_sensitive_values_are_withheld_not_kept():
    frame = findings_for([("f#1", "query", "query.uid", "", "user_id", "42")])
    out, _, _ = redact_tables(frame, pd.DataFrame({"url": []}), pd.DataFrame({"host": []}))
    assert out["value"][0] == WITHHELD


def test_unscrubbable_query_is_withheld_in_tables():
    blob = base64.b64encode(gzip.compress(json.dumps({"imei": IMEI}).encode())).decode()
    frame = findings_for([("f#9", "query", "query.d", "base64>gzip>json", "device_id.imei", IMEI)])
    frame["url"] = ["https://t.example.com/c?d=" + blob]
    flows = pd.DataFrame({"flow_id": ["f#9"], "url": ["https://t.example.com/c?d=" + blob]})
    out, flows_out, _ = redact_tables(frame, flows, pd.DataFrame({"host": []}))
    for url in (out["url"][0], flows_out["url"][0]):
        assert blob not in url and url == f"https://t.example.com/c?{WITHHELD}"


def test_har_response_headers_query_list_bodies_and_comments_are_redacted():
    records = [
        rec(
            "/c?imei=" + IMEI + "&m=a4%3a50%3a46%3a1c%3a2e%3a7f",
            headers=[
                ("X-Device-Id", IMEI),
                ("Cookie", "sid=abc123456"),
                ("Content-Type", "application/json"),
            ],
            body=json.dumps({"e": EMAIL}).replace("@", "\\u0040").encode(),
            response_headers=[("X-Device-Id", IMEI), ("Location", "https://r.example/?id=" + IMEI)],
        )
    ]
    findings = FINDINGS.assign(field=["query.imei", "query.e", "query.m", "query.p"])
    redacted = redact_records(records, findings)
    har = records_to_har(redacted, findings)
    text = json.dumps(har)
    for secret in (IMEI, EMAIL, MAC, "abc123456"):
        assert not leaks(text, secret), secret
    entry = har["log"]["entries"][0]
    assert all("redacted-" in q["value"] for q in entry["request"]["queryString"])
    assert entry["comment"] and "device_id.imei" in entry["comment"]


def test_har_body_under_compression_is_withheld_and_says_so():
    blob = base64.b64encode(gzip.compress(json.dumps({"imei": IMEI}).encode())).decode()
    records = [
        rec(
            "/c", body=("d=" + blob).encode(), headers=[("Content-Type", "application/x-www-form-urlencoded")]
        )
    ]
    findings = findings_for([("f#1", "body", "body.d.imei", "form>base64>gzip>json", "device_id.imei", IMEI)])
    body = redact_records(records, findings)[0].request_body
    assert blob.encode() not in body and b"withheld" in body


def test_tags_are_keyed_not_plain_hashes():
    assert tag(IMEI) == tag(IMEI)
    assert tag(IMEI)[len("redacted-") :] != hashlib.sha256(IMEI.encode()).hexdigest()[:8]


def test_notice_says_how():
    for word in ("redacted", "percent", "base64", "hex", "withheld", "SHA-256"):
        assert word in redact.NOTICE
    assert redact.REDACTION_NOTICE == redact.NOTICE


def test_har_export_does_not_import_matplotlib():
    code = "import sys, phonehome.analysis.export; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_tables_redactor_scrubs_other_texts_of_the_same_analysis():
    flows = pd.DataFrame({"flow_id": ["f#1"], "url": ["https://t.example.com/?api_key=AIzaSyA1b2C3d4E5f6"]})
    redactor = redact.tables_redactor(FINDINGS, flows)
    warning = f"entry 3 skipped: ValueError: bad URL https://x/?id={IMEI.encode().hex()}&k=AIzaSyA1b2C3d4E5f6"
    out = redactor.scrub(warning)
    assert not leaks(out, IMEI) and "AIzaSyA1b2C3d4E5f6" not in out and out.startswith("entry 3 skipped")
