"""A flow's record in flows.mitm: the bytes mitmproxy's FlowWriter makes of it.

`flow_bytes` is FlowWriter itself. `held_flow_bytes` gives the same bytes in the writer process
with less work. There, most flows of a keep-alive connection arrive with the connection as a
reference to an object the writer already holds (addons/flowpickle.py). FlowWriter would encode
that connection again for every flow: `get_state()` walks its attributes and certificates, and the
pure-Python tnetstring encoder walks the result. That was about 60 % of FlowWriter's time on the
bundled sample's flows (docs/performance.md, Recording, "Sixth round", has what it does under load).

A held connection is never changed. The proxy sends a connection whose state changed in full, and
the writer builds a new object from it. So its encoding is computed once and reused. The flow's
own state still comes from mitmproxy's `Flow.get_state()`; only its two connection entries are
spliced in. tests/test_dumprecord.py checks the bytes against FlowWriter's, and the writer tests
(tests/test_dumpwriter.py) check whole dumps of connections that change.
"""

from __future__ import annotations

import io as stdlib_io
import weakref

from mitmproxy import io
from mitmproxy.io import tnetstring

from phonehome.addons.flowpickle import is_held, remember

__all__ = ["flow_bytes", "held_flow_bytes"]

# held connection id -> (that connection object, weakly: the cache keeps none alive that the writer
# no longer holds; the tnetstring of its get_state())
_encoded: dict[str, tuple[weakref.ref, bytes]] = {}


def flow_bytes(flow) -> bytes:
    """The flow as mitmproxy's FlowWriter writes it: one record, ready for a single append."""
    buffer = stdlib_io.BytesIO()
    io.FlowWriter(buffer).add(flow)
    return buffer.getvalue()


class _Encoded:
    """Stands in for a held connection while `Flow.get_state()` runs: its state is its encoding."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def get_state(self) -> _Encoded:
        return self


def _held_encoding(conn) -> bytes | None:
    """The tnetstring of a held connection's state, encoded once; None for any other connection."""
    if not is_held(conn):
        return None
    conn_id = conn.id
    entry = _encoded.get(conn_id)
    if entry is None or entry[0]() is not conn:  # new, or sent in full again since (changed, forgotten)
        entry = (weakref.ref(conn), tnetstring.dumps(conn.get_state()))
        remember(_encoded, conn_id, entry)
    return entry[1]


def held_flow_bytes(flow) -> bytes:
    """flow_bytes(flow), reusing the encoding of each connection the writer holds."""
    client, server = flow.client_conn, flow.server_conn
    client_data, server_data = _held_encoding(client), _held_encoding(server)
    if client_data is None and server_data is None:
        return flow_bytes(flow)
    try:
        if client_data is not None:
            flow.client_conn = _Encoded(client_data)
        if server_data is not None:
            flow.server_conn = _Encoded(server_data)
        # Flow.get_state() compares a backup with the base class's part of the state, which lacks
        # request and response, so that never matches, stand-ins or not: a backup is always written
        state = flow.get_state()
    finally:  # also when get_state() raises (another addon's metadata): the flow is inspected next
        flow.client_conn, flow.server_conn = client, server
    # tnetstring's dictionary, as mitmproxy's encoder lays it out: "<length>:", then each key and
    # value in reverse order of the dict, then "}"
    parts = []
    for key, value in reversed(state.items()):
        parts.append(tnetstring.dumps(key))
        parts.append(value.data if type(value) is _Encoded else tnetstring.dumps(value))
    payload = b"".join(parts)
    return b"%d:%s}" % (len(payload), payload)
