"""Firewall backends: the argv lists that block and unblock one address, and the runner that executes them.

Building argv is pure (and unit-tested for every backend, IPv4 and IPv6); running is a separate step so the default
``dry-run`` backend can record exactly what it *would* run and run nothing. Addresses reach this module already
canonicalised by :func:`~pilot_tui.engines.mitigation.canonical_ip`, and every command is an argv list for
``asyncio.create_subprocess_exec`` — never a shell, so an address can never become a command.

Backends:

- ``nft``: a dedicated ``inet pilot_tui`` table, sets ``blocklist`` (IPv4) and ``blocklist6`` (IPv6) with ``flags
  timeout``, and an input chain that drops their members. Created on first use with ``add`` (idempotent); the chain is
  flushed and its two rules re-added so a restart never stacks duplicates. Elements carry a timeout a little longer
  than the block (:data:`NFT_GRACE_S`) as a safety net should the executor be down when the block ends.
- ``iptables``: ``iptables``/``ip6tables -I INPUT -s IP -j DROP -m comment --comment pilot-tui``; ``-D`` to undo.
- ``ufw``: ``ufw insert 1 deny from IP comment pilot-tui``; IPv6 uses ``prepend`` because ufw refuses to insert a
  v6 rule at position 1 when that position holds a v4 rule. ``ufw delete deny from IP`` to undo.

These need root (or CAP_NET_ADMIN); the executor runs them as it is, it never calls sudo.

Each real backend can also be *asked* which addresses it blocks (:meth:`Firewall.list_blocked`): ``nft -j list set``,
``iptables -S INPUT``, ``ufw status``. The executor reconciles its store with that answer, because a row on record
(say, one written by ``dry-run``) is no proof that the kernel drops the address.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import orjson

from pilot_tui.aiotime import within
from pilot_tui.subproc import kill_and_reap, spawn

BACKENDS: tuple[str, ...] = ("dry-run", "nft", "iptables", "ufw")
NFT_TABLE = "pilot_tui"
NFT_SET4 = "blocklist"
NFT_SET6 = "blocklist6"
NFT_CHAIN = "input"
NFT_GRACE_S = 60
"""Extra seconds on an nft element's own timeout, so our timer (not the kernel) normally removes it first."""
COMMENT = "pilot-tui"
RUN_TIMEOUT_S = 10.0
MAX_RECORDED = 1000
"""Dry-run keeps this many recorded commands (the history in the state file keeps them all, per request)."""

Argv = list[str]
Runner = Callable[[Sequence[Argv], float], Awaitable[str | None]]
"""Runs argv lists in order; returns the stdout of the last one (queries read it), ``None`` when it has none."""

_ABSENT_MARKERS = (
    "no such file or directory",  # nft delete element that is not there (or timed out already)
    "does a matching rule exist",  # iptables -D of a missing rule
    "could not delete non-existent rule",  # ufw
    "bad rule",
)
"""stderr fragments that mean "already gone": an unblock of a missing rule counts as done, not as failed."""


class FirewallError(Exception):
    """A firewall command failed or could not run. ``argv`` is the failing command; ``stderr`` its complaint."""

    def __init__(self, message: str, *, argv: Argv | None = None, returncode: int | None = None,
                 stderr: str = "") -> None:
        super().__init__(message)
        self.argv = argv or []
        self.returncode = returncode
        self.stderr = stderr

    @property
    def absent(self) -> bool:
        """True when the complaint is that the rule/element does not exist (an unblock may treat that as done)."""
        text = self.stderr.lower()
        return any(marker in text for marker in _ABSENT_MARKERS)


def _is_v6(ip: str) -> bool:
    return isinstance(ipaddress.ip_address(ip), ipaddress.IPv6Address)


# -- pure argv builders -----------------------------------------------------------------------------------------


