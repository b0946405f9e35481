"""Rows to Arrow tables, and Arrow tables to the DataFrames library callers know.

`phonehome analyze` only writes its tables (findings.csv and Parquet), so it builds them as Arrow
tables straight from the rows: importing pandas (0.4 s) was most of a small capture's run.
The tables are the very ones `pa.Table.from_pandas` made of the DataFrames the pipeline built
before: same Arrow types, same values, and the same `pandas` schema metadata, so the Parquet
files are byte for byte the same and `pd.read_parquet` gives back the same frames
(tests/test_arrow_tables.py compares both paths on the sample and on real captures).

That means repeating here what pandas decided about each column (its dtype) and what pyarrow
then wrote, column kind by column kind (COLUMN_KINDS):

- `text`: object-dtype strings, "" for missing (the findings table: findings.normalise_findings).
- `inferred`: strings (None allowed) whose dtype pandas infers: with pandas' `future.infer_string`
  (default from pandas 3) its `str` dtype, written as `large_string`; before that, object,
  written as `string`; a column of nothing but None (or no rows) is object, written as `null`.
- `inferred_int`: integers whose dtype pandas infers (int64; object when there are no rows).
- `float64`, `int64`, `Int64` (nullable), `bool`: a dtype the pipeline set with astype.

`frame(table, name)` is the way back: the DataFrame the pipeline used to return.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from phonehome.analysis.findings import CONTACTS_COLUMNS, FINDINGS_COLUMNS, FLOWS_COLUMNS

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "findings": FINDINGS_COLUMNS,
    "flows": FLOWS_COLUMNS,
    "contacts": CONTACTS_COLUMNS,
}

#: Each table's column kinds (see the module docstring); a column not named is `inferred`
#: (or, in the findings table, `text`).
COLUMN_KINDS: dict[str, dict[str, str]] = {
    "findings": {"timestamp": "float64"},
    "flows": {
        "timestamp": "float64",
        "status": "Int64",
        "request_size": "int64",
        "response_size": "Int64",
        "fields": "int64",
        "decode_truncated": "bool",
        "opaque_bytes": "inferred_int",
    },
    "contacts": {"timestamp": "float64"},
}


def kinds(name: str) -> list[str]:
    """The kind of each column of table `name`, in column order."""
    default = "text" if name == "findings" else "inferred"
    return [COLUMN_KINDS[name].get(column, default) for column in TABLE_COLUMNS[name]]


def infer_string() -> bool:
    """Whether pandas gives strings its `str` dtype: always from pandas 3; before that only with
    `future.infer_string` set (read only when pandas is imported: it is off by default)."""
    try:
        if int(_pandas_version().split(".")[0]) >= 3:
            return True
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False
    pandas = sys.modules.get("pandas")
    try:
        return pandas is not None and bool(pandas.get_option("future.infer_string"))
    except (KeyError, AttributeError):  # a pandas without the option
        return False


def _pandas_version() -> str:
    pandas = sys.modules.get("pandas")
    if pandas is not None:
        return pandas.__version__
    return _installed_pandas_version()


@functools.cache
def _installed_pandas_version() -> str:
    """The installed pandas' version, read once (1.4 ms a read: tables ask for it per column)."""
    return importlib.metadata.version("pandas")


def _strings(values: Sequence, pa) -> pa.Array:
    """A string array of str or None values (None: null), or ValueError for anything else.

    Built with pyarrow's StringBuilder: `pa.array` (and `pa.scalar`) import pandas to check
    whether their argument is a pandas object, which is the import this module avoids."""
    builder = pa.lib.StringBuilder()
    try:
        builder.append_values(values)
    except TypeError as exc:
        raise ValueError("not strings") from exc
    return builder.finish()


def _text_array(values: Sequence, pa) -> pa.Array:
    """Strings, "" for None and str() of anything else (findings.normalise_findings' rule)."""
    try:
        array = _strings(values, pa)
    except ValueError:
        array = None
    if array is None or array.null_count:
        array = _strings(["" if v is None else v if isinstance(v, str) else str(v) for v in values], pa)
    return array


def _validity(missing, np, pa):
    """The validity bitmap of a numpy bool mask of missing values (None when none is missing)."""
    if not missing.any():
        return None
    return pa.py_buffer(np.packbits(~missing, bitorder="little"))


