"""Report plots: functions that take a tidy DataFrame and return a matplotlib Figure.

No pyplot state anywhere (each Figure gets its own Agg canvas), so plots can be made in worker
threads, tests and notebooks alike. Each plot is sized to be read at a report's page width (about
1000 px) and bounded: the busiest destinations are drawn, the rest counted in one "other hosts" row,
so a 30,000-flow capture draws as fast as the sample.
"""

from __future__ import annotations

import io
from datetime import datetime

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

#: Destinations drawn per plot; the rest are summed into one row.
MAX_HOSTS = 20
MAX_OWNERS = 12
#: Hosts that are the proxy's own or phonehome's markers, never the phone's traffic.
PROXY_HOSTS = frozenset({"mitm.it", "phonehome.mark"})
BASELINE = "normal"
_MODE_COLOURS = ("#4c78a8", "#e45756", "#54a24b", "#b279a2", "#f58518", "#72b7b2")
_PHASE_COLOURS = ("#f2f2f2", "#e3e3e3")


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def mode_order(modes) -> list[str]:
    """The baseline first, then incognito, then the other modes by name."""
    return sorted({str(m) for m in modes}, key=lambda m: (m != BASELINE, m != "incognito", m))


def mode_colours(modes) -> dict[str, str]:
    """One colour per mode, the same in every plot."""
    return {m: _MODE_COLOURS[i % len(_MODE_COLOURS)] for i, m in enumerate(mode_order(modes))}