def nft_setup_argv() -> list[Argv]:
    """Create (idempotently) the table, both sets and the drop chain; the rules are flushed and re-added once."""
    t = ["inet", NFT_TABLE]
    return [
        ["nft", "add", "table", *t],
        ["nft", "add", "set", *t, NFT_SET4, "{ type ipv4_addr; flags timeout; }"],
        ["nft", "add", "set", *t, NFT_SET6, "{ type ipv6_addr; flags timeout; }"],
        ["nft", "add", "chain", *t, NFT_CHAIN, "{ type filter hook input priority -10; policy accept; }"],
        ["nft", "flush", "chain", *t, NFT_CHAIN],
        ["nft", "add", "rule", *t, NFT_CHAIN, "ip", "saddr", f"@{NFT_SET4}", "drop"],
        ["nft", "add", "rule", *t, NFT_CHAIN, "ip6", "saddr", f"@{NFT_SET6}", "drop"],
    ]


def nft_block_argv(ip: str, duration_s: int) -> list[Argv]:
    """Add ``ip`` to its family's set with a timeout of ``duration_s`` + :data:`NFT_GRACE_S` seconds."""
    name = NFT_SET6 if _is_v6(ip) else NFT_SET4
    return [["nft", "add", "element", "inet", NFT_TABLE, name, f"{{ {ip} timeout {duration_s + NFT_GRACE_S}s }}"]]


def nft_unblock_argv(ip: str) -> list[Argv]:
    name = NFT_SET6 if _is_v6(ip) else NFT_SET4
    return [["nft", "delete", "element", "inet", NFT_TABLE, name, f"{{ {ip} }}"]]


def iptables_block_argv(ip: str) -> list[Argv]:
    """Insert a DROP rule at the top of INPUT (``-w``: wait for the xtables lock instead of failing)."""
    tool = "ip6tables" if _is_v6(ip) else "iptables"
    return [[tool, "-w", "-I", "INPUT", "-s", ip, "-j", "DROP", "-m", "comment", "--comment", COMMENT]]


def iptables_unblock_argv(ip: str) -> list[Argv]:
    tool = "ip6tables" if _is_v6(ip) else "iptables"
    return [[tool, "-w", "-D", "INPUT", "-s", ip, "-j", "DROP", "-m", "comment", "--comment", COMMENT]]


def ufw_block_argv(ip: str) -> list[Argv]:
    if _is_v6(ip):
        return [["ufw", "prepend", "deny", "from", ip, "comment", COMMENT]]
    return [["ufw", "insert", "1", "deny", "from", ip, "comment", COMMENT]]


def ufw_unblock_argv(ip: str) -> list[Argv]:
    return [["ufw", "delete", "deny", "from", ip]]


# -- queries: what the live firewall blocks ------------------------------------------------------------------


def nft_list_argv() -> list[Argv]:
    """One ``nft -j list set`` per family set: JSON, so the elements are parsed, not scraped."""
    return [["nft", "-j", "list", "set", "inet", NFT_TABLE, name] for name in (NFT_SET4, NFT_SET6)]


def iptables_list_argv() -> list[Argv]:
    return [[tool, "-w", "-S", "INPUT"] for tool in ("iptables", "ip6tables")]


def ufw_list_argv() -> list[Argv]:
    return [["ufw", "status"]]


def _canonical(text: str) -> str | None:
    """``text`` as a canonical single address (a ``/32`` or ``/128`` prefix is one address), else ``None``."""
    try:
        net = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None
    return str(net.network_address) if net.num_addresses == 1 else None


def parse_nft_set(text: str) -> set[str]:
    """The addresses in ``nft -j list set`` output; elements are plain strings or ``{"elem": {"val": …}}``."""
    try:
        doc = orjson.loads(text or b"{}")
    except orjson.JSONDecodeError:
        raise FirewallError(f"nft -j list set: unreadable output {text[:80]!r}") from None
    found: set[str] = set()
    for item in doc.get("nftables", []) if isinstance(doc, dict) else []:
        nft_set = item.get("set") if isinstance(item, dict) else None
        for elem in (nft_set or {}).get("elem", []) or []:
            value = elem.get("elem", {}).get("val") if isinstance(elem, dict) else elem
            if isinstance(value, str) and (ip := _canonical(value)):
                found.add(ip)
    return found


