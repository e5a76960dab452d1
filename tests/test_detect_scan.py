"""The chunk scanner gives exactly what feeding lines gives; ``pilot-tui scan``'s output and exit codes."""

from __future__ import annotations

import argparse
import gzip
import json
import os
from pathlib import Path

import pytest

from pilot_tui.detect import Detector, load_rules, scan_files, scan_text
from pilot_tui.detect.native import unavailable
from pilot_tui.detect.scan_cmd import run
from pilot_tui.model import ThreatEvent
from pilot_tui.sim.loggen import generate


def event_key(e: ThreatEvent) -> tuple:
    return (e.source_ip, e.anomaly, e.severity, e.count, e.rule, e.user, e.log, e.evidence, e.ts, e.window_s)


def feed_file(path: Path, detector: Detector) -> list[ThreatEvent]:
    ref = os.path.getmtime(path)
    events: list[ThreatEvent] = []
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        for line in f:
            events += detector.feed(line, str(path), now=ref)
    return events


NATIVE = [False, pytest.param(True, marks=pytest.mark.skipif(unavailable() is not None, reason="no C engine"))]
"""Both scan engines: the pure Python one and the C hot path (tests/test_detect_native.py has more of the latter)."""


@pytest.mark.parametrize(("kind", "lines"), [("auth", 40_000), ("nginx", 12_000), ("ufw", 20_000)])
@pytest.mark.parametrize("chunk_size", [1 << 20, 4096])
@pytest.mark.parametrize("native", NATIVE)
def test_chunk_scan_equals_line_feed(tmp_path: Path, kind: str, lines: int, chunk_size: int, native: bool) -> None:
    path = tmp_path / f"{kind}.log"
    generate(path, kind, lines, seed=3)
    rules = load_rules()
    by_line = Detector(rules, sensor="t")
    expected = feed_file(path, by_line)
    scanner = Detector(rules, sensor="t", native=native)
    report = scan_files([path], scanner, chunk_size=chunk_size)
    assert expected, "the generated log should trigger events"
    assert [event_key(e) for e in report.events] == [event_key(e) for e in expected]
    assert report.lines == lines == by_line.stats.lines
    assert report.rule_hits == by_line.rule_hits()
    assert report.pattern_hits == by_line.pattern_hits()
    assert report.ip_hits == by_line.stats.ip_hits
    assert report.matched_lines == by_line.stats.matched_lines


@pytest.mark.parametrize("native", NATIVE)
def test_equivalence_on_tricky_text(native: bool) -> None:
    """Lines without a newline at the end, CRLF, a match that would cross lines, a line matching two filters."""
    rules = load_rules()
    lines = [
        "Nov 25 12:00:01 h sshd[1]: Failed password for root from 203.0.113.7 port 1 ssh2\r",
        "Nov 25 12:00:02 h sshd[1]: Invalid user \t",  # the ip is on the next line: must not match across
        "from 203.0.113.8 port 2",
        '203.0.113.9 - - [25/Nov/2026:12:00:03 +0000] "GET /../../etc/passwd HTTP/1.1" 404 1 "-" "nikto"',
        "Nov 25 12:00:04 h sshd[1]: Failed password for root from 203.0.113.7 port 1 ssh2",
    ] * 30
    text = "\n".join(lines)  # no final newline
    now = 1_795_608_100.0
    fed = Detector(rules)
    expected = [e for line in lines for e in fed.feed(line, "t", now=now)]
    scanned = Detector(rules, native=native)
    got = scan_text(scanned, text, "t", now=now)
    assert [event_key(e) for e in got] == [event_key(e) for e in expected]
    assert scanned.rule_hits() == fed.rule_hits()
    assert "203.0.113.8" not in scanned.stats.ip_hits
    assert scanned.stats.lines == fed.stats.lines


def test_gzip_and_multiple_files(tmp_path: Path) -> None:
    plain = tmp_path / "auth.log"
    generate(plain, "auth", 5000, seed=5)
    packed = tmp_path / "auth.log.1.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    os.utime(packed, (os.path.getmtime(plain),) * 2)
    report = scan_files([plain, packed])
    assert report.lines == 10_000
    assert [f.lines for f in report.files] == [5000, 5000]
    one = scan_files([plain])
    assert report.rule_hits == {k: 2 * v for k, v in one.rule_hits.items()}


def args(*files: str, json_out: bool = False, rules: str | None = None, allow: list[str] | None = None):
    return argparse.Namespace(files=list(files), rules=rules, json=json_out, allow=allow or [])


def test_scan_command_rich_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "auth.log"
    generate(path, "auth", 3000, seed=2)
    assert run(args(str(path))) == 0
    out = capsys.readouterr().out
    assert "3,000 lines" in out
    for word in ("sshd-auth", "brute_force_ssh", "Top 15 source addresses", "Events that would fire"):
        assert word in out


def test_scan_command_json_and_allowlist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "auth.log"
    generate(path, "auth", 3000, seed=2)
    assert run(args(str(path), json_out=True, allow=["203.0.113.0/24"])) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["lines"] == 3000 and doc["allowlisted_hits"] > 0
    assert doc["events"] and all(not e["source_ip"].startswith("203.0.113.") for e in doc["events"])
    assert {"rule_hits", "pattern_hits", "top_ips", "bytes", "seconds"} <= set(doc)


