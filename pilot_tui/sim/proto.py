"""Small, dependency-free helpers shared by the pilot-sim CLI, daemon and SDK twin.

Everything here mimics what the real Go ``pilotctl`` prints, because the point of the emulator is that a driver
written against pilot-sim behaves the same against pilotctl: Go ``time.ParseDuration`` / ``Duration.String``,
``strconv`` error texts, Go-style JSON (sorted keys, ``<>&`` escaped), Pilot addresses and the on-disk paths.
This module is imported by every short-lived CLI invocation, so it must stay cheap: stdlib only, no asyncio.
"""

from __future__ import annotations

import calendar
import json
import os
import re
import struct
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

VERSION = "1.18.0-sim"
DEFAULT_SOCKET = "/tmp/pilot.sock"
PORT_ECHO = 7
"""The daemon's built-in echo service, what ``pilotctl ping`` dials (bound by the daemon itself, like 1001/1002)."""
PORT_STDIO = 1000
PORT_DATAEXCHANGE = 1001
PORT_EVENTSTREAM = 1002
SERVICE_PORTS = (PORT_DATAEXCHANGE, PORT_EVENTSTREAM)

# Data-exchange frame types, as numbered by the real SDK (pilotprotocol.client.send_message).
TYPE_TEXT, TYPE_BINARY, TYPE_JSON, TYPE_FILE = 1, 2, 3, 4
# Our own extension: a frame that carries message_id / reply_to in a small JSON header (the real one "tags" too).
TYPE_TAGGED = 0x7F01
TYPE_NAMES = {TYPE_TEXT: "TEXT", TYPE_BINARY: "BINARY", TYPE_JSON: "JSON", TYPE_FILE: "FILE"}
MSG_TYPES = {"text": TYPE_TEXT, "json": TYPE_JSON, "binary": TYPE_BINARY}
MAX_FRAME = 64 * 1024 * 1024
MAX_TOPIC = 4096

_HOSTNAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_ADDR_RE = re.compile(r"^(\d+):([0-9A-Fa-f]{4})\.([0-9A-Fa-f]{4})\.([0-9A-Fa-f]{4})$")
_DUR_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_NUM_RE = re.compile(r"(\d*)(?:\.(\d*))?")
_FLOAT_RE = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_RFC3339_RE = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(\.\d+)?([Zz]|[+-]\d\d:\d\d)$")


# ----------------------------------------------------------------------------------------------- addresses


def format_addr(node_id: int, network: int = 0) -> str:
    """Pilot address text, e.g. node 2 -> ``0:0000.0000.0002`` (``N:NNNN.HHHH.LLLL``, hex upper-case)."""
    return f"{network}:{network:04X}.{(node_id >> 16) & 0xFFFF:04X}.{node_id & 0xFFFF:04X}"


def parse_addr(text: str) -> int | None:
    """Node id of a Pilot address (``0:0000.0000.0002``), or None when ``text`` is not one."""
    m = _ADDR_RE.match(text)
    if not m:
        return None
    return (int(m.group(3), 16) << 16) | int(m.group(4), 16)


def node_ref(text: str) -> int | None:
    """Node id for an address or a bare decimal node id (how pilotctl reads its target), else None."""
    node = parse_addr(text)
    if node is not None:
        return node
    if text.isascii() and text.isdigit() and int(text) < 2**32:
        return int(text)
    return None


def valid_hostname(name: str) -> bool:
    """Lowercase letters, digits and hyphens, 1-63 chars, not starting or ending with a hyphen."""
    return bool(_HOSTNAME_RE.match(name))


# ------------------------------------------------------------------------------------- Go number/duration


def go_quote(text: str) -> str:
    """A close-enough ``strconv.Quote`` for error messages."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def parse_uint(text: str, bits: int) -> int:
    """``strconv.ParseUint(text, 10, bits)`` with Go's error text (raised as ValueError)."""
    if not text or not text.isascii() or not text.isdigit():
        raise ValueError(f"strconv.ParseUint: parsing {go_quote(text)}: invalid syntax")
    value = int(text)
    if value >= 1 << bits:
        raise ValueError(f"strconv.ParseUint: parsing {go_quote(text)}: value out of range")
    return value


