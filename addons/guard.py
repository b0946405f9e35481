"""Keep the proxy from being turned against the tester (DESIGN.md "Recording": no open door).

Two holes, closed here for every mitmproxy version:

- **Through the proxy to the laptop.** A client of the proxy could ask it for `http://127.0.0.1:8081/`
  — mitmweb's API, which on mitmproxy < 11.1.2 has no token (CVE-2025-23217) and hands out the whole
  capture — or for any other service listening on the laptop. Requests, CONNECTs and server
  connections (HTTP, TCP, UDP, also in WireGuard and transparent mode) whose destination is this
  machine (loopback, an unspecified address, one of the laptop's own addresses, `localhost` names,
  or a name resolving to any of those) are refused: HTTP gets a 403 page saying why, other
  connections are killed before they are opened. Option `phonehome_allow_local` lets them through
  (e.g. to test an app against a server on the laptop); mitmweb's own port stays refused even then.
  Names are resolved here before mitmproxy connects; should a name answer differently a moment
  later (DNS rebinding), the connection made is checked again and nothing from the laptop is
  passed back (that request itself has then been sent: the one residual gap).
- **Strangers using the proxy.** Android's Wi-Fi proxy setting cannot send proxy credentials, so
  the phone is admitted by address: option `phonehome_allow_client` (addresses or networks). With
  the list empty, loopback clients, WireGuard peers (the tunnel's key authenticates them) and, when
  mitmproxy's `proxyauth` is set, clients that authenticate are admitted; anyone else is refused
  at `client_connected`, with a log line naming the address and the option to add it with.

`proxyauth` never has to appear on a command line: the guard takes it from the environment
variable PHONEHOME_PROXYAUTH (removed from the environment once read, so the helper processes do
not inherit it), which `phonehome record --proxyauth FILE` fills from the file.
"""

from __future__ import annotations

import asyncio
import errno
import html
import ipaddress
import logging
import os
import socket
from collections.abc import Sequence

from mitmproxy import ctx, exceptions, http, version
from mitmproxy.connection import Client
from mitmproxy.net.http import url
from mitmproxy.proxy import mode_specs, server_hooks

log = logging.getLogger(__name__)

PROXYAUTH_ENV = "PHONEHOME_PROXYAUTH"
TOKEN_VERSION = (11, 1, 2)  # mitmweb's API asks for a token from this version on (CVE-2025-23217)
_CACHE_LIMIT = 4096
# hooks through which an answer could pass back (set on the instance only while needed)
_BACKSTOP_HOOKS = ("responseheaders", "tcp_message", "udp_message", "websocket_message")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def mitmproxy_version() -> tuple[int, ...]:
    """The running mitmproxy's version as numbers, e.g. (11, 0, 2)."""
    parts = []
    for piece in version.VERSION.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def web_has_token() -> bool:
    """Whether this mitmproxy's web UI asks for a token (fixed CVE-2025-23217)."""
    return mitmproxy_version() >= TOKEN_VERSION


def protection_summary(allow_local: bool = False) -> str:
    """One line for the operator: what keeps proxied requests away from the laptop and the web UI."""
    if web_has_token():
        web = f"mitmweb's API token (mitmproxy {version.VERSION})"
    else:
        web = (
            f"no mitmweb token on mitmproxy {version.VERSION} (CVE-2025-23217, fixed in 11.1.2, which needs"
            " Python 3.12+): phonehome's guard is what protects the web UI"
        )
    local = (
        "proxied requests MAY reach this laptop (phonehome_allow_local), except mitmweb's port"
        if allow_local
        else "proxied requests to this laptop (loopback, its own addresses, the web UI) are refused"
    )
    return f"protection: {web}; {local}"


def _parse_ip(text: str) -> IPAddress | None:
    try:
        ip = ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _bindable(ip: IPAddress) -> bool:
    """Whether `ip` is one of this machine's own addresses: only those can be bound to."""
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.bind((str(ip), 0))
        return True
    except OSError as exc:
        return exc.errno not in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT, errno.EINVAL)


def _own_names() -> set[str]:
    names = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
    for name in (socket.gethostname(), socket.getfqdn()):
        if name:
            names |= {name.lower(), f"{name.lower()}.local"}
    return names


class LocalCheck:
    """Answers "is this destination the laptop itself?" for names and addresses, cached."""

    def __init__(self) -> None:
        self.names = _own_names()
        self.ips: dict[IPAddress, bool] = {}

    def ip_is_local(self, ip: IPAddress) -> bool:
        if ip.is_loopback or ip.is_unspecified:
            return True
        known = self.ips.get(ip)
        if known is None:
            if len(self.ips) >= _CACHE_LIMIT:
                self.ips.clear()
            known = self.ips[ip] = _bindable(ip)
        return known

    def name_is_local(self, host: str) -> bool:
        """By its text alone: an address of this machine, or a name that always means it."""
        ip = _parse_ip(host)
        if ip is not None:
            return self.ip_is_local(ip)
        name = host.lower().rstrip(".")
        return name in self.names or name.endswith(".localhost")

    def reload(self) -> None:
        """Forget cached answers (the laptop's addresses change when it changes networks)."""
        self.ips.clear()
        self.names = _own_names()


