"""`phonehome record`: start mitmproxy with the recorder and tell the user what to do on the phone.

It starts mitmproxy as a subprocess with the installed recorder loaded by path (`-s`, found by
phonehome.analysis.installed), so the library still never imports the addons.

Before starting anything it refuses what would record nothing or serve strangers, with one line
each and exit code 2: a regular proxy listening beyond loopback without an allow-list (or proxy
credentials), an option given twice (mitmproxy would then leave every script inactive), a port in
use. The proxy credential travels in the environment (PHONEHOME_PROXYAUTH, read and removed by the
recorder's guard), never on a command line where the process list shows it. After mitmproxy ends
it says how many flows were saved, where, and the command to analyse them; a session directory
this run created and left without flows is removed.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from phonehome.analysis.installed import recorder_addon

PROXYAUTH_ENV = "PHONEHOME_PROXYAUTH"  # read (and removed from its environment) by addons/guard.py
WIREGUARD_PORT = 51820


class RecordError(Exception):
    """A setting that would record nothing or expose the tester: one line for the user, exit 2."""


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
        "--allow-client",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="the phone's IP address (or a network) allowed to use the proxy; repeatable. Needed for a"
        " regular proxy listening beyond loopback (Android's Wi-Fi proxy cannot send a password)",
    )
    parser.add_argument(
        "--allow-local",
        action="store_true",
        help="let proxied requests reach this laptop (refused by default; mitmweb's port always is)",
    )
    parser.add_argument(
        "--proxyauth",
        default="",
        metavar="FILE",
        help=f"file holding the proxy credential (user:pass, or any mitmproxy proxyauth spec) for clients"
        f" that can send one; or set {PROXYAUTH_ENV}. Never given on the command line",
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


def session_name(args: argparse.Namespace) -> str:
    """The session this run records into; chosen here so the command knows its directory."""
    return args.session or datetime.now(UTC).strftime("session-%Y%m%d-%H%M%S")


def listen_port(args: argparse.Namespace) -> int:
    return WIREGUARD_PORT if args.wireguard and args.port == 8080 else args.port


def _is_loopback(host: str) -> bool:
    try:
        return bool(host) and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _set_options(words: list[str]) -> dict[str, str]:
    """Option names given in mitmproxy arguments (`--set k=v`, `--k v`, `--k=v`), with the spelling."""
    names: dict[str, str] = {}
    for i, word in enumerate(words):
        if word == "--set" and i + 1 < len(words):
            name = words[i + 1].split("=", 1)[0]
            names[name.replace("-", "_")] = f"--set {name}=..."
        elif word.startswith("--") and len(word) > 2:
            name = word[2:].split("=", 1)[0]
            names[name.replace("-", "_")] = f"--{name}"
    return names


# options phonehome sets itself, and how the user sets them through `phonehome record`
_OWN_OPTIONS = {
    "phonehome_dir": "--dir",
    "phonehome_session": "--session",
    "phonehome_app": "--app",
    "phonehome_mode": "--mode",
    "phonehome_allow_client": "--allow-client",
    "phonehome_allow_local": "--allow-local",
    "phonehome_wireguard_qr": "--headless --wireguard",
    "listen_port": "--port",
    "listen_host": "--listen-host",
    "mode": "--wireguard",
    "web_host": "(always 127.0.0.1: the web UI is for this laptop only)",
    "proxyauth": "--proxyauth FILE",
}


def check(args: argparse.Namespace) -> None:
    """Refuse settings that would record nothing or serve strangers (RecordError, one line)."""
    extra = [a for a in args.mitm_args if a != "--"]
    ours = set(_set_options(build_command(args)[: -len(extra) or None])) | {"proxyauth"}
    for name, given in _set_options(extra).items():
        if name in ours:
            how = _OWN_OPTIONS.get(name, "its phonehome record option")
            raise RecordError(
                f"{given} after -- sets {name}, which phonehome record sets itself ({how}); give it"
                " once (mitmproxy would otherwise start with every script inactive and record nothing)"
            )
    if args.session and (
        not all(c.isalnum() or c in "-_." for c in args.session) or args.session.strip(".") != args.session
    ):
        raise RecordError(
            f"--session {args.session!r}: use letters, digits and - _ . only (it names a directory)"
        )
    for value in args.allow_client:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise RecordError(
                f"--allow-client {value!r}: not an IP address or network (the phone's Wi-Fi address,"
                " e.g. 192.168.1.23: phone Settings -> About -> Status)"
            ) from None
    if (
        not args.wireguard
        and not _is_loopback(args.listen_host)
        and not args.allow_client
        and not (args.proxyauth or os.environ.get(PROXYAUTH_ENV))
    ):
        raise RecordError(
            "a regular proxy listening beyond loopback would serve anyone on this network: give the"
            " phone's address with --allow-client 192.168.1.23 (repeatable), or use --wireguard"
            " (recommended on shared networks), or --proxyauth FILE for clients that can send a"
            " password (Android's Wi-Fi proxy setting cannot)"
        )


def proxy_credential(args: argparse.Namespace) -> str:
    """The proxyauth value from --proxyauth FILE (first line) or the environment; "" for none."""
    if not args.proxyauth:
        return os.environ.get(PROXYAUTH_ENV, "")
    path = Path(args.proxyauth).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        hint = " (it takes a file now, not the credential itself)" if ":" in args.proxyauth else ""
        raise RecordError(f"--proxyauth {path}: cannot read the credential file: {reason}{hint}") from None
    credential = text.splitlines()[0].strip() if text.strip() else ""
    if not credential:
        raise RecordError(f"--proxyauth {path}:1: the file is empty; write user:pass on its first line")
    return credential


def port_problem(host: str, port: int, udp: bool) -> str | None:
    """Why mitmproxy could not listen there (in use, not an address of this machine), or None."""
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    bind_host = host or ""
    family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
    with socket.socket(family, kind) as sock:
        if not udp:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's servers do
        try:
            sock.bind((bind_host, port))
        except OSError as exc:
            proto = "UDP" if udp else "TCP"
            where = f"{host}:{port}" if host else f"port {port}"
            return f"cannot listen on {where} ({proto}): {exc.strerror or exc}"
    return None


def build_command(args: argparse.Namespace) -> list[str]:
    """The mitmproxy command line for these arguments (no credential: it goes in the environment)."""
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
        "--set",
        f"phonehome_session={session_name(args)}",
    ]
    if args.app:
        cmd += ["--set", f"phonehome_app={args.app}"]
    for client in args.allow_client:
        cmd += ["--set", f"phonehome_allow_client={client}"]
    if args.allow_local:
        cmd += ["--set", "phonehome_allow_local=true"]
    port = listen_port(args)
    if args.wireguard:
        cmd += ["--mode", f"wireguard@{port}"]
        if args.headless:
            cmd += ["--set", "phonehome_wireguard_qr=true"]
    else:
        cmd += ["--listen-port", str(port)]
    if args.listen_host:
        cmd += ["--listen-host", args.listen_host]
    if not args.headless:
        cmd += ["--set", "web_host=127.0.0.1"]
    extra = [a for a in args.mitm_args if a != "--"]
    return cmd + extra


def web_has_token() -> bool:
    """Whether this mitmproxy's web UI asks for a token (mitmproxy >= 11.1.2; CVE-2025-23217)."""
    try:
        from mitmproxy.tools.web import webaddons
    except ImportError:
        return False
    return hasattr(webaddons, "WebAuth")


