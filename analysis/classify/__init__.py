"""Classification: who each endpoint is and what each decoded field is.

PLACEHOLDER (foundation): registrable domain from the public suffix list and a few key-name
rules. Issue 4 replaces this package with the full classifier; the public interface stays.
"""

from __future__ import annotations

from dataclasses import dataclass
import pandas as pd
from publicsuffixlist import PublicSuffixList

from analysis.decode import DecodedRequest
from analysis.findings import Finding
from analysis.profile import Profile
from analysis.records import HttpRecord

_PSL = PublicSuffixList(only_icann=True)


@dataclass(frozen=True, slots=True)
class Endpoint:
    site: str
    owner: str
    category: str
    party: str


def site_of(host: str) -> str:
    host = host.strip(".").lower()
    return _PSL.privatesuffix(host) or host


def classify_endpoint(host: str, app: str | None = None) -> Endpoint:
    return Endpoint(site_of(host), "", "unknown", "third")


_KEY_TYPES = {"url": "url", "$url": "url", "q": "search_query", "search_word": "search_query"}


def classify_request(
    record: HttpRecord,
    decoded: DecodedRequest,
    endpoint: Endpoint,
    profile: Profile | None = None,
) -> list[Finding]:
    findings = []
    for f in decoded.fields:
        dtype = _KEY_TYPES.get(f.key.lower())
        if not dtype:
            continue
        findings.append(
            Finding(
                record.labels.session,
                record.labels.app,
                record.labels.mode,
                record.flow_id,
                record.timestamp,
                record.method,
                record.host,
                endpoint.site,
                endpoint.owner,
                endpoint.category,
                endpoint.party,
                record.url,
                f.location,
                f.path,
                ">".join(f.encodings),
                dtype,
                f.value,
                "medium",
                "key-name",
            )
        )
    return findings


def mark_persistence(findings: pd.DataFrame) -> pd.DataFrame:
    """Mark identifier values that recur across sessions/modes (issue 4 implements)."""
    return findings
