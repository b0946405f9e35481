"""The recorder inside a real mitmdump, real TLS both sides, a real HTTP client."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import time
from pathlib import Path

import pytest
import requests

from phonehome.analysis.pipeline import analyze
from phonehome.analysis.records import SourceReport
from phonehome.analysis.sources.mitm import iter_flows
from tests.support_proxy import ROOT, children, exited, mitmdump, tls_upstream

RECORDER = ROOT / "addons" / "recorder.py"
REDIRECT = ROOT / "tests" / "support_redirect_addon.py"
# what a browser sends when the user opens a plain-http URL (no fetch metadata over http)
NAVIGATION = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8", "Upgrade-Insecure-Requests": "1"}


def test_record_markers_sigint_and_pinning(tmp_path: Path) -> None:
    confdir = tmp_path / "conf"
    out = tmp_path / "caps"
    opts = [
        "--set",
        f"phonehome_dir={out}",
        "--set",
        "phonehome_session=live",
        "--set",
        "phonehome_app=com.t",
    ]
    with tls_upstream(tmp_path) as up, mitmdump(confdir, up, [RECORDER, REDIRECT], opts) as (port, proc):
        proxies = {"http": f"http://127.0.0.1:{port}", "https": f"http://127.0.0.1:{port}"}
        ca = str(confdir / "mitmproxy-ca-cert.pem")
        with requests.Session() as s:
            s.trust_env = False
            r = s.get(
                "https://tracker.example.com/a?url=https%3A%2F%2Fnews.example%2Fx", proxies=proxies, verify=ca
            )
            assert r.text.startswith("ok /a")
            m = s.get("http://phonehome.mark/mode/incognito", proxies=proxies, headers=NAVIGATION)
            assert "incognito" in m.text
            s.get("https://tracker.example.com/b", proxies=proxies, verify=ca)
        # a client that refuses the proxy's certificate (default trust store does not know our CA)
        raw = socket.create_connection(("127.0.0.1", port))
        raw.sendall(b"CONNECT pinned.example.net:443 HTTP/1.1\r\nHost: pinned.example.net:443\r\n\r\n")
        assert b"200" in raw.recv(1024)
        try:
            ssl.create_default_context().wrap_socket(raw, server_hostname="pinned.example.net")
        except ssl.SSLError:
            pass
        finally:
            raw.close()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    flows = list(iter_flows(out / "live" / "flows.mitm", SourceReport(path="x")))
    assert [f.request.path for f in flows] == ["/a?url=https%3A%2F%2Fnews.example%2Fx", "/b"]
    assert [f.request.pretty_host for f in flows] == ["tracker.example.com"] * 2
    assert [f.metadata["phonehome"]["mode"] for f in flows] == ["normal", "incognito"]
    events = [json.loads(x) for x in (out / "live" / "events.jsonl").read_text().splitlines()]
    assert any(e["type"] == "tls_failed" and e["sni"] == "pinned.example.net" for e in events)
    session = json.loads((out / "live" / "session.json").read_text())
    assert [p["mode"] for p in session["phases"]] == ["normal", "incognito"]
    # the lead's pipeline reads what the recorder wrote: flows, labels, and the pinned host
    analysis = analyze([out / "live"])
    assert sorted(analysis.flows["mode"]) == ["incognito", "normal"]
    assert "phonehome.mark" not in set(analysis.flows["host"])
    assert "pinned.example.net" in set(analysis.contacts["host"])


def written_by(pid: int) -> int:
    """Bytes process `pid` has written so far, to files and sockets (Linux /proc/<pid>/io)."""
    fields = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return int(fields["wchar"])


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the writer process through /proc")
def test_kill_9_leaves_readable_dump(tmp_path: Path) -> None:
    """Flows handed to the writer process survive kill -9 of the proxy: the writer finishes them
    after the proxy is gone, then exits, as the inspector's worker does. The hand-over happens on
    the proxy's next event-loop turn after each response; the writer is stopped first here, so the
    last 20 flows are certainly still in the socket when the proxy dies."""
    confdir = tmp_path / "conf"
    out = tmp_path / "caps"
    dump = out / "k" / "flows.mitm"
    opts = ["--set", f"phonehome_dir={out}", "--set", "phonehome_session=k"]
    with (
        tls_upstream(tmp_path) as up,
        mitmdump(confdir, up, [RECORDER, REDIRECT], opts) as (port, proc),
        requests.Session() as s,
    ):
        s.trust_env = False
        s.proxies = {"https": f"http://127.0.0.1:{port}"}
        s.verify = str(confdir / "mitmproxy-ca-cert.pem")
        for i in range(20):
            s.get(f"https://a.example/{i}").raise_for_status()
        workers = children(proc.pid)  # the flow writer, which runs the live inspector too: no second child
        assert len(workers) == 1
        writer = next(p for p in workers if b"dumpwriter" in Path(f"/proc/{p}/cmdline").read_bytes())
        deadline = time.monotonic() + 30
        while not 0 < dump.stat().st_size <= written_by(writer):  # the writer, not the proxy, wrote
            assert time.monotonic() < deadline, "the writer process did not write the flows"
            time.sleep(0.05)
        os.kill(writer, signal.SIGSTOP)
        try:
            for i in range(20, 40):
                s.get(f"https://a.example/{i}").raise_for_status()
            time.sleep(0.5)  # the proxy's next loop turn: the last flow is handed over too
            proc.kill()
            proc.wait(timeout=10)
        finally:
            os.kill(writer, signal.SIGCONT)
    deadline = time.monotonic() + 30  # ... both end with the proxy, also after kill -9
    while not all(exited(pid) for pid in workers):
        assert time.monotonic() < deadline, "a child process outlived the proxy"
        time.sleep(0.05)
    report = SourceReport(path="x")
    flows = list(iter_flows(dump, report))
    assert [f.request.path for f in flows] == [f"/{i}" for i in range(40)]
    assert not report.warnings