def atoi(text: str) -> int:
    """``strconv.Atoi`` with Go's error text (raised as ValueError)."""
    body = text[1:] if text[:1] in "+-" else text
    if not body or not body.isascii() or not body.isdigit():
        raise ValueError(f"strconv.Atoi: parsing {go_quote(text)}: invalid syntax")
    value = int(text)
    if not -(2**63) <= value < 2**63:
        raise ValueError(f"strconv.Atoi: parsing {go_quote(text)}: value out of range")
    return value


def parse_go_duration(text: str) -> float:
    """Seconds for a Go duration (``500ms``, ``1m30s``, ``-2h``); ValueError with Go's message otherwise."""
    orig, s = text, text
    invalid = ValueError(f"time: invalid duration {go_quote(orig)}")
    neg = False
    if s[:1] in ("+", "-"):
        neg, s = s[0] == "-", s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise invalid
    total = 0.0
    while s:
        m = _NUM_RE.match(s)
        assert m is not None  # the pattern can match the empty string
        whole, frac = m.group(1), m.group(2)
        if not whole and not frac:
            raise invalid
        s = s[m.end() :]
        unit_end = 0
        while unit_end < len(s) and s[unit_end] != "." and not s[unit_end].isdigit():
            unit_end += 1
        unit, s = s[:unit_end], s[unit_end:]
        if not unit:
            raise ValueError(f"time: missing unit in duration {go_quote(orig)}")
        if unit not in _DUR_UNITS:
            raise ValueError(f"time: unknown unit {go_quote(unit)} in duration {go_quote(orig)}")
        total += float(f"{whole or '0'}.{frac or '0'}") * _DUR_UNITS[unit]
    return -total if neg else total


def parse_duration_or_seconds(text: str) -> float:
    """How pilotctl's flags read durations: Go syntax first, then a bare number of seconds."""
    try:
        return parse_go_duration(text)
    except ValueError:
        if _FLOAT_RE.match(text):
            return float(text)
        raise


def _frac(value: int, unit: int) -> str:
    whole, rest = divmod(value, unit)
    if not rest:
        return str(whole)
    digits = f"{rest:0{len(str(unit)) - 1}d}".rstrip("0")
    return f"{whole}.{digits}"


def go_duration_str(seconds: float) -> str:
    """Go's ``Duration.String()``: ``30s``, ``1m0s``, ``500ms``, ``1.5s``, ``1h0m0s``."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    sign, u = ("-" if ns < 0 else ""), abs(ns)
    if u < 1_000:
        return f"{sign}{u}ns"
    if u < 1_000_000:
        return f"{sign}{_frac(u, 1_000)}µs"
    if u < 1_000_000_000:
        return f"{sign}{_frac(u, 1_000_000)}ms"
    hours, rem = divmod(u, 3_600_000_000_000)
    minutes, rem = divmod(rem, 60_000_000_000)
    out = f"{hours}h" if hours else ""
    if hours or minutes:
        out += f"{minutes}m"
    return f"{sign}{out}{_frac(rem, 1_000_000_000)}s"


def human_duration(seconds: float) -> str:
    """pilotctl's compact age text (``3s``, ``2m5s``, ``1h4m``, ``2d3h``)."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m" if s % 60 == 0 else f"{s // 60}m{s % 60}s"
    if s < 86400:
        return f"{s // 3600}h" if (s % 3600) // 60 == 0 else f"{s // 3600}h{(s % 3600) // 60}m"
    return f"{s // 86400}d" if (s % 86400) // 3600 == 0 else f"{s // 86400}d{(s % 86400) // 3600}h"


def format_bytes(n: int) -> str:
    """pilotctl's byte sizes (``5 B``, ``1.2 KB``)."""
    if n >= 1024**3:
        return f"{n / 1024**3:.1f} GB"
    if n >= 1024**2:
        return f"{n / 1024**2:.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n} B"


# ------------------------------------------------------------------------------------------------- time


def rfc3339nano(ns: int | None = None) -> str:
    """Go's ``time.Now().Format(time.RFC3339Nano)``: local time, trailing zeros of the fraction dropped."""
    ns = time.time_ns() if ns is None else ns
    secs, frac = divmod(ns, 1_000_000_000)
    lt = time.localtime(secs)
    digits = f"{frac:09d}".rstrip("0")
    off = lt.tm_gmtoff or 0
    zone = "Z" if off == 0 else f"{'+' if off > 0 else '-'}{abs(off) // 3600:02d}:{abs(off) % 3600 // 60:02d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", lt) + (f".{digits}" if digits else "") + zone


