"""Append flows to flows.mitm from a child process, so serialising them costs the proxy little.

mitmproxy's FlowWriter spends about 0.4 ms of the proxy's CPU on a live flow: `get_state()` walks
both connections, and the pure-Python tnetstring encoder walks the result. Pickling the flow object
takes about 0.14 ms (C code), so the proxy pickles each finished flow and sends it, as one
datagram, to a writer process that unpickles it and appends exactly the bytes mitmproxy's
FlowWriter makes of it. The dump's format is mitmproxy's, written by mitmproxy's code. A connection
the writer already holds unchanged is sent as a reference (addons/flowpickle.py): on keep-alive
connections that is most of the pickling saved, and the writer encodes such a connection for the
dump once, not for every flow (addons/dumprecord.py).

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

The writer also runs the live inspector (addons/inspector.py) on the flows the proxy marks for it,
after writing them: the flow is already unpickled there, so the proxy needs no second hand-off.
Writing comes first: the socket is drained and every flow in it written before the next flow is
inspected, and a writer too far behind hands flows back uninspected (the inspector then takes its
own route). Summaries go back in batches, at most every RESULT_DELAY seconds, together with the
confirmations; the proxy reads them with an event-loop reader, so it is woken per batch, not per
flow.

The writer works in the pauses of the phone's traffic (next_step; childproc.QUIET and MAX_DELAY):
while flows keep coming it leaves them in the socket, where they are as safe from the proxy's
death as on disk, and writes and inspects once the traffic pauses, or as soon as more than a
quarter of the socket's buffer waits (backlog_limit), so the proxy never finds the socket full
because the writer waited.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import pickle
import select
import socket
import struct
import subprocess
import sys
import termios
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mitmproxy import io

from phonehome.addons.childproc import MAX_DELAY, QUIET, start_child, yield_to_the_proxy
from phonehome.addons.dumprecord import flow_bytes, held_flow_bytes
from phonehome.addons.flowpickle import ConnectionMemo, forget_held, load_message, pickle_flow

__all__ = ["DumpWriter", "Result", "append_record", "flow_bytes", "pickle_flow", "recover_tail"]

log = logging.getLogger(__name__)

MAX_MESSAGE = 64 * 1024  # larger pickled flows are written by the proxy itself
#: The largest reply read at once: a batch of inspection results (64 summaries of up to 400
#: characters, up to 4 bytes each in UTF-8) can exceed MAX_MESSAGE; a datagram longer than the
#: buffer would be cut off by SOCK_SEQPACKET.
MAX_REPLY = 256 * 1024
SOCKET_BUFFER = 4 * 1024 * 1024  # asked for; the kernel caps it (net.core.wmem_max)
CONFIRM_EVERY = 256  # flows; or in the next pause of the traffic
RESULT_DELAY = 0.02  # seconds: while inspecting, summaries are sent back at most this late, in one batch
MAX_RESULTS = 64  # summaries per reply datagram (each text cut to MAX_TEXT characters)
MAX_TEXT = 400
MAX_BEHIND = 2_000  # flows waiting to be inspected; beyond, they are handed back uninspected
MAX_BEHIND_BYTES = 16 * 1024 * 1024
_CONFIRMED = struct.Struct("!QQ")  # flows written so far, file size after them
NAP = 0.02  # seconds: while the traffic flows, the writer looks at its socket this often
_NUMBER = struct.Struct("!Q")  # a message's number, counting from 1
WRITE, WRITE_AND_INSPECT = b"W", b"I"  # the kind byte in front of each pickled flow

# (flow id, summary, mark, error); summary None: not inspected here, inspect it elsewhere
Result = tuple[str, str | None, bool, str]


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
    from the writer (confirmations, inspection results, errors) are read by an event-loop reader
    when a loop is given (one wake-up per batch the writer sends), else when the next flow is
    submitted. `on_inspected` receives the inspection results; `on_stopped` is called once the
    writer is gone (died, or closed), when no more results will come.
    """

    def __init__(
        self,
        path: Path,
        fd: int,
        on_error: Callable[[str], None],
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        on_inspected: Callable[[list[Result]], None] | None = None,
        on_stopped: Callable[[], None] | None = None,
    ) -> None:
        self.path, self.fd, self.on_error = path, fd, on_error
        self.on_inspected, self.on_stopped = on_inspected, on_stopped
        self.closing = False
        self.sock: socket.socket | None
        self.sock, self.proc = start_child(
            "phonehome.addons.dumpwriter",
            [str(fd)],
            sock_type=socket.SOCK_SEQPACKET,
            pass_fds=(fd,),
            buffer_bytes=SOCKET_BUFFER,
        )
        # (flow id, pickle, the connections it refers to), in sending order
        self.unconfirmed: deque[tuple[str, bytes, dict]] = deque()
        self.memo = ConnectionMemo()
        self.confirmed_size = os.fstat(fd).st_size
        self.confirmed_count = 0
        self.failed = False  # the writer could not write: recording has stopped
        self.loop: asyncio.AbstractEventLoop | None = None
        if loop is not None:
            try:
                loop.add_reader(self.sock, self.poll)
                self.loop = loop
            except Exception:  # e.g. a closed loop: read replies at each submit instead
                pass

    @property
    def alive(self) -> bool:
        return self.sock is not None

    @property
    def reading(self) -> bool:
        """Whether replies are read as they come (so inspection results arrive without new flows)."""
        return self.loop is not None and self.sock is not None

    def submit_flow(self, flow, inspect: bool = False) -> bool:
        """Pickle one flow (connections the writer holds unchanged as references) and hand it to
        the writer, to inspect too if `inspect`; False if the caller must write it itself."""
        if self.loop is None:
            self.poll()
        if self.sock is None or self.failed:
            return False
        message, refs, new = self.memo.pickle(flow)
        if not self._send(flow.id, message, refs, inspect):
            return False
        self.memo.commit(new)
        return True

    def submit(self, flow_id: str, message: bytes, inspect: bool = False) -> bool:
        """Hand one flow pickled whole (pickle_flow) to the writer; False if the caller must write
        it itself."""
        if self.loop is None:
            self.poll()
        return self._send(flow_id, message, {}, inspect)

    def _send(self, flow_id: str, message: bytes, refs: dict, inspect: bool) -> bool:
        if self.sock is None or self.failed or len(message) > MAX_MESSAGE:
            return False
        try:
            self.sock.send((WRITE_AND_INSPECT if inspect else WRITE) + message)
        except (BlockingIOError, InterruptedError):
            return False  # the writer is behind; the socket holds plenty already
        except OSError:
            self._died()
            return False
        self.unconfirmed.append((flow_id, message, refs))
        return True

    def poll(self) -> None:
        """Take in what the writer has said since the last call."""
        while self.sock is not None:
            try:
                reply = self.sock.recv(MAX_REPLY)
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
        elif kind == b"R":
            if self.on_inspected is not None:
                try:
                    self.on_inspected(pickle.loads(body))
                except Exception as exc:  # annotating must never stop recording
                    log.debug(f"phonehome: inspection results not applied: {type(exc).__name__}: {exc}")
        elif kind == b"F":  # the writer could not read message number N back: write it here
            self._write_here(_NUMBER.unpack(body)[0])
        elif kind == b"S":  # one flow the writer could not serialise: skipped, as in the proxy
            log.error(f"phonehome: {body.decode(errors='replace')}")
        elif kind == b"E":
            self.failed = True
            self.on_error(body.decode(errors="replace"))

    def _write_here(self, number: int) -> None:
        """A flow the writer could not unpickle (e.g. a class only this process can import)."""
        self.memo.forget()  # from now on every connection travels in full again
        index = number - self.confirmed_count - 1
        if not 0 <= index < len(self.unconfirmed):
            return
        flow_id, message, refs = self.unconfirmed[index]
        if self.on_inspected is not None:  # the writer cannot inspect it either
            with contextlib.suppress(Exception):
                self.on_inspected([(flow_id, None, False, "")])
        try:
            data = flow_bytes(load_message(message, refs))
        except Exception as exc:
            log.error(f"phonehome: flow {flow_id} not recorded: {type(exc).__name__}: {exc}")
            return
        try:
            append_record(self.fd, data)
        except OSError as exc:
            self.failed = True
            self.on_error(f"cannot write flows.mitm: {exc}")

    def _stop_reading(self) -> None:
        if self.loop is not None and self.sock is not None:
            with contextlib.suppress(Exception):
                self.loop.remove_reader(self.sock)
        self.loop = None

    def close(self, timeout: float = 30.0) -> None:
        """Let the writer finish what it holds and exit; whatever it did not write, write here."""
        if self.sock is None:
            return
        self._stop_reading()
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
        self._stop_reading()
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        try:
            self._write_unconfirmed()
        finally:
            if self.on_stopped is not None:
                self.on_stopped()

    def _write_unconfirmed(self) -> None:
        if self.closing and not self.unconfirmed:
            return  # finished normally
        pending, self.unconfirmed = list(self.unconfirmed), deque()
        try:
            present = recover_tail(self.path, self.fd, self.confirmed_size) if pending else set()
        except OSError as exc:
            self.on_error(f"cannot read back flows.mitm after the writer process stopped: {exc}")
            return
        missing = [(flow_id, message, refs) for flow_id, message, refs in pending if flow_id not in present]
        log.warning(
            f"phonehome: the flow writer process stopped (exit code {self.proc.returncode}); the proxy"
            f" writes flows itself from now on, starting with the {len(missing)} it had not written"
        )
        for flow_id, message, refs in missing:
            try:
                append_record(self.fd, flow_bytes(load_message(message, refs)))
            except OSError as exc:
                self.on_error(f"cannot write flows.mitm: {exc}")
                return
            except Exception as exc:
                log.error(f"phonehome: flow {flow_id} not recorded: {type(exc).__name__}: {exc}")


