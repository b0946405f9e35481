"""The proxy is no open door: nothing reached through it is the laptop, strangers are refused.

Real mitmweb / mitmdump on loopback with the recorder (which loads the guard), real clients.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from mitmproxy import exceptions
from mitmproxy.addons.proxyauth import ProxyAuth
from mitmproxy.proxy.mode_specs import ProxyMode
from mitmproxy.test import taddons, tflow

from phonehome.addons import guard as guard_mod
from tests.support_proxy import MITMWEB, ROOT, free_port, mitmdump, run_async, tls_upstream

RECORDER = ROOT / "addons" / "recorder.py"
REDIRECT = ROOT / "tests" / "support_redirect_addon.py"
SECRET = "tester-secret-4711"


class Secret(http.server.BaseHTTPRequestHandler):
    """A service on the laptop that must not be reachable through the proxy."""

    def do_GET(self) -> None:
        body = SECRET.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@contextmanager
def laptop_service() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Secret)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def proxied(port: int) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.proxies = {"http": f"http://127.0.0.1:{port}", "https": f"http://127.0.0.1:{port}"}
    return s


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            assert time.monotonic() < deadline, f"{url} never answered"
            time.sleep(0.1)


def test_mitmweb_api_and_laptop_services_are_not_reachable_through_the_proxy(tmp_path: Path) -> None:
    web_port = free_port()
    opts = [
        "--set",
        f"phonehome_dir={tmp_path / 'caps'}",
        "--set",
        "phonehome_session=g",
        "--web-port",
        str(web_port),
        "--no-web-open-browser",
    ]
    with (
        laptop_service() as service,
        mitmdump(tmp_path / "conf", 0, [RECORDER], opts, tool=MITMWEB) as (port, _proc),
        proxied(port) as s,
    ):
        wait_http(f"http://127.0.0.1:{web_port}/")
        # a flow carrying a secret, so mitmweb's view holds something worth stealing
        s.get(f"http://nowhere.invalid/?token={SECRET}", timeout=30)
        if not guard_mod.web_has_token():  # mitmproxy 11.0.x: the API really hands it out
            assert SECRET in requests.get(f"http://127.0.0.1:{web_port}/flows/dump", timeout=10).text
        for url in (
            f"http://127.0.0.1:{web_port}/flows/dump",
            f"http://localhost:{web_port}/flows",
            f"http://[::ffff:127.0.0.1]:{web_port}/options",
            f"http://127.0.0.1:{service}/",
            f"http://127.0.0.2:{service}/",  # any loopback address
            f"http://0.0.0.0:{service}/",  # reaches loopback on Linux
        ):
            r = s.get(url, timeout=30)
            assert r.status_code == 403, url
            assert SECRET not in r.text and "phonehome" in r.text, url
        # names that only resolve to the laptop (legacy inet_aton forms): refused before connecting
        for url in (f"http://127.1:{service}/", f"http://0x7f000001:{web_port}/flows/dump"):
            r = s.get(url, timeout=30)
            assert r.status_code == 502 and "this laptop" in r.text and SECRET not in r.text, url
        # a CONNECT tunnel to the web UI is refused too
        with pytest.raises(requests.exceptions.ProxyError):
            s.get(f"https://127.0.0.1:{web_port}/flows/dump", timeout=30, verify=False)
        # directly (not proxied) the service is there: the refusals above are the guard's doing
        assert requests.get(f"http://127.0.0.1:{service}/", timeout=10).text == SECRET


def test_allow_local_opens_the_laptop_but_never_mitmweb(tmp_path: Path) -> None:
    web_port = free_port()
    opts = [
        "--set",
        f"phonehome_dir={tmp_path / 'caps'}",
        "--set",
        "phonehome_allow_local=true",
        "--web-port",
        str(web_port),
        "--no-web-open-browser",
    ]
    with (
        laptop_service() as service,
        mitmdump(tmp_path / "conf", 0, [RECORDER], opts, tool=MITMWEB) as (port, _proc),
        proxied(port) as s,
    ):
        wait_http(f"http://127.0.0.1:{web_port}/")
        assert s.get(f"http://127.0.0.1:{service}/", timeout=30).text == SECRET
        assert s.get(f"http://127.0.0.1:{web_port}/flows/dump", timeout=30).status_code == 403


def raw_get(proxy_port: int, source: str) -> bytes:
    """A plain-HTTP proxy request from a chosen loopback source address; what comes back."""
    with socket.socket() as sock:
        sock.bind((source, 0))
        sock.settimeout(10)
        sock.connect(("127.0.0.1", proxy_port))
        try:
            sock.sendall(b"GET http://a.example/x HTTP/1.1\r\nHost: a.example\r\n\r\n")
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        except ConnectionError:
            return b""
        return data


def test_clients_outside_the_allow_list_are_refused(tmp_path: Path) -> None:
    opts = [
        "--set",
        f"phonehome_dir={tmp_path / 'caps'}",
        "--set",
        "phonehome_session=a",
        "--set",
        "phonehome_allow_client=127.0.0.1",
    ]
    with (
        tls_upstream(tmp_path) as up,
        mitmdump(tmp_path / "conf", up, [RECORDER, REDIRECT], opts, quiet=False) as (
            port,
            proc,
        ),
    ):
        assert raw_get(port, "127.0.0.2") == b""  # closed without an answer
        assert raw_get(port, "127.0.0.1").startswith(b"HTTP/1.1 ")  # the phone gets through
        proc.terminate()
        out = proc.communicate(timeout=20)[0]
    assert "refused client 127.0.0.2" in out and "--allow-client 127.0.0.2" in out


# -- the guard's decisions, with mitmproxy's test harness ------------------------------------------


def client(address: str, mode: str = "regular"):
    conn = tflow.tclient_conn()
    conn.peername = (address, 50000)
    conn.proxy_mode = ProxyMode.parse(mode)
    return conn


@run_async
async def test_default_allow_list_admits_loopback_wireguard_and_authenticated_clients() -> None:
    g = guard_mod.Guard()
    with taddons.context(ProxyAuth(), g) as tctx:
        stranger = client("192.0.2.50")
        g.client_connected(stranger)
        assert stranger.error and "192.0.2.50" in stranger.error
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:  # this laptop's own address
            try:
                probe.connect(("192.0.2.1", 9))
                own = probe.getsockname()[0]
            except OSError:
                own = "127.0.0.1"
        for ok in (
            client("127.0.0.1"),
            client("::1"),
            client(own),
            client("10.0.0.1", "wireguard"),
            client("192.0.2.9", "local"),
        ):
            g.client_connected(ok)
            assert not ok.error
        tctx.options.proxyauth = "user:secret"
        authenticated = client("192.0.2.50")
        g.client_connected(authenticated)
        assert not authenticated.error  # mitmproxy asks it for the password
        tctx.configure(g, phonehome_allow_client=["192.0.2.23", "198.51.100.0/24"])
        for address, allowed in (("192.0.2.23", True), ("198.51.100.7", True), ("192.0.2.24", False)):
            c = client(address)
            g.client_connected(c)
            assert (c.error is None) is allowed, address
        tunnel = client("10.0.0.1", "wireguard")  # the list is for proxy clients; the key admits peers
        g.client_connected(tunnel)
        assert tunnel.error is None
        with pytest.raises(exceptions.OptionsError, match="not an IP address"):
            tctx.configure(g, phonehome_allow_client=["the-phone"])


def test_local_destinations() -> None:
    check = guard_mod.LocalCheck()
    for host in ("localhost", "LOCALHOST.", "x.localhost", "127.0.0.1", "127.9.9.9", "::1", "0.0.0.0"):
        assert check.name_is_local(host), host
    assert check.name_is_local("::ffff:127.0.0.1") and check.name_is_local("[::1]")
    assert check.name_is_local(socket.gethostname())
    for host in ("example.com", "8.8.8.8", "2001:4860:4860::8888", "192.0.2.1", "localhost.example"):
        assert not check.name_is_local(host), host
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:  # this machine's LAN address
        try:
            probe.connect(("192.0.2.1", 9))
            own = probe.getsockname()[0]
        except OSError:
            own = "127.0.0.1"
    assert check.name_is_local(own)


def test_marker_and_web_port_refusal_page_is_escaped() -> None:
    page = guard_mod.refusal_page("<script>alert(1)</script>:8081 is this laptop").decode()
    assert "<script>" not in page and "&lt;script&gt;" in page and "width=device-width" in page


def test_protection_summary_names_the_mechanism() -> None:
    text = guard_mod.protection_summary()
    assert ("token" in text) and ("refused" in text)
    if not guard_mod.web_has_token():
        assert "CVE-2025-23217" in text
    assert "MAY reach" in guard_mod.protection_summary(allow_local=True)


@run_async
async def test_a_name_that_reached_the_laptop_anyway_gets_no_answer_through() -> None:
    """DNS rebinding: the name resolved elsewhere at server_connect, then to the laptop."""
    from mitmproxy.proxy.server_hooks import ServerConnectionHookData

    g = guard_mod.Guard()
    with taddons.context(g):
        assert "responseheaders" not in vars(g)  # no per-flow cost while nothing reached the laptop
        f = tflow.tflow(resp=True)
        f.live = True
        f.server_conn.address = ("rebind.example", 80)
        f.server_conn.peername = ("127.0.0.1", 80)
        data = ServerConnectionHookData(server=f.server_conn, client=f.client_conn)
        g.server_connected(data)
        g.responseheaders(f)
        assert f.error is not None and not f.killable  # killed: the answer is not passed on
        assert "rebind.example connected to 127.0.0.1" in f.metadata["phonehome_refused"]
        g.server_disconnected(data)
        assert "responseheaders" not in vars(g)
        other = tflow.tflow(resp=True)
        other.server_conn.address = ("elsewhere.example", 80)
        other.server_conn.peername = ("192.0.2.7", 80)
        g.server_connected(ServerConnectionHookData(server=other.server_conn, client=other.client_conn))
        assert "responseheaders" not in vars(g)
