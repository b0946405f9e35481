"""WebSocket conversations and raw TCP streams are recorded when they end, messages included."""

from __future__ import annotations

import signal
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import wsproto
import wsproto.events as ws
from mitmproxy import io, tcp

from tests.support_proxy import ROOT, mitmdump, self_signed

RECORDER = ROOT / "addons" / "recorder.py"
REDIRECT = ROOT / "tests" / "support_redirect_addon.py"


def _pump(sock: socket.socket, conn: wsproto.WSConnection) -> list:
    data = sock.recv(65536)
    conn.receive_data(data or None)
    return list(conn.events())


def _serve_websocket(sock: socket.socket) -> None:
    """Echo every text message back with 'echo: ' until the client closes."""
    conn = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
    with sock:
        while True:
            events = _pump(sock, conn)
            if not events:
                return
            for event in events:
                if isinstance(event, ws.Request):
                    sock.sendall(conn.send(ws.AcceptConnection()))
                elif isinstance(event, ws.TextMessage):
                    sock.sendall(conn.send(ws.Message(data="echo: " + event.data)))
                elif isinstance(event, ws.CloseConnection):
                    sock.sendall(conn.send(event.response()))
                    return


def _serve_echo(sock: socket.socket) -> None:
    with sock:
        while data := sock.recv(65536):
            sock.sendall(data.upper())


@contextmanager
def upstream(directory: Path, handler, tls: bool) -> Iterator[int]:
    """A loopback server (TLS with a self-signed cert if `tls`) running `handler` per connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    context = None
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*self_signed(directory))

    def serve() -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            if context is not None:
                try:
                    sock = context.wrap_socket(sock, server_side=True)
                except (OSError, ssl.SSLError):
                    continue
            threading.Thread(target=handler, args=(sock,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def connect_through(proxy_port: int, host: str, port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy_port), timeout=20)
    sock.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    reply = b""
    while b"\r\n\r\n" not in reply:
        reply += sock.recv(1024)
    assert reply.startswith(b"HTTP/1.1 200"), reply
    return sock


def read_dump(path: Path) -> list:
    with path.open("rb") as fo:
        return list(io.FlowReader(fo).stream())


def test_websocket_messages_are_in_the_dump(tmp_path: Path) -> None:
    confdir, out = tmp_path / "conf", tmp_path / "caps"
    opts = [
        "--set",
        f"phonehome_dir={out}",
        "--set",
        "phonehome_session=ws",
        "--set",
        "phonehome_app=com.chat",
    ]
    with (
        upstream(tmp_path, _serve_websocket, tls=True) as ws_port,
        mitmdump(confdir, ws_port, [RECORDER, REDIRECT], opts) as (port, proc),
    ):
        # a wss:// conversation through the proxy, TLS intercepted with the proxy's CA
        raw = connect_through(port, "chat.example", 443)
        context = ssl.create_default_context(cafile=str(confdir / "mitmproxy-ca-cert.pem"))
        sock = context.wrap_socket(raw, server_hostname="chat.example")
        client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        sock.sendall(client.send(ws.Request(host="chat.example", target="/live?room=1")))
        assert any(isinstance(e, ws.AcceptConnection) for e in _pump(sock, client))
        replies = []
        for text in ("hello", "visited https://news.example/secret-page"):
            sock.sendall(client.send(ws.Message(data=text)))
            while not replies or replies[-1] != "echo: " + text:
                replies += [e.data for e in _pump(sock, client) if isinstance(e, ws.TextMessage)]
        sock.sendall(client.send(ws.CloseConnection(code=1000)))
        while not any(isinstance(e, ws.CloseConnection) for e in _pump(sock, client)):
            pass
        sock.close()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    flows = read_dump(out / "ws" / "flows.mitm")
    assert len(flows) == 1
    f = flows[0]
    assert f.websocket is not None and f.request.path == "/live?room=1"
    messages = [(m.from_client, m.text) for m in f.websocket.messages]
    assert messages == [
        (True, "hello"),
        (False, "echo: hello"),
        (True, "visited https://news.example/secret-page"),
        (False, "echo: visited https://news.example/secret-page"),
    ]
    assert f.websocket.close_code == 1000
    assert f.metadata["phonehome"]["app"] == "com.chat"


def test_raw_tcp_streams_are_in_the_dump(tmp_path: Path) -> None:
    confdir, out = tmp_path / "conf", tmp_path / "caps"
    opts = ["--set", f"phonehome_dir={out}", "--set", "phonehome_session=tcp", "--set", "tcp_hosts=.*"]
    with (
        upstream(tmp_path, _serve_echo, tls=False) as echo_port,
        mitmdump(confdir, echo_port, [RECORDER, REDIRECT], opts) as (port, proc),
    ):
        sock = connect_through(port, "push.example", 5228)
        sock.sendall(b"device-id=9774d56d682e549c\n")
        assert sock.recv(1024) == b"DEVICE-ID=9774D56D682E549C\n"
        sock.close()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    flows = read_dump(out / "tcp" / "flows.mitm")
    assert len(flows) == 1 and isinstance(flows[0], tcp.TCPFlow)
    assert [(m.from_client, m.content) for m in flows[0].messages] == [
        (True, b"device-id=9774d56d682e549c\n"),
        (False, b"DEVICE-ID=9774D56D682E549C\n"),
    ]
    assert flows[0].metadata["phonehome"]["session"] == "tcp"
