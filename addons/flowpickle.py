"""Pickling finished flows for the writer process (addons/dumpwriter.py), cheaply for the proxy.

Pickling is the largest part of what recording costs the proxy per flow, and on a keep-alive
connection most of it is the same every time: the client and server connection objects (addresses,
TLS details, certificates), about 60 % of a typical flow's pickling time. So a connection travels in
full only the first time and whenever its state has changed; otherwise the flow carries a reference
to the copy the writer process already holds. Both sides keep the same bounded table of connections,
in the same order (the writer registers a connection while unpickling the flow that carries it, the
proxy once that flow has been sent), so they never disagree about what a reference means.

"Unchanged" is decided strictly: the attribute dict holds the same keys with equal values of the same
types as when it was sent, and a connection is only remembered when every value is immutable (str,
bytes, numbers, None, enums, certificates, proxy modes, tuples of those) or a list of such values
(compared by copy). Anything else is sent in full every time. The writer rebuilds a connection the way
pickle itself does (`cls.__new__` and the attribute dict), so the flow it writes with mitmproxy's
FlowWriter is the same as from a full pickle; tests/test_dumpwriter.py checks the bytes.
"""

from __future__ import annotations

import asyncio
import copyreg
import enum
import io
import pickle
from typing import Any

from mitmproxy import certs, connection
from mitmproxy.proxy import mode_specs

LIMIT = 1024  # connections remembered on each side (first in, first out)

# Flows hold certificates (cryptography objects, not picklable) and, once intercepted, an
# asyncio.Event; send the certificate as PEM and a fresh Event. A per-pickler table: no global
# copyreg registration inside mitmproxy's process.
BASE_TABLE = copyreg.dispatch_table.copy()
BASE_TABLE[certs.Cert] = lambda cert: (certs.Cert.from_pem, (cert.to_pem(),))
BASE_TABLE[asyncio.Event] = lambda event: (asyncio.Event, ())

_SCALARS = (str, bytes, int, float, bool, type(None))
_FROZEN = (*_SCALARS, enum.Enum, certs.Cert, mode_specs.ProxyMode)


