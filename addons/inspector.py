"""Live inspection: classify each flow as it passes so mitmweb shows leaks as they happen.

Runs the same decoder and classifier as `phonehome analyze` on each finished request and puts a
one-line summary into `flow.comment`; flows carrying identifiers or URLs are marked. Any failure is
logged and swallowed: inspection must never break the phone's traffic. Work is bounded by the
decoder's Limits, and is deferred with `loop.call_soon` until after the response hook returns, so the
response goes back to the phone first (mitmweb is then told the flow changed). The comment is therefore
not part of the saved flow; `phonehome analyze` recomputes everything from the request anyway.
Option `phonehome_inspect` (default true) turns it off.
"""

from __future__ import annotations

import asyncio
import logging

from mitmproxy import ctx, http
from mitmproxy.hooks import UpdateHook

from analysis.classify import classify_endpoint, classify_request
from analysis.decode import decode_request
from analysis.records import Labels
from analysis.sources.mitm import http_record

log = logging.getLogger(__name__)

LEAK_TYPES_MARK = ":warning:"


def summarise(flow: http.HTTPFlow) -> tuple[str, bool]:
    """One-line summary of what a request carries, and whether it should be marked."""
    record = http_record(flow, "live", Labels())
    endpoint = classify_endpoint(record.host, record.labels.app)
    findings = classify_request(record, decode_request(record), endpoint, None)
    if not findings:
        return "", False
    types = sorted({f.data_type for f in findings})
    owner = endpoint.owner or endpoint.site
    summary = f"phonehome: {', '.join(types)} -> {owner} ({endpoint.category}, {endpoint.party} party)"
    return summary, True


class Inspector:
    """Annotates flows with what they send; never raises into mitmproxy."""

    def load(self, loader) -> None:
        loader.add_option("phonehome_inspect", bool, True, "Annotate flows live with what they send.")

    def response(self, flow: http.HTTPFlow) -> None:
        if flow.metadata.get("phonehome_marker"):
            return
        try:
            if not ctx.options.phonehome_inspect:
                return
            asyncio.get_running_loop().call_soon(self.inspect, flow, True)
        except Exception:  # no running loop / no options (unit use): inspect inline
            self.inspect(flow, False)

    def inspect(self, flow: http.HTTPFlow, notify: bool = False) -> None:
        """Classify one flow and annotate it; exceptions are logged, never raised."""
        try:
            summary, mark = summarise(flow)
        except Exception as exc:  # inspection must never break traffic
            log.debug(f"phonehome inspector: {type(exc).__name__}: {exc}")
            return
        if summary:
            flow.comment = (flow.comment + "\n" if flow.comment else "") + summary
        if mark:
            flow.marked = LEAK_TYPES_MARK
        if notify and (summary or mark):
            try:
                ctx.master.addons.trigger(UpdateHook([flow]))
            except Exception as exc:
                log.debug(f"phonehome inspector: update failed: {exc}")


addons = [Inspector()]
