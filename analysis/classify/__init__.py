"""Classification: who each endpoint is, what each decoded field is, which values were the
device's own (known values from a profile), and which identifiers link sessions (persistence).

Public interface used by the pipeline and the live inspector:
`classify_endpoint(host, app) -> Endpoint`, `classify_request(record, decoded, endpoint, profile)
-> list[Finding]`, `mark_persistence(findings) -> findings`; `EndpointClassifier` for user lists.
"""

from phonehome.analysis.classify.endpoints import (
    Endpoint,
    EndpointClassifier,
    EndpointListError,
    classify_endpoint,
    load_endpoint_list,
    site_of,
)
from phonehome.analysis.classify.fields import Verdict, classify_field
from phonehome.analysis.classify.known import KnownValues
from phonehome.analysis.classify.persistence import mark_persistence
from phonehome.analysis.classify.request import classify_request, is_navigation

__all__ = [
    "Endpoint",
    "EndpointClassifier",
    "EndpointListError",
    "KnownValues",
    "Verdict",
    "classify_endpoint",
    "classify_field",
    "classify_request",
    "is_navigation",
    "load_endpoint_list",
    "mark_persistence",
    "site_of",
]
