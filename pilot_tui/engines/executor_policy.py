"""What the executor may block, and whom it obeys.

Kept apart from the engine so the rules read in one place and are unit-tested without any I/O: an address is refused
when blocking it could only hurt us (loopback, link-local, multicast, unspecified, broadcast, one of this machine's own
addresses) or when the operator said never to (the allowlist). Each refusal carries a stable ``reason`` and a sentence
for the orchestrator's incident view.

This machine's addresses come from the stdlib only, best effort: the resolver's view of the hostname, the source
address the kernel would pick for a route to the internet (a UDP ``connect`` sends nothing), Linux's
``/proc/net/if_inet6`` and ``/proc/net/fib_trie``, plus any address-looking value pilotctl's ``info`` reports.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..pilot.names import ADDRESS_RE, HOSTNAME_RE
from .mitigation import canonical_ip

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is not carried out: ``reason`` is a stable code, ``detail`` a sentence for the analyst."""

    reason: str
    detail: str


def parse_allowlist(items: Iterable[str]) -> tuple[IPNetwork, ...]:
    """IPs and CIDRs never to block; raise :class:`ValueError` naming the first bad entry (a config error)."""
    nets: list[IPNetwork] = []
    for item in items:
        text = str(item).strip()
        try:
            nets.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"allowlist entry {text[:64]!r} is not an IP address or CIDR") from None
    return tuple(nets)


def check_target(ip: str, allowlist: Iterable[IPNetwork], own: Iterable[str]) -> Refusal | None:
    """``None`` when ``ip`` may be blocked, else the :class:`Refusal` (the first rule that forbids it)."""
    try:
        canon = canonical_ip(ip)
    except ValueError:
        return Refusal("bad_ip", f"{ip[:64]!r} is not an IPv4/IPv6 address")
    addr = ipaddress.ip_address(canon)
    checks = (
        (addr.is_unspecified, "unspecified", "is the unspecified address"),
        (addr.is_loopback, "loopback", "is a loopback address"),
        (addr.is_link_local, "link_local", "is link-local"),
        (addr.is_multicast, "multicast", "is multicast"),
        (canon == "255.255.255.255", "broadcast", "is the broadcast address"),
        (canon in set(own), "own_address", "is one of this executor's own addresses"),
    )
    for hit, reason, why in checks:
        if hit:
            return Refusal(reason, f"{canon} {why}; refusing to block it")
    for net in allowlist:
        if addr.version == net.version and addr in net:
            return Refusal("allowlisted", f"{canon} is in the allowlist ({net}); refusing to block it")
    return None


def check_duration(duration_s: int, max_duration_s: int) -> Refusal | None:
    if not 1 <= duration_s <= max_duration_s:
        return Refusal("bad_duration", f"duration_s {duration_s} is out of range (1..{max_duration_s})")
    return None


# -- this machine's addresses ------------------------------------------------------------------------------------


def _canon_all(values: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for value in values:
        with contextlib.suppress(ValueError):
            out.add(canonical_ip(value))
    return out


def _route_source(family: socket.AddressFamily, probe: str) -> str | None:
    """The local address the kernel would use towards ``probe`` (UDP connect: nothing is sent)."""
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((probe, 9))
            return str(s.getsockname()[0])
    except OSError:
        return None


def _proc_addresses(root: Path = Path("/proc/net")) -> set[str]:
    """Linux only: every configured IPv6 address, and the IPv4 addresses the kernel marks as local."""
    found: set[str] = set()
    with contextlib.suppress(OSError):
        for line in (root / "if_inet6").read_text().splitlines():
            hexaddr = line.split()[0] if line.split() else ""
            if len(hexaddr) == 32:
                found.add(":".join(hexaddr[i : i + 4] for i in range(0, 32, 4)))
    with contextlib.suppress(OSError):
        last = ""
        for line in (root / "fib_trie").read_text().splitlines():
            m = re.search(r"\|-- (\d+\.\d+\.\d+\.\d+)$", line)
            if m:
                last = m.group(1)
            elif "/32 host LOCAL" in line and last:
                found.add(last)
    return found


def _info_addresses(info: Mapping[str, Any]) -> set[str]:
    """Address-looking top-level values of ``pilotctl info`` (e.g. a public endpoint ``ip:port``)."""
    found: set[str] = set()
    for key, value in info.items():
        if key in ("peer_list", "peers") or not isinstance(value, str):
            continue
        candidate = value.rsplit(":", 1)[0].strip("[]") if value.count(":") == 1 or "]:" in value else value
        found |= _canon_all([candidate])
    return found


def own_addresses(info: Mapping[str, Any] | None = None) -> frozenset[str]:
    """This machine's IP addresses, best effort (see the module docstring); never raises."""
    found: set[str] = set()
    with contextlib.suppress(OSError, UnicodeError):
        found |= _canon_all(socket.gethostbyname_ex(socket.gethostname())[2])
    with contextlib.suppress(OSError, UnicodeError):
        found |= _canon_all(str(ai[4][0]) for ai in socket.getaddrinfo(socket.gethostname(), None))
    for family, probe in ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")):
        src = _route_source(family, probe)
        if src:
            found |= _canon_all([src])
    found |= _canon_all(_proc_addresses())
    if info:
        found |= _info_addresses(info)
    return frozenset(found)


# -- whom to obey -------------------------------------------------------------------------------------------------


def split_obey(items: Iterable[str]) -> tuple[set[str], set[str]]:
    """Split ``--obey`` entries into Pilot addresses and hostnames; raise :class:`ValueError` on anything else."""
    addresses: set[str] = set()
    hostnames: set[str] = set()
    for item in items:
        text = str(item).strip()
        if ADDRESS_RE.match(text):
            addresses.add(text.lower())
        elif HOSTNAME_RE.match(text):
            hostnames.add(text)
        else:
            raise ValueError(f"--obey entry {text[:64]!r} is neither a Pilot address (0:0000.0000.0002) nor a hostname")
    return addresses, hostnames