def protection(args: argparse.Namespace) -> str:
    """Which protections are in force, for the operator."""
    if args.headless:
        web = "no web UI (mitmdump)"
    elif web_has_token():
        web = "web UI on 127.0.0.1 only, with mitmweb's token (open the URL mitmweb prints)"
    else:
        web = (
            "web UI on 127.0.0.1 only; this mitmproxy's web API has no token (CVE-2025-23217; fixed in"
            " mitmproxy 11.1.2, which needs Python 3.12+)"
        )
    local = (
        "proxied requests MAY reach this laptop (--allow-local), except the web UI"
        if args.allow_local
        else "phonehome's guard refuses proxied requests to this laptop (loopback, its addresses, the web UI)"
    )
    if args.wireguard:
        clients = "clients: WireGuard peers holding the tunnel's key"
    elif args.allow_client:
        clients = "clients: " + ", ".join(args.allow_client) + " only"
    elif _is_loopback(args.listen_host):
        clients = "clients: this laptop only (loopback)"
    else:
        clients = "clients: those that pass --proxyauth"
    return f"Protection: {web}; {local}; {clients}."


def instructions(args: argparse.Namespace, host: str) -> str:
    """What the user must do on the phone, in order."""
    port = listen_port(args)
    target = Path(args.dir) / session_name(args)
    lines = ["phonehome record: recording to " + str(target), protection(args)]
    if args.wireguard:
        lines += [
            "1. Install the WireGuard app on the phone. The tunnel config and QR code are shown in mitmweb",
            "   (Capture tab) or printed by mitmdump at start. In the WireGuard app, 'Exclude/Include apps'",
            "   lets only the app under test use the tunnel.",
            f"   Endpoint: {host}:{port} (UDP).",
        ]
    else:
        lines += [f"1. Phone Wi-Fi settings -> proxy: manual, host {host}, port {port}."]
        if _is_loopback(args.listen_host):
            lines.append(
                f"   The proxy listens on {args.listen_host} only: the phone reaches it over USB after"
                f" `adb reverse tcp:{port} tcp:{port}` (proxy host 127.0.0.1 on the phone)."
            )
        if args.proxyauth or os.environ.get(PROXYAUTH_ENV):
            lines.append("   Clients that are not on --allow-client must send the --proxyauth credential.")
    lines += [
        "2. On the phone, open http://mitm.it and install the mitmproxy CA certificate (user CA; apps",
        "   targeting Android 7+ trust only system CAs: rooted phone: see README, Capture a phone).",
        "3. Label the run from the phone's browser (answered by the proxy, never sent anywhere):",
        "   http://phonehome.mark/mode/normal  http://phonehome.mark/mode/incognito",
        "   http://phonehome.mark/app/<package>  http://phonehome.mark/phase/<name>  http://phonehome.mark/",
        "   (or the commands phonehome.mode / phonehome.app / phonehome.phase in mitmweb). Once the CA",
        "   is installed, https://phonehome.mark/... is safer: web pages cannot fake it (docs/recording.md).",
        f"4. Stop with Ctrl+C. Then: phonehome analyze {target}",
    ]
    if not args.wireguard and not _is_loopback(args.listen_host):
        lines.append(
            "On a shared or untrusted network prefer --wireguard: only the phone holds the tunnel's key."
        )
    return "\n".join(lines)


