"""The report plots contain the expected series."""

from __future__ import annotations

from matplotlib.figure import Figure

from phonehome.analysis.plots import bytes_per_owner, data_types_by_destination, png_bytes, requests_over_time
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


def test_heatmap_has_one_panel_per_mode_with_hosts_and_types():
    fig = data_types_by_destination(data().findings)
    assert isinstance(fig, Figure)
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == ["incognito mode", "normal mode"]
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ["device_id.imei", "search_query", "url"]
    assert [t.get_text() for t in axes[0].get_yticklabels()] == ["ads.example.com", "sa.api.intl.miui.com"]
    image = axes[0].get_images()[0].get_array()
    assert image.tolist() == [[0, 0, 0], [0, 1, 1]]


def test_requests_over_time_has_a_line_per_mode_and_phase_markers():
    fig = requests_over_time(data().flows)
    ax = fig.get_axes()[0]
    labels = [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert labels == ["incognito mode", "normal mode"]
    assert sum(sum(line.get_ydata()) for line in ax.get_lines() if line.get_label().endswith("mode")) == 4
    assert {t.get_text() for t in ax.texts} == {"normal-browsing", "incognito-browsing"}


def test_bytes_per_owner_sums_request_sizes():
    flows = data().flows
    fig = bytes_per_owner(flows)
    ax = fig.get_axes()[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Xiaomi", "example.com"]
    total = sum(patch.get_width() for patch in ax.patches)
    assert total == flows["request_size"].sum()
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
    ax = fig.get_axes()[0]
    assert ax.get_position().height > 0.05
