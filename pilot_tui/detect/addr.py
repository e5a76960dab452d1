"""Source addresses: validation, normalisation, allowlist and IPv6 /64 grouping — cached per distinct text.

The ``ip`` group of a rule is attacker-influenced text; only a real IPv4/IPv6 address becomes an event (the wire
model rejects anything else). ``::ffff:203.0.113.7`` (sshd on a dual-stack socket) is the IPv4 address it maps, so
one attacker is one key whichever socket it came through. With ``group_ipv6_64`` all addresses of an IPv6 /64 share a
window — one customer LAN or VPS usually owns a whole /64 and rotates through it.

``ipaddress`` costs about a microsecond per call; a scan sees the same few thousand addresses hundreds of thousands
of times, so results are cached per text (bounded, cleared when full).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Literal

CACHE_MAX = 100_000

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

Resolved = tuple[str, str] | Literal[False] | None
"""What :meth:`AddressBook.resolve` gives: ``(address, key)``, ``False`` (allowlisted) or ``None`` (no address)."""


class AddressError(ValueError):
    """An allowlist entry that is not an IP address or CIDR network."""


def parse_networks(entries: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Allowlist entries (``10.0.0.0/8``, ``2001:db8::/32``, ``192.0.2.7``) as networks; raises :class:`AddressError`."""
    nets: list[IPNetwork] = []
    for entry in entries:
        text = entry.strip()
        try:
            nets.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise AddressError(f"allowlist entry {entry!r} is not an IP address or CIDR network") from None
    return tuple(nets)


class AddressBook:
    """Maps the text of an ``ip`` group to ``(address, key)`` — or to a reason it is skipped.

    ``address`` is the canonical address (what an event reports); ``key`` is what windows count by: the address, or
    its ``/64`` network when grouping IPv6. :meth:`resolve` returns ``None`` for text that is no address and
    ``False`` for an allowlisted one.
    """

    def __init__(self, allowlist: Iterable[str] = (), group_ipv6_64: bool = False) -> None:
        self.networks = parse_networks(allowlist)
        self._v4 = tuple(n for n in self.networks if n.version == 4)
        self._v6 = tuple(n for n in self.networks if n.version == 6)
        self.group_ipv6_64 = group_ipv6_64
        self._cache: dict[str, Resolved] = {}

    def resolve(self, text: str) -> Resolved:
        """``(address, key)``, ``False`` if allowlisted, ``None`` if ``text`` is not an IP address."""
        cache = self._cache
        if text in cache:
            return cache[text]
        if len(cache) >= CACHE_MAX:
            cache.clear()
        result = cache[text] = self._resolve(text)
        return result

    def is_allowed(self, text: str) -> bool:
        """True when ``text`` is an address inside the allowlist."""
        return self.resolve(text) is False

    def _resolve(self, text: str) -> Resolved:
        try:
            addr = ipaddress.ip_address(text.strip("[]"))
        except ValueError:
            return None
        if addr.version == 6 and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        nets = self._v4 if addr.version == 4 else self._v6
        if any(addr in net for net in nets):
            return False
        canonical = str(addr)
        if addr.version == 6 and self.group_ipv6_64:
            return canonical, str(ipaddress.IPv6Network((int(addr) >> 64 << 64, 64)))
        return canonical, canonical
