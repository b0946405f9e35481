"""Who an endpoint is: registrable domain, owner, category, and first/third party to the app.

The site comes from the public suffix list that `publicsuffixlist` ships (works offline). Owner
and category come from the curated `analysis/data/endpoints.json` (each entry names its source),
optionally extended by user lists in hosts-file, Disconnect services.json or DuckDuckGo
Tracker Radar / TDS format. Longest matching domain suffix wins; user lists win over ours.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from publicsuffixlist import PublicSuffixList

from phonehome.analysis.findings import CATEGORIES
from phonehome.analysis.records import is_ip


@lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    """The public-suffix list, parsed on first use (0.05 s) rather than at import, so commands
    that never ask for a site (`--help`, `record`) do not pay for it."""
    return PublicSuffixList(only_icann=True)


@dataclass(frozen=True, slots=True)
class Endpoint:
    site: str
    owner: str
    category: str
    party: str


@dataclass(frozen=True, slots=True)
class EndpointInfo:
    owner: str
    category: str
    source: str


class EndpointListError(ValueError):
    """A user endpoint list that cannot be read; the message names the file."""


@lru_cache(maxsize=8192)  # hosts repeat (a Referer's, the request's own); the IDNA/PSL lookup is slow
def site_of(host: str) -> str:
    """The registrable domain (eTLD+1) of `host`; the host itself for IPs and bare suffixes."""
    host = host.strip(".").lower()
    if not host or _looks_like_ip(host):
        return host
    return _psl().privatesuffix(host) or host


def _looks_like_ip(host: str) -> bool:
    return ":" in host or is_ip(host)  # ":": an IPv6 literal, or a host:port that has no site either


@lru_cache(maxsize=1)
def _curated() -> tuple[dict[str, EndpointInfo], dict[str, str]]:
    raw = json.loads(resources.files("phonehome.analysis").joinpath("data/endpoints.json").read_text("utf-8"))
    table = {e["domain"]: EndpointInfo(e["owner"], e["category"], e["source"]) for e in raw["endpoints"]}
    return table, dict(raw["app_owners"])


# Category names used by other lists, mapped onto DESIGN.md's vocabulary.
_CATEGORY_ALIASES = {
    "advertising": "advertising",
    "ad motivated tracking": "advertising",
    "ad fraud": "advertising",
    "advertising & analytics": "advertising",
    "analytics": "analytics",
    "audience measurement": "analytics",
    "third-party analytics marketing": "analytics",
    "action pixels": "analytics",
    "session replay": "analytics",
    "fingerprintinginvasive": "analytics",
    "fingerprintinggeneral": "analytics",
    "social": "social",
    "social network": "social",
    "embedded content": "cdn",
    "cdn": "cdn",
    "content": "cdn",
    "crash reporting": "crash_reporting",
    "crash_reporting": "crash_reporting",
    "telemetry": "telemetry",
    "push": "push",
    "api": "api",
}


def _category(names: list[str]) -> str:
    for name in names:
        mapped = _CATEGORY_ALIASES.get(name.strip().lower())
        if mapped:
            return mapped
    return "unknown"


def load_endpoint_list(path: str | Path) -> dict[str, EndpointInfo]:
    """A user list as domain -> info. Formats: hosts file, Disconnect services.json, DDG TDS JSON."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise EndpointListError(f"{path}: cannot read endpoint list ({exc})") from None
    source = f"user list {path.name}"
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise EndpointListError(f"{path}: not valid JSON ({exc})") from None
        if isinstance(data, dict) and "trackers" in data:
            return _from_tds(data, source)
        if isinstance(data, dict) and "categories" in data:
            return _from_disconnect(data, source)
        raise EndpointListError(f"{path}: JSON list not recognised (expected DuckDuckGo TDS or Disconnect)")
    return _from_hosts(text, source)


