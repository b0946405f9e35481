"""The one mode vocabulary (DESIGN.md "Modes and apps")."""

import pytest

from phonehome.analysis.modes import (
    MAX_LABEL_LENGTH,
    LabelError,
    clean_label,
    comparison_pairs,
    normalize_mode,
    read_mode,
)


@pytest.mark.parametrize(
    "raw",
    [
        "incognito",
        "Incognito",
        "INCOGNITO",
        " incognito\n",
        "incognito%20tab",
        "Private Tab",
        "private",
        "InPrivate",
        "private_browsing",
        "Incognito%2520Tab".replace("%25", "%"),
    ],
)
def test_incognito_spellings_are_one_mode(raw: str) -> None:
    assert normalize_mode(raw) == "incognito"


@pytest.mark.parametrize("raw", ["normal", "Normal", "NORMAL", "regular", " Default "])
def test_normal_spellings_are_the_baseline(raw: str) -> None:
    assert normalize_mode(raw) == "normal"


def test_unknown_mode_is_kept_and_warned_about_unless_declared() -> None:
    reading = read_mode("Incognito OptOut", where="marker")
    assert reading.mode == "incognito-optout"
    assert reading.warning and "unknown mode 'incognito-optout' in marker" in reading.warning
    assert read_mode("incognito_optout", declared=("Incognito-OptOut",)).warning is None
    assert read_mode("Private").warning is None


@pytest.mark.parametrize(
    "raw", ["", "   ", "%20", "x" * (MAX_LABEL_LENGTH + 1), "in\u202ecognito", "a\x00b", "mode/../x", 3, None]
)
def test_bad_mode_values_are_refused(raw) -> None:
    with pytest.raises(LabelError):
        normalize_mode(raw)


def test_app_labels_keep_their_case_but_are_bounded() -> None:
    assert clean_label(" com.Example.App ") == "com.Example.App"
    with pytest.raises(LabelError, match="at most"):
        clean_label("a" * 60_000)


def test_every_study_mode_is_compared_with_the_baseline_even_without_traffic() -> None:
    assert comparison_pairs({"normal"}) == [("normal", "incognito")]
    assert comparison_pairs({"normal", "incognito", "x"}, declared=("Incognito OptOut",)) == [
        ("normal", "incognito"),
        ("normal", "incognito-optout"),
        ("normal", "x"),
    ]