def test_attacker_text_is_not_markup(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "auth.log"
    line = "Nov 25 12:00:0{} h sshd[1]: Invalid user [bold red]x[/] from 203.0.113.7 port 1\n"
    path.write_text("".join(line.format(i) for i in range(6)))
    assert run(args(str(path))) == 0
    out = capsys.readouterr().out
    assert "[bold red]x[/]" in out


def test_missing_file_and_bad_rules_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(args(str(tmp_path / "nope.log"))) == 2
    err = capsys.readouterr().err
    assert "nope.log: no such file" in err and err.count("\n") == 1
    log = tmp_path / "a.log"
    log.write_text("")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[rule]]\nname = 'oops'\nregex = 'no group'\nanomaly = 'x'\n")
    assert run(args(str(log), rules=str(bad))) == 2
    assert "rule 'oops'" in capsys.readouterr().err
    assert run(args(str(log), allow=["not-an-ip"])) == 2
    assert run(args(str(tmp_path))) == 2
    capsys.readouterr()
    assert run(args(str(log))) == 0  # an empty file is a scan with nothing found
    assert "No events would fire" in capsys.readouterr().out


TEMPLATES = [
    "Nov 25 12:{m:02d}:{s:02d} web-1 sshd[{p}]: Failed password for {u} from {ip} port {p} ssh2",
    "Nov 25 12:{m:02d}:{s:02d} web-1 sshd[{p}]: Invalid user {u} from {ip} port {p}",
    "Nov 25 12:{m:02d}:{s:02d} web-1 sshd[{p}]: message repeated {n} times: [ Failed password for {u} from {ip} port "
    "{p} ssh2]",
    "Nov 25 12:{m:02d}:{s:02d} web-1 sshd[{p}]: Connection closed by invalid user {u} {ip} port {p} [preauth]",
    '{ip} - - [25/Nov/2026:12:{m:02d}:{s:02d} +0000] "GET /{u}/../x?id=1+union+select+1 HTTP/1.1" 404 1 "-" "nikto"',
    "Nov 25 12:{m:02d}:{s:02d} web-1 kernel: [1.0] [UFW BLOCK] IN=eth0 OUT= SRC={ip} DST=10.0.0.5 LEN=44 PROTO=TCP "
    "SPT=1 DPT={p} WINDOW=1",
    "Nov 25 12:{m:02d}:{s:02d} web-1 sudo:  {u} : user NOT in sudoers ; TTY=pts/1 ; PWD=/ ; USER=root ; COMMAND=/x",
    "{garbage}",
]


def _lines_strategy():
    from hypothesis import strategies as st

    line = st.builds(
        lambda t, m, s, p, n, u, ip, g: TEMPLATES[t].format(m=m, s=s, p=p, n=n, u=u, ip=ip, garbage=g),
        st.integers(0, len(TEMPLATES) - 1),
        st.integers(0, 59),
        st.integers(0, 59),
        st.integers(1, 65535),
        st.integers(0, 30),
        st.sampled_from(["root", "admin", "[red]x", "a b", "", "ü"]),
        st.sampled_from(
            ["203.0.113.7", "203.0.113.8", "2001:db8::1", "::ffff:203.0.113.7", "999.1.1.1", "host"]
        ),
        st.text(
            alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"), max_size=80
        ),
    )
    return st.lists(line, max_size=60)


@pytest.mark.parametrize("native", NATIVE)
def test_equivalence_property(native: bool) -> None:
    from hypothesis import HealthCheck, given, settings

    rules = load_rules()

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_lines_strategy())
    def check(lines: list[str]) -> None:
        now = 1_795_608_100.0
        fed = Detector(rules)
        expected = [e for line in lines for e in fed.feed(line, "t", now=now)]
        scanned = Detector(rules, native=native)
        got = scan_text(scanned, "\n".join(lines), "t", now=now)
        assert [event_key(e) for e in got] == [event_key(e) for e in expected]
        assert scanned.rule_hits() == fed.rule_hits()

    check()


def test_feed_never_raises_on_arbitrary_text() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    det = Detector(load_rules())

    @settings(max_examples=300, deadline=None)
    @given(st.text(max_size=300))
    def check(text: str) -> None:
        det.feed(text, "x", now=1_795_608_100.0)
        det.feed(
            "Nov 25 12:00:01 h sshd[1]: Failed password for " + text + " from 203.0.113.7 port 1 ssh2", "x"
        )

    check()


def test_open_log_closes_the_file_of_a_gzip_log(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import gzip
    import os

    from pilot_tui.detect.chunks import open_log

    path = tmp_path / "auth.log.2.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"line\n")
    fds = set(os.listdir("/proc/self/fd"))
    with open_log(path) as stream:
        assert stream.read() == b"line\n"
    assert set(os.listdir("/proc/self/fd")) <= fds  # nothing left open (a long scan of many rotated logs ran out)
