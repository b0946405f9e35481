"""Warnings about inputs that read fine but hold nothing to judge, or mix apps.

An empty HAR export, or a packet capture of TLS without keys, reads without error and used to give
"0 requests" and exit 0 — a reader could take that for "the app sent nothing". Each input that
yields no decrypted HTTP request is named, with what it did hold and the likely reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from phonehome.analysis.sources import HAR_SUFFIXES, PCAP_SUFFIXES


def _belongs(sources: pd.Series, path: str) -> pd.Series:
    prefix = path.rstrip(os.sep) + os.sep
    text = sources.astype(str)
    return (text == path) | text.str.startswith(prefix)


def input_warnings(analysis) -> list[str]:
    """What the command line says about the inputs before any table: empty inputs, mixed apps."""
    from phonehome.analysis.verdicts.frames import normalised
    from phonehome.analysis.verdicts.overview import mixed_app_warnings

    flows, contacts = normalised(analysis.flows), normalised(analysis.contacts)
    return [*empty_input_warnings(analysis), *mixed_app_warnings(flows, contacts)]


def empty_input_warnings(analysis) -> list[str]:
    """One warning per input (analysis.sources) from which no HTTP request was read."""
    flows, contacts = analysis.flows, analysis.contacts
    warnings = []
    for report in getattr(analysis, "sources", []) or []:
        path = str(report.path)
        requests = int(_belongs(flows["source"], path).sum()) if not flows.empty else 0
        if requests:
            continue
        others = contacts[_belongs(contacts["source"], path)] if not contacts.empty else contacts
        name = Path(path).name.lower()
        if not others.empty:
            kinds = ", ".join(f"{n} {k}" for k, n in others["kind"].value_counts().sort_index().items())
            held = f"only other contacts ({kinds})"
        else:
            held = "nothing"
        if name.endswith(PCAP_SUFFIXES):
            why = "TLS traffic needs its keys (--keylog FILE, SSLKEYLOGFILE format) to be read as HTTP"
        elif name.endswith(HAR_SUFFIXES):
            why = "the HAR file has no entries (was it exported before the page loaded?)"
        else:
            why = "no request was recorded (was the phone's traffic going through the proxy?)"
        warnings.append(f"{path}: no HTTP request was read, {held}: {why}")
    return warnings
