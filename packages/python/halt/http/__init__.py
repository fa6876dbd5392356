"""The framework-neutral HTTP layer: RequestView, client address, exemptions, keys, headers and the 429 body.

Adapters (halt.adapters.fastapi, .flask, .django) map their framework onto it; the rules are the data in spec/http/.
"""

from __future__ import annotations

from .gate import Gate, HttpLimiter
from .headers import (
    HeaderFormat,
    more_restrictive,
    rate_limit_headers,
    rejection_body,
    rejection_status,
    retry_after_seconds,
    write_rate_limit_headers,
)
from .ip import Cidr, IpAddress, cidr_contains, format_ip, parse_cidr, parse_ip
from .paths import HEALTH_CHECK_PATHS, PathExemptions, is_canonical_path
from .quota import QuotaGuard, QuotaOption
from .request import BasicRequestView, RequestView, path_of
from .rules import ANONYMOUS_KEY, UNKNOWN_IP_KEY, AddrInfo, HttpRules, api_key_of, identity_key
from .warnings import HaltWarning, WarningCode

__all__ = [
    "ANONYMOUS_KEY",
    "HEALTH_CHECK_PATHS",
    "UNKNOWN_IP_KEY",
    "AddrInfo",
    "BasicRequestView",
    "Cidr",
    "Gate",
    "HaltWarning",
    "HeaderFormat",
    "HttpLimiter",
    "HttpRules",
    "IpAddress",
    "PathExemptions",
    "QuotaGuard",
    "QuotaOption",
    "RequestView",
    "WarningCode",
    "api_key_of",
    "cidr_contains",
    "format_ip",
    "identity_key",
    "is_canonical_path",
    "more_restrictive",
    "parse_cidr",
    "parse_ip",
    "path_of",
    "rate_limit_headers",
    "rejection_body",
    "rejection_status",
    "retry_after_seconds",
    "write_rate_limit_headers",
]
