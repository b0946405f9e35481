"""Append flows to flows.mitm from a child process, so serialising them costs the proxy little.

mitmproxy's FlowWriter spends about 0.4 ms of the proxy's CPU on a live flow: `get_state()` walks
both connections, and the pure-Python tnetstring encoder walks the result. Pickling the flow object
takes about 0.14 ms (C code), so the proxy pickles each finished flow and sends it, as one
datagram, to a writer process that unpickles it and appends exactly the bytes mitmproxy's
FlowWriter makes of it. The dump's format is mitmproxy's, written by mitmproxy's code.

Guarantees kept from writing in the proxy:
- A flow handed over survives the proxy's death. It goes by one `send` on an AF_UNIX
  SOCK_SEQPACKET socket: the kernel holds it whole, and the writer reads the socket to its end
  before exiting, also after `kill -9` of the proxy. (The recorder hands a flow over on the event
  loop's turn after its response went out; see recorder.py.)
- Nothing is silently dropped. The writer confirms what it has written (a count, and the file's
  size then). A flow too large for one datagram, or sent while the socket is full (the writer is
  behind), is written by the proxy itself, so such a flow can land ahead of a few smaller ones that
  finished just before it. If the writer dies, the proxy reads the dump from the last confirmed
  size with mitmproxy's FlowReader, cuts off a part-written record, and writes itself every flow
  not found there. (Not covered: the writer killed in the middle of a write while the proxy
  appends a large flow of its own right behind it; the cut then takes that flow too.)
- Write errors (a full disk) come back to the proxy, which stops recording loudly, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import copyreg
import errno
import io as stdlib_io
import logging
import os
import pickle
import select
import socket
import struct
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from mitmproxy import certs, io

from phonehome.addons.childproc import start_child, yield_to_the_proxy

log = logging.getLogger(__name__)

MAX_MESSAGE = 64 * 1024  # larger pickled flows are written by the proxy itself
SOCKET_BUFFER = 4 * 1024 * 1024  # asked for; the kernel caps it (net.core.wmem_max)
CONFIRM_EVERY = 256  # flows; or when idle for CONFIRM_DELAY seconds
CONFIRM_DELAY = 0.01
_CONFIRMED = struct.Struct("!QQ")  # flows written so far, file size after them

# Flows hold certificates (cryptography objects, not picklable) and, once intercepted, an
# asyncio.Event; send the certificate as PEM and a fresh Event. A per-pickler table: no global
# copyreg registration inside mitmproxy's process.
_PICKLE_TABLE = copyreg.dispatch_table.copy()
_PICKLE_TABLE[certs.Cert] = lambda cert: (certs.Cert.from_pem, (cert.to_pem(),))
_PICKLE_TABLE[asyncio.Event] = lambda event: (asyncio.Event, ())


def pickle_flow(flow) -> bytes:
    """The flow object as a pickle the writer process can rebuild it from."""
    buffer = stdlib_io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = _PICKLE_TABLE
    pickler.dump(flow)
    return buffer.getvalue()


def flow_bytes(flow) -> bytes:
    """The flow as mitmproxy's FlowWriter writes it: one record, ready for a single append."""
    buffer = stdlib_io.BytesIO()
    io.FlowWriter(buffer).add(flow)
    return buffer.getvalue()


def append_record(fd: int, data: bytes) -> None:
    """One flow onto a dump opened O_APPEND, all or nothing: a part-written flow is cut off again
    so the dump stays readable and a restart appends to an intact file."""
    view, done = memoryview(data), 0
    try:
        while done < len(data):
            written = os.write(fd, view[done:])
            if not written:
                raise OSError(errno.ENOSPC, "nothing written")
            done += written
    except OSError:
        if done:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, os.fstat(fd).st_size - done)
        raise


def recover_tail(path: Path, fd: int, start: int) -> set[str]:
    """Ids of the flows in the dump after byte `start`; a part-written record at the end is cut off.

    For when the writer process died: what it wrote after its last confirmation is read back with
    mitmproxy's own reader. `fd` is the dump's append descriptor (write-only), used to truncate.
    """
    ids: set[str] = set()
    with open(path, "rb") as fo:
        fo.seek(start)
        good = start
        try:
            for flow in io.FlowReader(fo).stream():
                ids.add(flow.id)
                good = fo.tell()
        except Exception:  # a record cut short by the writer's death
            pass
        if good < os.fstat(fd).st_size:
            os.ftruncate(fd, good)
    return ids


