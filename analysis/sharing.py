"""Safe sharing formats: captured text written so that opening a shared file cannot run it.

Captured strings are attacker-controlled (a server or an app chose them). This module holds the
few rules that keep them inert in the places results get opened:

- spreadsheets: a CSV cell starting with `=`, `+`, `-`, `@`, tab or CR is a formula to Excel,
  LibreOffice and Google Sheets (CSV injection). `neutralise_cell` prefixes such a cell with a
  single quote, which spreadsheets show as text; every string cell is quoted, so a CR or LF inside
  a value can never start a new row. Parquet keeps the raw values (it is data, not a document).
- Markdown: `md_code` shows captured text as an inline code span, so nothing in it becomes a link,
  an image, HTML, emphasis or strike-through (`~~`), whatever backticks it holds.
- HTML (and any rendering of mixed-direction text): `bidi_isolate` wraps captured text in a
  first-strong isolate with its own direction controls made visible, so a right-to-left override
  in an app label cannot reverse the text around it.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

#: Rows neutralised and written at a time (the bytes do not depend on it; memory does).
CSV_BATCH_ROWS = 16_384
#: Leading characters that make a spreadsheet treat a cell as a formula (OWASP "CSV injection").
FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_RE = r"^[=+\-@\t\r]"


def neutralise_cell(value: str) -> str:
    """`value` as a spreadsheet shows it as text: formula-leading cells get a `'` prefix."""
    return "'" + value if value.startswith(FORMULA_LEADS) else value


def neutralise_table(table: pa.Table) -> pa.Table:
    """Every string column of an Arrow table with formula-leading cells neutralised (vectorised)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = []
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            risky = pc.match_substring_regex(column, _FORMULA_RE)
            # "'" inserted at position 0; no pa.scalar, which imports pandas (analysis.arrow_tables)
            column = pc.if_else(
                risky, pc.utf8_replace_slice(column, start=0, stop=0, replacement="'"), column
            )
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=table.schema)


def write_csv(table: pa.Table | pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """A CSV meant for spreadsheets: formulas neutralised, every string value quoted (so CR/LF
    inside a value stay inside its cell). Arrow's writer: about 7x faster than DataFrame.to_csv."""
    import pyarrow as pa

    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(table, preserve_index=False)
    with spreadsheet_csv(path, table.schema) as write:
        write(table)


@contextlib.contextmanager
def spreadsheet_csv(path: str | os.PathLike[str], schema: pa.Schema) -> Iterator[Callable[[pa.Table], None]]:
    """write_csv, a table at a time: yields `write(table)`, which appends the table's rows (same
    bytes as one write_csv of all of them; the header is written once).

    Batch by batch (CSV_BATCH_ROWS), dictionary-encoded columns decoded (analysis.arrow_tables
    keeps big findings tables so): the neutralised copy is one batch, never the whole table.
    """
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    from phonehome.analysis.arrow_tables import plain_batches, plain_schema

    options = pa_csv.WriteOptions(quoting_style="needed")
    with pa_csv.CSVWriter(path, plain_schema(schema), write_options=options) as writer:

        def write(table: pa.Table) -> None:
            for batch in plain_batches(table, CSV_BATCH_ROWS):
                writer.write_table(neutralise_table(pa.Table.from_batches([batch])))

        yield write


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """`frame` as spreadsheet-safe CSV bytes (see write_csv), for writers that hold bytes."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    sink = pa.BufferOutputStream()
    table = neutralise_table(pa.Table.from_pandas(frame, preserve_index=False))
    pa_csv.write_csv(table, sink, pa_csv.WriteOptions(quoting_style="needed"))
    return sink.getvalue().to_pybytes()


# --- Markdown --------------------------------------------------------------------------------

_BACKTICK_RUN = re.compile(r"`+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _escape_control(match: re.Match[str]) -> str:
    ch = match.group()
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch, f"\\x{ord(ch):02x}")


def md_code(text: Any, *, table: bool = True) -> str:
    """Captured text as a Markdown inline code span: shown verbatim, never a link or markup.

    The fence is one backtick longer than the longest run inside; a space pads text that starts
    or ends with a backtick (CommonMark strips one such space); control characters (newlines would
    end a table row or the span) become visible escapes. With `table` (the default: captured text
    mostly sits in table cells) `|` is escaped, since GFM splits cells before code spans and reads
    `\\|` as a literal pipe there; pass table=False in running text. Empty text gives "".
    """
    text = "" if text is None else str(text)
    if not text:
        return ""
    text = bidi_visible(_CONTROL.sub(_escape_control, text))
    if table:
        text = text.replace("|", "\\|")
    longest = max((len(m) for m in _BACKTICK_RUN.findall(text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text[0] in "` " or text[-1] in "` " else ""
    return f"{fence}{pad}{text}{pad}{fence}"


# --- bidirectional text ------------------------------------------------------------------------

#: Explicit directional formatting characters (UAX #9): embeddings, overrides, isolates, marks.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_BIDI_RE = re.compile("[" + "".join(sorted(BIDI_CONTROLS)) + "]")
FSI, PDI = "\u2068", "\u2069"


def bidi_visible(text: str) -> str:
    """`text` with every directional control replaced by a visible `<U+202E>`-style marker."""
    return _BIDI_RE.sub(lambda m: f"<U+{ord(m.group()):04X}>", text)


def bidi_isolate(text: Any) -> str:
    """Captured text isolated from its surroundings (FSI ... PDI), its own controls made visible.

    Made visible first, because a PDI inside the text would close the isolate early and let a
    following override leak into the page (a title, a table row). In HTML, escape the result as
    usual (or use `<bdi>` around html-escaped `bidi_visible(text)`).
    """
    text = "" if text is None else str(text)
    return f"{FSI}{bidi_visible(text)}{PDI}"
