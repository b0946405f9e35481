"""Coverage: what the report could not see, per app, mode and destination — and why.

A verdict is only as good as what was seen. Three kinds of holes (DESIGN.md "Findings"):

- hosts contacted but not decrypted. A refused TLS handshake is NOT evidence of certificate
  pinning on its own: on a first run the phone often does not trust the proxy's CA yet, and then
  every host fails. So a failure is explained by what else was seen for the same app in the same
  session:
    `ca_not_trusted`    no HTTPS host of this app was decrypted at all in the session (failures on
                        every host), or the client answered TLS alert `unknown ca` before any host
                        of the app was decrypted (the CA was installed later);
    `pinning_suspected` other hosts of this app were decrypted before this failure, this host never
                        (whatever the alert: a client pinned to another CA also says `unknown ca`);
    `partly_decrypted`  this host failed but was also decrypted (not pinning; those connections
                        are unseen);
    `undetermined`      other hosts were decrypted only after the failures (the CA may have been
                        installed in between, or the host pins);
  plus DNS lookups no decrypted request followed (`dns_only`), TLS seen without keys in a packet
  capture (`no_keys`), raw TCP (`raw_tcp`);
- UDP traffic the proxy relayed without decrypting: `quic` (UDP port 443: HTTP/3), `udp` (other);
- payloads sent but opaque (`opaque_payload`): request bodies no decoder opened, counted per
  destination with their bytes, when the flows table says so (column `opaque_bytes`); and
  requests not fully decoded (`decode_incomplete`: a bound on size, depth, nesting or field count
  stopped the decoding, a value was cut at its bound, a WebSocket had more messages than are
  decoded, or a decoder raised), counted per destination with their request bytes (column
  `decode_truncated`). What was decoded is in the findings; the rest was not examined.
"""

from __future__ import annotations

import re

import pandas as pd

from phonehome.analysis.findings import incomplete_mask, opaque_mask
from phonehome.analysis.verdicts.evidence import coverage_id
from phonehome.analysis.verdicts.frames import cell_text

COLUMNS: list[str] = [
    "app",
    "mode",
    "host",
    "owner",
    "kind",
    "reason",
    "count",
    "bytes",
    "detail",
    "coverage_id",
]

#: reason -> what it means, in the words a report uses.
REASONS: dict[str, str] = {
    "ca_not_trusted": "CA not trusted: the phone or app refused the proxy's certificate authority",
    "pinning_suspected": "pinning suspected: this host refused the proxy, other hosts of the app were not",
    "partly_decrypted": "refused at times but also decrypted: not pinning; refused connections are unseen",
    "undetermined": "refused before any other host of the app was decrypted: CA not yet trusted, or pinning",
    "dns_only": "looked up, but no decrypted request followed",
    "no_keys": "TLS seen in a packet capture without keys (give --keylog)",
    "raw_tcp": "a TCP connection that was not HTTP",
    "quic": "QUIC (HTTP/3 on UDP port 443) relayed without decrypting",
    "udp": "other UDP traffic (or UDP whose port the capture does not say) relayed without decrypting",
    "opaque_payload": "request bodies no decoder could open (encrypted, compressed or an unknown format)",
    "decode_incomplete": "requests not fully decoded (a size, depth or field-count bound, a value cut "
    "short, a WebSocket's messages past 2,000, or a decoder error): part of their content was not examined",
}

#: Every reason is a hole a verdict must mention: even a DNS lookup with no decrypted request after it
#: may stand for a connection the proxy never saw (an app bypassing it, a failed connection).
HOLES: frozenset[str] = frozenset(REASONS)

_QUIC_PORT = re.compile(r"(?:^|; )port 443(?:$|;)")
_UNKNOWN_CA = ("unknown ca", "unknown_ca", "unknown certificate authority")


