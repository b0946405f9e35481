"""In-band label markers: `http://phonehome.mark/mode/incognito` opened on the phone (DESIGN.md).

A marker must be the tester's own act. A web page can make the phone request any URL (an image,
a script, a frame, a fetch), so a marker request changes labels only when it is a top-level
navigation the user started:

- With fetch metadata (browsers send it over HTTPS, e.g. `https://phonehome.mark/...`):
  Sec-Fetch-Mode `navigate`, Sec-Fetch-Dest `document` and Sec-Fetch-Site `none` (typed, bookmark)
  or `same-origin` (a tap on a link of the marker page itself). Anything else, including
  `same-site` and `cross-site`, changes nothing.
- Without it (plain `http://` markers: browsers send fetch metadata only to secure origins; old
  browsers): the request must ask for HTML (Accept has text/html, as a page load does, unlike an
  image or script) and carry no Referer of another site (a page's own requests name the page).
  A frame from a page that also suppresses its Referer cannot be told apart from a typed URL:
  use `https://phonehome.mark/...` where the browser trusts the mitmproxy CA to close that gap.

Values are normalised and bounded by phonehome.analysis.modes (modes through read_mode, app and
phase through clean_label). Unknown paths and bad values get a non-2xx page listing the valid
marker links. Everything shown is escaped. Pure functions: the recorder does the I/O.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from urllib.parse import urlsplit

from mitmproxy import http

from phonehome.analysis.modes import CANONICAL_MODES, LabelError, clean_label, read_mode

MARKER_HOST = "phonehome.mark"
LABEL_NAMES = ("mode", "app", "phase")
_ALLOWED_SITES = ("none", "same-origin")


@dataclass(frozen=True)
class MarkerRequest:
    """What a marker request asks for: a label change, the status page, or nothing valid."""

    key: str | None = None  # "mode", "app" or "phase"; None for the status page
    value: str | None = None  # normalised
    warning: str | None = None  # e.g. an unknown mode (kept)
    error: str | None = None  # why the path is not a valid marker (-> 4xx)


def parse(path: str, declared_modes: tuple[str, ...] = ()) -> MarkerRequest:
    """`/mode/Incognito` -> MarkerRequest("mode", "incognito"); `/` -> status; else an error."""
    parts = [p for p in urlsplit(path).path.split("/") if p]
    if not parts:
        return MarkerRequest()
    if parts[0] not in LABEL_NAMES or len(parts) != 2:
        return MarkerRequest(error="not a marker path")
    key, raw = parts
    try:
        if key == "mode":
            reading = read_mode(raw, declared_modes, where="marker")
            return MarkerRequest(key, reading.mode, warning=reading.warning)
        return MarkerRequest(key, clean_label(raw, what=key))
    except LabelError as exc:
        return MarkerRequest(error=str(exc))


def navigation_problem(request: http.Request) -> str | None:
    """Why this request is not the user's own top-level navigation, or None if it is."""
    headers = request.headers
    site = headers.get("Sec-Fetch-Site")
    mode = headers.get("Sec-Fetch-Mode")
    dest = headers.get("Sec-Fetch-Dest")
    if site is not None or mode is not None or dest is not None:
        if mode != "navigate":
            return f"Sec-Fetch-Mode is {mode!r}, not a navigation"
        if dest not in (None, "document"):
            return f"Sec-Fetch-Dest is {dest!r}, not a top-level page"
        if site not in _ALLOWED_SITES:
            return f"Sec-Fetch-Site is {site!r}: started by another site"
        return None
    if "text/html" not in headers.get("Accept", ""):
        return "does not ask for a page (Accept has no text/html)"
    referer = headers.get("Referer")
    if referer:
        try:
            referer_host = (urlsplit(referer).hostname or "").lower()
        except ValueError:
            referer_host = ""
        if referer_host != MARKER_HOST:
            return "comes from another page (Referer)"
    return None


def _links(labels: dict) -> list[tuple[str, str]]:
    links = [(f"/mode/{m}", f"mode: {m}") for m in CANONICAL_MODES]
    if labels.get("mode") and labels["mode"] not in CANONICAL_MODES:
        links.append((f"/mode/{labels['mode']}", f"mode: {labels['mode']}"))
    for key in ("app", "phase"):
        if labels.get(key):
            links.append((f"/{key}/{labels[key]}", f"{key}: {labels[key]}"))
    return links


def page(title: str, message: str, labels: dict) -> bytes:
    """The marker page: a message, the current labels, and the valid marker links, tappable."""
    esc = html.escape
    current = "".join(
        f"<li>{esc(k)}: <b>{esc(str(labels.get(k) or '-'))}</b></li>" for k in ("session", *LABEL_NAMES)
    )
    links = "".join(
        f'<li><a href="{esc(href, quote=True)}">{esc(text)}</a></li>' for href, text in _links(labels)
    )
    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>phonehome: {esc(title)}</title><style>body{{font:16px sans-serif;margin:1em}}"
        " a{display:block;padding:.8em;margin:.3em 0;border:1px solid #888;border-radius:.4em;"
        "text-decoration:none}</style></head><body>"
        f"<h1>{esc(title)}</h1><p>{esc(message)}</p><h2>Labels now</h2><ul>{current}</ul>"
        f"<h2>Markers</h2><ul>{links}</ul><p>Also: <code>/app/&lt;package&gt;</code>,"
        " <code>/phase/&lt;name&gt;</code> (at most 64 characters)."
        "</p></body></html>"
    ).encode()


def response(status: int, title: str, message: str, labels: dict) -> http.Response:
    return http.Response.make(
        status,
        page(title, message, labels),
        {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"},
    )
