"""Recorder addon unit behaviour with mitmproxy's test harness (real FlowWriter, real files)."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import stat
import time
from pathlib import Path

import pytest
from mitmproxy import io
from mitmproxy.test import taddons, tflow

from phonehome.addons import recorder as recorder_mod
from phonehome.analysis.records import SourceReport
from phonehome.analysis.sources.mitm import iter_flows
from tests.support_proxy import run_async


def record_after_restart(tmp_path: Path, session: str):
    """A new recorder on an existing session records one flow (and is done); returns the flow."""
    r = recorder_mod.Recorder()
    with taddons.context(r) as tctx:
        tctx.configure(r, phonehome_dir=str(tmp_path), phonehome_session=session)
        f = tflow.tflow(resp=True)
        r.request(f)
        r.response(f)
        r.done()
    return f


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
    record_after_restart(tmp_path, "s1")
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
        marker.request.headers["Accept"] = "text/html"  # a page load (markers/navigation_problem)
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


def test_is_marker_agrees_with_pretty_host() -> None:
    cases = [
        ("phonehome.mark", None, None, True),
        ("10.0.0.1", "PhoneHome.Mark:80", None, True),  # transparent / WireGuard: only the Host header
        ("10.0.0.1", None, "phonehome.mark:443", True),  # HTTP/2 :authority
        ("x.phonehome.mark", None, None, False),
        ("phonehome.mark.evil.example", None, None, False),
        ("10.0.0.1", "example.com", None, False),
        ("10.0.0.1", None, None, False),
    ]
    for host, host_header, authority, expected in cases:
        f = tflow.tflow()
        f.request.host = host
        f.request.headers.pop("Host", None)
        if host_header:
            f.request.headers["Host"] = host_header
        if authority:
            f.request.http_version = "HTTP/2.0"
            f.request.authority = authority
        assert recorder_mod.is_marker(f.request) is expected, (host, host_header, authority)
        assert (f.request.pretty_host.lower() == recorder_mod.MARKER_HOST) is expected


@run_async
async def test_disk_full_stops_recording_but_not_traffic(tmp_path: Path, caplog, monkeypatch) -> None:
    r = recorder_mod.Recorder()
    with taddons.context(r) as tctx:
        tctx.configure(r, phonehome_dir=str(tmp_path), phonehome_session="full")
        ok = tflow.tflow(resp=True)
        r.request(ok)
        r.response(ok)
        await asyncio.sleep(0)  # written on the loop's next turn
        real_write = os.write

        def half_then_full(fd: int, data) -> int:  # the disk fills up in the middle of a flow
            monkeypatch.setattr(os, "write", full)
            return real_write(fd, bytes(data[: len(data) // 2]))

        def full(fd: int, data) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "write", half_then_full)
        bad = tflow.tflow(resp=True)
        r.request(bad)
        r.response(bad)  # must not raise
        await asyncio.sleep(0)
        monkeypatch.setattr(os, "write", real_write)
        assert r.failed and "No space left" in r.failed
        assert "RECORDING STOPPED" in caplog.text
        later = tflow.tflow(resp=True)
        r.request(later)
        r.response(later)  # recording stays stopped
        r.done()
    # the half-written flow was cut off again: the dump is intact, a restart appends cleanly
    report = SourceReport(path="x")
    assert [f.id for f in iter_flows(tmp_path / "full" / "flows.mitm", report)] == [ok.id]
    assert not report.warnings
    again = record_after_restart(tmp_path, "full")
    report = SourceReport(path="x")
    assert [f.id for f in iter_flows(tmp_path / "full" / "flows.mitm", report)] == [ok.id, again.id]
    assert not report.warnings


@pytest.mark.parametrize("writer_process", [False, True], ids=["in-proxy", "writer-process"])
@run_async
async def test_real_full_device_stops_recording(
    tmp_path: Path, caplog, writer_process: bool, monkeypatch
) -> None:
    """ENOSPC stops recording loudly, whether the proxy writes or the writer process does (its
    error comes back with the next flow handed over)."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    # the dump's descriptor is swapped for /dev/full below; the watch would (rightly) take that for
    # a replaced flows.mitm and resume in a fresh one
    monkeypatch.setattr(recorder_mod, "CHECK_EVERY", 3600)
    r = recorder_mod.Recorder()
    with taddons.context(r) as tctx:
        tctx.configure(r, phonehome_dir=str(tmp_path), phonehome_session="devfull")
        os.close(r.fd)
        r.fd = os.open("/dev/full", os.O_WRONLY)  # every write fails with ENOSPC
        if writer_process:
            r.running()
            assert r.writer is not None
        deadline = time.monotonic() + 30
        while not r.failed:
            assert time.monotonic() < deadline, "the write error never stopped recording"
            f = tflow.tflow(resp=True)
            r.request(f)
            r.response(f)  # must not raise
            await asyncio.sleep(0.02)
        assert "No space left" in r.failed
        assert "RECORDING STOPPED" in caplog.text
        r.done()


def test_unserialisable_metadata_skips_only_that_flow(tmp_path: Path, caplog) -> None:
    async def go() -> None:
        r = recorder_mod.Recorder()
        with taddons.context(r) as tctx:
            tctx.configure(r, phonehome_dir=str(tmp_path), phonehome_session="meta")
            bad = tflow.tflow(resp=True)
            bad.metadata["other_addon"] = object()
            r.request(bad)
            r.response(bad)  # logged, not raised
            good = tflow.tflow(resp=True)
            r.request(good)
            r.response(good)
            assert not r.failed
            r.done()
        assert [f.id for f in read_flows(tmp_path / "meta" / "flows.mitm")] == [good.id]
        assert "not recorded" in caplog.text

    asyncio.run(go())


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
    from phonehome.addons import inspector

    f = tflow.tflow(resp=True)
    f.request.host = "sa.api.intl.miui.com"
    f.request.path = "/sa?project=x&url=https%3A%2F%2Fexample.org%2Fsecret-page&android_id=9774d56d682e549c"
    inspector.Inspector().response(f)
    broken = tflow.tflow(resp=True)
    broken.request = None  # type: ignore[assignment]
    inspector.Inspector().response(broken)  # swallowed
    assert f.marked and "phonehome:" in f.comment