def pickle_flow(flow) -> bytes:
    """The whole flow as a pickle the writer process (or anyone) can rebuild it from."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = BASE_TABLE
    pickler.dump(flow)
    return buffer.getvalue()


def _frozen(value: Any, depth: int = 0) -> bool:
    if isinstance(value, _FROZEN):
        return True
    return isinstance(value, tuple) and depth < 4 and all(_frozen(v, depth + 1) for v in value)


def snapshot(state: dict[str, Any]) -> tuple[dict[str, Any], tuple[type, ...]] | None:
    """A connection's attribute dict as it is now (lists copied) with its value types, or None if
    some value could change without being replaced (then it is never referenced, always sent)."""
    copy: dict[str, Any] = {}
    for key, value in state.items():
        if type(value) is list:
            if not all(_frozen(v) for v in value):
                return None
            value = list(value)
        elif not _frozen(value):
            return None
        copy[key] = value
    return copy, tuple(map(type, state.values()))


def unchanged(known: tuple[dict[str, Any], tuple[type, ...]], state: dict[str, Any]) -> bool:
    copy, types = known
    try:  # a value's __eq__ may raise (mitmproxy's Cert compared with None): then it changed
        return copy == state and types == tuple(map(type, state.values()))
    except Exception:
        return False


# -- the writer's side: connections as last sent, by id --------------------------------------------
_held: dict[str, Any] = {}


def remember(table: dict, key: str, value: Any) -> None:
    """Insert as the newest entry; drop the oldest beyond LIMIT (the same on both sides)."""
    table.pop(key, None)
    table[key] = value
    if len(table) > LIMIT:
        del table[next(iter(table))]


def new_connection(cls: type, conn_id: str | None, state: dict[str, Any]):
    """Rebuild a connection as pickle does, and hold it for later references (unless conn_id is None)."""
    conn = cls.__new__(cls)
    conn.__dict__.update(state)
    if conn_id is not None:
        remember(_held, conn_id, conn)
    return conn


def known_connection(conn_id: str):
    """A connection sent earlier, unchanged since."""
    return _held[conn_id]


def is_held(conn) -> bool:
    """`conn` is the object held for its id: unchanged since it was sent, and never changed here
    (a connection that changes is sent again in full, as a new object)."""
    conn_id = conn.__dict__.get("id")
    return type(conn_id) is str and _held.get(conn_id) is conn


def forget_held() -> None:
    """The writer's side, after a message it could not unpickle: that message may have registered
    some of its connections and not others, so nothing held is trusted any more. Later references
    fail to resolve (KeyError), and the proxy writes those flows from its own snapshots."""
    _held.clear()


class ConnectionMemo:
    """The proxy's side: which connections the writer process holds, and in which state.

    `pickle(flow)` gives the message and what it refers to; `commit` records what the message sent
    in full once it has been handed over (a message that was not sent registers nothing)."""

    def __init__(self) -> None:
        self.sent: dict[str, tuple[dict[str, Any], tuple[type, ...]]] = {}
        self.table = BASE_TABLE.copy()
        self.table[connection.Client] = self.table[connection.Server] = self._reduce
        self._refs: dict[str, tuple[type, dict[str, Any]]] = {}
        self._new: list[tuple[str, tuple[dict[str, Any], tuple[type, ...]]]] = []
        self._buffer = io.BytesIO()
        self._pickler = pickle.Pickler(self._buffer, protocol=pickle.HIGHEST_PROTOCOL)
        self._pickler.dispatch_table = self.table  # one pickler for all flows: its memo is cleared

    def _reduce(self, conn):
        state = conn.__dict__
        conn_id = state.get("id")
        known = self.sent.get(conn_id) if type(conn_id) is str else None
        if known is not None and any(conn_id == pending for pending, _ in self._new):
            known = None  # this message sends that id in full already: the writer will hold that one
        if known is not None and unchanged(known, state):
            self._refs[conn_id] = (type(conn), known[0])
            return known_connection, (conn_id,)
        shot = snapshot(state) if type(conn_id) is str else None
        if shot is None:
            return new_connection, (type(conn), None, state)
        self._new.append((conn_id, shot))
        return new_connection, (type(conn), conn_id, state)

    def pickle(self, flow) -> tuple[bytes, dict[str, tuple[type, dict[str, Any]]], list]:
        """(message, the connections it refers to instead of carrying them, what to commit)."""
        self._refs, self._new = {}, []
        buffer = self._buffer
        buffer.seek(0)
        buffer.truncate()
        try:
            self._pickler.dump(flow)
        finally:
            self._pickler.clear_memo()  # holds no flow, and a failed dump leaves nothing behind
        return buffer.getvalue(), self._refs, self._new

    def commit(self, new: list) -> None:
        for conn_id, shot in new:
            remember(self.sent, conn_id, shot)

    def forget(self) -> None:
        """Send every connection in full again (after the writer reported a flow it could not read).
        The writer's table keeps its entries until they age out; nothing refers to them any more."""
        self.sent.clear()


class _Recovery(pickle.Unpickler):
    """Unpickles a message in the proxy, references resolved from the snapshots it was sent with,
    without touching the writer-side table."""

    def __init__(self, data: bytes, refs: dict[str, tuple[type, dict[str, Any]]]) -> None:
        super().__init__(io.BytesIO(data))
        self.refs = refs

    def find_class(self, module: str, name: str):
        if module == __name__ and name == "known_connection":
            return self._known
        if module == __name__ and name == "new_connection":
            return self._new
        return super().find_class(module, name)

    def _known(self, conn_id: str):
        cls, state = self.refs[conn_id]
        return self._new(cls, None, {k: list(v) if type(v) is list else v for k, v in state.items()})

    @staticmethod
    def _new(cls: type, conn_id: str | None, state: dict[str, Any]):
        conn = cls.__new__(cls)
        conn.__dict__.update(state)
        return conn


def load_message(data: bytes, refs: dict[str, tuple[type, dict[str, Any]]] | None = None):
    """The flow in a message, in the proxy (when the writer died before writing it)."""
    return _Recovery(data, refs or {}).load()
