"""The writer's dump records: FlowWriter's bytes, with held connections encoded once.

Each flow goes through the hand-over as in the recorder: pickled with the proxy's ConnectionMemo and
unpickled here, which is what registers the connections this process then holds.
"""

from __future__ import annotations

import gc
import pickle
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
from mitmproxy import certs, connection
from mitmproxy.test import tflow

from phonehome.addons import dumprecord, flowpickle
from tests.support_proxy import self_signed


@pytest.fixture(autouse=True)
def nothing_held() -> Iterator[None]:
    flowpickle.forget_held()
    yield
    flowpickle.forget_held()


class HandOver:
    """The proxy's side of the hand-over, unpickled in this process as the writer would."""

    def __init__(self) -> None:
        self.memo = flowpickle.ConnectionMemo()

    def __call__(self, flow):
        message, _refs, new = self.memo.pickle(flow)
        self.memo.commit(new)
        return pickle.loads(message)


def on(base, path: str, make=tflow.tflow, **kwargs):
    """A new flow over `base`'s connections (keep-alive)."""
    flow = make(**kwargs)
    flow.client_conn, flow.server_conn = base.client_conn, base.server_conn
    if hasattr(flow, "request") and hasattr(flow.request, "path"):
        flow.request.path = path
    return flow


@pytest.fixture
def cert(tmp_path: Path) -> certs.Cert:
    return certs.Cert.from_pem(self_signed(tmp_path)[0].read_bytes())


def test_every_kind_of_flow_on_held_connections_is_written_as_flowwriter_writes_it(cert) -> None:
    hand_over = HandOver()
    base = tflow.tflow(resp=True)
    base.server_conn.certificate_list = [cert, cert]
    base.client_conn.mitmcert = cert
    base.client_conn.alpn_offers = [b"h2", b"http/1.1"]
    flows = [
        on(base, "/0", resp=True),
        on(base, "/1", resp=True),  # both connections by reference from here on
        on(base, "/2", resp=False, err=True),
        on(base, "/3", resp=True, ws=True),
        on(base, "/4", tflow.ttcpflow),
        on(base, "/5", tflow.tudpflow),
        on(base, "/6", tflow.tdnsflow, resp=True),
        on(base, "/7", resp=True),
    ]
    modified = on(base, "/8", resp=True)
    modified.backup()
    modified.request.path = "/8-edited"  # a flow with a backup: FlowWriter writes that too
    unmodified = on(base, "/9", resp=True)
    unmodified.backup()  # backed up, not changed: FlowWriter writes its backup as well
    flows += [modified, unmodified]
    held = 0
    for flow in flows:
        received = hand_over(flow)
        held += flowpickle.is_held(received.client_conn) and flowpickle.is_held(received.server_conn)
        assert dumprecord.held_flow_bytes(received) == dumprecord.flow_bytes(flow)
        assert received.client_conn.__class__ is connection.Client  # the stand-ins are gone again
        assert received.server_conn.__class__ is connection.Server
    assert held == len(flows)


def test_a_held_connection_is_encoded_once(cert, monkeypatch) -> None:
    hand_over = HandOver()
    base = tflow.tflow(resp=True)
    base.server_conn.certificate_list = [cert]
    calls = []
    real = connection.Server.get_state
    monkeypatch.setattr(connection.Server, "get_state", lambda self: calls.append(self.id) or real(self))
    originals = [on(base, f"/{i}", resp=True) for i in range(5)]
    received = [hand_over(f) for f in originals]
    expected = [dumprecord.flow_bytes(f) for f in originals]
    calls.clear()
    assert [dumprecord.held_flow_bytes(f) for f in received] == expected
    assert calls == [base.server_conn.id]  # for the first record only


def test_a_connection_sent_again_after_a_change_is_written_as_it_is_now(cert) -> None:
    """The proxy sends a changed connection in full; the writer builds a new object for the same id,
    and its record carries the new state, not the encoding of the one held before."""
    hand_over = HandOver()
    base = tflow.tflow(resp=True)
    first = on(base, "/0", resp=True)
    assert dumprecord.held_flow_bytes(hand_over(first)) == dumprecord.flow_bytes(first)
    base.server_conn.tls_version = "TLSv1.1"
    base.server_conn.certificate_list = [cert]
    second = on(base, "/1", resp=True)
    received = hand_over(second)
    assert flowpickle.is_held(received.server_conn)
    assert dumprecord.held_flow_bytes(received) == dumprecord.flow_bytes(second)
    assert b"TLSv1.1" in dumprecord.held_flow_bytes(received)


def test_connections_not_held_are_encoded_with_their_flow() -> None:
    """Not remembered (a value that can change in place), or forgotten after a failed message:
    FlowWriter writes the flow as ever."""
    hand_over = HandOver()
    base = tflow.tflow(resp=True)
    base.client_conn.__dict__["extra"] = {"mutable": [1]}
    flow = on(base, "/0", resp=True)
    received = hand_over(flow)
    assert not flowpickle.is_held(received.client_conn) and flowpickle.is_held(received.server_conn)
    assert dumprecord.held_flow_bytes(received) == dumprecord.flow_bytes(flow)
    flowpickle.forget_held()
    assert not flowpickle.is_held(received.server_conn)
    assert dumprecord.held_flow_bytes(received) == dumprecord.flow_bytes(flow)


def test_the_connections_are_put_back_when_the_flow_cannot_be_serialised() -> None:
    """Another addon's metadata that cannot be copied makes get_state() raise while the stand-ins
    are in place: the flow keeps its own connections (the writer inspects it next)."""
    hand_over = HandOver()
    base = tflow.tflow(resp=True)
    hand_over(on(base, "/0", resp=True))
    flow = hand_over(on(base, "/1", resp=True))
    client, server = flow.client_conn, flow.server_conn
    assert flowpickle.is_held(client) and flowpickle.is_held(server)
    flow.metadata["lock"] = threading.Lock()
    with pytest.raises(TypeError):
        dumprecord.held_flow_bytes(flow)
    assert flow.client_conn is client and flow.server_conn is server
    del flow.metadata["lock"]
    assert dumprecord.held_flow_bytes(flow) == dumprecord.flow_bytes(flow)


def test_the_cache_keeps_no_connection_alive() -> None:
    """A connection the writer no longer holds (forgotten, or aged out) is not kept by its encoding."""
    hand_over = HandOver()
    flow = hand_over(tflow.tflow(resp=True))
    dumprecord.held_flow_bytes(flow)
    server = weakref.ref(flow.server_conn)
    flowpickle.forget_held()
    del flow
    gc.collect()
    assert server() is None
