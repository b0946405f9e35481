"""No silent loss: a deleted capture directory, a broken session.json, a second proxy, the umask."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest
import requests
from mitmproxy import io
from mitmproxy.test import taddons, tflow

from phonehome.addons import recorder as recorder_mod
from phonehome.analysis.records import SourceReport
from phonehome.analysis.sources.mitm import iter_flows
from tests.support_proxy import MITMDUMP, ROOT, free_port, mitmdump, run_async, tls_upstream

RECORDER = ROOT / "addons" / "recorder.py"
REDIRECT = ROOT / "tests" / "support_redirect_addon.py"
TYPED = {"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}


def read_paths(path: Path) -> list[str]:
    report = SourceReport(path=str(path))
    paths = [f.request.path for f in iter_flows(path, report)]
    assert not report.warnings, report.warnings
    return paths


def finished(r: recorder_mod.Recorder, path: str):
    f = tflow.tflow(resp=True)
    f.request.path = path
    r.request(f)
    r.response(f)
    return f


async def settled(r: recorder_mod.Recorder, count: int) -> None:
    """Wait until `count` flows are on disk (the writer process confirms what it wrote)."""
    deadline = time.monotonic() + 30
    while True:
        await asyncio.sleep(0.01)
        if r.writer is None:
            return
        r.writer.poll()
        if r.writer.confirmed_count >= count:
            return
        assert time.monotonic() < deadline, "the writer never confirmed"


@pytest.mark.parametrize("writer_process", [False, True], ids=["in-proxy", "writer-process"])
@run_async
async def test_deleted_directory_is_reported_recovered_and_recreated(
    tmp_path: Path, caplog, writer_process: bool
) -> None:
    r = recorder_mod.Recorder()
    with taddons.context(r) as tctx:
        tctx.configure(
            r, phonehome_dir=str(tmp_path), phonehome_session="d", phonehome_record_worker=writer_process
        )
        r.running()
        for i in range(5):
            finished(r, f"/before/{i}")
        await settled(r, 5)
        r.check_capture()  # the periodic check: all in place, and on disk
        shutil.rmtree(tmp_path / "d")
        for i in range(5):  # these go into the deleted (unlinked) file ...
            finished(r, f"/gone/{i}")
            await asyncio.sleep(0.01)
        r.check_capture()  # ... noticed, recovered, written to the recreated directory
        assert "RECORDING STOPPED" in caplog.text and "was deleted" in caplog.text
        assert "RECORDING RESUMED" in caplog.text
        for i in range(5):
            finished(r, f"/after/{i}")
        r.done()
    assert read_paths(tmp_path / "d" / "flows.mitm") == [f"/gone/{i}" for i in range(5)] + [
        f"/after/{i}" for i in range(5)
    ]
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o700
    assert json.loads((tmp_path / "d" / "session.json").read_text())["phases"]  # rewritten too


@run_async
async def test_a_directory_that_cannot_be_recreated_stops_loudly_and_counts_then_resumes(
    tmp_path: Path, caplog, monkeypatch
) -> None:
    monkeypatch.setattr(recorder_mod, "CHECK_EVERY", 3600)  # checks are called by hand here
    r = recorder_mod.Recorder()
    with taddons.context(r) as tctx:
        tctx.configure(r, phonehome_dir=str(tmp_path / "base"), phonehome_session="c")
        r.running()
        finished(r, "/0")
        await settled(r, 1)
        r.check_capture()
        shutil.rmtree(tmp_path / "base")
        (tmp_path / "base").write_text("a file where the directory was")  # mkdir must fail
        r.check_capture()
        assert r.failed and "cannot recreate" in r.failed
        for i in range(3):
            finished(r, f"/lost/{i}")  # proxied, not recorded: counted and said
        (tmp_path / "base").unlink()
        r.check_capture()
        assert not r.failed
        assert "3 finished flows were NOT recorded" in caplog.text
        finished(r, "/1")
        r.done()
    assert read_paths(tmp_path / "base" / "c" / "flows.mitm") == ["/1"]


def test_second_proxy_on_a_session_is_refused_and_umask_does_not_open_directories(tmp_path: Path) -> None:
    async def go() -> None:
        first, second = recorder_mod.Recorder(), recorder_mod.Recorder()
        old = os.umask(0)
        try:
            with taddons.context(first) as t1:
                t1.configure(first, phonehome_dir=str(tmp_path / "a" / "b"), phonehome_session="s")
                with taddons.context(second) as t2:
                    t2.configure(second, phonehome_dir=str(tmp_path / "a" / "b"), phonehome_session="s")
                    assert second.failed and "another proxy" in second.failed
                    assert str(os.getpid()) in second.failed
                    finished(second, "/second")  # never written
                    second.done()
                finished(first, "/first")
                first.done()
        finally:
            os.umask(old)
        for d in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "s"):
            assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
        assert read_paths(tmp_path / "a" / "b" / "s" / "flows.mitm") == ["/first"]

    asyncio.run(go())


def test_second_mitmdump_on_a_session_exits_with_a_clear_message(tmp_path: Path) -> None:
    opts = ["--set", f"phonehome_dir={tmp_path / 'caps'}", "--set", "phonehome_session=same"]
    with mitmdump(tmp_path / "conf", 0, [RECORDER], opts):
        cmd = [str(MITMDUMP), "--listen-host", "127.0.0.1", "-p", str(free_port()), "-s", str(RECORDER)]
        second = subprocess.run(cmd + opts, capture_output=True, text=True, timeout=60)
    assert second.returncode != 0
    assert "is being recorded by another proxy" in second.stdout + second.stderr
    assert "Traceback" not in second.stdout + second.stderr


def test_live_deleted_directory_and_broken_session_json_lose_no_flow(tmp_path: Path) -> None:
    """Real mitmdump, real TLS, the writer process on: every flow that finished after the capture
    directory was deleted is in the recreated dump, also with session.json unwritable."""
    confdir, out = tmp_path / "conf", tmp_path / "caps"
    opts = [
        "--set",
        f"phonehome_dir={out}",
        "--set",
        "phonehome_session=live",
        "--set",
        "termlog_verbosity=warn",
    ]
    with (
        tls_upstream(tmp_path) as up,
        mitmdump(confdir, up, [RECORDER, REDIRECT], opts, quiet=False) as (port, proc),
        requests.Session() as s,
    ):
        s.trust_env = False
        s.proxies = {"http": f"http://127.0.0.1:{port}", "https": f"http://127.0.0.1:{port}"}
        s.verify = str(confdir / "mitmproxy-ca-cert.pem")
        for i in range(50):
            s.get(f"https://a.example/{i}").raise_for_status()
        shutil.rmtree(out / "live")
        for i in range(50, 200):
            s.get(f"https://a.example/{i}").raise_for_status()
        deadline = time.monotonic() + 30
        while not (out / "live" / "session.json").exists():
            assert time.monotonic() < deadline, "the capture directory was not recreated"
            time.sleep(0.05)
        (out / "live" / "session.json").unlink()
        (out / "live" / "session.json").mkdir()  # session.json cannot be written any more
        s.get("http://phonehome.mark/mode/incognito", headers={"Accept": "text/html"}).raise_for_status()
        for i in range(200, 250):
            s.get(f"https://a.example/{i}").raise_for_status()
        proc.send_signal(signal.SIGINT)
        log = proc.communicate(timeout=30)[0]
    paths = read_paths(out / "live" / "flows.mitm")
    numbers = [int(p.strip("/")) for p in paths]
    assert len(numbers) == len(set(numbers))  # none twice
    assert set(range(50, 250)) <= set(numbers)  # nothing after the deletion lost
    assert "RECORDING STOPPED" in log and "was deleted" in log and "RECORDING RESUMED" in log
    assert "Flows are still recorded" in log  # the session.json failure, reported
    with (out / "live" / "flows.mitm").open("rb") as fo:
        modes = {f.request.path: f.metadata["phonehome"]["mode"] for f in io.FlowReader(fo).stream()}
    assert modes["/199"] == "normal" and modes["/200"] == "incognito"
