"""The device profile (DESIGN.md "Device profile"): the test phone's own identifiers and test inputs.

Knowing them lets the classifier find them under any encoding with high confidence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROFILE_KEYS: tuple[str, ...] = (
    "imei",
    "android_id",
    "advertising_id",
    "oaid",
    "serial",
    "mac",
    "imsi",
    "iccid",
    "phone",
    "email",
    "account_id",
    "location",
    "urls",
    "search_terms",
    "extra",
)


class ProfileError(ValueError):
    """profile.json is unreadable or malformed; the message names the file."""


@dataclass(slots=True)
class Profile:
    """Known values by profile key. List-valued keys (imei, mac, urls, search_terms) are lists."""

    values: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "") -> Profile:
        unknown = sorted(set(data) - set(PROFILE_KEYS))
        if unknown:
            raise ProfileError(f"{source or 'profile'}: unknown key(s) {', '.join(unknown)}")
        return cls(dict(data), source)

    @classmethod
    def load(cls, path: str | Path) -> Profile:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ProfileError(f"{path}: no such file") from None
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ProfileError(f"{path}: not a JSON profile ({exc})") from None
        if not isinstance(data, dict):
            raise ProfileError(f"{path}: a profile must be a JSON object")
        return cls.from_dict(data, str(path))

    def merged(self, other: Profile | None) -> Profile:
        """Values of self, with other's filling the gaps (an explicit --profile wins)."""
        if other is None:
            return self
        values = dict(other.values)
        values.update(self.values)
        return Profile(values, self.source or other.source)

    def known_values(self) -> list[tuple[str, str]]:
        """(profile key, value) for every scalar known value, lists flattened, extras by name."""
        pairs: list[tuple[str, str]] = []
        for key, value in self.values.items():
            if key == "extra" and isinstance(value, dict):
                pairs.extend((f"extra.{k}", str(v)) for k, v in value.items() if v not in (None, ""))
            elif key == "location":
                continue
            elif isinstance(value, list):
                pairs.extend((key, str(v)) for v in value if v not in (None, ""))
            elif value not in (None, ""):
                pairs.append((key, str(value)))
        return pairs
