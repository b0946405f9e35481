"""The recorder's writer process: same bytes as FlowWriter in the proxy, nothing lost when it dies."""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import sys
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from mitmproxy import certs
from mitmproxy.test import taddons, tflow

from phonehome.addons import dumpwriter, flowpickle
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


def connections_that_change(tmp_path: Path) -> Iterator:
    """Flows over shared keep-alive connections, yielded one by one as they finish, whose
    connections change between flows in every way one can: replaced values, a list changed in
    place, a value that is not immutable (changed in place too), a new certificate list, closing."""
    cert = certs.Cert.from_pem(self_signed(tmp_path)[0].read_bytes())
    first, second = tflow.tflow(resp=True), tflow.tflow(resp=True)
    first.server_conn.certificate_list = [cert]
    first.client_conn.alpn_offers = [b"http/1.1"]
    n = 0

    def on(base):
        nonlocal n
        f = tflow.tflow(resp=True)
        f.client_conn, f.server_conn = base.client_conn, base.server_conn
        f.request.path = f"/{n}"
        n += 1
        return f

    for _ in range(5):
        yield on(first)
    first.client_conn.alpn_offers.append(b"h2")  # in place
    yield on(first)
    yield on(first)
    first.server_conn.certificate_list = [cert, cert]
    yield on(first)
    first.server_conn.tls_version = "TLSv1.1"
    yield on(second)
    yield on(first)
    second.client_conn.__dict__["extra"] = {"mutable": [1]}  # never remembered: sent whole each time
    yield on(second)
    second.client_conn.__dict__["extra"]["mutable"].append(2)
    yield on(second)
    first.server_conn.timestamp_end = 1_000_000_001.5
    first.client_conn.tls = not first.client_conn.tls
    yield on(first)
    yield on(first)


def open_dump(tmp_path: Path) -> tuple[Path, int]:
    path = tmp_path / "flows.mitm"
    return path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)


def test_connections_sent_once_are_written_exactly_as_flowwriter_writes(tmp_path: Path) -> None:
    """A connection the writer holds unchanged travels as a reference; the dump is still exactly
    what FlowWriter makes of each flow as it was when handed over."""
    path, fd = open_dump(tmp_path)
    expected, full, sent, refs_sent = [], [], [], []
    try:
        writer = dumpwriter.DumpWriter(path, fd, pytest.fail)
        for f in connections_that_change(tmp_path):
            expected.append(dumpwriter.flow_bytes(f))
            full.append(len(dumpwriter.pickle_flow(f)))
            before = writer.unconfirmed[-1][1] if writer.unconfirmed else b""
            assert writer.submit_flow(f)
            assert writer.unconfirmed[-1][1] is not before
            sent.append(len(writer.unconfirmed[-1][1]))
            refs_sent.append(writer.unconfirmed[-1][2])
        writer.close()
        assert not writer.unconfirmed and writer.confirmed_count == len(expected)
    finally:
        os.close(fd)
    assert path.read_bytes() == b"".join(expected)
    referenced = [len(refs) for refs in refs_sent]
    assert referenced == [0, 2, 2, 2, 2, 1, 2, 1, 0, 1, 1, 1, 0, 2]  # a change is never referenced
    assert sent[1] < full[1] / 2  # the second flow on a connection: both connections referenced


def test_many_connections_age_out_alike_on_both_sides(tmp_path: Path) -> None:
    flows = [tflow.tflow(resp=True) for _ in range(flowpickle.LIMIT + 50)]
    again = []
    for f in (flows[0], flows[-1], flows[10]):  # aged out, remembered, aged out
        g = tflow.tflow(resp=True)
        g.client_conn, g.server_conn = f.client_conn, f.server_conn
        again.append(g)
    path, fd = open_dump(tmp_path)
    try:
        writer = dumpwriter.DumpWriter(path, fd, pytest.fail)
        for f in [*flows, *again]:
            assert writer.submit_flow(f)
        writer.close()
    finally:
        os.close(fd)
    assert path.read_bytes() == b"".join(dumpwriter.flow_bytes(f) for f in [*flows, *again])


def test_flows_with_references_are_recovered_when_the_writer_dies(tmp_path: Path) -> None:
    """What the dead writer had not written is rebuilt in the proxy from the snapshots the
    references were sent with, not from the connections as they are by then."""
    flows = list(connections_that_change(tmp_path))
    path, fd = open_dump(tmp_path)
    try:
        writer = dumpwriter.DumpWriter(path, fd, pytest.fail)
        writer.proc.send_signal(signal.SIGSTOP)  # nothing gets written by the writer
        expected = []
        for f in connections_that_change(tmp_path):
            expected.append(dumpwriter.flow_bytes(f))
            assert writer.submit_flow(f)
        del flows
        writer.proc.send_signal(signal.SIGKILL)
        writer.proc.wait()
        writer.poll()
        assert not writer.alive
    finally:
        os.close(fd)
    assert path.read_bytes() == b"".join(expected)