def _flows_saved(target: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError, TypeError):
        count = json.loads((target / "session.json").read_text()).get("flows_written")
        return int(count) if count is not None else None
    return None


def summary(target: Path, existed_before: bool, claim: bool = True) -> str:
    """What the run left on disk and what to do next; removes a session dir it created empty.
    `claim=False` (mitmproxy failed): only the clean-up, no count (the dump may be another run's)."""
    dump = target / "flows.mitm"
    size = dump.stat().st_size if dump.exists() else 0
    if size == 0 and not existed_before and target.is_dir() and not (target / "events.jsonl").exists():
        shutil.rmtree(target, ignore_errors=True)
        return f"phonehome record: no flows were recorded; removed the empty session directory {target}"
    if size == 0 or not claim:
        return f"phonehome record: no flows were recorded in {dump}" if size == 0 else ""
    count = _flows_saved(target)
    saved = "flows" if count is None else f"{count} flow" + ("" if count == 1 else "s")
    return f"phonehome record: {saved} saved in {dump} ({size:,} bytes).\nNext: phonehome analyze {target}"


def run(args: argparse.Namespace) -> int:
    """Print the phone-side instructions, then run mitmproxy until the user stops it."""
    try:
        check(args)
        credential = proxy_credential(args)
        cmd = build_command(args)
        print(instructions(args, args.listen_host or lan_address()))
        if args.dry_run:
            print("command: " + " ".join(cmd))
            return 0
        problem = port_problem(args.listen_host, listen_port(args), udp=args.wireguard)
        if problem:
            raise RecordError(problem + "; choose another with --port")
    except RecordError as exc:
        print(f"phonehome record: {exc}", file=sys.stderr)
        return 2
    target = Path(args.dir).expanduser() / session_name(args)
    existed_before = target.exists()
    env = dict(os.environ)
    env.pop(PROXYAUTH_ENV, None)
    if credential:
        env[PROXYAUTH_ENV] = credential
    try:
        proc = subprocess.Popen(cmd, env=env)
    except FileNotFoundError:
        print(f"phonehome record: {cmd[0]} not found; install mitmproxy in this environment", file=sys.stderr)
        return 2
    code = None
    while code is None:
        try:
            code = proc.wait()
        except KeyboardInterrupt:  # the terminal's Ctrl+C reached mitmproxy too: let it finish
            continue
    stopped_by_user = code in (0, -2, 130)
    if not stopped_by_user:
        print(f"phonehome record: {Path(cmd[0]).name} ended with exit code {code} (see its messages above)")
    text = summary(target, existed_before, claim=stopped_by_user)
    if text:
        print(text)
    return 0 if stopped_by_user else code
