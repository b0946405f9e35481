"""The walkthrough notebook runs on the sample capture and shows the Xiaomi finding."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "walkthrough.ipynb"


def test_notebook_is_stored_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_notebook_executes_and_shows_incognito_leak():
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()
    text = "\n".join(
        out.get("text", "") + str(out.get("data", {}).get("text/plain", ""))
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
    )
    assert "('sa.api.intl.miui.com', 'search_query')" in text
    assert "('sa.api.intl.miui.com', 'url')" in text
    assert "In incognito mode, visited URLs and search terms left the device to sa.api.intl.miui.com" in text
    images = [
        out for cell in nb.cells for out in cell.get("outputs", []) if "image/png" in out.get("data", {})
    ]
    assert len(images) == 3, "heatmap, timeline and bytes per owner are shown"
    # the worked example decodes the incognito search step by step, as the report does
    assert "Undo gzip compression" in text and "Parse the JSON; the field is highlighted" in text
    assert "divorce lawyer near me" in text
    # an owner nobody is known to be is shown as "unknown", never as a blank or NaN
    owners = next(
        str(out.get("data", {}).get("text/plain", ""))
        for cell in nb.cells
        if cell.cell_type == "code" and "bytes_sent" in cell.source
        for out in cell.outputs
    )
    assert re.search(r"^unknown\s+incognito", owners, re.M) and "NaN" not in text