def test_a_flow_the_writer_cannot_unpickle_is_written_by_the_proxy(tmp_path: Path) -> None:
    """A class only the proxy can import (e.g. a script's) on a flow: the writer says so, the proxy
    writes that flow itself; nothing is lost."""
    module = types.ModuleType("phonehome_only_in_this_process")
    exec("class Thing:\n    pass", module.__dict__)
    module.Thing.__module__ = module.__name__
    sys.modules[module.__name__] = module
    try:
        flows = flows_with_certificates(tmp_path, 6)
        flows[2].__dict__["addon_state"] = module.Thing()  # not part of the dump, but pickled
        path, fd = open_dump(tmp_path)
        try:
            writer = dumpwriter.DumpWriter(path, fd, pytest.fail)
            for f in flows:
                assert writer.submit_flow(f)
            writer.close()
        finally:
            os.close(fd)
    finally:
        del sys.modules[module.__name__]
    assert sorted(read_ids(path)) == sorted(f.id for f in flows)
    records = path.read_bytes()
    for f in flows:
        assert records.count(dumpwriter.flow_bytes(f)) == 1


def test_a_failed_pickle_leaves_the_shared_pickler_and_the_table_as_they_were() -> None:
    memo = flowpickle.ConnectionMemo()
    bad, good = tflow.tflow(resp=True), tflow.tflow(resp=True)
    bad.metadata["lock"] = threading.Lock()  # not picklable: the recorder writes it with FlowWriter
    with pytest.raises(TypeError):
        memo.pickle(bad)
    assert not memo.sent
    message, refs, new = memo.pickle(good)
    assert message == flowpickle.ConnectionMemo().pickle(good)[0] and not refs and len(new) == 2
    assert dumpwriter.flow_bytes(flowpickle.load_message(message)) == dumpwriter.flow_bytes(good)


def test_a_message_unpickled_part_way_leaves_no_stale_connection_behind(tmp_path: Path) -> None:
    """The writer fails on a flow's client (a class only the proxy can import) before it rebuilds the
    flow's changed server; the next flow refers to that server: it must not be written with the
    state the writer held before (the writer forgets what it holds; the proxy writes such flows)."""
    module = types.ModuleType("phonehome_only_in_the_proxy")
    exec("class Thing:\n    pass", module.__dict__)
    module.Thing.__module__ = module.__name__
    sys.modules[module.__name__] = module
    try:
        first = tflow.tflow(resp=True)
        server = first.server_conn
        second, third = tflow.tflow(resp=True), tflow.tflow(resp=True)
        second.server_conn = third.server_conn = server
        second.client_conn.__dict__["addon_note"] = module.Thing()  # pickled before the server
        path, fd = open_dump(tmp_path)
        try:
            writer = dumpwriter.DumpWriter(path, fd, pytest.fail)
            assert writer.submit_flow(first)
            expected = [dumpwriter.flow_bytes(first)]
            server.tls_version = "TLSv1.1"  # changed: the second flow carries it in full
            assert writer.submit_flow(second)
            assert writer.submit_flow(third)  # unchanged since: a reference
            expected += [dumpwriter.flow_bytes(second), dumpwriter.flow_bytes(third)]
            writer.close()
        finally:
            os.close(fd)
    finally:
        del sys.modules[module.__name__]
    records = path.read_bytes()
    for f, data in zip((first, second, third), expected, strict=True):
        assert records.count(data) == 1, f.id


def test_two_objects_with_one_connection_id_in_a_message_resolve_to_their_own_state() -> None:
    """An addon may keep a copy of a connection (same id, the state before a change) inside the
    flow: it travels in full, not as a reference the writer would resolve to the changed one."""
    memo = flowpickle.ConnectionMemo()
    f = tflow.tflow(resp=True)
    message, _, new = memo.pickle(f)
    pickle.loads(message)  # as the writer process loads it: it now holds what the proxy sent
    memo.commit(new)
    old = type(f.server_conn).__new__(type(f.server_conn))
    old.__dict__.update(f.server_conn.__dict__)  # the state the writer holds, under the same id
    f.server_conn.tls_version = "TLSv1.1"
    f.metadata["kept"] = [f.server_conn, old]
    loaded = pickle.loads(memo.pickle(f)[0])
    changed, before = loaded.metadata["kept"]
    assert changed.tls_version == "TLSv1.1"
    assert before.__dict__ == old.__dict__


def test_a_connection_whose_comparison_raises_counts_as_changed() -> None:
    class Touchy:
        def __eq__(self, other):
            raise AttributeError("no fingerprint")

    known = ({"a": Touchy()}, (Touchy,))
    assert flowpickle.unchanged(known, {"a": Touchy()}) is False


def test_a_flow_the_writer_cannot_serialise_still_gets_its_summary(tmp_path: Path) -> None:
    """Picklable but not writable (another addon's set in metadata): not recorded, as before, but
    its inspection result comes back, so the recorder does not hold it forever."""

    async def go() -> None:
        path, fd = open_dump(tmp_path)
        results: list = []
        try:
            writer = dumpwriter.DumpWriter(
                path, fd, lambda message: None, loop=asyncio.get_running_loop(), on_inspected=results.extend
            )
            bad, good = tflow.tflow(resp=True), tflow.tflow(resp=True)
            bad.metadata["tags"] = {"a", "b"}  # tnetstring cannot write a set
            assert writer.submit_flow(bad, inspect=True)
            assert writer.submit_flow(good, inspect=True)
            for _ in range(500):
                await asyncio.sleep(0.02)
                if {bad.id, good.id} <= {r[0] for r in results}:
                    break
            writer.close()
        finally:
            os.close(fd)
        assert {bad.id, good.id} <= {r[0] for r in results}
        assert read_ids(path) == [good.id]

    run_async(go)()
