"""Value shapes: cheap, strict predicates for what an identifier, token or address looks like.

Strict on purpose: a shape alone must not turn nonces, CRCs, timestamps or version strings into
device identifiers. Most shapes only count together with a telling key name.
"""

from __future__ import annotations

import ipaddress
import re

UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
HEX16 = re.compile(r"^[0-9a-fA-F]{16}$")
HEX_HASH = re.compile(r"^(?:[0-9a-fA-F]{32}|[0-9a-fA-F]{40}|[0-9a-fA-F]{64})$")
MAC_SEP = re.compile(r"^[0-9a-fA-F]{2}([:-])(?:[0-9a-fA-F]{2}\1){4}[0-9a-fA-F]{2}$")
MAC_BARE = re.compile(r"^[0-9a-fA-F]{12}$")
MAC_DOTTED = re.compile(r"^[0-9a-fA-F]{4}\.[0-9a-fA-F]{4}\.[0-9a-fA-F]{4}$")
EMAIL = re.compile(r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,24}$")
PHONE = re.compile(r"^\+?[0-9][0-9 ().-]{5,18}[0-9]$")
JWT = re.compile(r"^eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*$")
URL = re.compile(r"^(?:https?|ftp)://[^\s/$.?#][^\s]*$", re.IGNORECASE)
GPS_PAIR = re.compile(r"^\s*(-?\d{1,2}\.\d{3,})\s*[,;/ ]\s*(-?\d{1,3}\.\d{3,})\s*$")
PACKAGE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]*(?:\.[a-zA-Z0-9_]+){1,8}$")
VERSION = re.compile(r"^v?\d+(?:\.\d+){1,4}(?:[-+._][0-9A-Za-z.]+)?$")
GA_CLIENT_ID = re.compile(r"^\d{6,12}\.\d{9,10}$")  # random.first-seen-time, as Google Analytics
TOKENISH = re.compile(r"^[A-Za-z0-9_\-+/=.:]{16,}$")
# Firebase Cloud Messaging registration token: "<instance id>:APA91b<base64url>"
FCM_TOKEN = re.compile(r"^[A-Za-z0-9_-]{11,}:APA91b[A-Za-z0-9_-]{60,}$")
# Google Analytics client id cookie (_ga): GA1.<domain depth>.<random>.<first visit, epoch seconds>
GA_COOKIE = re.compile(r"^GA1\.\d\.\d{6,12}\.\d{9,10}$")
# Firebase installation id: 22 characters of base64url, the first a 0111 nibble (c, d, e or f)
FIREBASE_FID = re.compile(r"^[cdef][A-Za-z0-9_-]{21}$")
# an id made of a millisecond timestamp and a random number (AppsFlyer uid: 1550877338208-2569651653562673536)
TIMESTAMP_RANDOM_ID = re.compile(r"^1\d{12}-\d{6,20}$")
# bearer credentials whose prefix says what they are (Google OAuth, Slack, Facebook user tokens, GitHub)
TOKEN_PREFIXES = re.compile(
    r"^(?:ya29\.[A-Za-z0-9_.-]{20,}|xox[abdeoprs]-[A-Za-z0-9-]{10,}|EAA[A-Za-z0-9]{80,}|gh[pousr]_[A-Za-z0-9]{30,})"
)
# a UUID or 32 hex digits inside a longer value (`v=2&<uuid>`, `w0-<uuid>`)
EMBEDDED_ID = re.compile(
    r"(?<![0-9a-fA-F])(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{32})(?![0-9a-fA-F])"
)
HEX_RUN_16 = re.compile(r"[0-9a-fA-F]{16,}")
PACKAGE_LOOSE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]*(?:\.[a-zA-Z][a-zA-Z0-9_]*){1,8}$")
IMEI_TACS = ("01", "35", "86", "99", "30", "33", "44", "45", "49", "50", "51", "52", "53", "54", "91", "98")
_TLDS_THAT_LOOK_LIKE_CODE = {"java", "kt", "js", "py", "json", "xml", "html", "png", "jpg", "so"}


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def is_imei(value: str) -> bool:
    return len(value) == 15 and value.isdigit() and luhn_ok(value)


def is_plausible_imei(value: str) -> bool:
    """An IMEI by shape alone: Luhn-valid and a real reporting-body prefix."""
    return is_imei(value) and value[:2] in IMEI_TACS


def is_imsi(value: str) -> bool:
    return len(value) in (14, 15) and value.isdigit() and value[0] in "2345678"


def is_iccid(value: str) -> bool:
    return 19 <= len(value) <= 20 and value.isdigit() and value.startswith("89")


def is_mac(value: str) -> bool:
    # 17 (separated) or 14 (dotted) characters, one more when `$` matches before a final newline
    if len(value) not in (14, 15, 17, 18):
        return False
    return bool(MAC_SEP.match(value) or MAC_DOTTED.match(value))


def is_mac_bare(value: str) -> bool:
    return (
        bool(MAC_BARE.match(value))
        and not value.isdigit()
        and value.lower() not in ("000000000000", "ffffffffffff")
    )


def is_uuid(value: str) -> bool:
    return bool(UUID.match(value)) and value.strip("0-") != ""


def is_android_id(value: str) -> bool:
    return bool(HEX16.match(value)) and not value.isdigit() and len(set(value)) > 3


def is_email(value: str) -> bool:
    return "@" in value and bool(EMAIL.match(value))


