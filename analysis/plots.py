"""Report plots: functions that take a tidy DataFrame and return a matplotlib Figure (Agg, no pyplot)."""

from __future__ import annotations

import io

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def data_types_by_destination(findings: pd.DataFrame) -> Figure:
    """Heatmaps, one per mode: rows are hosts, columns data types, cells count findings."""
    modes = sorted(set(findings["mode"])) or ["(none)"]
    hosts = sorted(set(findings["host"]))
    types = sorted(set(findings["data_type"]))
    # room for the data-type labels, rotated under the axes, however few hosts there are
    label_room = 0.06 * max((len(t) for t in types), default=0)
    figure = _figure(
        max(6.0, 1.0 + 0.45 * len(types) * len(modes)), 2.0 + label_room + 0.35 * max(len(hosts), 1)
    )
    axes = figure.subplots(1, len(modes), squeeze=False, sharey=True)[0]
    for ax, mode in zip(axes, modes, strict=True):
        counts = (
            findings[findings["mode"] == mode]
            .groupby(["host", "data_type"])
            .size()
            .unstack(fill_value=0)
            .reindex(index=hosts, columns=types, fill_value=0)
        )
        ax.imshow(
            counts.to_numpy() if len(hosts) and len(types) else [[0]], cmap="Reds", aspect="auto", vmin=0
        )
        ax.set_title(f"{mode} mode")
        ax.set_xticks(range(len(types)), types, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(len(hosts)), hosts, fontsize=8)
        for (i, j), value in pd.DataFrame(counts.to_numpy()).stack().items():
            if value:
                ax.text(j, i, str(value), ha="center", va="center", fontsize=7)
    figure.suptitle("Data types by destination")
    return figure


def requests_over_time(flows: pd.DataFrame) -> Figure:
    """Requests per time bin, one line per mode, with a dashed marker where each phase starts."""
    figure = _figure(8, 3)
    ax = figure.subplots()
    if not flows.empty:
        start = flows["timestamp"].min()
        seconds = flows["timestamp"] - start
        bins = max(1.0, float(seconds.max()) / 40)
        binned = flows.assign(t=(seconds // bins) * bins)
        for mode, group in binned.groupby("mode", sort=True):
            series = group.groupby("t").size()
            ax.plot(series.index, series.to_numpy(), marker="o", label=f"{mode} mode")
        phases = flows.dropna(subset=["phase"]).groupby("phase")["timestamp"].min().sort_values()
        for phase, ts in phases.items():
            if phase:
                ax.axvline(ts - start, color="grey", linestyle="--", linewidth=0.8)
                ax.annotate(str(phase), (ts - start, 1), rotation=90, fontsize=7, va="bottom")
        ax.legend()
    ax.set_xlabel("seconds since first request")
    ax.set_ylabel("requests")
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Requests over time")
    return figure


def bytes_per_owner(flows: pd.DataFrame) -> Figure:
    """Bytes the phone sent (request bodies) to each owner, grouped bars per mode."""
    figure = _figure(8, 3.5)
    ax = figure.subplots()
    if not flows.empty:
        owner = flows["owner"].where(flows["owner"] != "", flows["site"])
        table = (
            flows.assign(owner=owner)
            .groupby(["owner", "mode"])["request_size"]
            .sum()
            .unstack(fill_value=0)
            .sort_index()
        )
        width = 0.8 / max(len(table.columns), 1)
        for k, mode in enumerate(table.columns):
            positions = [i + k * width for i in range(len(table))]
            ax.barh(positions, table[mode].to_numpy(), height=width, label=f"{mode} mode")
        ax.set_yticks([i + 0.4 - width / 2 for i in range(len(table))], table.index)
        ax.legend()
    ax.set_xlabel("bytes sent")
    ax.set_title("Bytes sent per owner")
    return figure


def png_bytes(figure: Figure) -> bytes:
    """The figure as PNG bytes, for embedding."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=96)
    return buffer.getvalue()


def report_figures(findings: pd.DataFrame, flows: pd.DataFrame) -> dict[str, Figure]:
    """The report's plots by name, in the order they are shown."""
    return {
        "Data types by destination, per mode": data_types_by_destination(findings),
        "Requests over time": requests_over_time(flows),
        "Bytes sent per owner": bytes_per_owner(flows),
    }
