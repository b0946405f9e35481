"""Recorder addon unit behaviour with mitmproxy's test harness (real FlowWriter, real files)."""

from __future__ import annotations

import asyncio
import errno
import functools
import json
import stat
import sys
from pathlib import Path

from mitmproxy import io
from mitmproxy.test import taddons, tflow

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "addons"))
import recorder as recorder_mod

from analysis.records import SourceReport
from analysis.sources.mitm import iter_flows


def run_async(fn):
    """Run an async test on a fresh event loop (no pytest-asyncio in the project)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


def read_flows(path: Path) -> list:
    with path.open("rb") as fo:
        return list(io.FlowReader(fo).stream())


@run_async
async def test_flows_are_labelled_and_appended(tmp_path: Path) -> None:
    r = recorder_mod.Recorder()
    with taddons.context(r) as tctx:
        tctx.configure(r, phonehome_dir=str(tmp_path), phonehome_session="s1", phonehome_app="com.x")
        f = tflow.tflow(resp=True)
        r.request(f)
        r.response(f)
        r.done()
    dump = tmp_path / "s1" / "flows.mitm"
    flows = read_flows(dump)
    assert len(flows) == 1
    assert flows[0].metadata["phonehome"] == {
        "session": "s1",
        "app": "com.x",
        "mode": "normal",
        "phase": None,
    }
    assert stat.S_IMODE(dump.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "s1").stat().st_mode) == 0o700
    # restart with the same session appends
    r2 = recorder_mod.Recorder()
    with taddons.context(r2) as tctx:
        tctx.configure(r2, phonehome_dir=str(tmp_path), phonehome_session="s1")
        f = tflow.tflow(resp=True)
        r2.request(f)
        r2.response(f)
        r2.done()
    assert len(read_flows(dump)) == 2
    doc = json.loads((tmp_path / "s1" / "session.json").read_text())
    assert doc["schema"] == 1 and doc["session"] == "s1"
    assert len(doc["phases"]) >= 2 and all(p["end"] for p in doc["phases"])
    assert doc["tool"]["mitmproxy"]


@run_async
async def test_markers_switch_labels_and_are_not_forwarded(tmp_path: Path) -> None:
    r = recorder_mod.Recorder()
    with taddons.context(r) as tctx:
        tctx.configure(r, phonehome_dir=str(tmp_path), phonehome_session="m")
        marker = tflow.tflow()
        marker.request.host = "phonehome.mark"
        marker.request.path = "/mode/incognito"
        r.requestheaders(marker)
        r.request(marker)
        assert marker.response is not None and marker.response.status_code == 200
        assert b"incognito" in marker.response.content
        r.response(marker)
        f = tflow.tflow(resp=True)
        r.request(f)
        r.response(f)
        tctx.master.commands.execute("phonehome.phase search")
        g = tflow.tflow(resp=True)
        r.request(g)
        r.response(g)
        r.done()
    flows = read_flows(tmp_path / "m" / "flows.mitm")
    assert [fl.metadata["phonehome"]["mode"] for fl in flows] == ["incognito", "incognito"]
    assert [fl.metadata["phonehome"]["phase"] for fl in flows] == [None, "search"]
    assert all(fl.request.host != "phonehome.mark" for fl in flows)
    phases = json.loads((tmp_path / "m" / "session.json").read_text())["phases"]
    assert [p["mode"] for p in phases] == ["normal", "incognito", "incognito"]


def test_parse_marker() -> None:
    assert recorder_mod.parse_marker("/app/com.mi.browser") == ("app", "com.mi.browser")
    assert recorder_mod.parse_marker("/") is None
    assert recorder_mod.parse_marker("/evil/x") is None
    assert recorder_mod.safe_name("../../etc") not in ("..", "")
    assert "/" not in recorder_mod.safe_name("../../etc")


@run_async
async def test_disk_full_stops_recording_but_not_traffic(tmp_path: Path, caplog) -> None:
    r = recorder_mod.Recorder()
    with taddons.context(r) as tctx:
        tctx.configure(r, phonehome_dir=str(tmp_path), phonehome_session="full")
        ok = tflow.tflow(resp=True)
        r.request(ok)
        r.response(ok)

        def full(_flow) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        r.writer.add = full  # inject the error at the write
        bad = tflow.tflow(resp=True)
        r.request(bad)
        r.response(bad)  # must not raise
        assert r.failed and "No space left" in r.failed
        assert "RECORDING STOPPED" in caplog.text
        r.done()
    report = SourceReport(path="x")
    assert len(list(iter_flows(tmp_path / "full" / "flows.mitm", report))) == 1


@run_async
async def test_tls_failure_becomes_event(tmp_path: Path) -> None:
    from mitmproxy import tls
    from mitmproxy.proxy import context

    r = recorder_mod.Recorder()
    with taddons.context(r) as tctx:
        tctx.configure(r, phonehome_dir=str(tmp_path), phonehome_session="pin", phonehome_app="com.pinned")
        client = tflow.tclient_conn()
        client.sni = "api.pinned.example"
        client.error = "client does not trust the proxy's certificate"
        ctx_ = context.Context(client, tctx.options)
        ctx_.server = tflow.tserver_conn()
        r.tls_failed_client(tls.TlsData(client, ctx_))
    events = [json.loads(line) for line in (tmp_path / "pin" / "events.jsonl").read_text().splitlines()]
    assert events[0]["type"] == "tls_failed"
    assert events[0]["host"] == events[0]["sni"] == "api.pinned.example"
    assert events[0]["labels"]["app"] == "com.pinned"
    assert "trust" in events[0]["error"]


def test_inspector_never_raises_and_marks_leaks() -> None:
    import inspector

    f = tflow.tflow(resp=True)
    f.request.host = "sa.api.intl.miui.com"
    f.request.path = "/sa?project=x&url=https%3A%2F%2Fexample.org%2Fsecret-page&android_id=9774d56d682e549c"
    inspector.Inspector().response(f)
    broken = tflow.tflow(resp=True)
    broken.request = None  # type: ignore[assignment]
    inspector.Inspector().response(broken)  # swallowed
    assert f.marked and "phonehome:" in f.comment