def _float_array(values: Sequence, np, pa) -> pa.Array:
    """float64, as pd.to_numeric(errors="coerce") then Arrow: what is no number is missing."""
    try:
        numbers = np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        numbers = np.array([_number(v) for v in values], dtype=np.float64)
    validity = _validity(np.isnan(numbers), np, pa)
    return pa.Array.from_buffers(pa.float64(), len(numbers), [validity, pa.py_buffer(numbers)])


def _number(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")


def _int_array(values: Sequence, np, pa) -> pa.Array:
    """int64, None missing (pandas' nullable Int64)."""
    missing = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
    numbers = np.array([0 if v is None else v for v in values] if missing.any() else values, dtype=np.int64)
    validity = _validity(missing, np, pa)
    return pa.Array.from_buffers(pa.int64(), len(numbers), [validity, pa.py_buffer(numbers)])


def _bool_array(values: Sequence, np, pa) -> pa.Array:
    bits = np.packbits(np.array([bool(v) for v in values], dtype=bool), bitorder="little")
    return pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(bits)])


def column_array(values: Sequence, kind: str) -> tuple[pa.Array, str, str]:
    """(Arrow array, pandas_type, numpy_type) of one column's values of `kind`, as
    pa.Table.from_pandas records them for the column the pipeline's DataFrame had."""
    import numpy as np  # pyarrow imports it anyway
    import pyarrow as pa

    if kind == "float64":
        return _float_array(values, np, pa), "float64", "float64"
    if kind in ("int64", "Int64"):
        return _int_array(values, np, pa), "int64", kind
    if kind == "bool":
        return _bool_array(values, np, pa), "bool", "bool"
    if not values:  # an object column without rows
        return pa.nulls(0), "empty", "object"
    if kind == "text":
        return _text_array(values, pa), "unicode", "object"
    if kind == "inferred_int":
        return _int_array(values, np, pa), "int64", "int64"
    if kind == "inferred":
        array = _strings(values, pa)
        if array.null_count == len(array):  # None throughout: an object column
            return pa.nulls(len(array)), "empty", "object"
        if infer_string():
            return array.cast(pa.large_string()), "object", "str"
        return array, "unicode", "object"
    raise ValueError(f"unknown column kind {kind!r}")


def arrow_table(rows: Sequence[tuple], name: str) -> pa.Table:
    """Table `name` ("findings", "flows" or "contacts") of row tuples in its column order:
    equal, schema metadata included, to pa.Table.from_pandas of the pipeline's DataFrame."""
    import pyarrow as pa

    columns = TABLE_COLUMNS[name]
    values = list(zip(*rows, strict=True)) if rows else [()] * len(columns)
    arrays, described = [], []
    for column, column_values, kind in zip(columns, values, kinds(name), strict=True):
        array, pandas_type, numpy_type = column_array(column_values, kind)
        arrays.append(array)
        described.append(
            {
                "name": column,
                "field_name": column,
                "pandas_type": pandas_type,
                "numpy_type": numpy_type,
                "metadata": None,
            }
        )
    del values
    metadata = {
        "index_columns": [],
        "column_indexes": [],
        "columns": described,
        "attributes": {},
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": _pandas_version(),
    }
    return pa.Table.from_arrays(
        arrays, names=list(columns), metadata={b"pandas": json.dumps(metadata).encode()}
    )


#: Findings per chunk: rows become Arrow this many at a time (their tuples freed as they go), and
#: the chunks are kept dictionary-encoded; also the rows per batch (and Parquet row group) written.
CHUNK_ROWS = 65_536


def pack_findings(rows: list[tuple]) -> list[pa.Table]:
    """Findings row tuples as Arrow chunks of at most CHUNK_ROWS rows, string columns
    dictionary-encoded (a findings table repeats its sessions, hosts, URLs, field paths and
    identifiers over and over: a tenth of the plain table's memory at 100,000 flows); `rows` is
    emptied chunk by chunk, so its tuples are freed as the chunks are made."""
    chunks = []
    while rows:
        part = rows[:CHUNK_ROWS]
        del rows[:CHUNK_ROWS]
        chunks.append(_dictionary_encoded(arrow_table(part, "findings")))
        del part
    return chunks


def unpack_findings(chunks: list[pa.Table]) -> list[tuple]:
    """The row tuples of packed chunks (pack_findings), as the table holds them."""
    rows: list[tuple] = []
    for chunk in chunks:
        rows.extend(zip(*(column.to_pylist() for column in chunk.columns), strict=True))
    return rows


