"""Turning values into words a reader can use: times, counts, and captured text made inert.

Captured text (app labels, hosts, URLs, values) comes from the phone and from servers nobody vetted.
Escaping stops markup; two more things are needed for a page a journalist publishes:
- bidirectional control characters (U+202E RIGHT-TO-LEFT OVERRIDE, isolates, marks) in a label
  would reverse the text around them; in HTML the renderer wraps captured text in <bdi> and the
  stylesheet isolates table cells, and where markup cannot go (the <title>, Markdown) the controls
  are shown as visible `<U+202E>` markers instead (analysis.sharing, one rule for every format);
- in Markdown, captured text goes inside inline code spans (analysis.sharing.md_code), where
  nothing becomes a link, emphasis or HTML.
"""

from __future__ import annotations

import math
import time
from datetime import datetime

from phonehome.analysis import sharing
from phonehome.analysis.sharing import bidi_visible


def plain_line(value: object, limit: int = 300) -> str:
    """Captured text as one visible line: bidi controls and other non-printables escaped, cut at limit."""
    text = "" if value is None else str(value)
    text = bidi_visible(" ".join(text.split()))
    text = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def md_code(value: object, limit: int = 300) -> str:
    """Captured text as a Markdown inline code span (analysis.sharing.md_code), cut at `limit`."""
    text = "" if value is None else " ".join(str(value).split())
    return sharing.md_code(text if len(text) <= limit else text[: limit - 1] + "…")


def readable_time(timestamp: object, *, with_zone: bool = True) -> str:
    """A Unix timestamp as local time with its zone: '2023-11-14 22:13:20 UTC' ('' when missing).

    Local means the zone of the machine building the report (set TZ to choose another); the
    zone name, or its UTC offset when the name is only an abbreviation of digits, is always shown.
    """
    try:
        seconds = float(timestamp)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ""
    if not math.isfinite(seconds) or seconds <= 0:
        return ""
    moment = datetime.fromtimestamp(seconds).astimezone()
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    if not with_zone:
        return text
    return f"{text} {zone_name(moment)}"


def zone_name(moment: datetime) -> str:
    """'UTC', 'CET', or 'UTC+05:30' when the zone has no letters name."""
    name = moment.tzname() or ""
    if name and name.isalpha():
        return name
    offset = moment.strftime("%z")
    return f"UTC{offset[:3]}:{offset[3:]}" if offset else "UTC"


def now_readable() -> str:
    """The current local time, as readable_time writes it."""
    return readable_time(time.time())


def count(value: object) -> str:
    """An integer with thousands separators ('2,500'); other values as text."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return f"{int(value):,}"
    try:
        import numpy as np

        if isinstance(value, np.integer):
            return f"{int(value):,}"
    except ImportError:  # pragma: no cover
        pass
    return "" if value is None else str(value)


def plural(n: int, one: str, many: str | None = None) -> str:
    """'1 request', '2,500 requests'."""
    return f"{n:,} {one if n == 1 else (many or one + 's')}"
