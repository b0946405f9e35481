"""Markers change labels only on the user's own navigation, bounded, normalised and logged."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from pathlib import Path

import pytest
import requests
from mitmproxy import exceptions, io
from mitmproxy.test import taddons, tflow

from phonehome.addons import markers
from phonehome.addons import recorder as recorder_mod
from tests.support_proxy import ROOT, mitmdump, run_async, tls_upstream

RECORDER = ROOT / "addons" / "recorder.py"
REDIRECT = ROOT / "tests" / "support_redirect_addon.py"

TYPED = {"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
PAGE_IMAGE = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"}
PLAIN_HTTP_PAGE_LOAD = {
    "Accept": "text/html,application/xhtml+xml,*/*;q=0.8",
    "Upgrade-Insecure-Requests": "1",
}


def marker(path: str, headers: dict[str, str]):
    f = tflow.tflow()
    f.request.host = "phonehome.mark"
    f.request.path = path
    for k, v in headers.items():
        f.request.headers[k] = v
    return f


def read_flows(path: Path) -> list:
    with path.open("rb") as fo:
        return list(io.FlowReader(fo).stream())


@pytest.mark.parametrize(
    "headers, changes",
    [
        (TYPED, True),
        ({**TYPED, "Sec-Fetch-Site": "same-origin"}, True),  # a link on the marker page itself
        (PLAIN_HTTP_PAGE_LOAD, True),
        (PAGE_IMAGE, False),
        ({**TYPED, "Sec-Fetch-Site": "cross-site"}, False),  # a link on someone else's page
        ({**TYPED, "Sec-Fetch-Site": "same-site"}, False),
        ({**TYPED, "Sec-Fetch-Dest": "iframe"}, False),
        ({"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}, False),  # fetch()
        ({"Accept": "image/avif,image/webp,*/*"}, False),  # an <img> from an old browser / over http
        ({"Accept": "*/*"}, False),  # a script
        ({**PLAIN_HTTP_PAGE_LOAD, "Referer": "http://evil.example/page"}, False),
        ({**PLAIN_HTTP_PAGE_LOAD, "Referer": "http://phonehome.mark/"}, True),
    ],
)
@run_async
async def test_only_the_users_own_navigation_changes_labels(headers, changes, tmp_path: Path) -> None:
    r = recorder_mod.Recorder()
    with taddons.context(r) as tctx:
        tctx.configure(r, phonehome_dir=str(tmp_path), phonehome_session="n")
        f = marker("/mode/incognito", headers)
        r.requestheaders(f)
        r.request(f)
        assert f.response is not None
        assert (r.labels["mode"] == "incognito") is changes
        assert (f.response.status_code == 200) is changes
        assert b"/mode/normal" in f.response.content  # the page links the valid markers either way
        r.done()
    phases = json.loads((tmp_path / "n" / "session.json").read_text())["phases"]
    assert [p["mode"] for p in phases] == (["normal", "incognito"] if changes else ["normal"])


@run_async
async def test_unknown_paths_and_bad_values_are_refused_with_the_valid_links(tmp_path: Path, caplog) -> None:
    r = recorder_mod.Recorder()
    with taddons.context(r) as tctx:
        tctx.configure(r, phonehome_dir=str(tmp_path), phonehome_session="u", phonehome_app="com.x")
        for path, status in [
            ("/evil/x", 404),
            ("/mode", 404),
            ("/mode/a/b", 404),
            ("/mode/" + "x" * 60_000, 400),
            ("/app/%00evil", 400),
            ("/mode/%3Cscript%3Ealert(1)%3C%2Fscript%3E", 400),
        ]:
            f = marker(path, TYPED)
            r.request(f)
            assert f.response.status_code == status, path
            page = f.response.text
            assert '<a href="/mode/incognito">' in page and 'content="width=device-width' in page
            assert "<script>" not in page and len(page) < 4000, path
        assert r.labels["mode"] == "normal" and r.labels["app"] == "com.x"
        status = marker("/", TYPED)
        r.request(status)
        assert status.response.status_code == 200 and "com.x" in status.response.text
        r.done()
    assert "not a marker path" in caplog.text


@run_async
async def test_values_are_normalised_warned_and_every_change_logged(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO)
    r = recorder_mod.Recorder()
    with taddons.context(r) as tctx:
        tctx.configure(r, phonehome_dir=str(tmp_path), phonehome_session="v", phonehome_mode="Private")
        assert r.labels["mode"] == "incognito"  # options go through the same vocabulary
        for path in (
            "/mode/Normal%20",
            "/mode/Incognito%20Tab",
            "/mode/Incognito-OptOut",
            "/app/%20com.y%20",
        ):
            f = marker(path, TYPED)
            r.request(f)
            assert f.response.status_code == 200, path
        assert r.labels["mode"] == "incognito-optout" and r.labels["app"] == "com.y"
        assert "unknown mode 'incognito-optout'" in caplog.text
        assert caplog.text.count("labels changed by marker from") == 4
        tctx.master.commands.execute("phonehome.mode PRIVATE")
        assert r.labels["mode"] == "incognito" and "by command phonehome.mode" in caplog.text
        with pytest.raises(exceptions.CommandError):
            tctx.master.commands.execute("phonehome.phase " + "p" * 100)
        with pytest.raises(exceptions.OptionsError, match="phonehome_mode"):
            tctx.configure(r, phonehome_mode="%00")
        r.done()


@run_async
async def test_session_json_is_written_off_the_loop_and_stays_current(tmp_path: Path) -> None:
    r = recorder_mod.Recorder()
    with taddons.context(r) as tctx:
        tctx.configure(r, phonehome_dir=str(tmp_path), phonehome_session="s")
        for i in range(300):
            f = marker(f"/phase/{'p' * 50}{i}", TYPED)
            r.request(f)
        writes = r.session_file.writes
        assert writes < 300  # changes that came while a write ran were coalesced
        # the writer's own completion signal: set once nothing is left to write; then the file
        # must hold the newest state (a change handed over while a write ran is never lost)
        assert await asyncio.to_thread(r.session_file.idle.wait, 60), "session.json writer never finished"
        phases = json.loads((tmp_path / "s" / "session.json").read_text())["phases"]
        assert phases[-1]["phase"] == "p" * 50 + "299" and len(phases) == 301
        r.done()
    assert len(json.loads((tmp_path / "s" / "session.json").read_text())["phases"]) == 301


@run_async
async def test_a_session_json_failure_never_stops_flow_recording(tmp_path: Path, caplog) -> None:
    r = recorder_mod.Recorder()
    with taddons.context(r) as tctx:
        tctx.configure(r, phonehome_dir=str(tmp_path), phonehome_session="ro")
        await asyncio.sleep(0.1)
        (tmp_path / "ro" / "session.json").unlink()
        (tmp_path / "ro" / "session.json").mkdir()  # no file can be renamed over it now
        flows = []
        for i in range(20):
            f = tflow.tflow(resp=True)
            r.request(f)
            r.response(f)
            flows.append(f)
            if i == 5:
                r.request(marker("/mode/incognito", TYPED))
            await asyncio.sleep(0.01)
        assert not r.failed
        r.done()
    assert "cannot write" in caplog.text and "Flows are still recorded" in caplog.text
    got = read_flows(tmp_path / "ro" / "flows.mitm")
    assert [f.id for f in got] == [f.id for f in flows]
    assert [f.metadata["phonehome"]["mode"] for f in got] == ["normal"] * 6 + ["incognito"] * 14


def test_marker_page_escapes_labels() -> None:
    page = markers.page(
        "t", "<b>m</b>", {"session": "<s>", "app": '"><img src=x>', "mode": "normal"}
    ).decode()
    assert "<img" not in page and "<b>m</b>" not in page and "&lt;s&gt;" in page


def test_live_cross_site_marker_changes_nothing_and_a_typed_one_labels(tmp_path: Path) -> None:
    """Real mitmdump, real TLS: https markers carry fetch metadata; plain http ones do not."""
    confdir, out = tmp_path / "conf", tmp_path / "caps"
    opts = ["--set", f"phonehome_dir={out}", "--set", "phonehome_session=live"]
    with tls_upstream(tmp_path) as up, mitmdump(confdir, up, [RECORDER, REDIRECT], opts) as (port, proc):
        with requests.Session() as s:
            s.trust_env = False
            s.proxies = {"http": f"http://127.0.0.1:{port}", "https": f"http://127.0.0.1:{port}"}
            s.verify = str(confdir / "mitmproxy-ca-cert.pem")
            s.get("https://a.example/1").raise_for_status()
            r = s.get("https://phonehome.mark/mode/Incognito", headers=TYPED)
            assert r.status_code == 200 and "incognito" in r.text
            s.get("https://a.example/2").raise_for_status()
            r = s.get("https://phonehome.mark/mode/normal", headers=PAGE_IMAGE)  # a page's image
            assert r.status_code == 403
            r = s.get("http://phonehome.mark/mode/normal", headers={"Accept": "image/*"})  # over http
            assert r.status_code == 403
            r = s.get("http://phonehome.mark/nope", headers=PLAIN_HTTP_PAGE_LOAD)
            assert r.status_code == 404 and "/mode/incognito" in r.text
            s.get("https://a.example/3").raise_for_status()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    flows = read_flows(out / "live" / "flows.mitm")
    assert [f.request.path for f in flows] == ["/1", "/2", "/3"]  # markers are never app traffic
    assert [f.metadata["phonehome"]["mode"] for f in flows] == ["normal", "incognito", "incognito"]
    assert os.stat(out / "live" / "session.json").st_size < 10_000