def findings_table(packed: list[pa.Table], rows: list[tuple]) -> pa.Table:
    """The findings table: the packed chunks, then `rows` (emptied), persistence marked.

    plain() / plain_batches() give the rows of arrow_table(all rows, "findings") back; the
    schema metadata is that table's."""
    import pyarrow as pa

    chunks = [*packed, *pack_findings(rows)]
    if not chunks:
        return arrow_table([], "findings")
    return mark_persistence(pa.concat_tables(chunks) if len(chunks) > 1 else chunks[0])


def mark_persistence(table: pa.Table) -> pa.Table:
    """classify.persistence's rule on a findings table, chunk by chunk: `persistence` added to the
    evidence (low confidence raised to medium) of identifier findings whose value recurs across
    (session, mode) pairs.

    Nothing here is done per finding in Python: the columns are dictionary-encoded, so the rule
    sees each chunk's distinct (data type, value, session, mode) combinations once (numpy finds
    them from the codes), and the marked evidence and confidence are mapped per distinct value
    (each depends only on its own old value: persistence.marked_evidence / marked_confidence).
    """
    import numpy as np
    import pyarrow as pa

    from phonehome.analysis.classify.persistence import (
        LINKING_PREFIXES,
        marked_confidence,
        marked_evidence,
        recurring_values,
    )

    batches = table.to_batches()

    def typed_rows(batch) -> np.ndarray:
        names, codes = _codes(batch.column("data_type"))
        return np.array([n.startswith(LINKING_PREFIXES) for n in names], dtype=bool)[codes]

    def quads():
        for batch in batches:
            rows = np.flatnonzero(typed_rows(batch))
            if len(rows):
                columns = [_codes(batch.column(c)) for c in ("data_type", "value", "session", "mode")]
                yield from _distinct_combinations(columns, rows)

    recurring = recurring_values(quads())
    if not recurring:
        return table
    marked_batches = []
    for batch in batches:
        values, codes = _codes(batch.column("value"))
        recurs = np.array([v in recurring for v in values], dtype=bool)[codes]
        hit = recurs & typed_rows(batch)
        if hit.any():
            columns = dict(zip(batch.schema.names, batch.columns, strict=True))
            for name, mark in (("evidence", marked_evidence), ("confidence", marked_confidence)):
                names, codes = _codes(columns[name])
                # row i takes entry codes[i] of `names` + their marked forms, shifted when hit
                mapped = np.array([*names, *map(mark, names)], dtype=object)
                array = _strings(mapped[codes + hit * len(names)].tolist(), pa)
                columns[name] = (
                    array.dictionary_encode() if pa.types.is_dictionary(columns[name].type) else array
                )
            batch = pa.RecordBatch.from_arrays(list(columns.values()), schema=batch.schema)
        marked_batches.append(batch)
    return pa.Table.from_batches(marked_batches, schema=table.schema)


#: Above this, four columns' codes do not fit one int64 (mixed radix): unique rows instead.
_RADIX_LIMIT = 2**63


def _distinct_combinations(columns: list[tuple[list, np.ndarray]], rows: np.ndarray) -> Iterator[tuple]:
    """The distinct tuples of the columns' values at `rows`; `columns` as _codes gives them.

    Each row's codes become one number (mixed radix), so one 1-D unique finds the combinations
    and each number is taken back apart; when the radix would not fit an int64 (a chunk with
    tens of thousands of distinct values in several columns), numpy's row-wise unique instead.
    """
    import numpy as np

    radix = 1
    for names, _ in columns:
        radix *= max(1, len(names))
    if radix >= _RADIX_LIMIT:
        combos = np.unique(np.stack([codes[rows] for _, codes in columns], axis=1), axis=0)
        for combo in combos.tolist():
            yield tuple(names[i] for (names, _), i in zip(columns, combo, strict=True))
        return
    key = np.zeros(len(rows), dtype=np.int64)
    for names, codes in columns:
        key = key * len(names) + codes[rows]
    for number in np.unique(key).tolist():
        combo = []
        for names, _ in reversed(columns):
            number, code = divmod(number, len(names))
            combo.append(names[code])
        yield tuple(reversed(combo))


