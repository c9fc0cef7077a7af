"""Where outgoing webhooks may be sent (CONTRACT §7.12, §10.2; issue 11 item 4).

Two checks, with one rule for addresses:

* `check_url` at create/update/test time is a convenience: scheme (https only in production),
  a host, and — when the host is an address in any spelling (`127.1`, `2130706433`,
  `0x7f.0.0.1`, `0177.0.0.1`, `[::ffff:127.0.0.1]`, …) or a name that can only mean this
  machine (`localhost`, `*.localhost`) — the address rule. It does not resolve names.
* `PinnedBackend.connect_tcp` at send time is the check that protects: it resolves the host
  once, refuses the connection when **any** resolved address is forbidden, and connects to the
  checked address itself (TLS keeps the URL's host for SNI and certificate checks), so there is
  no window for DNS rebinding between the check and the connection. Redirects are never
  followed (the client is built with `follow_redirects=False`).

Address rule (`blocked_reason`): in production loopback, private (RFC 1918, ULA, CGNAT),
link-local (incl. 169.254.169.254 metadata), multicast, reserved, unspecified and other
non-global addresses are refused; IPv4-mapped / -compatible / NAT64 / 6to4 IPv6 forms are
judged by the IPv4 address inside. In development loopback and private addresses are allowed
so people can test against local receivers; the rest is refused everywhere.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
METADATA_NAMES = ("metadata.google.internal", "metadata", "instance-data")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")


class BlockedTarget(Exception):
    """The webhook target is not allowed (the message says why)."""


def _inet_aton_part(part: str) -> int:
    """One part of an inet_aton address: decimal, 0x hex or leading-zero octal."""
    if not part:
        raise ValueError("empty part")
    lowered = part.lower()
    if lowered.startswith("0x"):
        digits = lowered[2:]
        return int(digits, 16) if digits else 0
    if len(part) > 1 and part.startswith("0"):
        return int(part, 8)
    if not part.isdigit():
        raise ValueError("not a number")
    return int(part, 10)


def parse_ipv4_loose(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address `host` means to inet_aton (1–4 parts, each decimal/octal/hex; the last
    part fills the remaining bytes), or None when it is not such a spelling. A trailing dot is
    ignored, as resolvers do."""
    text = host[:-1] if host.endswith(".") else host
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    try:
        values = [_inet_aton_part(p) for p in parts]
    except ValueError:
        return None
    *head, last = values
    if any(v > 255 for v in head):
        return None
    if last >= 256 ** (5 - len(parts)):
        return None
    number = 0
    for v in head:
        number = number * 256 + v
    number = number * 256 ** (4 - len(head)) + last
    return ipaddress.IPv4Address(number)


def parse_address(host: str) -> IPAddress | None:
    """`host` (a URL host, brackets allowed) as an address in any spelling, else None."""
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if "%" in text:  # IPv6 zone id (fe80::1%eth0)
        text = text.split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if ":" in text:
        return None
    return parse_ipv4_loose(text)


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address carried inside an IPv6 address (mapped, compatible, NAT64, 6to4)."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    packed = int(address)
    if packed >> 32 == 0 and packed > 1:  # deprecated IPv4-compatible ::a.b.c.d
        return ipaddress.IPv4Address(packed)
    return None


def blocked_reason(address: IPAddress, production: bool) -> str | None:
    """Why `address` may not be a webhook target (None: allowed). Rule in the module docstring."""
    inner = embedded_ipv4(address)
    if inner is not None:
        return blocked_reason(inner, production)
    if address.is_unspecified or (
        isinstance(address, ipaddress.IPv4Address) and address in _THIS_NETWORK
    ):
        return "unspecified address"
    if address.is_loopback:
        return None if not production else "loopback address"
    if address.is_link_local:
        return "link-local address"
    if address.is_multicast:
        return "multicast address"
    if address.is_reserved:
        return "reserved address"
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return None if not production else "private address"
    if address.is_private:
        return None if not production else "private address"
    if not address.is_global:
        return "non-public address"
    return None


def check_address(address: IPAddress, production: bool) -> None:
    reason = blocked_reason(address, production)
    if reason is not None:
        raise BlockedTarget(f"Webhook target {address} is not allowed ({reason})")


def check_url(url: str, production: bool) -> str:
    """Create-time check of a webhook URL; returns its host. Raises BlockedTarget."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise BlockedTarget("Webhook URL is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise BlockedTarget("Webhook URL must use http or https")
    if production and scheme != "https":
        raise BlockedTarget("Webhook URL must use https")
    if not host:
        raise BlockedTarget("Webhook URL must have a host")
    if parts.username is not None or parts.password is not None:
        raise BlockedTarget("Webhook URL must not contain credentials")
    address = parse_address(host)
    if address is not None:
        check_address(address, production)
        return host
    name = host.rstrip(".").lower()
    if production and (name in LOCAL_NAMES or name.endswith(".localhost")):
        raise BlockedTarget("Webhook target localhost is not allowed (loopback address)")
    if name in METADATA_NAMES:
        raise BlockedTarget("Webhook target is a cloud metadata host")
    return host


async def system_resolve(host: str, port: int) -> list[str]:
    """All addresses the system resolver gives for `host` (TCP)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


async def resolve_checked(host: str, port: int, production: bool, resolve: Resolver) -> str:
    """One allowed address to connect to for `host`: literal addresses are checked as they
    are; names are resolved once and refused when any answer is forbidden."""
    address = parse_address(host)
    if address is None:
        try:
            answers = await resolve(host, port)
        except OSError as exc:
            raise BlockedTarget(f"Could not resolve {host}: {exc.strerror or exc}") from None
        addresses = _unique(parse_address(a) for a in answers)
        if not addresses:
            raise BlockedTarget(f"Could not resolve {host}")
    else:
        addresses = [address]
    for candidate in addresses:
        check_address(candidate, production)
    chosen = addresses[0]
    inner = embedded_ipv4(chosen) if chosen.version == 6 and chosen.ipv4_mapped else None
    return str(inner or chosen)


def _unique(items: Iterable[IPAddress | None]) -> list[IPAddress]:
    out: list[IPAddress] = []
    for item in items:
        if item is not None and item not in out:
            out.append(item)
    return out


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """httpcore network backend that resolves, checks and connects to the checked address."""

    def __init__(self, production: bool, resolve: Resolver = system_resolve) -> None:
        self.production = production
        self.resolve = resolve
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        address = await resolve_checked(host, port, self.production, self.resolve)
        return await self._inner.connect_tcp(
            address, port, timeout=timeout, local_address=local_address,
            socket_options=socket_options,
        )

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedTarget("Unix sockets are not webhook targets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