class DumpWriter:
    """The proxy's side: hands pickled flows to the writer process, falls back to writing itself.

    `submit` never blocks and returns False when the caller must write the flow itself. Messages
    from the writer (confirmations, errors) are read when the next flow is submitted, not by an
    event-loop reader: that would wake the proxy once per flow.
    """

    def __init__(self, path: Path, fd: int, on_error: Callable[[str], None]) -> None:
        self.path, self.fd, self.on_error = path, fd, on_error
        self.closing = False
        self.sock: socket.socket | None
        self.sock, self.proc = start_child(
            "phonehome.addons.dumpwriter",
            [str(fd)],
            sock_type=socket.SOCK_SEQPACKET,
            pass_fds=(fd,),
            buffer_bytes=SOCKET_BUFFER,
        )
        self.unconfirmed: deque[tuple[str, bytes]] = deque()  # (flow id, pickle), in sending order
        self.confirmed_size = os.fstat(fd).st_size
        self.confirmed_count = 0
        self.failed = False  # the writer could not write: recording has stopped

    @property
    def alive(self) -> bool:
        return self.sock is not None

    def submit(self, flow_id: str, message: bytes) -> bool:
        """Hand one pickled flow to the writer; False if the caller must write it itself."""
        self.poll()
        if self.sock is None or self.failed or len(message) > MAX_MESSAGE:
            return False
        try:
            self.sock.send(message)
        except (BlockingIOError, InterruptedError):
            return False  # the writer is behind; the socket holds plenty already
        except OSError:
            self._died()
            return False
        self.unconfirmed.append((flow_id, message))
        return True

    def poll(self) -> None:
        """Take in what the writer has said since the last call."""
        while self.sock is not None:
            try:
                reply = self.sock.recv(MAX_MESSAGE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                reply = b""
            if not reply:
                self._died()
                return
            self._handle(reply)

    def _handle(self, reply: bytes) -> None:
        kind, body = reply[:1], reply[1:]
        if kind == b"C":
            count, size = _CONFIRMED.unpack(body)
            for _ in range(count - self.confirmed_count):
                self.unconfirmed.popleft()
            self.confirmed_count, self.confirmed_size = count, size
        elif kind == b"S":  # one flow the writer could not serialise: skipped, as in the proxy
            log.error(f"phonehome: {body.decode(errors='replace')}")
        elif kind == b"E":
            self.failed = True
            self.on_error(body.decode(errors="replace"))

    def close(self, timeout: float = 30.0) -> None:
        """Let the writer finish what it holds and exit; whatever it did not write, write here."""
        if self.sock is None:
            return
        self.closing = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)  # end of input: the writer drains, confirms, exits
        deadline = time.monotonic() + timeout
        while self.sock is not None:
            ready, _, _ = select.select([self.sock], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                log.error("phonehome: the flow writer process did not finish in time; stopping it")
                self.proc.kill()
                self.proc.wait()
            self.poll()
        self.proc.wait()

    def _died(self) -> None:
        """The writer is gone (or has finished): write here what it had not confirmed."""
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        if self.closing and not self.unconfirmed:
            return  # finished normally
        pending, self.unconfirmed = list(self.unconfirmed), deque()
        try:
            present = recover_tail(self.path, self.fd, self.confirmed_size) if pending else set()
        except OSError as exc:
            self.on_error(f"cannot read back flows.mitm after the writer process stopped: {exc}")
            return
        missing = [(flow_id, message) for flow_id, message in pending if flow_id not in present]
        log.warning(
            f"phonehome: the flow writer process stopped (exit code {self.proc.returncode}); the proxy"
            f" writes flows itself from now on, starting with the {len(missing)} it had not written"
        )
        for flow_id, message in missing:
            try:
                append_record(self.fd, flow_bytes(pickle.loads(message)))
            except OSError as exc:
                self.on_error(f"cannot write flows.mitm: {exc}")
                return
            except Exception as exc:
                log.error(f"phonehome: flow {flow_id} not recorded: {type(exc).__name__}: {exc}")


def writer_main(sock_fd: int, fd: int) -> None:
    """The writer process: append each flow it is sent, confirm, until the proxy's end closes."""
    sock = socket.socket(fileno=sock_fd)
    count, since_confirmed, failed = 0, 0, False

    def confirm() -> None:
        nonlocal since_confirmed
        with contextlib.suppress(OSError):
            sock.send(b"C" + _CONFIRMED.pack(count, os.fstat(fd).st_size))
        since_confirmed = 0

    while True:
        if since_confirmed and not select.select([sock], [], [], CONFIRM_DELAY)[0]:
            confirm()  # idle: tell the proxy what is on disk
            continue
        try:
            message = sock.recv(MAX_MESSAGE + 1)
        except OSError:
            message = b""
        if not message:  # the proxy closed its end or died: everything it sent has been read
            confirm()
            return
        count += 1
        since_confirmed += 1
        if not failed:
            flow_id = "?"
            try:
                flow = pickle.loads(message)
                flow_id = flow.id
                data = flow_bytes(flow)
            except Exception as exc:  # e.g. another addon's unserialisable metadata: skip this flow
                with contextlib.suppress(OSError):
                    sock.send(f"Sflow {flow_id} not recorded: {type(exc).__name__}: {exc}".encode())
            else:
                try:
                    append_record(fd, data)
                except OSError as exc:
                    failed = True  # keep reading, so the proxy never waits on us; it stops sending
                    with contextlib.suppress(OSError):
                        sock.send(f"Ecannot write flows.mitm: {exc}".encode())
        if since_confirmed >= CONFIRM_EVERY:
            confirm()


if __name__ == "__main__":
    yield_to_the_proxy()
    writer_main(int(sys.argv[1]), int(sys.argv[2]))