def parse_rfc3339(text: str) -> float | None:
    """Unix seconds for an RFC 3339 timestamp (any fraction length, ``Z`` or ``±hh:mm``), else None."""
    m = _RFC3339_RE.match(text)
    if not m:
        return None
    y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
    base = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
    frac = float("0" + m.group(7)) if m.group(7) else 0.0
    zone = m.group(8)
    off = (
        0
        if zone in ("Z", "z")
        else (1 if zone[0] == "+" else -1) * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    )
    return base - off + frac


def inbox_stamp(ns: int) -> str:
    """Go's ``Format("20060102-150405.000")`` in local time (inbox file names)."""
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(secs)) + f".{frac // 1_000_000:03d}"


# ------------------------------------------------------------------------------------------------- JSON


def go_json(obj: Any, indent: bool = False) -> str:
    """JSON as Go's encoding/json writes it: sorted keys, compact (or 2-space indent), ``<>&`` escaped."""
    if indent:
        text = json.dumps(obj, sort_keys=True, ensure_ascii=False, indent=2)
    else:
        text = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def dumps_line(obj: Any) -> bytes:
    """One newline-terminated JSON line: the framing of every daemon request and answer."""
    return (json.dumps(obj, separators=(",", ":")) + "\n").encode()


# ------------------------------------------------------------------------------------------------- paths


def home_dir(env: Mapping[str, str]) -> Path:
    """Go's ``os.UserHomeDir``: ``$HOME``."""
    return Path(env.get("HOME") or os.path.expanduser("~"))


def config_dir(env: Mapping[str, str]) -> Path:
    """``$PILOT_HOME/.pilot`` when set, else ``$HOME/.pilot`` (pid file, logs, identity)."""
    base = env.get("PILOT_HOME")
    return Path(base) / ".pilot" if base else home_dir(env) / ".pilot"


def inbox_dir(env: Mapping[str, str]) -> Path:
    """``$HOME/.pilot/inbox``: measured — pilotctl 1.18 reads the inbox from $HOME even when PILOT_HOME is set."""
    return home_dir(env) / ".pilot" / "inbox"


def socket_path(env: Mapping[str, str]) -> str:
    """``$PILOT_SOCKET``, else ``socket`` in ``~/.pilot/config.json``, else ``/tmp/pilot.sock``."""
    if env.get("PILOT_SOCKET"):
        return env["PILOT_SOCKET"]
    try:
        cfg = json.loads((config_dir(env) / "config.json").read_text())
        sock = cfg.get("socket") if isinstance(cfg, dict) else None
        if isinstance(sock, str) and sock:
            return sock
    except (OSError, ValueError):
        pass
    return DEFAULT_SOCKET


def sim_home(env: Mapping[str, str]) -> Path:
    """The directory all sim nodes on this machine share (registry, trust): ``$PILOT_SIM_HOME``."""
    base = env.get("PILOT_SIM_HOME")
    return Path(base) if base else Path(f"/tmp/pilot-sim-{os.getuid()}")


# ------------------------------------------------------------------------------------------------ frames


def encode_dx_frame(ftype: int, payload: bytes) -> bytes:
    """Data-exchange frame ``[4-byte type][4-byte length][payload]`` (port 1001, as the real SDK writes it)."""
    return struct.pack(">II", ftype, len(payload)) + payload


def encode_tagged(inner_type: int, payload: bytes, message_id: str, reply_to: str = "") -> bytes:
    """A data-exchange frame that also carries the message id (and the id it answers)."""
    header = json.dumps({"type": inner_type, "message_id": message_id, "reply_to": reply_to}).encode()
    return encode_dx_frame(TYPE_TAGGED, struct.pack(">I", len(header)) + header + payload)


def decode_tagged(payload: bytes) -> tuple[int, bytes, str, str]:
    """(inner type, data, message_id, reply_to) of a tagged frame's payload."""
    (hlen,) = struct.unpack(">I", payload[:4])
    header = json.loads(payload[4 : 4 + hlen])
    return (
        int(header["type"]),
        payload[4 + hlen :],
        str(header.get("message_id", "")),
        str(header.get("reply_to", "")),
    )


def encode_event(topic: str, payload: bytes) -> bytes:
    """Event-stream frame ``[2-byte topic length][topic][4-byte length][payload]`` (port 1002)."""
    raw = topic.encode()
    return struct.pack(">H", len(raw)) + raw + struct.pack(">I", len(payload)) + payload
