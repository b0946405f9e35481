"""The writer process works in the pauses of the traffic, and never lets the socket fill up.

While flows keep coming, the writer leaves them in its socket (as safe from the proxy's death as on
disk) and writes and inspects once the traffic pauses, or once a quarter of the socket's buffer
waits. These tests pin the decision, the kernel's count it rests on, a stream with no pause that
outgrows the socket, and that waiting for a summary does not keep a flow alive in the proxy.
"""

from __future__ import annotations

import asyncio
import gc
import os
import pickle
import socket
import struct
import threading
import time
from pathlib import Path

import pytest
from mitmproxy.test import taddons, tflow

from phonehome.addons import dumpwriter, inspector, recorder
from tests.test_dumpwriter import read_ids
from tests.test_recorder_inspector import leak_flow

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the writer process is POSIX-only")

LIMIT = 1000


@pytest.mark.parametrize(
    ("queued", "quiet", "waiting", "unsent", "step"),
    [
        (0, False, False, False, "wait"),  # nothing to do: sleep until a flow comes
        (500, False, False, False, "nap"),  # the traffic flows: flows wait in the socket
        (500, True, True, True, "read"),  # a pause: write first, before inspecting or reporting
        (LIMIT + 1, False, True, True, "read"),  # the backlog passed the limit: write now
        (LIMIT, False, False, False, "nap"),  # at the limit: still waiting
        (0, False, True, False, "nap"),  # flows to inspect, but the traffic flows
        (0, False, False, True, "nap"),  # confirmations to send, but the traffic flows
        (0, True, True, True, "inspect"),  # a pause, everything written: inspect
        (0, True, False, True, "report"),  # a pause, all inspected: send summaries, confirm
        (0, True, False, False, "wait"),
    ],
)
def test_the_writer_writes_and_inspects_in_the_pauses(queued, quiet, waiting, unsent, step) -> None:
    assert dumpwriter.next_step(queued, quiet, LIMIT, waiting, unsent) == step


def test_the_kernel_counts_every_flow_waiting_in_the_socket() -> None:
    """The writer learns how much waits (and whether new flows came) from SIOCINQ, which counts all
    queued datagrams of a SOCK_SEQPACKET socket, not only the first."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with ours, theirs:
        assert dumpwriter.queued_bytes(theirs) == 0
        for size in (10, 300, 4000):
            ours.send(b"x" * size)
        assert dumpwriter.queued_bytes(theirs) == 4310
        assert len(theirs.recv(65536)) == 10  # one datagram per read
        assert dumpwriter.queued_bytes(theirs) == 4300
        receive = theirs.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        assert dumpwriter.backlog_limit(theirs) == receive // 4
        # the proxy's send buffer bounds the socket too: the smaller of the two counts
        assert dumpwriter.backlog_limit(theirs, receive // 2) == receive // 8
        assert dumpwriter.backlog_limit(theirs, receive * 2) == receive // 4


def test_a_stream_without_pauses_is_written_before_the_socket_fills(tmp_path: Path) -> None:
    """Flows every 2 ms (never a pause) and many times what the socket holds, once the writer has
    started: it writes once the backlog passes its limit, so every flow is taken (the proxy never
    has to write one itself) and some are on disk before the stream ends."""
    path = tmp_path / "flows.mitm"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    flows = []
    try:
        writer, first = started_writer(path, fd)
        flows.append(first)
        capacity = writer.sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        body = os.urandom(48 * 1024)
        taken, sent = 0, 0
        while sent < 3 * capacity:
            f = tflow.tflow(resp=True)
            f.request.content = body
            message = dumpwriter.pickle_flow(f)
            taken += writer.submit(f.id, message)
            sent += len(message)
            flows.append(f)
            time.sleep(0.002)
        on_disk_during_stream = path.stat().st_size - len(dumpwriter.flow_bytes(first))
        writer.close()
    finally:
        os.close(fd)
    assert taken == len(flows) - 1
    assert on_disk_during_stream > 0
    assert read_ids(path) == [f.id for f in flows]


def started_writer(path: Path, fd: int) -> tuple[dumpwriter.DumpWriter, object]:
    """A writer process that has started (its imports done) and written one flow: what a proxy
    has once it has been running a moment. Returns the writer and that flow."""
    writer = dumpwriter.DumpWriter(path, fd, pytest.fail)
    first = tflow.tflow(resp=True)
    assert writer.submit(first.id, dumpwriter.pickle_flow(first))
    deadline = time.monotonic() + 30
    while writer.confirmed_count < 1:
        assert time.monotonic() < deadline, "the writer process did not start"
        time.sleep(0.01)
        writer.poll()
    return writer, first


def test_a_steady_stream_below_the_backlog_limit_is_written_within_max_delay(tmp_path: Path) -> None:
    """A flow every 10 ms never leaves the writer a pause, and its backlog stays far below the
    limit: the writer still writes what waits MAX_DELAY after it was last caught up, not at the
    stream's end."""
    path = tmp_path / "flows.mitm"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        writer, first = started_writer(path, fd)
        size_before = path.stat().st_size
        flows = [first]
        end = time.monotonic() + 2 * dumpwriter.MAX_DELAY
        while time.monotonic() < end:
            f = tflow.tflow(resp=True)
            assert writer.submit(f.id, dumpwriter.pickle_flow(f))
            flows.append(f)
            time.sleep(0.01)
        written_during_stream = path.stat().st_size - size_before
        writer.close()
    finally:
        os.close(fd)
    assert sum(len(dumpwriter.pickle_flow(f)) for f in flows) < writer_backlog_limit()
    assert written_during_stream > 0
    assert read_ids(path) == [f.id for f in flows]