def _https_hosts(flows: pd.DataFrame) -> dict[tuple[str, str], dict[str, float]]:
    """(app, session) -> {decrypted HTTPS host: first time seen}."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    if flows.empty:
        return out
    https = flows[flows["url"].astype(str).str.startswith("https://")]
    if https.empty:
        return out
    times = pd.to_numeric(https["timestamp"], errors="coerce").fillna(0.0)
    firsts = times.groupby([https["app"], https["session"], https["host"]], sort=False).min()
    for (app, session, host), first in firsts.items():
        out.setdefault((str(app), str(session)), {})[str(host)] = float(first)
    return out


def _tls_reason(
    host: str, details: list[str], last_failure: float, decrypted: dict[str, float]
) -> tuple[str, str]:
    """(reason, why) for one host's refused handshakes, given the app's decrypted HTTPS hosts."""
    unknown_ca = any(marker in d.lower() for d in details for marker in _UNKNOWN_CA)
    alert = "; the client answered with TLS alert 'unknown ca'" if unknown_ca else ""
    if host in decrypted:
        return "partly_decrypted", "the same host was also decrypted in this session" + alert
    if not decrypted:
        return "ca_not_trusted", "no HTTPS host of this app was decrypted in this session" + alert
    before = sorted(h for h, first in decrypted.items() if first <= last_failure)
    if before:
        # the app trusted the proxy for those hosts: a refusal of this one is host-specific, whatever
        # the alert says (a client pinned to another CA also answers 'unknown ca')
        shown = ", ".join(before[:3]) + (f" and {len(before) - 3} more" if len(before) > 3 else "")
        return "pinning_suspected", f"other hosts of this app were decrypted before: {shown}" + alert
    if unknown_ca:  # refused as an unknown CA before the app trusted the proxy anywhere: CA installed later
        return (
            "ca_not_trusted",
            "the client answered with TLS alert 'unknown ca' before any host was decrypted",
        )
    return "undetermined", "other hosts of this app were decrypted only after these failures"


def coverage(flows: pd.DataFrame, contacts: pd.DataFrame) -> pd.DataFrame:
    """One row per (app, mode, host, kind, reason) of traffic the report could not read."""
    rows: list[tuple] = []
    if not contacts.empty:
        rows += _contact_rows(flows, contacts)
    if not flows.empty and {"app", "mode", "host"} <= set(flows.columns):
        rows += _opaque_rows(flows) + _incomplete_rows(flows)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    if frame.empty:
        return frame
    frame["count"] = frame["count"].astype("int64")
    frame["bytes"] = frame["bytes"].astype("int64")
    return frame.sort_values(["app", "mode", "reason", "host"], kind="stable").reset_index(drop=True)


def _contact_rows(flows: pd.DataFrame, contacts: pd.DataFrame) -> list[tuple]:
    https = _https_hosts(flows)
    # (app, mode, host) decrypted: a lookup followed by decrypted traffic in the same mode is covered
    seen: set[tuple[str, str, str]] = set()
    if not flows.empty:
        labels = flows[["app", "mode", "host"]].astype(str).drop_duplicates()
        seen = set(labels.itertuples(index=False, name=None))
    seen_hosts = {host for _, _, host in seen}
    # a host's TLS failures are judged per (app, session): one verdict for all its failures there
    tls_reason: dict[tuple[str, str, str], tuple[str, str]] = {}
    failed = contacts[contacts["kind"] == "tls_failed"]
    for (app, session, host), group in failed.groupby(["app", "session", "host"], sort=False):
        details = [str(d) for d in group["detail"] if d]
        decrypted = https.get((str(app), str(session)), {})
        tls_reason[(str(app), str(session), str(host))] = _tls_reason(
            str(host),
            details,
            float(pd.to_numeric(group["timestamp"], errors="coerce").fillna(0.0).max()),
            decrypted,
        )
    kind_reason = {"dns": "dns_only", "sni_only": "no_keys", "tcp": "raw_tcp", "udp": "udp"}
    rows = []
    for app, mode, host, kind, session, detail in zip(
        contacts["app"].astype(str),
        contacts["mode"].astype(str),
        contacts["host"].astype(str),
        contacts["kind"].astype(str),
        contacts["session"].astype(str),
        contacts["detail"],
        strict=True,
    ):
        if kind == "dns" and ((app, mode, host) in seen or (not app and host in seen_hosts)):
            continue  # looked up, then decrypted: covered
        if kind == "tls_failed":
            reason, why = tls_reason[(app, session, host)]
        elif kind == "udp" and _QUIC_PORT.search(str(detail or "")):
            reason, why = "quic", ""
        else:
            reason, why = kind_reason.get(kind, kind), ""
        rows.append((app, mode, host, kind, reason, why, str(detail or "")))
    if not rows:
        return []
    table = pd.DataFrame(rows, columns=["app", "mode", "host", "kind", "reason", "why", "detail"])
    owners = contacts.groupby(["app", "host"], sort=False)["owner"].first()
    out = []
    for (app, mode, host, kind, reason), group in table.groupby(
        ["app", "mode", "host", "kind", "reason"], sort=True
    ):
        notes = list(dict.fromkeys(w for w in group["why"] if w))
        notes += sorted({d for d in group["detail"] if d})[:3]
        out.append(
            (
                app,
                mode,
                host,
                cell_text(owners.get((app, host), "")),
                kind,
                reason,
                len(group),
                0,
                "; ".join(notes)[:500],
                coverage_id(app, mode, host, kind),
            )
        )
    return out


def _opaque_rows(flows: pd.DataFrame) -> list[tuple]:
    opaque = flows[opaque_mask(flows)]
    out = []
    for (app, mode, host), group in opaque.groupby(["app", "mode", "host"], sort=True):
        types = sorted({str(t) for t in group["request_content_type"] if t})
        detail = f"{len(group)} request(s)" + (f"; content types: {', '.join(types[:3])}" if types else "")
        out.append(
            (
                str(app),
                str(mode),
                str(host),
                cell_text(group["owner"].iloc[0]),
                "opaque",
                "opaque_payload",
                len(group),
                int(pd.to_numeric(group["opaque_bytes"]).sum()),
                detail,
                coverage_id(str(app), str(mode), str(host), "opaque"),
            )
        )
    return out


def _incomplete_rows(flows: pd.DataFrame) -> list[tuple]:
    stopped = flows[incomplete_mask(flows)]
    out = []
    for (app, mode, host), group in stopped.groupby(["app", "mode", "host"], sort=True):
        out.append(
            (
                str(app),
                str(mode),
                str(host),
                cell_text(group["owner"].iloc[0]),
                "decode",
                "decode_incomplete",
                len(group),
                int(pd.to_numeric(group["request_size"], errors="coerce").fillna(0).sum()),
                f"{len(group)} request(s)",
                coverage_id(str(app), str(mode), str(host), "decode"),
            )
        )
    return out


def holes(cov: pd.DataFrame, app: str, mode: str) -> pd.DataFrame:
    """The coverage rows of one app in one mode that mean content may have left unseen."""
    if cov.empty:
        return cov
    return cov[(cov["app"] == app) & (cov["mode"] == mode) & cov["reason"].isin(HOLES)]


def describe_holes(rows: pd.DataFrame, limit: int = 3) -> str:
    """'1 host not decrypted (pinning suspected: a.com), 2 opaque payloads (3.1 kB to b.com)'."""
    parts = []
    tls = rows[rows["kind"] == "tls_failed"]
    for reason, words in (
        ("ca_not_trusted", "CA not trusted"),
        ("pinning_suspected", "pinning suspected"),
        ("undetermined", "CA not yet trusted or pinning"),
        ("partly_decrypted", "refused at times"),
    ):
        hosts = sorted(set(tls.loc[tls["reason"] == reason, "host"]))
        if hosts:
            shown = ", ".join(hosts[:limit]) + (
                f" and {len(hosts) - limit} more" if len(hosts) > limit else ""
            )
            parts.append(f"{len(hosts)} host(s) not decrypted ({words}: {shown})")
    for reason, words in (
        ("no_keys", "TLS host(s) without keys"),
        ("raw_tcp", "raw TCP host(s)"),
        ("dns_only", "host(s) looked up but never seen in decrypted traffic"),
    ):
        hosts = sorted(set(rows.loc[rows["reason"] == reason, "host"]))
        if hosts:
            parts.append(f"{len(hosts)} {words} ({', '.join(hosts[:limit])})")
    for reason, words in (("quic", "QUIC (UDP 443) connection(s)"), ("udp", "other UDP connection(s)")):
        udp = rows[rows["reason"] == reason]
        if not udp.empty:
            hosts = sorted(set(udp["host"]))
            parts.append(
                f"{int(udp['count'].sum())} {words} to {', '.join(hosts[:limit])}" + _more(hosts, limit)
            )
    opaque = rows[rows["reason"] == "opaque_payload"]
    if not opaque.empty:
        hosts = sorted(set(opaque["host"]))
        parts.append(
            f"{int(opaque['count'].sum())} opaque payload(s), {_size(int(opaque['bytes'].sum()))}, "
            f"to {', '.join(hosts[:limit])}"
            + (f" and {len(hosts) - limit} more" if len(hosts) > limit else "")
        )
    stopped = rows[rows["reason"] == "decode_incomplete"]
    if not stopped.empty:
        hosts = sorted(set(stopped["host"]))
        parts.append(
            f"{int(stopped['count'].sum())} request(s) not fully decoded to {', '.join(hosts[:limit])}"
            + _more(hosts, limit)
        )
    return "; ".join(parts)


def _more(items: list[str], limit: int) -> str:
    return f" and {len(items) - limit} more" if len(items) > limit else ""


def _size(n: int) -> str:
    return f"{n} bytes" if n < 1024 else f"{n / 1024:.1f} kB" if n < 1024 * 1024 else f"{n / 1048576:.1f} MB"