def parse_networks(values: Sequence[str]) -> list[Network]:
    """`192.168.1.23`, `192.168.1.0/24`, `fd00::/8` -> networks; a clear error for anything else."""
    networks = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            try:
                networks.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise exceptions.OptionsError(
                    f"phonehome_allow_client: {part!r} is not an IP address or network (e.g. 192.168.1.23)"
                ) from None
    return networks


def refusal_page(what: str) -> bytes:
    """The small page a refused request gets (mobile viewport, everything escaped)."""
    return (
        '<!doctype html><meta charset="utf-8"><meta name="viewport" content="width=device-width,'
        ' initial-scale=1"><title>phonehome: refused</title><h1>Refused by phonehome</h1>'
        f"<p>{html.escape(what)}</p><p>The recording proxy does not let its clients reach the laptop"
        " it runs on. If you really need this, restart it with <code>--allow-local</code>.</p>"
    ).encode()


class Guard:
    """Refuses clients not on the allow-list, and any proxied destination that is this laptop."""

    def __init__(self) -> None:
        self.local = LocalCheck()
        self.networks: list[Network] = []
        self.refused_clients = 0
        self.refused_local = 0
        self.verdicts: dict[tuple[str, int | None], str | None] = {}  # (host, port) -> why refused
        self.reached: dict[str, str] = {}  # server connection id -> why: it reached the laptop
        self._env_auth = os.environ.pop(PROXYAUTH_ENV, "")

    def load(self, loader) -> None:
        loader.add_option(
            "phonehome_allow_local",
            bool,
            False,
            "Let proxied requests reach this laptop (loopback, its own addresses); mitmweb's port never.",
        )
        loader.add_option(
            "phonehome_allow_client",
            Sequence[str],
            [],
            "Client addresses or networks allowed to use the proxy (the phone). Empty: this laptop,"
            " WireGuard peers, and clients that pass proxyauth.",
        )

    def configure(self, updated: set[str]) -> None:
        self.verdicts.clear()  # they depend on phonehome_allow_local and web_port
        if "phonehome_allow_client" in updated:
            self.networks = parse_networks(ctx.options.phonehome_allow_client)
        if self._env_auth and "proxyauth" in ctx.options:
            auth, self._env_auth = self._env_auth, ""
            ctx.options.update(proxyauth=auth)
        if "web_host" in updated and "web_host" in ctx.options:
            ip = _parse_ip(ctx.options.web_host)
            if not (ip is not None and ip.is_loopback) and ctx.options.web_host != "localhost":
                message = f"mitmweb's UI listens on {ctx.options.web_host}, not loopback only"
                if not web_has_token():
                    # an error logged at startup makes mitmproxy exit (its errorcheck addon)
                    log.error(
                        f"phonehome: {message}: on mitmproxy {version.VERSION} its API has no token"
                        " (CVE-2025-23217), so anyone who reaches it gets the capture; use web_host=127.0.0.1"
                    )
                else:
                    log.warning(f"phonehome: {message}")

    def running(self) -> None:
        log.info(f"phonehome: {protection_summary(ctx.options.phonehome_allow_local)}")

    # -- who may use the proxy --------------------------------------------------------------
    def client_allowed(self, client: Client) -> bool:
        if not client.peername:
            return True  # not a network client (e.g. a replay)
        ip = _parse_ip(str(client.peername[0]))
        if ip is None:
            return False
        if isinstance(client.proxy_mode, mode_specs.WireGuardMode | mode_specs.LocalMode):
            return True  # the tunnel's key / this machine's own processes, list or not
        if self.networks:
            return any(ip in net for net in self.networks if net.version == ip.version)
        if self.local.ip_is_local(ip):
            return True  # this laptop itself
        # mitmproxy then asks every client for credentials
        return "proxyauth" in ctx.options and bool(ctx.options.proxyauth)

    def client_connected(self, client: Client) -> None:
        if self.client_allowed(client):
            return
        self.refused_clients += 1
        address = client.peername[0] if client.peername else "?"
        client.error = f"phonehome: client {address} is not allowed to use this proxy"
        log.warning(
            f"phonehome: refused client {address}: not on the allow-list. If this is the test phone,"
            f" restart with --allow-client {address} (option phonehome_allow_client)."
        )

    # -- where proxied traffic may go -------------------------------------------------------
    def _web_port(self, port: int | None) -> bool:
        return "web_port" in ctx.options and port == ctx.options.web_port

    def _refuse_reason(self, host: str, port: int | None) -> str | None:
        key = (host, port)
        if key in self.verdicts:
            return self.verdicts[key]
        if len(self.verdicts) >= _CACHE_LIMIT:
            self.verdicts.clear()
        reason = self.verdicts[key] = self._decide(host, port)
        return reason

    def _decide(self, host: str, port: int | None) -> str | None:
        if not host or not self.local.name_is_local(host):
            return None
        if self._web_port(port):
            return f"{host}:{port} is this laptop's mitmweb interface"
        if ctx.options.phonehome_allow_local:
            return None
        return f"{host}:{port} is this laptop" if port else f"{host} is this laptop"

    def _exempt(self, client: Client | None) -> bool:
        """Reverse mode: the user chose the destination, it is no client's request."""
        return client is not None and isinstance(client.proxy_mode, mode_specs.ReverseMode)

    def _refuse_flow(self, flow: http.HTTPFlow, reason: str) -> None:
        self.refused_local += 1
        flow.metadata["phonehome_refused"] = reason
        log.warning(f"phonehome: refused a proxied request: {reason}")
        flow.response = http.Response.make(
            403,
            refusal_page(reason),
            {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"},
        )

    def http_connect(self, flow: http.HTTPFlow) -> None:
        if self._exempt(flow.client_conn):
            return
        reason = self._refuse_reason(flow.request.host, flow.request.port)
        if reason:
            self._refuse_flow(flow, reason)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        """A proxy request for the laptop (absolute form, HTTP/2 authority) gets a 403 page.

        Inside a CONNECT tunnel (and in transparent / WireGuard mode) `request.host` is the server
        connection's address, which CONNECT and server_connect check (and which a later addon,
        e.g. a redirect, may have chosen): such a request is left to them.
        """
        data = flow.request.data
        if not data.authority:
            address = flow.server_conn.address
            if address is not None and address[0] == data.host and address[1] == data.port:
                return  # the common case, kept cheap: a request inside a checked connection
        if flow.response is not None or self._exempt(flow.client_conn):
            return
        request = flow.request
        if request.authority:
            host, port = url.parse_authority(request.authority, check=False)
            port = port or request.port
        else:
            host, port = request.host, request.port
        reason = self._refuse_reason(host, port)
        if reason:
            self._refuse_flow(flow, reason)

    async def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        server = data.server
        if server.error or not server.address or self._exempt(data.client):
            return
        host, port = str(server.address[0]), server.address[1]
        reason = self._refuse_reason(host, port)
        if reason is None and _parse_ip(host) is None and not ctx.options.phonehome_allow_local:
            reason = await self._resolve_check(server, host, port)
        if reason:
            self.refused_local += 1
            server.error = f"phonehome: refused: {reason}"
            log.warning(f"phonehome: refused a proxied connection: {reason}")

    async def _resolve_check(self, server, host: str, port: int) -> str | None:
        """Resolve a name; refuse it if any address is the laptop. A name that does not resolve is
        left to mitmproxy, which reports the failure. (The connection is not pinned to the checked
        address: mitmproxy reuses server connections by address, so pinning would cost every
        keep-alive. A name whose answer changes in between is caught by server_connected.)"""
        kind = socket.SOCK_STREAM if server.transport_protocol == "tcp" else socket.SOCK_DGRAM
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=kind)
        except (OSError, UnicodeError):
            return None
        for info in infos:
            ip = _parse_ip(str(info[4][0]))
            if ip is not None and self.local.ip_is_local(ip):
                return f"{host} resolves to {ip}, this laptop"
        return None

    def server_connected(self, data: server_hooks.ServerConnectionHookData) -> None:
        """Backstop: the address actually connected to (a name may answer differently by now)."""
        peer = data.server.peername
        if not peer or self._exempt(data.client) or _parse_ip(str(data.server.address[0])) is not None:
            return  # an address (not a name) was checked at server_connect, or set by a later addon
        ip = _parse_ip(str(peer[0]))
        if ip is None or not self.local.ip_is_local(ip):
            return
        if ctx.options.phonehome_allow_local and not self._web_port(peer[1]):
            return
        self.reached[data.server.id] = f"{data.server.address[0]} connected to {ip}, this laptop"
        log.warning(f"phonehome: {self.reached[data.server.id]}; its answers are not passed on")
        # Armed only while such a connection exists: mitmproxy looks hooks up by attribute on every
        # event, so no flow pays for this check the rest of the time.
        for name in _BACKSTOP_HOOKS:
            setattr(self, name, self._block_reached)

    def server_disconnected(self, data: server_hooks.ServerConnectionHookData) -> None:
        if self.reached.pop(data.server.id, None) is not None and not self.reached:
            for name in _BACKSTOP_HOOKS:
                self.__dict__.pop(name, None)

    def _block_reached(self, flow) -> None:
        """Answers from a connection that reached the laptop never reach the client."""
        server = getattr(flow, "server_conn", None)
        if server is not None and server.id in self.reached:
            self.refused_local += 1
            flow.metadata["phonehome_refused"] = self.reached[server.id]
            if flow.killable:
                flow.kill()