def writer_backlog_limit() -> int:
    """The backlog limit of a socket pair set up as the proxy's and the writer's ends are."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with ours, theirs:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, dumpwriter.SOCKET_BUFFER)
        theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, dumpwriter.SOCKET_BUFFER)
        return dumpwriter.backlog_limit(theirs, ours.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))


def writer_in_thread(tmp_path: Path) -> tuple[socket.socket, threading.Thread, Path, int]:
    """writer_main in a thread of this process (so the test can change what it calls): the proxy's
    end of its socket, the thread, the dump and its open descriptor."""
    path = tmp_path / "flows.mitm"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    thread = threading.Thread(target=dumpwriter.writer_main, args=(theirs.detach(), fd), daemon=True)
    thread.start()
    return ours, thread, path, fd


def send_then_close(tmp_path: Path, flows: list, kind: bytes) -> tuple[list[bytes], Path]:
    """Send the flows to a writer in a thread as the proxy does, close the proxy's end at once,
    and take every reply until the writer has finished: the replies and the dump."""
    ours, thread, path, fd = writer_in_thread(tmp_path)
    try:
        with ours:
            for f in flows:
                ours.send(kind + dumpwriter.pickle_flow(f))
            ours.shutdown(socket.SHUT_WR)
            ours.settimeout(30)
            replies = []
            while reply := ours.recv(dumpwriter.MAX_REPLY):
                replies.append(reply)
        thread.join(timeout=30)
        assert not thread.is_alive()
    finally:
        os.close(fd)
    return replies, path


def test_without_the_kernels_count_the_writer_writes_what_comes(tmp_path: Path, monkeypatch) -> None:
    """Where SIOCINQ is not answered, the writer cannot tell a backlog or a pause: it writes each
    flow as it comes, as before, and still sees the proxy close its end."""
    monkeypatch.setattr(dumpwriter, "queued_bytes", lambda sock: None)
    flows = [tflow.tflow(resp=True) for _ in range(5)]
    replies, path = send_then_close(tmp_path, flows, dumpwriter.WRITE)
    assert replies[-1][:1] == b"C"  # the last word: all five confirmed
    assert path.read_bytes() == b"".join(dumpwriter.flow_bytes(f) for f in flows)


def test_a_writer_told_to_stop_hands_back_what_it_has_not_inspected(tmp_path: Path, monkeypatch) -> None:
    """The proxy closing its end (at shutdown) is seen between two inspections: the writer writes
    every flow, then hands the flows it has not inspected back instead of inspecting them all
    first (the proxy waits for it, at most 30 s)."""
    from phonehome.addons import inspector as inspector_mod

    def slow_summary(flow):
        time.sleep(0.05)
        return "phonehome: slow", False

    monkeypatch.setattr(inspector_mod, "summarise", slow_summary)
    flows = [tflow.tflow(resp=True) for _ in range(20)]
    replies, path = send_then_close(tmp_path, flows, dumpwriter.WRITE_AND_INSPECT)
    results = [r for reply in replies if reply[:1] == b"R" for r in pickle.loads(reply[1:])]
    assert sorted(flow_id for flow_id, *_ in results) == sorted(f.id for f in flows)  # each once
    inspected = [summary for _, summary, _, _ in results if summary is not None]
    assert len(inspected) <= 2  # inspecting all 20 first would take a second
    assert read_ids(path) == [f.id for f in flows]


def test_a_flow_waiting_for_its_summary_is_not_kept_alive_by_the_recorder(tmp_path: Path) -> None:
    """mitmdump drops each flow once it is done: nobody would see its summary, so the recorder holds
    flows waiting for one only weakly. A flow someone keeps (mitmweb's view) is still annotated."""

    async def go() -> None:
        insp = inspector.Inspector()
        rec = recorder.Recorder(insp)
        with taddons.context(insp, rec) as tctx:
            tctx.configure(rec, phonehome_dir=str(tmp_path), phonehome_session="weak")
            insp.running()
            rec.running()
            assert rec.writer is not None and rec.writer.reading
            kept = tflow.tflow(resp=True)
            kept.request.path = "/sa?android_id=9774d56d682e549c"
            dropped = tflow.tflow(resp=True)
            dropped.request.path = "/sa?android_id=9774d56d682e549c"
            for f in (kept, dropped):
                rec.request(f)
                insp.response(f)
                rec.response(f)
            await asyncio.sleep(0)  # the recorder hands the flows over on the loop's next turn
            assert set(rec.inspecting) == {kept.id, dropped.id}
            del dropped, f
            gc.collect()
            assert set(rec.inspecting) == {kept.id}
            deadline = time.monotonic() + 30
            while not kept.comment:
                assert time.monotonic() < deadline, "no summary came back"
                await asyncio.sleep(0.01)
            assert "android_id" in kept.comment
            rec.done()
            insp.done()
        assert len(read_ids(tmp_path / "weak" / "flows.mitm")) == 2

    asyncio.run(go())


def test_the_inspectors_worker_answers_every_record_of_batches_that_kept_coming() -> None:
    """The inspector's own worker gathers batches while they keep coming (one frame split over two
    sends, too) and answers each record once, in order, when they pause."""
    ours, theirs = socket.socketpair()
    worker = threading.Thread(target=inspector.worker_main, args=(theirs.detach(),), daemon=True)
    worker.start()
    flows = [leak_flow() if i % 2 == 0 else tflow.tflow(resp=True) for i in range(12)]
    with ours:
        for start in range(0, 12, 3):
            part = flows[start : start + 3]
            batch = [(start + i, inspector.request_payload(f)[0], 0) for i, f in enumerate(part)]
            data = pickle.dumps(batch)
            frame = struct.pack("!I", len(data)) + data
            ours.sendall(frame[:7])
            time.sleep(0.005)
            ours.sendall(frame[7:])
            time.sleep(0.01)
        ours.settimeout(30)
        replies: list = []
        buffer = b""
        while len(replies) < 12:
            buffer += ours.recv(1 << 16)
            while len(buffer) >= 4 and len(buffer) >= 4 + struct.unpack_from("!I", buffer)[0]:
                size = struct.unpack_from("!I", buffer)[0]
                replies += pickle.loads(buffer[4 : 4 + size])
                buffer = buffer[4 + size :]
    worker.join(timeout=30)
    assert not worker.is_alive()  # it ends when the proxy's end closes
    assert [key for key, *_ in replies] == list(range(12))
    for key, summary, mark, error in replies:
        assert not error
        assert mark == (key % 2 == 0) and (("android_id" in summary) == (key % 2 == 0))
