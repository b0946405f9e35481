"""Verdicts on what a real mitmdump with the recorder wrote: real TLS, a real HTTP client.

- the tester types `http://phonehome.mark/mode/Incognito` (capital I, as a phone keyboard does):
  the report compares normal with incognito, never "Incognito" with nothing;
- a client that does not trust the proxy's CA at all (first run) is "CA not trusted", and a host
  refused while other hosts were decrypted is "pinning suspected".
"""

from __future__ import annotations

import contextlib
import signal
import socket
import ssl
from pathlib import Path

import pandas as pd
import requests
from mitmproxy import io

from phonehome.analysis.cli.main import main
from tests.support_proxy import ROOT, mitmdump, tls_upstream

RECORDER = ROOT / "addons" / "recorder.py"
REDIRECT = ROOT / "tests" / "support_redirect_addon.py"
VISITED = "https://clinic.example/rash"
# what a browser sends when the tester types the marker URL into the address bar
TYPED = {
    "Accept": "text/html,application/xhtml+xml",
    "Sec-Fetch-Site": "none",
    "Sec-Fetch-Mode": "navigate",
    "Sec-Fetch-Dest": "document",
    "Sec-Fetch-User": "?1",
}


def refused_handshake(port: int, host: str) -> None:
    """A client whose trust store lacks the proxy's CA: the handshake fails (alert unknown ca)."""
    raw = socket.create_connection(("127.0.0.1", port))
    try:
        raw.sendall(f"CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n\r\n".encode())
        assert b"200" in raw.recv(1024)
        with contextlib.suppress(ssl.SSLError, OSError):
            ssl.create_default_context().wrap_socket(raw, server_hostname=host)
    finally:
        raw.close()


def record(tmp_path: Path, session: str, steps) -> Path:
    confdir = tmp_path / "conf"
    out = tmp_path / "caps"
    opts = ["--set", f"phonehome_dir={out}", "--set", f"phonehome_session={session}"]
    opts += ["--set", "phonehome_app=com.example.browser"]
    with tls_upstream(tmp_path) as up, mitmdump(confdir, up, [RECORDER, REDIRECT], opts) as (port, proc):
        proxies = {"http": f"http://127.0.0.1:{port}", "https": f"http://127.0.0.1:{port}"}
        with requests.Session() as s:
            s.trust_env = False
            steps(s, proxies, str(confdir / "mitmproxy-ca-cert.pem"), port)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    return out / session


def report(tmp_path: Path, capture: Path, profile: Path) -> tuple[str, dict[str, pd.DataFrame]]:
    out = tmp_path / f"{capture.name}.md"
    assert main(["report", str(capture), "--profile", str(profile), "-q", "-o", str(out)]) == 0
    tables = {p.stem: pd.read_parquet(p) for p in (tmp_path / f"{capture.name}_tables").glob("*.parquet")}
    return out.read_text(encoding="utf-8"), tables


def test_capital_i_marker_and_pinning_through_a_real_proxy(tmp_path: Path) -> None:
    def steps(s, proxies, ca, port):
        leak = "https://tracker.example.com/log?u=" + requests.utils.quote(VISITED, safe="")
        assert s.get(leak, proxies=proxies, verify=ca).ok
        marker = s.get("http://phonehome.mark/mode/Incognito", proxies=proxies, headers=TYPED)
        assert marker.status_code == 200, marker.text[:200]
        assert s.get(leak + "&tab=2", proxies=proxies, verify=ca).ok
        refused_handshake(port, "pinned.example.net")  # after other hosts were decrypted

    capture = record(tmp_path, "live", steps)
    with (capture / "flows.mitm").open("rb") as fo:  # the recorder stored the canonical spelling
        modes = [f.metadata["phonehome"]["mode"] for f in io.FlowReader(fo).stream() if f.type == "http"]
    assert modes == ["normal", "incognito"]
    profile = tmp_path / "profile.json"
    profile.write_text(f'{{"urls": ["{VISITED}"]}}')
    text, tables = report(tmp_path, capture, profile)
    assert set(tables["flows"]["mode"]) == {"normal", "incognito"}
    cmp = tables["comparison"]
    row = cmp[(cmp["host"] == "tracker.example.com") & (cmp["data_type"] == "url")]
    assert row[["mode", "baseline_requests", "mode_requests", "status"]].values.tolist() == [
        ["incognito", 1, 1, "sent in both (normal and incognito)"]
    ]
    assert "In incognito mode, visited URLs left the device to tracker.example.com" in text
    assert "Incognito mode" not in text.replace("Incognito mode was not tested", "")  # one spelling
    cov = tables["coverage"].set_index("host")
    assert cov.loc["pinned.example.net", "reason"] == "pinning_suspected"
    assert cov.loc["pinned.example.net", "mode"] == "incognito"


def test_first_run_without_the_ca_is_not_called_pinning(tmp_path: Path) -> None:
    def steps(s, proxies, ca, port):
        for host in ("tracker.example.com", "news.example.org", "pinned.example.net"):
            refused_handshake(port, host)

    capture = record(tmp_path, "first-run", steps)
    profile = tmp_path / "profile.json"
    profile.write_text("{}")
    text, tables = report(tmp_path, capture, profile)
    cov = tables["coverage"]
    assert set(cov["host"]) == {"tracker.example.com", "news.example.org", "pinned.example.net"}
    assert set(cov["reason"]) == {"ca_not_trusted"}
    assert "pinning suspected" not in text
    assert "3 host(s) not decrypted (CA not trusted" in text
    assert "Incognito mode was not tested" in text
