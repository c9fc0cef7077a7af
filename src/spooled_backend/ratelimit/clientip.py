"""Client IP for per-IP limits (CONTRACT §12.4).

Order: `TRUSTED_CLIENT_IP_HEADER` when set; else `CF-Connecting-IP`, then `X-Real-IP`; else
`X-Forwarded-For` counted from the right, skipping `TRUSTED_PROXY_HOPS` entries; else the socket
peer. Values that are not IP addresses are ignored (a header cannot smuggle arbitrary keys).
"""

from __future__ import annotations

import ipaddress

from starlette.types import Scope


def _ip(value: str | None) -> str | None:
    if not value:
        return None
    candidate = value.strip()
    if candidate.startswith("[") and "]" in candidate:  # [v6]:port
        candidate = candidate[1 : candidate.index("]")]
    elif candidate.count(":") == 1:  # v4:port
        candidate = candidate.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


def client_ip(scope: Scope, trusted_header: str | None, proxy_hops: int) -> str:
    """The address to rate-limit this request by ("unknown" when nothing usable is present)."""
    headers: dict[bytes, bytes] = {}
    for name, value in scope.get("headers", ()):
        headers.setdefault(name, value)

    def header(name: str) -> str | None:
        raw = headers.get(name.lower().encode("latin-1"))
        return raw.decode("latin-1") if raw is not None else None

    if trusted_header:
        found = _ip(header(trusted_header))
        if found:
            return found
    for name in ("cf-connecting-ip", "x-real-ip"):
        found = _ip(header(name))
        if found:
            return found
    forwarded = header("x-forwarded-for")
    if forwarded:
        hops = [part for part in (p.strip() for p in forwarded.split(",")) if part]
        index = len(hops) - 1 - max(0, proxy_hops)
        if 0 <= index < len(hops):
            found = _ip(hops[index])
            if found:
                return found
    peer = scope.get("client")
    if peer:
        return str(peer[0])
    return "unknown"
