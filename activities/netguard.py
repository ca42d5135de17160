"""SSRF protection where connections are made.

Inside ``guard(...)``, every name resolution of the current thread goes through a
filter that drops loopback, private, link-local, CGNAT, multicast, reserved and
unspecified addresses (and their IPv4-mapped IPv6 forms). yt-dlp, its redirects and
embedded media URLs, and image fetches all resolve before they connect, so a DNS answer
that changes between a check and the fetch is still caught: there is no separate
check. A name that resolves only to blocked addresses fails with ``UrlNotAllowedError``
before any packet is sent.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from temporalio.exceptions import ApplicationError

from models.errors import ErrorKind

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

BLOCKED_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "64:ff9b::/96",
        "100::/64",
        "2001:db8::/32",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    )
)


class UrlNotAllowedError(OSError):
    """A fetch was refused: its host resolves only to addresses that are not public."""


def address_blocked(address: str, allowed: Sequence[IPNetwork] = ()) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is not None:
            ip = embedded
    if any(ip in network for network in allowed):
        return False
    return (
        any(ip in network for network in BLOCKED_NETWORKS)
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


_state = threading.local()
_original_getaddrinfo = socket.getaddrinfo


def _guarded_getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
    results = _original_getaddrinfo(host, port, *args, **kwargs)
    allowed_networks = getattr(_state, "allowed", None)
    if allowed_networks is None:  # not inside guard() on this thread
        return results
    kept = [r for r in results if not address_blocked(str(r[4][0]), allowed_networks)]
    if not kept:
        addresses = sorted({str(r[4][0]) for r in results})
        raise UrlNotAllowedError(
            f"{host} resolves to {', '.join(addresses)}, which is not a public address"
        )
    return kept


def install() -> None:
    """Route this process's name resolution through the guard (off until ``guard``)."""
    socket.getaddrinfo = _guarded_getaddrinfo


@contextmanager
def guard(allow_private: bool, allowed_networks: Sequence[str] = ()) -> Iterator[None]:
    """Refuse non-public destinations for connections made by this thread."""
    install()
    previous = getattr(_state, "allowed", None)
    if not allow_private:
        _state.allowed = tuple(ipaddress.ip_network(n) for n in allowed_networks)
    try:
        yield
    finally:
        _state.allowed = previous


def check_scheme(url: str, stage: str) -> None:
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise ApplicationError(
            f"{stage}: only http and https links are fetched, not {scheme or 'this'}: {url}",
            type=ErrorKind.URL_NOT_ALLOWED,
            non_retryable=True,
        )


def not_allowed(url: str, exc: BaseException, stage: str) -> ApplicationError:
    return ApplicationError(
        f"{stage}: {url} is not fetched: {exc}. Reelscope only fetches public addresses",
        type=ErrorKind.URL_NOT_ALLOWED,
        non_retryable=True,
    )


def find_not_allowed(exc: BaseException) -> UrlNotAllowedError | None:
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, UrlNotAllowedError):
            return current
        exc_info = getattr(current, "exc_info", None)
        if isinstance(exc_info, tuple) and len(exc_info) > 1:
            stack.append(exc_info[1])
        stack.extend([current.__cause__, current.__context__])
    return None
