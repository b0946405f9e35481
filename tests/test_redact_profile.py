"""--redact also hides the tester's own profile values that the classifier named nowhere.

A 5-character account id is below the known-value search's minimum length, so no finding names it;
only the profile says it is the tester's. Every redacting command must still remove it.
"""

from __future__ import annotations

import json

import pandas as pd
from mitmproxy import io
from mitmproxy.test import tflow

from phonehome.analysis.cli.main import main
from phonehome.analysis.profile import Profile
from phonehome.analysis.redact import profile_secrets

ACCOUNT = "u7x9q"  # shorter than the classifier's known-value minimum (6)
EMAIL = "tester.person@example.org"


def _capture(tmp_path):
    folder = tmp_path / "cap"
    folder.mkdir()
    flow = tflow.tflow(resp=True)
    flow.request.host = flow.request.authority = "api.example.net"
    flow.request.path = f"/v1/sync?acct={ACCOUNT}&lang=en"
    flow.metadata["phonehome"] = {"session": "s", "app": "com.example", "mode": "normal", "phase": None}
    with open(folder / "flows.mitm", "wb") as handle:
        io.FlowWriter(handle).add(flow)
    profile = folder / "profile.json"
    profile.write_text(json.dumps({"account_id": ACCOUNT, "email": EMAIL, "urls": ["https://example.com/x"]}))
    return folder


def test_profile_secrets_are_the_identifiers_not_the_visited_urls() -> None:
    profile = Profile.from_dict({"account_id": ACCOUNT, "imei": ["490154203237518"], "urls": ["https://e.com/"],
                                 "search_terms": ["kittens"], "extra": {"nick": "zorblax"}})  # fmt: skip
    assert sorted(profile_secrets(profile)) == sorted([ACCOUNT, "490154203237518", "zorblax"])
    assert profile_secrets(None) == []


def test_every_redacting_command_hides_a_profile_value_no_finding_named(tmp_path) -> None:
    capture = _capture(tmp_path)
    plain = tmp_path / "plain"
    assert main(["analyze", str(capture), "-o", str(plain), "-q"]) == 0
    flows = pd.read_parquet(plain / "flows.parquet")
    assert flows["url"].str.contains(ACCOUNT).any(), "the unredacted table holds the value"

    out = tmp_path / "out"
    assert main(["analyze", str(capture), "-o", str(out), "-q", "--redact"]) == 0
    assert main(["report", str(capture), "-o", str(tmp_path / "r.md"), "-q", "--redact"]) == 0
    assert main(["export", str(capture), "--har", str(tmp_path / "x.har"), "-q", "--redact"]) == 0
    written = [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_relative_to(capture)]
    written = [p for p in written if not p.is_relative_to(plain)]
    assert len(written) >= 5
    for path in written:
        data = path.read_bytes()
        if path.suffix == ".parquet":
            data = pd.read_parquet(path).to_csv().encode()
        assert ACCOUNT.encode() not in data, path