def is_phone(value: str) -> bool:
    if not PHONE.match(value):
        return False
    digits = sum(ch.isdigit() for ch in value)
    return 7 <= digits <= 15


def is_jwt(value: str) -> bool:
    return value.startswith("eyJ") and bool(JWT.match(value))


def is_url(value: str) -> bool:
    # the scheme's "://" ends by the 8th character (`https://`); most values fail here, cheaply
    return len(value) < 8192 and "://" in value[:8] and bool(URL.match(value))


def gps_pair(value: str) -> tuple[float, float] | None:
    if "." not in value:  # both numbers have decimals
        return None
    match = GPS_PAIR.match(value)
    if not match:
        return None
    lat, lon = float(match.group(1)), float(match.group(2))
    if -90 <= lat <= 90 and -180 <= lon <= 180 and (lat, lon) != (0.0, 0.0):
        return lat, lon
    return None


def coordinate(value: str, limit: float, min_decimals: int = 2) -> float | None:
    """A decimal coordinate with at least `min_decimals` decimals within +-limit, else None."""
    if "." not in value or len(value) > 24:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    decimals = len(value.split(".", 1)[1])
    return number if decimals >= min_decimals and -limit <= number <= limit and number != 0 else None


def local_ip(value: str) -> bool:
    """A private, loopback or link-local address: the device's own network position."""
    # neither dotted-quad IPv4 nor IPv6: most values (versions, decimals) end here, in two C calls
    if ":" not in value and value.count(".") != 3:
        return False
    if len(value) > 45 or not (value[:1].isdigit() or ":" in value):
        return False
    if value.count(".") != 3 and value.count(":") < 2:
        return False
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    if address.is_unspecified:
        return False
    return address.is_private or address.is_link_local or address.is_loopback


def is_package(value: str) -> bool:
    """An Android application id (reverse-domain), not a file name or a host name."""
    if not PACKAGE.match(value) or value.count(".") < 1 or len(value) > 150:
        return False
    last = value.rsplit(".", 1)[1].lower()
    first = value.split(".", 1)[0].lower()
    return last not in _TLDS_THAT_LOOK_LIKE_CODE and first in (
        "com", "org", "net", "io", "de", "ru", "cn", "me", "tv", "app", "co", "uk", "fr", "jp", "in", "us",
        "info", "br", "it", "es", "nl", "kr", "au", "pl", "se", "edu", "gov", "ch", "ca", "tw", "id", "vn",
    )  # fmt: skip


def is_package_loose(value: str) -> bool:
    """Reverse-domain shaped (`tld.sample.app`): only trusted where a key or schema says app id."""
    if not PACKAGE_LOOSE.match(value) or len(value) > 150:
        return False
    last = value.rsplit(".", 1)[1].lower()
    return last not in _TLDS_THAT_LOOK_LIKE_CODE and not value.lower().startswith(("www.", "http"))


_TOKEN_STARTS = ("ya29.", "xox", "EAA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_")


_ALNUM_RUN = re.compile(r"[A-Za-z0-9]+")


def is_cookie_id(value: str) -> bool:
    """A cookie value that holds a per-browser id: a UUID or 32 hex digits anywhere in it, or a run
    of at least 12 letters and digits mixed, 16+ hex digits, or 15+ digits (not a timestamp)."""
    if len(value) > 512:
        return False
    if EMBEDDED_ID.search(value):
        return True
    for run in _ALNUM_RUN.findall(value):
        if len(run) < 12:
            continue
        if run.isdigit():
            if len(run) >= 15:
                return True
        elif HEX_RUN_16.fullmatch(run) or (any(c.isdigit() for c in run) and len(set(run)) >= 8):
            return True
    return False


def is_fcm_token(value: str) -> bool:
    return len(value) < 400 and ":APA91b" in value and bool(FCM_TOKEN.match(value))


def is_prefixed_token(value: str) -> bool:
    return value.startswith(_TOKEN_STARTS) and len(value) < 4096 and bool(TOKEN_PREFIXES.match(value))


def is_version(value: str) -> bool:
    return bool(VERSION.match(value))


def is_identifier_like(value: str) -> bool:
    """Long and random-looking enough to single out a device or a user (not a constant word)."""
    if len(value) < 8 or len(value) > 512:
        return False
    if GA_CLIENT_ID.match(value):
        return True
    if is_version(value):
        return False
    if is_uuid(value) or HEX16.match(value) or HEX_HASH.match(value):
        return True
    if value.isdigit():
        return 10 <= len(value) <= 24 and not value.startswith(("16", "17", "18"))  # not epoch times
    if TIMESTAMP_RANDOM_ID.match(value):
        return True
    if not TOKENISH.match(value):
        return False
    has_digit = any(c.isdigit() for c in value)
    has_alpha = any(c.isalpha() for c in value)
    return has_digit and has_alpha and len(set(value)) >= 6


def is_user_id_like(value: str) -> bool:
    """An account or user id: short ids count too (`user-8812`, `10482213`), constants do not."""
    if not 4 <= len(value) <= 128 or is_version(value) or value.lower() in ("true", "false", "null"):
        return False
    if is_identifier_like(value):
        return True
    return (
        any(c.isdigit() for c in value)
        and bool(re.fullmatch(r"[A-Za-z0-9_.:@-]+", value))
        and len(value) >= 5
    )
