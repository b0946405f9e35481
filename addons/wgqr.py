"""Show the WireGuard client config as a QR code in the terminal (`phonehome record --headless --wireguard`).

mitmweb shows the QR code in its UI; mitmdump only logs the config text, which a phone cannot
type. With option `phonehome_wireguard_qr`, once mitmproxy's WireGuard server runs, its client
config (the one mitmproxy itself builds) is printed to the terminal as a QR code for the phone's
WireGuard app to scan, drawn with segno. The config holds the tunnel's private client key: it is
shown on the laptop's own terminal only, never written to the capture.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys

from mitmproxy import ctx
from mitmproxy.proxy import mode_specs

log = logging.getLogger(__name__)

WAIT_SECONDS = 10.0


def qr_text(config: str) -> str:
    """The config as a terminal QR code (text with ANSI colours, dark on light, quiet zone kept)."""
    import segno  # only needed here: importing it costs nothing for everyone else

    out = io.StringIO()
    segno.make(config, error="m").terminal(out=out, compact=True, border=2)
    return out.getvalue()


def wireguard_configs() -> list[str]:
    """Client configs of the running WireGuard servers (mitmproxy's own text)."""
    proxyserver = ctx.master.addons.get("proxyserver")
    configs = []
    for instance in getattr(proxyserver, "servers", []):
        if isinstance(instance.mode, mode_specs.WireGuardMode) and hasattr(instance, "client_conf"):
            conf = instance.client_conf()
            if conf:
                configs.append(conf)
    return configs


class WireGuardQR:
    def __init__(self) -> None:
        self.task: asyncio.Task | None = None

    def load(self, loader) -> None:
        loader.add_option(
            "phonehome_wireguard_qr",
            bool,
            False,
            "Print the WireGuard client config as a QR code in the terminal (for mitmdump).",
        )

    def running(self) -> None:
        if ctx.options.phonehome_wireguard_qr:
            self.task = asyncio.get_running_loop().create_task(self._show())

    async def _show(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_SECONDS
        while not (configs := wireguard_configs()):  # the servers start after `running`
            if loop.time() > deadline:
                log.warning("phonehome: no WireGuard server is running; no QR code to show")
                return
            await asyncio.sleep(0.1)
        for conf in configs:
            try:
                text = qr_text(conf)
            except Exception as exc:  # never break the proxy over a picture
                log.warning(
                    f"phonehome: cannot draw the WireGuard QR code ({exc}); use the config text above"
                )
                continue
            sys.stdout.write("\nScan with the WireGuard app on the phone (+ -> Scan from QR code):\n" + text)
            sys.stdout.flush()
