"""Helper processes of the addons: started beside the proxy, talking over a socketpair.

The flow writer (dumpwriter.py) and the live inspector's worker (inspector.py) both run as a
child `python -O -m <module> ...` holding one end of a socketpair. They start in their own session,
so Ctrl+C in the terminal goes to the proxy only, and each exits when the proxy's end closes, also
after `kill -9` of the proxy. Both run at idle priority (yield_to_the_proxy).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys


def start_child(
    module: str,
    args: list[str],
    *,
    sock_type: int = socket.SOCK_STREAM,
    pass_fds: tuple[int, ...] = (),
    buffer_bytes: int = 0,
) -> tuple[socket.socket, subprocess.Popen]:
    """Start `python -O -m module <child's socket fd> *args`; the proxy's end, non-blocking, and the
    process. `buffer_bytes` asks the kernel for socket buffers that large (it caps them); the
    child's last argument is then the send buffer the proxy's end got, which bounds how much can
    wait in the socket."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, sock_type)
    if buffer_bytes:
        for sock, option in ((ours, socket.SO_SNDBUF), (theirs, socket.SO_RCVBUF)):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, option, buffer_bytes)
        args = [*args, str(ours.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))]
    try:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p and os.path.isdir(p)))
        proc = subprocess.Popen(
            [sys.executable, "-O", "-m", module, str(theirs.fileno()), *args],
            pass_fds=[theirs.fileno(), *pass_fds],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # Ctrl+C in the terminal is for the proxy; the child follows it
        )
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    ours.setblocking(False)
    return ours, proc


#: Both children work in the pauses of the phone's traffic: once nothing new has come for QUIET
#: seconds, and at the latest MAX_DELAY seconds after they were last caught up (a steady stream
#: never pauses). Working beside a busy proxy costs it more than the work's CPU time, also at idle
#: priority: on two cores the proxy waited for a core 0.05-0.2 ms per flow (bench_proxy.py -c 4).
QUIET = 0.05
MAX_DELAY = 1.0


def yield_to_the_proxy() -> None:
    """Run only on CPU time nothing else wants (Linux SCHED_IDLE; elsewhere the lowest priority).

    A child woken for every flow otherwise competes with the proxy and the phone's traffic for the
    cores; as an idle-time process it catches up in the gaps, and when it cannot keep up the
    proxy's fallbacks take over (the writer's socket fills, the inspector's queue grows too long).
    """
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        with contextlib.suppress(OSError):
            os.nice(19)
