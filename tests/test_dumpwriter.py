"""The recorder's writer process: same bytes as FlowWriter in the proxy, nothing lost when it dies."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
from mitmproxy import certs
from mitmproxy.test import taddons, tflow

from phonehome.addons import dumpwriter
from phonehome.addons import recorder as recorder_mod
from phonehome.analysis.records import SourceReport
from phonehome.analysis.sources.mitm import iter_flows
from tests.support_proxy import run_async, self_signed

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the writer process is POSIX-only")


def flows_with_certificates(tmp_path: Path, n: int) -> list:
    """Flows as a TLS proxy holds them: server certificate, an intercepted-and-resumed flow."""
    cert = certs.Cert.from_pem(self_signed(tmp_path)[0].read_bytes())
    flows = []
    for i in range(n):
        f = tflow.tflow(resp=True)
        f.request.path = f"/{i}?android_id=9774d56d682e549c"
        f.server_conn.certificate_list = [cert]
        f.metadata["phonehome"] = {"session": "w", "app": None, "mode": "normal", "phase": None}
        flows.append(f)
    flows[0].intercept()
    flows[0].resume()
    return flows


def read_ids(path: Path) -> list[str]:
    report = SourceReport(path=str(path))
    ids = [f.id for f in iter_flows(path, report)]
    assert not report.warnings, report.warnings
    return ids


def test_writer_process_writes_exactly_what_flowwriter_writes(tmp_path: Path) -> None:
    flows = flows_with_certificates(tmp_path, 20)
    expected = b"".join(dumpwriter.flow_bytes(f) for f in flows)
    path = tmp_path / "flows.mitm"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        writer = dumpwriter.DumpWriter(path, fd, pytest.fail)
        assert all(writer.submit(f.id, dumpwriter.pickle_flow(f)) for f in flows)
        writer.close()
        assert not writer.unconfirmed and writer.confirmed_count == 20
    finally:
        os.close(fd)
    assert path.read_bytes() == expected


def test_a_flow_too_large_to_hand_over_is_left_to_the_caller(tmp_path: Path) -> None:
    path = tmp_path / "flows.mitm"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        writer = dumpwriter.DumpWriter(path, fd, pytest.fail)
        big = tflow.tflow(resp=True)
        big.request.content = os.urandom(dumpwriter.MAX_MESSAGE)
        assert not writer.submit(big.id, dumpwriter.pickle_flow(big))
        writer.close()
    finally:
        os.close(fd)
    assert path.read_bytes() == b""


def test_flows_a_dead_writer_had_not_written_are_written_by_the_proxy(tmp_path: Path, caplog) -> None:
    flows = flows_with_certificates(tmp_path, 12)
    path = tmp_path / "flows.mitm"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        writer = dumpwriter.DumpWriter(path, fd, pytest.fail)
        for f in flows[:4]:
            assert writer.submit(f.id, dumpwriter.pickle_flow(f))
        deadline = time.monotonic() + 30
        while writer.confirmed_count < 4:  # written and confirmed
            assert time.monotonic() < deadline
            time.sleep(0.01)
            writer.poll()
        writer.proc.send_signal(signal.SIGSTOP)  # the writer stops reading ...
        for f in flows[4:]:
            assert writer.submit(f.id, dumpwriter.pickle_flow(f))
        # ... as if it had written two more flows and died in the middle of a third
        os.write(fd, dumpwriter.flow_bytes(flows[4]) + dumpwriter.flow_bytes(flows[5]))
        os.write(fd, dumpwriter.flow_bytes(flows[6])[:100])
        writer.proc.send_signal(signal.SIGKILL)
        writer.proc.wait()
        writer.poll()  # notices, reads the tail back, writes what is missing
        assert not writer.alive
        later = tflow.tflow(resp=True)
        assert not writer.submit(later.id, dumpwriter.pickle_flow(later))  # caller writes from now on
    finally:
        os.close(fd)
    assert read_ids(path) == [f.id for f in flows]  # each once, in order, the cut record gone
    assert "writes flows itself" in caplog.text and "6 it had not written" in caplog.text


def recorder_with_writer(tmp_path: Path, session: str, tctx) -> recorder_mod.Recorder:
    r = tctx.master.addons.get("recorder")
    tctx.configure(r, phonehome_dir=str(tmp_path), phonehome_session=session)
    r.running()
    assert r.writer is not None and r.writer.alive
    return r


@run_async
async def test_recorder_hands_flows_to_the_writer_process(tmp_path: Path) -> None:
    r = recorder_mod.Recorder()
    with taddons.context(r) as tctx:
        recorder_with_writer(tmp_path, "w", tctx)
        flows = flows_with_certificates(tmp_path, 30)
        big = tflow.tflow(resp=True)
        big.response.content = b"x" * (2 * dumpwriter.MAX_MESSAGE)  # written by the proxy itself
        for f in [*flows[:10], big, *flows[10:]]:
            r.request(f)
            r.response(f)
        assert r.written == 0 and len(r.queued) == 31  # the hooks return before any serialising ...
        await asyncio.sleep(0)
        assert r.written == 31  # ... which happens on the event loop's next turn
        writer = r.writer
        r.done()
        assert writer.proc.returncode == 0
    ids = read_ids(tmp_path / "w" / "flows.mitm")
    assert sorted(ids) == sorted([f.id for f in flows] + [big.id])
    assert [i for i in ids if i != big.id] == [f.id for f in flows]  # the writer keeps their order


@run_async
async def test_writer_can_be_turned_off(tmp_path: Path) -> None:
    r = recorder_mod.Recorder()
    with taddons.context(r) as tctx:
        tctx.configure(r, phonehome_dir=str(tmp_path), phonehome_session="off", phonehome_record_worker=False)
        r.running()
        assert r.writer is None
        f = tflow.tflow(resp=True)
        r.request(f)
        r.response(f)
        r.done()
    assert read_ids(tmp_path / "off" / "flows.mitm") == [f.id]