class _Inspection:
    """The writer's side of live inspection: flows waiting to be inspected, results to send back."""

    def __init__(self, send: Callable[[bytes], None]) -> None:
        self.send = send
        self.waiting: deque[tuple[Any, int]] = deque()  # (flow, message size)
        self.waiting_bytes = 0
        self.results: list[Result] = []
        self.first_result = 0.0  # when the oldest unsent result was made
        self.summarise: Callable[[Any], tuple[str, bool]] | None = None

    def add(self, flow, size: int) -> None:
        self.waiting.append((flow, size))
        self.waiting_bytes += size
        while len(self.waiting) > MAX_BEHIND or self.waiting_bytes > MAX_BEHIND_BYTES:
            self._result(self._pop().id, None, False, "")  # too far behind: inspect it elsewhere

    def _pop(self):
        flow, size = self.waiting.popleft()
        self.waiting_bytes -= size
        return flow

    def inspect_one(self) -> None:
        flow = self._pop()
        try:
            if self.summarise is None:  # the analysis library, imported once it is needed
                from phonehome.addons.inspector import summarise

                self.summarise = summarise
            summary, mark = self.summarise(flow)
            self._result(flow.id, summary, mark, "")
        except Exception as exc:  # reported back and logged there, as by the inspector's worker
            self._result(flow.id, "", False, f"{type(exc).__name__}: {exc}")

    def _result(self, flow_id: str, summary: str | None, mark: bool, error: str) -> None:
        if not self.results:
            self.first_result = time.monotonic()
        cut = summary[:MAX_TEXT] if summary is not None else None
        self.results.append((flow_id, cut, mark, error[:MAX_TEXT]))
        if len(self.results) >= MAX_RESULTS:
            self.flush()

    def due(self) -> bool:
        return bool(self.results) and time.monotonic() - self.first_result >= RESULT_DELAY

    def flush(self) -> None:
        results, self.results = self.results, []
        if results:
            with contextlib.suppress(OSError):
                self.send(b"R" + pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL))

    def hand_back_all(self) -> None:
        """At the end: what was not inspected yet goes back to the proxy's inspector."""
        while self.waiting:
            self._result(self._pop().id, None, False, "")
        self.flush()


