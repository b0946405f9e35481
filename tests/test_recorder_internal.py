"""Flows answered on the laptop (mitm.it's CA download, guard refusals) are marked as not app traffic."""

from __future__ import annotations

import signal
from pathlib import Path

import requests
from mitmproxy import io

from tests.support_proxy import ROOT, mitmdump, tls_upstream

RECORDER = ROOT / "addons" / "recorder.py"
REDIRECT = ROOT / "tests" / "support_redirect_addon.py"


def test_onboarding_and_refused_flows_are_marked_internal(tmp_path: Path) -> None:
    confdir, out = tmp_path / "conf", tmp_path / "caps"
    opts = ["--set", f"phonehome_dir={out}", "--set", "phonehome_session=i"]
    with tls_upstream(tmp_path) as up, mitmdump(confdir, up, [RECORDER, REDIRECT], opts) as (port, proc):
        with requests.Session() as s:
            s.trust_env = False
            s.proxies = {"http": f"http://127.0.0.1:{port}", "https": f"http://127.0.0.1:{port}"}
            s.verify = str(confdir / "mitmproxy-ca-cert.pem")
            assert "mitmproxy" in s.get("http://mitm.it/").text  # the onboarding page
            assert s.get("http://mitm.it/cert/pem").content.startswith(b"-----BEGIN CERTIFICATE")
            assert s.get("http://127.0.0.1:9/x").status_code == 403  # the guard
            s.get("https://app.example/ping").raise_for_status()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    with (out / "i" / "flows.mitm").open("rb") as fo:
        flows = {f.request.pretty_url: f.metadata["phonehome"] for f in io.FlowReader(fo).stream()}
    assert flows["http://mitm.it/"]["kind"] == "onboarding" and flows["http://mitm.it/"]["internal"] is True
    assert flows["http://mitm.it/cert/pem"]["kind"] == "onboarding"
    assert flows["http://127.0.0.1:9/x"]["kind"] == "refused"
    assert flows["https://app.example/ping"] == {"session": "i", "app": None, "mode": "normal", "phase": None}