def _codes(array: pa.Array) -> tuple[list, np.ndarray]:
    """(distinct values, the index of each row's value among them) of a column chunk."""
    import numpy as np
    import pyarrow as pa

    if not pa.types.is_dictionary(array.type):
        array = array.dictionary_encode()
    indices = array.indices  # no nulls: findings hold "" for missing
    width = indices.type.bit_width // 8  # read from the buffer: Array.to_numpy would import pandas
    codes = np.frombuffer(
        indices.buffers()[1], dtype=f"int{width * 8}", count=len(indices), offset=indices.offset * width
    )
    return array.dictionary.to_pylist(), codes


def _dictionary_encoded(table: pa.Table) -> pa.Table:
    import pyarrow as pa

    columns = [c.dictionary_encode() if pa.types.is_string(c.type) else c for c in table.columns]
    fields = [pa.field(name, c.type) for name, c in zip(table.column_names, columns, strict=True)]
    return pa.Table.from_arrays(columns, schema=pa.schema(fields, metadata=table.schema.metadata))


def plain_schema(schema: pa.Schema) -> pa.Schema:
    """`schema` with each dictionary-encoded column as its value type (metadata kept)."""
    import pyarrow as pa

    fields = [
        pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type) for f in schema
    ]
    return pa.schema(fields, metadata=schema.metadata)


def plain_batches(table: pa.Table, rows: int | None = None) -> Iterator[pa.RecordBatch]:
    """The table's rows in batches of at most `rows` (CHUNK_ROWS), dictionary-encoded columns decoded
    (one batch in memory at a time), with plain_schema."""
    import pyarrow as pa

    schema = plain_schema(table.schema)
    for batch in table.to_batches(max_chunksize=rows or CHUNK_ROWS):
        columns = [c.dictionary_decode() if pa.types.is_dictionary(c.type) else c for c in batch.columns]
        yield pa.RecordBatch.from_arrays(columns, schema=schema)


def plain(table: pa.Table) -> pa.Table:
    """The whole table with plain columns (what arrow_table would have built in one go)."""
    import pyarrow as pa

    if not any(pa.types.is_dictionary(t) for t in table.schema.types):
        return table
    return pa.Table.from_batches(list(plain_batches(table)), schema=plain_schema(table.schema))


def distinct(column: pa.ChunkedArray) -> int:
    """Distinct non-null values of a column, dictionary-encoded chunks included."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pa.types.is_dictionary(column.type):
        return pc.count_distinct(column).as_py()
    seen: set = set()
    for chunk in column.chunks:
        seen.update(chunk.dictionary.take(pc.unique(chunk.indices.drop_null())).to_pylist())
    return len(seen)


def count_true(column: pa.ChunkedArray) -> int:
    """Rows where a boolean column is true (nulls are not)."""
    import pyarrow.compute as pc

    return int(pc.sum(pc.cast(column, "int64")).as_py() or 0)


def frame(table: pa.Table, name: str) -> pd.DataFrame:
    """The DataFrame of an arrow_table (what the pipeline's tables always were): the findings
    as object columns of str (findings.normalise_findings), the other tables with the dtypes
    their metadata records."""
    import pandas as pd

    if name != "findings":
        return table.to_pandas()
    columns = {}
    for column in table.column_names:
        values = table.column(column)
        if column == "timestamp":
            columns[column] = pd.Series(values.to_numpy(), dtype="float64", copy=False)
        else:
            columns[column] = pd.Series(_shared_objects(values), dtype=object, copy=False)
    return pd.DataFrame(columns, columns=list(FINDINGS_COLUMNS))


def _shared_objects(values: pa.ChunkedArray):
    """A numpy object array of the column's strings, one Python str per distinct value of a
    chunk (as to_pandas' deduplicate_objects would give, which pandas 3 only offers for its str
    dtype)."""
    import numpy as np
    import pyarrow as pa

    if len(values) == 0:
        return np.empty(0, dtype=object)
    if pa.types.is_null(values.type):  # None throughout (an object column of None)
        return np.full(len(values), None, dtype=object)
    parts = []
    for chunk in values.chunks:
        encoded = chunk if pa.types.is_dictionary(chunk.type) else chunk.dictionary_encode()
        parts.append(
            encoded.dictionary.to_numpy(zero_copy_only=False)[encoded.indices.to_numpy(zero_copy_only=False)]
        )
    return np.concatenate(parts) if len(parts) > 1 else parts[0]
