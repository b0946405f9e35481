"""The report plots draw the data they claim to, readably (issue 19): one colour scale across modes
with a colour bar, a timeline of requests per destination against the mode switches and phases,
bytes per owner counting query strings and leaving out owners that received nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from phonehome.analysis.plots import (
    MAX_HOSTS,
    bytes_per_owner,
    bytes_table,
    data_types_by_destination,
    heatmap_counts,
    png_bytes,
    request_bytes,
    requests_over_time,
    timeline_data,
)
from tests.support_report import analysis_of, finding


def data():
    return analysis_of(
        [
            finding("normal", "sa.api.intl.miui.com", "url", "https://a.example/"),
            finding("incognito", "sa.api.intl.miui.com", "url", "https://b.example/"),
            finding("incognito", "sa.api.intl.miui.com", "search_query", "q"),
            finding("normal", "ads.example.com", "device_id.imei", "861234567890123"),
        ]
    )


def _panels(fig: Figure):
    return [ax for ax in fig.get_axes() if ax.get_title().endswith(" mode")]


def test_heatmap_panels_share_one_colour_scale_with_a_colour_bar():
    findings = data().findings
    extra = analysis_of(
        [finding("normal", "sa.api.intl.miui.com", "url", f"https://x{i}.example/") for i in range(6)]
    )
    fig = data_types_by_destination(pd.concat([findings, extra.findings], ignore_index=True))
    assert isinstance(fig, Figure)
    panels = _panels(fig)
    assert [ax.get_title() for ax in panels] == ["normal mode", "incognito mode"]  # baseline first
    norms = {id(ax.get_images()[0].norm) for ax in panels}
    assert len(norms) == 1, "one norm object: a count has the same colour in every mode"
    norm = panels[0].get_images()[0].norm
    assert (norm.vmin, norm.vmax) == (0, 7)
    colourbars = [ax for ax in fig.get_axes() if ax not in panels]
    assert len(colourbars) == 1 and "findings" in colourbars[0].get_ylabel()
    # the incognito "1" is as pale as the normal "1" (same scale), and the cells say their counts
    assert {t.get_text() for t in panels[0].texts} == {"7", "1"}
    assert {t.get_text() for t in panels[1].texts} == {"1"}


def test_heatmap_rows_columns_and_counts():
    counts = heatmap_counts(data().findings)
    assert list(counts) == ["normal", "incognito"]
    assert list(counts["normal"].index) == ["sa.api.intl.miui.com", "ads.example.com"]
    assert list(counts["normal"].columns) == ["url", "search_query", "device_id.imei"]
    assert counts["normal"].to_numpy().tolist() == [[1, 0, 0], [0, 0, 1]]
    assert counts["incognito"].to_numpy().tolist() == [[1, 1, 0], [0, 0, 0]]
    fig = data_types_by_destination(data().findings)
    image = _panels(fig)[1].get_images()[0].get_array()
    assert np.ma.filled(image, 0).tolist() == [[1, 1, 0], [0, 0, 0]]


def test_heatmap_bounds_its_rows_and_sums_the_rest():
    many = [finding("normal", f"h{i:03d}.example.com", "url", f"https://{i}.example/") for i in range(60)]
    many += [finding("normal", "big.example.com", "url", f"https://b{i}.example/") for i in range(5)]
    counts = heatmap_counts(analysis_of(many).findings)["normal"]
    assert len(counts) == MAX_HOSTS + 1 and counts.index[0] == "big.example.com"
    assert counts.index[-1] == f"other hosts ({60 - (MAX_HOSTS - 1)})"
    assert int(counts.to_numpy().sum()) == 65


def test_timeline_has_requests_per_destination_and_labelled_mode_and_phase_bands():
    flows = data().flows
    timeline = timeline_data(flows)
    assert set(timeline["hosts"]) == {"sa.api.intl.miui.com", "ads.example.com"}
    assert len(timeline["points"]) == len(flows)
    assert {m for m, _, _ in timeline["modes"]} == {"normal", "incognito"}
    fig = requests_over_time(flows)
    ax = fig.get_axes()[0]
    texts = {t.get_text() for t in ax.texts}
    assert {"normal mode", "incognito mode"} <= texts
    assert {"phase: normal-browsing", "phase: incognito-browsing"} <= texts
    offsets = [
        c.get_offsets() for c in ax.collections if len(c.get_offsets()) and c.get_label().endswith(")")
    ]
    assert sum(len(o) for o in offsets) == len(flows)
    assert not [line for line in ax.get_lines() if len(line.get_xdata()) > 1], "no line joins across gaps"


def test_bytes_count_query_strings_and_leave_out_owners_with_none_and_the_proxy():
    flows = data().flows.copy()
    extra = flows.iloc[[0, 0, 0]].copy()
    extra["host"] = ["mitm.it", "nav.example.org", "q.example.net"]
    extra["site"] = ["mitm.it", "example.org", "example.net"]
    extra["owner"] = ""
    extra["url"] = ["http://mitm.it/cert/pem", "https://nav.example.org/", "https://q.example.net/s?q=flu"]
    extra["request_size"] = [900, 0, 0]
    flows = pd.concat([flows, extra], ignore_index=True)
    assert request_bytes(flows).iloc[-1] == len("q=flu")  # a GET with a query carries data
    table = bytes_table(flows)
    assert "mitm.it (owner unknown)" not in table.index  # the proxy's own page
    assert "example.org (owner unknown)" not in table.index  # nothing was sent there
    assert table.loc["example.net (owner unknown)"].sum() == 5
    assert table.index[0] == "Xiaomi"
    sent = flows[~flows["host"].isin(["mitm.it"])]
    assert table.to_numpy().sum() == request_bytes(sent).sum()
    fig = bytes_per_owner(flows)
    ax = fig.get_axes()[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == list(table.index)
    assert sum(p.get_width() for p in ax.patches) == table.to_numpy().sum()
    assert png_bytes(fig).startswith(b"\x89PNG")


def test_plots_accept_empty_frames():
    empty = analysis_of([])
    for fig in (
        data_types_by_destination(empty.findings),
        requests_over_time(empty.flows),
        bytes_per_owner(empty.flows),
    ):
        assert png_bytes(fig).startswith(b"\x89PNG")


def test_a_single_long_finding_still_lays_out():
    # one host, one long data type: the rotated label must not squeeze the axes to nothing
    # (matplotlib warns "axes sizes collapsed to zero", an error under the suite's filterwarnings)
    findings = analysis_of(
        [
            finding(
                "normal",
                "a-very-long-telemetry-host-name.tracker.example.com",
                "device_id.advertising_id",
                "x",
            )
        ]
    ).findings
    fig = data_types_by_destination(findings)
    assert png_bytes(fig).startswith(b"\x89PNG")
    ax = _panels(fig)[0]
    assert ax.get_position().height > 0.05


def test_plots_fit_the_page_width():
    for fig in (
        data_types_by_destination(data().findings),
        requests_over_time(data().flows),
        bytes_per_owner(data().flows),
    ):
        assert fig.get_size_inches()[0] * 96 <= 1100  # the report's page is 1100 px wide
