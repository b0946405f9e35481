"""Shared inputs of the known-value tests (test_literals, test_classify_prefilters,
test_classify_onescan): a test phone's values, and the sample capture's decoded field values."""

from __future__ import annotations

from pathlib import Path

from mitmproxy.io import FlowReader

from phonehome.analysis.decode import decode_request
from phonehome.analysis.records import Labels
from phonehome.analysis.sources.mitm import http_record

SAMPLE = Path(__file__).parent.parent / "captures" / "sample-mint-browser"

#: A test phone's known values, one of each shape the matcher derives forms for.
PHONE_VALUES = {
    "imei": "358240051111110",
    "android_id": "9774d56d682e549c",
    "mac": "02:00:00:44:55:66",
    "advertising_id": "38400000-8cf0-11bd-b23e-10b96e40000d",
    "email": "Test.User@example.org",
    "account_id": "u-1029384756",
}


def sample_field_values() -> list[str]:
    """The sample capture's decoded field values (classify_request joins a request's by NUL for
    its one known-value search)."""
    with (SAMPLE / "flows.mitm").open("rb") as fo:
        flows = [f for f in FlowReader(fo).stream() if f.type == "http"]
    values = [
        field.value
        for f in flows
        for field in decode_request(http_record(f, "sample", Labels(None, None, "normal", None))).fields
    ]
    return values