def _from_tds(data: dict, source: str) -> dict[str, EndpointInfo]:
    out: dict[str, EndpointInfo] = {}
    for domain, tracker in (data.get("trackers") or {}).items():
        if not isinstance(tracker, dict):
            continue
        owner = tracker.get("owner") or {}
        name = owner.get("displayName") or owner.get("name") or "" if isinstance(owner, dict) else ""
        out[domain.lower()] = EndpointInfo(name, _category(list(tracker.get("categories") or [])), source)
    for entity, info in (data.get("entities") or {}).items():
        if not isinstance(info, dict):
            continue
        for domain in info.get("domains") or []:
            out.setdefault(domain.lower(), EndpointInfo(info.get("displayName") or entity, "unknown", source))
    return out


def _from_disconnect(data: dict, source: str) -> dict[str, EndpointInfo]:
    out: dict[str, EndpointInfo] = {}
    for category, services in (data.get("categories") or {}).items():
        for service in services or []:
            for name, urls in (service or {}).items():
                for domains in (urls or {}).values():
                    if not isinstance(domains, list):
                        continue
                    for domain in domains:
                        out.setdefault(str(domain).lower(), EndpointInfo(name, _category([category]), source))
    return out


_HOSTS_LINE = re.compile(
    r"^\s*(?:(?:0\.0\.0\.0|127\.0\.0\.1|::1?)\s+)?([A-Za-z0-9._-]+\.[A-Za-z]{2,})\s*(?:#.*)?$"
)


def _from_hosts(text: str, source: str) -> dict[str, EndpointInfo]:
    out: dict[str, EndpointInfo] = {}
    for line in text.splitlines():
        match = _HOSTS_LINE.match(line)
        if match and match.group(1).lower() not in ("localhost", "localhost.localdomain"):
            out[match.group(1).lower()] = EndpointInfo("", "unknown", source)
    return out


class EndpointClassifier:
    """Classifies hosts with the curated list plus any user lists (which take precedence)."""

    def __init__(self, extra_lists: list[str | Path] | None = None) -> None:
        curated, self.app_owners = _curated()
        self.table: dict[str, EndpointInfo] = dict(curated)
        for path in extra_lists or ():
            for domain, info in load_endpoint_list(path).items():
                known = self.table.get(domain)
                # a list that knows only the domain (hosts file) keeps our owner/category if we have them
                if known and not info.owner and info.category == "unknown":
                    continue
                self.table[domain] = info

    def lookup(self, host: str) -> EndpointInfo | None:
        """Longest matching domain suffix of `host`."""
        labels = host.strip(".").lower().split(".")
        for i in range(len(labels) - 1):
            found = self.table.get(".".join(labels[i:]))
            if found:
                return found
        return None

    def app_owner(self, app: str | None) -> str:
        if not app:
            return ""
        for prefix, owner in self.app_owners.items():
            if app.startswith(prefix) or app == prefix.rstrip("."):
                return owner
        return ""

    def classify(self, host: str, app: str | None = None) -> Endpoint:
        site = site_of(host)
        info = self.lookup(host)
        owner = info.owner if info else ""
        category = info.category if info and info.category in CATEGORIES else "unknown"
        return Endpoint(site, owner, category, self.party(site, owner, app))

    def party(self, site: str, owner: str, app: str | None) -> str:
        """`first` when the endpoint belongs to the app's developer, else `third`.

        The developer is known from the package name: a vendor prefix (com.xiaomi., com.mi. ->
        Xiaomi) or the reversed domain (com.example.app -> example.com). Without an app label
        every endpoint is `third`.
        """
        if not app:
            return "third"
        app_owner = self.app_owner(app)
        if app_owner and owner == app_owner:
            return "first"
        parts = app.lower().split(".")
        if len(parts) >= 2:
            reversed_site = site_of(f"{parts[1]}.{parts[0]}")
            if site == reversed_site:
                return "first"
        return "third"


@lru_cache(maxsize=1)
def default_classifier() -> EndpointClassifier:
    return EndpointClassifier()


def classify_endpoint(host: str, app: str | None = None) -> Endpoint:
    """Endpoint of `host` for `app` with the shipped list (see EndpointClassifier for user lists)."""
    return default_classifier().classify(host, app)