def queued_bytes(sock: socket.socket) -> int | None:
    """Bytes of flows waiting in the writer's socket (SIOCINQ: a SOCK_SEQPACKET socket counts
    every queued datagram), or None where the kernel does not say."""
    try:
        return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]
    except OSError:
        return None


def backlog_limit(sock: socket.socket, send_buffer: int | None = None) -> int:
    """How many bytes of flows may wait in the socket while the traffic flows: a quarter of the
    smaller of the proxy's send buffer (what bounds a connected AF_UNIX socket on Linux) and this
    end's receive buffer (what the kernel counts per datagram is larger than the datagram), so
    the proxy never finds the socket full because the writer waited. 4 MiB asked for;
    net.core.wmem_max and rmem_max cap them (208 KiB on many Linux systems: then about 75 of
    the benchmark's flows wait; with 4 MiB about 1,400)."""
    buffers = [send_buffer] if send_buffer else []
    with contextlib.suppress(OSError):
        buffers.append(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
    return min(buffers, default=256 * 1024) // 4


def next_step(queued: int, quiet: bool, limit: int, waiting: bool, unsent: bool) -> str:
    """What the writer does next, given the bytes of flows `queued` in its socket, whether the
    traffic has paused (`quiet`), flows `waiting` to be inspected, and confirmations or summaries
    `unsent`: "read" one flow and write it (in a pause, or when the backlog passes `limit`),
    "nap" (the traffic flows: look again shortly), "inspect" one flow (written ones first),
    "report" (send the summaries, confirm what is on disk), or "wait" until the next flow comes."""
    if queued and (quiet or queued > limit):
        return "read"
    if not quiet and (queued or waiting or unsent):
        return "nap"
    if waiting:
        return "inspect"
    if unsent:
        return "report"
    return "wait"


def writer_main(sock_fd: int, fd: int, send_buffer: int | None = None) -> None:
    """The writer process: append each flow it is sent, confirm, inspect the flows marked for it,
    until the proxy's end closes.

    The work is done in the pauses of the traffic (see the module's docstring and next_step);
    flows are written before any is inspected."""
    with socket.socket(fileno=sock_fd) as sock:
        _write_until_closed(sock, fd, send_buffer)


def _write_until_closed(sock: socket.socket, fd: int, send_buffer: int | None) -> None:
    count, since_confirmed, failed = 0, 0, False
    inspection = _Inspection(sock.send)
    limit = backlog_limit(sock, send_buffer)
    arrived = taken = 0  # bytes that came into the socket / that were read from it, so far
    last_flow = 0.0  # when a flow last came: the writer works once the traffic pauses
    caught_up = time.monotonic()  # when all was last written, inspected and reported

    def confirm() -> None:
        nonlocal since_confirmed
        with contextlib.suppress(OSError):
            sock.send(b"C" + _CONFIRMED.pack(count, os.fstat(fd).st_size))
        since_confirmed = 0

    while True:
        queued = queued_bytes(sock)
        if queued is None:  # the kernel does not say: no waiting for pauses, read what comes
            queued, limit = (1 if select.select([sock], [], [], 0.0)[0] else 0), 0
        now = time.monotonic()
        if taken + queued != arrived:
            arrived, last_flow = taken + queued, now
        # a pause in the traffic, or work waiting for MAX_DELAY: a steady stream never pauses
        quiet = now - last_flow >= QUIET or now - caught_up >= MAX_DELAY
        unsent = bool(since_confirmed or inspection.results)
        step = next_step(queued, quiet, limit, bool(inspection.waiting), unsent)
        if step == "nap":
            time.sleep(min(NAP, last_flow + QUIET - now, caught_up + MAX_DELAY - now))
            continue
        if step == "inspect":
            if not select.select([sock], [], [], 0.0)[0]:
                inspection.inspect_one()
                if inspection.due():
                    inspection.flush()
                continue
            if queued_bytes(sock):
                continue  # a flow came: the traffic goes on, the next look decides
            step = "read"  # readable with nothing queued: the proxy closed its end
        if step == "report":
            inspection.flush()
            confirm()
            continue
        if step == "wait":
            caught_up = now
            if select.select([sock], [], [], None)[0] and queued_bytes(sock) != 0:
                caught_up = time.monotonic()  # the first flow of a burst: wait for the pause
                continue
        message = _read(sock)  # step "read"; or readable with nothing queued: the proxy closed its end
        if not message:  # the proxy closed its end or died: everything it sent has been read
            inspection.hand_back_all()
            confirm()
            return
        taken += len(message)
        count += 1
        since_confirmed += 1
        if not failed:
            failed = _write_message(sock, fd, message, count, inspection)
        if since_confirmed >= CONFIRM_EVERY:
            confirm()


def _read(sock: socket.socket) -> bytes:
    try:
        return sock.recv(MAX_MESSAGE + 2)
    except OSError:
        return b""


def _write_message(
    sock: socket.socket, fd: int, message: bytes, number: int, inspection: _Inspection
) -> bool:
    """Append one pickled flow to the dump and queue it for inspection if marked so; whether
    writing failed (a full disk: the proxy is told, and stops sending)."""
    try:
        flow = pickle.loads(memoryview(message)[1:])
    except Exception:  # e.g. a class this process cannot import: the proxy writes it
        forget_held()  # it may have got part-way: connections held here may be stale
        with contextlib.suppress(OSError):
            sock.send(b"F" + _NUMBER.pack(number))
        return False
    inspect = message[:1] == WRITE_AND_INSPECT
    try:
        data = held_flow_bytes(flow)
    except Exception as exc:  # e.g. another addon's unserialisable metadata: skip this flow
        with contextlib.suppress(OSError):
            sock.send(f"Sflow {flow.id} not recorded: {type(exc).__name__}: {exc}".encode())
        if inspect:
            inspection.add(flow, len(message))  # not recorded, but its summary still comes back
        return False
    try:
        append_record(fd, data)
    except OSError as exc:  # keep reading, so the proxy never waits on us; it stops sending
        with contextlib.suppress(OSError):
            sock.send(f"Ecannot write flows.mitm: {exc}".encode())
        return True
    if inspect:
        inspection.add(flow, len(message))
    return False


if __name__ == "__main__":
    yield_to_the_proxy()
    writer_main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else None)