def _without_proxy_hosts(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty or "host" not in frame.columns:
        return frame
    return frame[~frame["host"].isin(PROXY_HOSTS)]


def _top(values: pd.Series, weights: pd.Series | None = None, limit: int = MAX_HOSTS) -> list[str]:
    """The `limit` heaviest values (by count, or by summed weights), heaviest first."""
    totals = (weights.groupby(values).sum() if weights is not None else values.value_counts()).sort_values(
        ascending=False, kind="stable"
    )
    return [str(v) for v in totals.index[:limit]]


def _count_text(value: float) -> str:
    """A count short enough for a heatmap cell: 7, 934, 2.2k, 11k."""
    if value >= 9950:
        return f"{value / 1000:.0f}k"
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{int(value)}"


def heatmap_counts(findings: pd.DataFrame, limit: int = MAX_HOSTS) -> dict[str, pd.DataFrame]:
    """Per mode, a hosts x data types table of finding counts (the heatmap's data).

    Hosts are the `limit` with most findings over all modes; the others are summed in a last row
    named "other hosts (N)". Every mode's table has the same rows and columns.
    """
    findings = _without_proxy_hosts(findings)
    if findings.empty:
        return {}
    top = _top(findings["host"], limit=limit)
    others = sorted(set(findings["host"]) - set(top))
    host = findings["host"].where(findings["host"].isin(top), f"other hosts ({len(others)})")
    rows = top + ([f"other hosts ({len(others)})"] if others else [])
    types = sorted(set(findings["data_type"]), key=_type_key)
    frame = findings.assign(host=host)
    return {
        mode: (
            frame[frame["mode"] == mode]
            .groupby(["host", "data_type"])
            .size()
            .unstack(fill_value=0)
            .reindex(index=rows, columns=types, fill_value=0)
        )
        for mode in mode_order(frame["mode"])
    }


def _type_key(data_type: str) -> tuple[int, str]:
    order = ("url", "search_query", "device_id.", "token", "user_id", "contact.", "location.")
    for rank, prefix in enumerate(order):
        if data_type == prefix or (prefix.endswith(".") and data_type.startswith(prefix)):
            return (rank, data_type)
    return (len(order), data_type)


def data_types_by_destination(findings: pd.DataFrame, limit: int = MAX_HOSTS) -> Figure:
    """Heatmaps, one per mode, on ONE colour scale with a colour bar: rows are destinations,
    columns data types, cells count findings (written in the cell, dark text on light cells)."""
    tables = heatmap_counts(findings, limit)
    if not tables:
        figure = _figure(8, 2)
        figure.text(0.5, 0.5, "No findings.", ha="center", va="center")
        return figure
    first = next(iter(tables.values()))
    hosts, types = list(first.index), list(first.columns)
    vmax = max(int(t.to_numpy().max()) for t in tables.values()) or 1
    norm = LogNorm(vmin=1, vmax=max(vmax, 2)) if vmax > 50 else Normalize(vmin=0, vmax=vmax)
    cmap = colormaps["Reds"].with_extremes(bad="white", under="white")
    label_room = 0.075 * max(len(t) for t in types)
    width = min(11.0, max(7.0, 2.2 + 0.42 * len(types) * len(tables) + 0.07 * max(len(h) for h in hosts)))
    figure = _figure(width, 1.4 + label_room + 0.3 * len(hosts))
    axes = figure.subplots(1, len(tables), squeeze=False, sharey=True)[0]
    image = None
    for ax, (mode, table) in zip(axes, tables.items(), strict=True):
        values = table.to_numpy().astype(float)
        shown = np.ma.masked_where(values <= 0, values)
        image = ax.imshow(shown, cmap=cmap, norm=norm, aspect="auto")
        ax.set_title(f"{mode} mode", fontsize=11)
        ax.set_xticks(range(len(types)), types, rotation=50, ha="right", fontsize=9)
        ax.set_yticks(range(len(hosts)), hosts, fontsize=9)
        ax.set_xticks(np.arange(-0.5, len(types)), minor=True)
        ax.set_yticks(np.arange(-0.5, len(hosts)), minor=True)
        ax.grid(which="minor", color="#dddddd", linewidth=0.6)
        ax.tick_params(which="minor", length=0)
        for i in range(len(hosts)):
            for j in range(len(types)):
                value = values[i, j]
                if value > 0:
                    dark = norm(value) > 0.55
                    ax.text(
                        j,
                        i,
                        _count_text(value),
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white" if dark else "#222222",
                        fontweight="bold" if dark else "normal",
                    )
    bar = figure.colorbar(image, ax=list(axes), shrink=0.9, pad=0.01, aspect=30)
    bar.set_label("findings (same scale in every mode)", fontsize=9)
    bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    figure.suptitle("Which data went where, per mode (number of findings; 2.2k = 2,200)", fontsize=12)
    return figure


def _runs(frame: pd.DataFrame, column: str) -> list[tuple[str, float, float]]:
    """Contiguous runs of one label over time: (label, start, end), in time order."""
    ordered = frame.sort_values("timestamp", kind="stable")
    runs: list[tuple[str, float, float]] = []
    for label, ts in zip(ordered[column].fillna("").astype(str), ordered["timestamp"], strict=True):
        if runs and runs[-1][0] == label:
            runs[-1] = (label, runs[-1][1], float(ts))
        else:
            runs.append((label, float(ts), float(ts)))
    return runs


def timeline_data(flows: pd.DataFrame, limit: int = MAX_HOSTS) -> dict[str, object]:
    """The timeline's data: request points per destination, and the phase and mode bands."""
    flows = _without_proxy_hosts(flows)
    if flows.empty:
        return {
            "hosts": [],
            "points": pd.DataFrame(columns=["host", "timestamp", "mode"]),
            "modes": [],
            "phases": [],
        }
    top = _top(flows["host"], limit=limit)
    others = sorted(set(flows["host"]) - set(top))
    other = f"other hosts ({len(others)})"
    points = flows.assign(host=flows["host"].where(flows["host"].isin(top), other))[
        ["host", "timestamp", "mode"]
    ]
    return {
        "hosts": top + ([other] if others else []),
        "points": points,
        "modes": _runs(flows, "mode"),
        "phases": [r for r in _runs(flows, "phase") if r[0]],
    }


def _clock(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds).astimezone()
    return moment.strftime("%H:%M:%S")


def requests_over_time(flows: pd.DataFrame, limit: int = MAX_HOSTS) -> Figure:
    """Each request as a tick on its destination's row, over local clock time, against the recorded
    mode switches (coloured bands, labelled) and phases (grey bands, labelled). Nothing is joined
    across gaps: a destination that is silent shows nothing."""
    data = timeline_data(flows, limit)
    hosts = data["hosts"]
    figure = _figure(10, 2.3 + 0.28 * max(len(hosts), 1))
    ax = figure.subplots()
    if not hosts:
        ax.text(0.5, 0.5, "No requests.", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return figure
    points = data["points"]
    colours = mode_colours(points["mode"])
    start, end = float(points["timestamp"].min()), float(points["timestamp"].max())
    pad = max((end - start) * 0.01, 0.5)
    row = {h: i for i, h in enumerate(hosts)}
    # rows: a strip for the modes above the first host, a line for the phase names below the last
    top, bottom = -1.45, len(hosts) + 0.35
    for n, (_phase, a, b) in enumerate(data["phases"]):
        ax.axvspan(a - pad / 2, b + pad / 2, color=_PHASE_COLOURS[n % 2], zorder=0, lw=0)
    for mode, a, b in data["modes"]:
        width = max(b - a + pad, pad)
        ax.broken_barh([(a - pad / 2, width)], (top, 0.75), color=colours.get(mode, "#999999"), zorder=2)
        ax.text((a + b) / 2, top + 0.375, f"{mode} mode", ha="center", va="center", fontsize=9,
                color="white", fontweight="bold", zorder=5, clip_on=True)  # fmt: skip
    for phase, a, b in data["phases"]:
        ax.text((a + b) / 2, bottom - 0.3, f"phase: {phase}", ha="center", va="center", fontsize=8,
                color="#444444", style="italic", zorder=4)  # fmt: skip
    for mode in mode_order(points["mode"]):
        sub = points[points["mode"] == mode]
        ax.scatter(sub["timestamp"], sub["host"].map(row), marker="|", s=90, linewidths=1.4,
                   color=colours[mode], label=f"{mode} mode ({len(sub):,} requests)", zorder=3)  # fmt: skip
    ax.set_yticks(range(len(hosts)), hosts, fontsize=9)
    ax.set_ylim(bottom, top)
    ax.set_xlim(start - pad, end + pad)
    ax.xaxis.set_major_locator(MaxNLocator(8))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _clock(v)))
    zone = datetime.fromtimestamp(start).astimezone().strftime("%Z") or "local"
    ax.set_xlabel(
        f"time ({zone}); top strip: the mode; grey bands: the recorded phases, named at the bottom",
        fontsize=9,
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    ax.set_title("Requests per destination over time, with the mode switches", fontsize=12)
    return figure


def request_bytes(flows: pd.DataFrame) -> pd.Series:
    """Bytes each request carried: body, plus query string, plus headers when the table has them."""
    body = pd.to_numeric(flows.get("request_size", 0), errors="coerce").fillna(0)
    query = flows["url"].fillna("").astype(str).map(lambda u: len(u.partition("?")[2].encode("utf-8")))
    total = body + query
    for column in ("request_headers_size", "request_header_size", "header_bytes"):
        if column in flows.columns:
            total = total + pd.to_numeric(flows[column], errors="coerce").fillna(0)
            break
    return total


def bytes_table(flows: pd.DataFrame, limit: int = MAX_OWNERS) -> pd.DataFrame:
    """Bytes sent per owner (site when the owner is unknown) and mode, owners with none left out."""
    flows = _without_proxy_hosts(flows)
    if flows.empty:
        return pd.DataFrame()
    owner = flows["owner"].fillna("").astype(str)
    owner = owner.where(owner != "", flows["site"].fillna("").astype(str) + " (owner unknown)")
    table = (
        flows.assign(owner=owner, sent=request_bytes(flows))
        .groupby(["owner", "mode"])["sent"]
        .sum()
        .unstack(fill_value=0)
    )
    table = table[table.sum(axis=1) > 0]
    if table.empty:
        return table
    table = table[mode_order(table.columns)]
    order = table.sum(axis=1).sort_values(ascending=False, kind="stable").index
    table = table.loc[order]
    if len(table) > limit:
        rest = table.iloc[limit:].sum()
        table = pd.concat(
            [table.iloc[:limit], pd.DataFrame([rest], index=[f"other owners ({len(table) - limit})"])]
        )
    table.columns.name = None
    return table


def _bytes_text(n: float) -> str:
    if n >= 1e6:
        return f"{n / 1e6:,.1f} MB"
    if n >= 1e4:
        return f"{n / 1e3:,.0f} kB"
    return f"{int(n):,} B"


def bytes_per_owner(flows: pd.DataFrame, limit: int = MAX_OWNERS) -> Figure:
    """Bytes the phone sent to each owner (bodies, query strings and, when recorded, headers),
    grouped bars per mode, largest first; owners that received nothing are left out."""
    table = bytes_table(flows, limit)
    figure = _figure(10, 1.6 + 0.22 * max(1, len(table)) * max(1, len(table.columns)))
    ax = figure.subplots()
    if table.empty:
        ax.text(0.5, 0.5, "No bytes sent.", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return figure
    colours = mode_colours(table.columns)
    width = 0.8 / len(table.columns)
    top = float(table.to_numpy().max())
    for k, mode in enumerate(table.columns):
        positions = [i + k * width for i in range(len(table))]
        bars = ax.barh(
            positions, table[mode].to_numpy(), height=width, label=f"{mode} mode", color=colours[mode]
        )
        for bar, value in zip(bars, table[mode].to_numpy(), strict=True):
            if value > 0:
                ax.text(bar.get_width() + top * 0.01, bar.get_y() + bar.get_height() / 2, _bytes_text(value),
                        va="center", fontsize=8)  # fmt: skip
    ax.set_yticks([i + 0.4 - width / 2 for i in range(len(table))], table.index, fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, top * 1.15)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _bytes_text(v) if v else "0"))
    headers = any(c in flows.columns for c in ("request_headers_size", "request_header_size", "header_bytes"))
    counted = (
        "bodies, query strings and headers" if headers else "bodies and query strings (headers not recorded)"
    )
    ax.set_xlabel(f"bytes sent: {counted}", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Bytes sent per owner", fontsize=12)
    return figure


def png_bytes(figure: Figure, dpi: int = 96) -> bytes:
    """The figure as PNG bytes, for embedding."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def report_figures(findings: pd.DataFrame, flows: pd.DataFrame) -> dict[str, Figure]:
    """The report's plots by name, in the order they are shown."""
    return {
        "Which data went where, per mode": data_types_by_destination(findings),
        "Requests per destination over time": requests_over_time(flows),
        "Bytes sent per owner": bytes_per_owner(flows),
    }


__all__ = [
    "bytes_per_owner",
    "bytes_table",
    "data_types_by_destination",
    "heatmap_counts",
    "png_bytes",
    "report_figures",
    "request_bytes",
    "requests_over_time",
    "timeline_data",
]
