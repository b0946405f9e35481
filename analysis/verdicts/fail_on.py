"""`--fail-on`: which findings make a run fail (exit 1), in the findings vocabulary, checked.

A CI job or a researcher's script relies on `--fail-on device_id` failing when an Android ID is
sent. A word that matches nothing (`urls`, `device_ids`) must not pass silently as "no findings"
— it is refused (exit 2) with the valid words. Accepted: `any`, every exact data type of
analysis.findings.DATA_TYPES, and every family (the part before the dot: `device_id` means every
`device_id.*`, `location` every `location.*`).
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from phonehome.analysis.findings import DATA_TYPES

if TYPE_CHECKING:  # the CLI checks --fail-on before pandas is imported
    import pandas as pd

ANY = "any"


class FailOnError(ValueError):
    """A --fail-on list with a word that is neither a data type, a family nor `any`."""


def families() -> tuple[str, ...]:
    """The data-type families, e.g. `device_id` for `device_id.imei`, `device_id.oaid`…"""
    return tuple(dict.fromkeys(t.split(".", 1)[0] for t in DATA_TYPES if "." in t))


def valid_words() -> tuple[str, ...]:
    return (ANY, *families(), *(t for t in DATA_TYPES if t not in families()))


def parse_fail_on(text: str) -> frozenset[str]:
    """The data types a comma-separated --fail-on list selects (families expanded).

    Raises FailOnError naming the first unknown word, the nearest valid one when there is one,
    and every valid word.
    """
    words = [w.strip() for w in str(text).split(",") if w.strip()]
    if not words:
        raise FailOnError("--fail-on: no data type given; valid: " + ", ".join(valid_words()))
    selected: set[str] = set()
    for word in words:
        if word == ANY:
            selected |= set(DATA_TYPES)
        elif word in DATA_TYPES:
            selected.add(word)
        elif word in families():
            selected |= {t for t in DATA_TYPES if t.startswith(word + ".")}
        else:
            folded = word.casefold()
            near = [t for t in DATA_TYPES if t.rsplit(".", 1)[-1] == folded]  # imei -> device_id.imei
            near = near or difflib.get_close_matches(folded, valid_words(), n=1, cutoff=0.6)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise FailOnError(
                f"--fail-on: unknown data type {word!r}{hint}; valid: {', '.join(valid_words())}"
            )
    return frozenset(selected)


def failing(findings: pd.DataFrame, selected: frozenset[str]) -> pd.DataFrame:
    """The findings whose data type is selected (types added to the vocabulary later are caught by
    their family only if listed; `any` selects every row)."""
    if findings.empty:
        return findings
    if selected >= set(DATA_TYPES):  # `any`: also types outside today's vocabulary
        return findings
    return findings[findings["data_type"].isin(selected)]
