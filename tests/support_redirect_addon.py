"""Test-only mitmproxy addon: send every upstream connection to a loopback server, keeping host names."""

import os

from mitmproxy.proxy import server_hooks

PORT = int(os.environ["PHONEHOME_TEST_UPSTREAM_PORT"])


class Redirect:
    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        data.server.address = ("127.0.0.1", PORT)


addons = [Redirect()]
