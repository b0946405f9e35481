"""`phonehome record`: start mitmproxy with the recorder and tell the user what to do on the phone.

It starts mitmproxy as a subprocess with the installed recorder loaded by path (`-s`, found by
phonehome.analysis.installed), so the library still never imports the addons.
"""

from __future__ import annotations

import argparse
import ipaddress
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from phonehome.analysis.installed import recorder_addon


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--app", default="", help="package name of the app under test")
    parser.add_argument("--mode", default="normal", help="starting mode label (default: normal)")
    parser.add_argument("--session", default="", help="session name (default: timestamped)")
    parser.add_argument("--dir", default="captures", help="directory holding sessions (default: captures)")
    parser.add_argument("--port", type=int, default=8080, help="proxy port (default: 8080; WireGuard: 51820)")
    parser.add_argument("--listen-host", default="", help="address to bind (default: all interfaces)")
    parser.add_argument("--wireguard", action="store_true", help="WireGuard mode (recommended; per-app VPN)")
    parser.add_argument("--headless", action="store_true", help="run mitmdump instead of mitmweb")
    parser.add_argument(
        "--proxyauth", default="", help="require proxy auth, e.g. user:pass (mitmproxy proxyauth)"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the instructions and command, start nothing"
    )
    parser.add_argument("mitm_args", nargs=argparse.REMAINDER, help="extra mitmproxy options after --")


def lan_address() -> str:
    """The laptop address the phone most likely reaches (the one with the default route)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent for UDP connect
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def build_command(args: argparse.Namespace) -> list[str]:
    """The mitmproxy command line for these arguments."""
    tool = "mitmdump" if args.headless else "mitmweb"
    exe = shutil.which(tool, path=str(Path(sys.executable).parent)) or shutil.which(tool) or tool
    cmd = [
        exe,
        "-s",
        str(recorder_addon()),
        "--set",
        f"phonehome_dir={args.dir}",
        "--set",
        f"phonehome_mode={args.mode}",
    ]
    if args.app:
        cmd += ["--set", f"phonehome_app={args.app}"]
    if args.session:
        cmd += ["--set", f"phonehome_session={args.session}"]
    port = args.port if not (args.wireguard and args.port == 8080) else 51820
    if args.wireguard:
        cmd += ["--mode", f"wireguard@{port}"]
    else:
        cmd += ["--listen-port", str(port)]
    if args.listen_host:
        cmd += ["--listen-host", args.listen_host]
    if args.proxyauth:
        cmd += ["--proxyauth", args.proxyauth]
    extra = [a for a in args.mitm_args if a != "--"]
    return cmd + extra


def instructions(args: argparse.Namespace, host: str) -> str:
    """What the user must do on the phone, in order."""
    port = 51820 if args.wireguard and args.port == 8080 else args.port
    lines = [
        "phonehome record: recording to " + str(Path(args.dir) / (args.session or "<timestamped session>"))
    ]
    if args.wireguard:
        lines += [
            "1. Install the WireGuard app on the phone. The tunnel config and QR code are shown in mitmweb",
            "   (Capture tab) or printed by mitmdump at start. In the WireGuard app, 'Exclude/Include apps'",
            "   lets only the app under test use the tunnel.",
            f"   Endpoint: {host}:{port} (UDP).",
        ]
    else:
        lines += [
            f"1. Phone Wi-Fi settings -> proxy: manual, host {host}, port {port}.",
        ]
        if args.proxyauth:
            lines.append("   The proxy asks for the username and password you gave with --proxyauth.")
    lines += [
        "2. On the phone, open http://mitm.it and install the mitmproxy CA certificate (user CA; apps",
        "   targeting Android 7+ trust only system CAs: rooted phone: see README, Capture a phone).",
        "3. Label the run from the phone's browser (answered by the proxy, never sent anywhere):",
        "   http://phonehome.mark/mode/normal  http://phonehome.mark/mode/incognito",
        "   http://phonehome.mark/app/<package>  http://phonehome.mark/phase/<name>  http://phonehome.mark/",
        "   (or the commands phonehome.mode / phonehome.app / phonehome.phase in mitmweb).",
        "4. Stop with Ctrl+C. Then: phonehome analyze " + str(Path(args.dir) / (args.session or "<session>")),
    ]
    if not args.wireguard and not args.proxyauth and not _is_loopback(args.listen_host):
        lines.append(
            "WARNING: the proxy listens on all interfaces without a password; anyone on this network can"
            " use it. Use --proxyauth user:pass, or --wireguard (recommended on untrusted Wi-Fi)."
        )
    return "\n".join(lines)


def _is_loopback(host: str) -> bool:
    try:
        return bool(host) and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def run(args: argparse.Namespace) -> int:
    """Print the phone-side instructions, then run mitmproxy until the user stops it."""
    cmd = build_command(args)
    print(instructions(args, args.listen_host or lan_address()))
    if args.dry_run:
        print("command: " + " ".join(cmd))
        return 0
    try:
        return subprocess.call(cmd)
    except FileNotFoundError:
        print(f"phonehome record: {cmd[0]} not found; install mitmproxy in this environment", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