def parse_iptables_rules(text: str) -> set[str]:
    """Sources of ``-s IP/32 … -j DROP`` lines in ``iptables -S INPUT`` output."""
    found: set[str] = set()
    for line in text.splitlines():
        parts = line.split()
        flags = dict(zip(parts, parts[1:], strict=False))
        if flags.get("-j") == "DROP" and (ip := _canonical(flags.get("-s", ""))):
            found.add(ip)
    return found


def parse_ufw_status(text: str) -> set[str]:
    """Sources of ``… DENY [IN] IP`` rules in ``ufw status`` output (comments and ``(v6)`` ignored)."""
    found: set[str] = set()
    for line in text.splitlines():
        parts = line.split("#", 1)[0].split()
        if "DENY" not in parts:
            continue
        rest = [p for p in parts[parts.index("DENY") + 1:] if p not in ("IN", "(v6)")]
        if rest and (ip := _canonical(rest[0])):
            found.add(ip)
    return found


# -- running ----------------------------------------------------------------------------------------------------


async def run_argvs(argvs: Sequence[Argv], timeout: float = RUN_TIMEOUT_S) -> str:
    """Run each argv in order (no shell), stop at the first failure and raise :class:`FirewallError` with its stderr.

    Each command gets ``timeout`` seconds; a command that overruns is killed and reported. Returns the last
    command's stdout (what a query such as ``nft -j list set`` answered).
    """
    out = b""
    for argv in argvs:
        try:
            proc = await spawn(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise FirewallError(f"cannot run {argv[0]}: {exc.strerror or exc}", argv=list(argv)) from None
        try:
            out, err = await within(proc.communicate(), timeout)
        except asyncio.TimeoutError:
            raise FirewallError(f"{argv[0]} did not finish within {timeout:g}s", argv=list(argv)) from None
        finally:
            await kill_and_reap(proc)
        if proc.returncode != 0:
            text = err.decode("utf-8", "replace").strip()
            first = text.splitlines()[0] if text else f"exit status {proc.returncode}"
            raise FirewallError(f"{' '.join(argv[:3])} failed: {first[:300]}", argv=list(argv),
                                returncode=proc.returncode, stderr=text[:2000])
    return (out or b"").decode("utf-8", "replace")


@dataclass
class Firewall:
    """One backend: builds the commands for block/unblock/extend and runs them (or, for ``dry-run``, records them).

    ``dry-run`` records the commands of ``simulate`` (``nft`` by default) in :attr:`recorded` and returns them, so the
    operator sees precisely what a real backend would do. ``runner`` is injectable for tests of the real backends.
    """

    name: str = "dry-run"
    simulate: str = "nft"
    runner: Runner = run_argvs
    timeout: float = RUN_TIMEOUT_S
    recorded: list[Argv] = field(default_factory=list)
    _nft_ready: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.name not in BACKENDS:
            raise ValueError(f"unknown firewall backend {self.name!r}: expected one of {', '.join(BACKENDS)}")
        if self.simulate not in BACKENDS[1:]:
            raise ValueError(f"dry-run can simulate nft, iptables or ufw, not {self.simulate!r}")

    @property
    def dry_run(self) -> bool:
        return self.name == "dry-run"

    @property
    def _kind(self) -> str:
        return self.simulate if self.dry_run else self.name

    def block_argv(self, ip: str, duration_s: int) -> list[Argv]:
        """Commands that block ``ip`` (nft: preceded by the table setup until that has succeeded once)."""
        if self._kind == "nft":
            return ([] if self._nft_ready else nft_setup_argv()) + nft_block_argv(ip, duration_s)
        if self._kind == "iptables":
            return iptables_block_argv(ip)
        return ufw_block_argv(ip)

    def unblock_argv(self, ip: str) -> list[Argv]:
        if self._kind == "nft":
            return nft_unblock_argv(ip)
        if self._kind == "iptables":
            return iptables_unblock_argv(ip)
        return ufw_unblock_argv(ip)

    def extend_argv(self, ip: str, duration_s: int) -> list[Argv]:
        """Commands that make an existing block last ``duration_s`` from now.

        Only nft holds an expiry in the kernel (re-adding an element does not reset its timeout, so it is deleted
        and added again); iptables and ufw rules have none — the executor's own timer ends them.
        """
        if self._kind != "nft":
            return []
        return nft_unblock_argv(ip) + self.block_argv(ip, duration_s)

    async def list_blocked(self) -> set[str]:
        """The addresses the live firewall blocks now (canonical strings). Raises :class:`FirewallError` when it
        cannot be read (no binary, no permission, unreadable output); a missing nft table is simply empty.

        Only real backends can be asked: ``dry-run`` changes nothing, so its store rows are the only truth and
        calling this on it is a bug (:class:`ValueError`).
        """
        if self.dry_run:
            raise ValueError("dry-run has no live firewall to ask; its store rows are the truth")
        found: set[str] = set()
        if self.name == "nft":
            for argv in nft_list_argv():
                try:
                    out = await self.runner([argv], self.timeout)
                except FirewallError as exc:
                    if exc.absent:  # table or set not created yet: nothing is blocked
                        continue
                    raise
                found |= parse_nft_set(self._answer(argv, out))
        elif self.name == "iptables":
            for argv in iptables_list_argv():
                found |= parse_iptables_rules(self._answer(argv, await self.runner([argv], self.timeout)))
        else:
            argv = ufw_list_argv()[0]
            found |= parse_ufw_status(self._answer(argv, await self.runner([argv], self.timeout)))
        return found

    @staticmethod
    def _answer(argv: Argv, out: str | None) -> str:
        """A runner that returns nothing for a query cannot tell us what is blocked: that is a failure, not "none"."""
        if out is None:
            raise FirewallError(f"{' '.join(argv[:4])} gave no output to read", argv=list(argv))
        return out

    async def contains(self, ip: str) -> bool:
        """True when the live firewall blocks ``ip`` now (raises like :meth:`list_blocked`)."""
        return _canonical(ip) in await self.list_blocked()

    async def _run(self, argvs: list[Argv]) -> list[Argv]:
        if self.dry_run:
            self.recorded.extend(argvs)
            del self.recorded[:-MAX_RECORDED]
        elif argvs:
            await self.runner(argvs, self.timeout)
        return argvs

    async def block(self, ip: str, duration_s: int) -> list[Argv]:
        """Block ``ip``; return the commands run (or recorded). Raises :class:`FirewallError`.

        If nft says the table is gone (someone ran ``nft flush ruleset``), the setup is redone once.
        """
        try:
            argvs = await self._run(self.block_argv(ip, duration_s))
        except FirewallError as exc:
            if not (self._nft_ready and exc.absent):
                raise
            self._nft_ready = False
            argvs = await self._run(self.block_argv(ip, duration_s))
        self._nft_ready = True
        return argvs

    async def restore(self, ip: str, duration_s: int) -> list[Argv]:
        """Make sure a block we have on record is in the kernel (after a reboot or a firewall reload).

        Safe to repeat: nft re-adding an element is a no-op, ufw skips an existing rule, and for iptables the rule
        is checked (``-C``) first so it is never inserted twice.
        """
        if self._kind == "iptables":
            check = [[a if a != "-I" else "-C" for a in argv] for argv in iptables_block_argv(ip)]
            try:
                return await self._run(check)
            except FirewallError:
                pass
        return await self.block(ip, duration_s)

    async def unblock(self, ip: str) -> list[Argv]:
        """Remove the block; a rule that is already gone counts as success."""
        try:
            return await self._run(self.unblock_argv(ip))
        except FirewallError as exc:
            if exc.absent:
                return self.unblock_argv(ip)
            raise

    async def extend(self, ip: str, duration_s: int) -> list[Argv]:
        argvs = self.extend_argv(ip, duration_s)
        if not argvs:
            return []
        delete, add = argvs[:1], argvs[1:]
        try:
            await self._run(delete)
        except FirewallError as exc:
            if not exc.absent:
                raise
        await self._run(add)
        self._nft_ready = True
        return argvs
