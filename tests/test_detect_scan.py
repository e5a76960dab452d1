"""The chunk scanner gives exactly what feeding lines gives (one implementation of what a rule means, reached two
ways); ``pilot-tui scan``'s output, exit status and pipes."""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from pilot_tui.detect import Detector, load_rules, scan_files, scan_text
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


def same(a: list[ThreatEvent], b: list[ThreatEvent]) -> bool:
    """Every field equal but the random id."""
    return [dataclasses.replace(e, id="") for e in a] == [dataclasses.replace(e, id="") for e in b]


def assert_equivalent(path: Path, chunk_size: int = 1 << 20, **options: object) -> Detector:
    """Scanning ``path`` in chunks gives what feeding it line by line gives: events field by field, every counter."""
    rules = options.pop("rules", None) or load_rules()
    fed = Detector(rules, sensor="s1", **options)  # type: ignore[arg-type]
    expected = feed_file(path, fed)
    scanned = Detector(rules, sensor="s1", **options)  # type: ignore[arg-type]
    report = scan_files([path], scanned, chunk_size=chunk_size)
    assert same(report.events, expected)
    assert report.rule_hits == fed.rule_hits()
    assert report.pattern_hits == fed.pattern_hits()
    assert report.ip_hits == fed.stats.ip_hits
    assert report.ip_times == fed.stats.ip_times
    assert (report.lines, report.matched_lines) == (fed.stats.lines, fed.stats.matched_lines)
    assert (report.allowlisted, report.bad_ip) == (fed.stats.allowlisted, fed.stats.bad_ip)
    return scanned


@pytest.mark.parametrize(("kind", "lines"), [("auth", 40_000), ("nginx", 12_000), ("ufw", 20_000)])
@pytest.mark.parametrize("chunk_size", [1 << 20, 4096])
def test_chunk_scan_equals_line_feed(tmp_path: Path, kind: str, lines: int, chunk_size: int) -> None:
    path = tmp_path / f"{kind}.log"
    generate(path, kind, lines, seed=3)
    rules = load_rules()
    by_line = Detector(rules, sensor="t")
    expected = feed_file(path, by_line)
    scanner = Detector(rules, sensor="t")
    report = scan_files([path], scanner, chunk_size=chunk_size)
    assert expected, "the generated log should trigger events"
    assert [event_key(e) for e in report.events] == [event_key(e) for e in expected]
    assert report.lines == lines == by_line.stats.lines
    assert report.rule_hits == by_line.rule_hits()
    assert report.pattern_hits == by_line.pattern_hits()
    assert report.ip_hits == by_line.stats.ip_hits
    assert report.matched_lines == by_line.stats.matched_lines


def test_equivalence_on_tricky_text() -> None:
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
    scanned = Detector(rules)
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


def test_odd_lines_non_ascii_crlf_and_separator_bytes(tmp_path: Path) -> None:
    r"""Non-ASCII user names, CRLF endings, a 0x1c byte (Python's \s matches it) and invalid UTF-8, spread over small
    chunks: the scanner reads each line exactly as ``feed`` does."""
    path = tmp_path / "auth.log"
    generate(path, "auth", 6000, seed=4)
    lines = path.read_bytes().split(b"\n")
    odd = [
        "Nov  1 00:10:01 web-1 sshd[9]: Failed password for jösé from 203.0.113.50 port 22 ssh2".encode(),
        b"Nov  1 00:10:02 web-1 sshd[9]: Failed password for root from 203.0.113.50 port 22 ssh2\r",
        b"Nov  1 00:10:03 web-1 sshd[9]: Failed password for root from\x1c203.0.113.50 port 22 ssh2",
        b"Nov  1 00:10:04 web-1 sshd[9]: Invalid user \xff\xfe from 203.0.113.50 port 22",
    ]
    for i in range(300, len(lines), 700):
        lines[i:i] = odd
    path.write_bytes(b"\n".join(lines))
    assert_equivalent(path, chunk_size=4096)


def test_allowlist_ipv6_grouping_and_key_eviction(tmp_path: Path) -> None:
    path = tmp_path / "auth.log"
    generate(path, "auth", 20_000, seed=8)
    extra = [
        f"Nov  1 00:0{i % 10}:{i % 60:02d} web-1 sshd[7]: Failed password for root from 2001:db8:0:{i % 3}::{i} "
        f"port 22 ssh2"
        for i in range(200)
    ] + [f"Nov  1 00:09:{i:02d} web-1 sshd[7]: Invalid user u{i} from ::ffff:198.51.100.{i} port 2" for i in range(50)]
    with path.open("a") as f:
        f.write("\n".join(extra) + "\n")
    assert_equivalent(path, allowlist=["198.51.100.0/25", "192.0.2.0/26"], group_ipv6_64=True, max_keys=50)


def test_repeat_and_count_weights_and_user_keyed_rules(tmp_path: Path) -> None:
    rules_file = tmp_path / "rules.toml"
    rules_file.write_text(
        """
[[rule]]
name = "app-batch"
regex = 'app\\[\\d+\\]: (?P<count>\\d+) failed logins for (?P<user>\\S+) from (?P<ip>[0-9.]+)$'
anomaly = "app_brute_force"
severity = "medium"
severity_at = { 50 = "high", 500 = "critical" }
maxretry = 10
findtime = 120
cooldown = 60
"""
    )
    rules = load_rules(rules_file=rules_file)
    rnd = random.Random(5)
    lines = []
    for i in range(3000):
        t = f"Nov  2 {i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}"
        ip = f"203.0.113.{rnd.randrange(20)}"
        kind = rnd.randrange(5)
        if kind == 0:
            n = rnd.choice(["0", "3", "17", "250", "99999999999999999999"])
            lines.append(f"{t} h app[3]: {n} failed logins for bob from {ip}")
        elif kind == 1:
            lines.append(
                f"{t} h sshd[4]: message repeated {rnd.randrange(0, 5)} times: [ Failed password for root from {ip} "
                "port 2 ssh2]"
            )
        elif kind == 2:
            lines.append(f"{t} h sshd[4]: Accepted password for u{i % 7} from {ip} port 5 ssh2")
        elif kind == 3:
            lines.append(
                f"{t} h sudo: pam_unix(sudo:auth): authentication failure; logname=u{i % 7} uid=1 euid=0 "
                f"tty=/dev/pts/0 ruser=u{i % 7} rhost=  user=u{i % 7}"
            )
        else:
            lines.append(f"{t} h sudo:    u{i % 9} : user NOT in sudoers ; TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/sh")
    path = tmp_path / "mixed.log"
    path.write_text("\n".join(lines) + "\n")
    assert_equivalent(path, chunk_size=8192, rules=rules)


def args(
    *files: str,
    json_out: bool = False,
    ips: bool = False,
    rules: str | None = None,
    allow: list[str] | None = None,
) -> argparse.Namespace:
    return argparse.Namespace(files=list(files), rules=rules, json=json_out, ips=ips, allow=allow or [])


def failed(ip: str, second: int, user: str = "root") -> str:
    return f"Nov 25 12:00:{second:02d} h sshd[{100 + second}]: Failed password for {user} from {ip} port 22 ssh2\n"


def test_scan_command_rich_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "auth.log"
    generate(path, "auth", 3000, seed=2)
    assert run(args(str(path))) == 0  # something would fire
    out = capsys.readouterr().out
    assert "3,000 lines" in out and "read as OpenSSH (sshd)" in out
    for word in ("sshd-auth", "brute_force_ssh", "Source addresses: top 15 of", "Events that would fire"):
        assert word in out


def test_json_lists_every_source_with_failures_first_and_last_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Low-count sources beyond the busiest 15 are in the JSON too, each with its count and time span."""
    path = tmp_path / "auth.log"
    lines = [failed("203.0.113.250", s) for s in range(10)]  # fires
    lines += [failed(f"198.51.100.{i}", 10 + i) for i in range(30)]  # one failure each: never fires
    lines += [failed("192.0.2.7", 50), failed("192.0.2.7", 55)]
    path.write_text("".join(lines))
    assert run(args(str(path), json_out=True)) == 0
    doc = json.loads(capsys.readouterr().out)
    by_ip = {s["ip"]: s for s in doc["sources"]}
    assert len(by_ip) == 32 == doc["distinct_ips"]
    assert all(by_ip[f"198.51.100.{i}"]["failures"] == 1 for i in range(30))
    low = by_ip["198.51.100.29"]
    assert low["first"] == low["last"] and low["events"] == 0 and low["anomalies"] == []
    assert low["first"].endswith(":39.000Z")
    two = by_ip["192.0.2.7"]
    assert (two["failures"], two["first"][17:19], two["last"][17:19]) == (2, "50", "55")
    top = doc["sources"][0]
    assert top["ip"] == "203.0.113.250" and top["failures"] == 10 and top["anomalies"] == ["brute_force_ssh"]
    assert doc["offending_ips"] == ["203.0.113.250"]
    assert doc["files"][0]["formats"] == ["OpenSSH (sshd)"]


def test_scan_command_json_and_allowlist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "auth.log"
    generate(path, "auth", 3000, seed=2)
    assert run(args(str(path), json_out=True, allow=["203.0.113.0/24"])) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["lines"] == 3000 and doc["allowlisted_hits"] > 0
    assert doc["events"] and all(not e["source_ip"].startswith("203.0.113.") for e in doc["events"])
    assert not any(s["ip"].startswith("203.0.113.") for s in doc["sources"])
    assert {"rule_hits", "pattern_hits", "sources", "offending_ips", "bytes", "seconds"} <= set(doc)


def test_ips_prints_only_offending_addresses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One address a line, nothing else: a user-keyed (sudo) event whose user's login was never seen names no real
    source, so its stand-in 127.0.0.1 is not printed."""
    path = tmp_path / "auth.log"
    lines = [failed("2001:db8::9", s) for s in range(6)] + [failed("198.51.100.4", s) for s in range(6)]
    lines += [failed("192.0.2.1", 30)]  # one failure: no rule fires
    lines += ["Nov 25 12:00:40 h sudo:   mallory : user NOT in sudoers ; TTY=pts/1 ; PWD=/ ; USER=root ; COMMAND=/x\n"]
    path.write_text("".join(lines))
    assert run(args(str(path), ips=True)) == 0
    captured = capsys.readouterr()
    assert captured.out == "198.51.100.4\n2001:db8::9\n"
    assert captured.err == ""


def test_exit_status_is_like_greps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fires = tmp_path / "fires.log"
    fires.write_text("".join(failed("198.51.100.4", s) for s in range(6)))
    quiet = tmp_path / "quiet.log"
    quiet.write_text(failed("198.51.100.4", 1) + "Nov 25 12:00:02 h CRON[1]: (root) CMD (true)\n")
    for extra in ({}, {"json_out": True}, {"ips": True}):
        assert run(args(str(fires), **extra)) == 0
        assert run(args(str(quiet), **extra)) == 1
        assert run(args(str(tmp_path / "missing.log"), **extra)) == 2
    out = capsys.readouterr().out
    assert "No events would fire: no source reached a rule's threshold." in out


def test_a_file_in_no_known_format_is_said_to_be_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An Apache error log and the old sshd(pam_unix) syslog format: no rule reads them, and the output says so and
    names the formats the rules read, instead of a bare "nothing would fire"."""
    path = tmp_path / "error.log"
    path.write_text(
        "[Wed Nov 25 12:00:01.123456 2026] [core:error] [pid 4242] [client 203.0.113.5:50000] AH00126: Invalid URI\n"
        "Nov 25 12:00:02 h sshd(pam_unix)[4243]: authentication failure; logname= uid=0 euid=0 tty=NODEVssh "
        "ruser= rhost=203.0.113.5  user=root\n" * 6
    )
    assert run(args(str(path))) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "error.log: 12 lines — none in a format these rules read" in out
    assert "No line matched any rule" in out and "They read: OpenSSH (sshd); sudo; web access log" in out
    assert "No events would fire" not in out
    assert run(args(str(path), ips=True)) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "no line in a format these rules read" in captured.err
    assert run(args(str(path), json_out=True)) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["files"][0]["matched_lines"] == 0 and doc["files"][0]["formats"] == []


def test_tables_fit_80_columns_without_cutting_addresses_or_times(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    longest = "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff"  # IPv6 at full width
    path = tmp_path / "auth.log"
    lines = [failed(longest, s, user="administrator-with-a-long-name") for s in range(12)]
    lines += [failed("198.51.100.77", 20 + s) for s in range(6)]
    path.write_text("".join(lines))
    assert run(args(str(path))) == 0
    out = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in out) <= 80
    assert "…" not in "\n".join(out)
    source_rows = [line for line in out if line.startswith(longest)]
    assert source_rows and source_rows[0].endswith("2026-11-25 12:00:11")  # its last failure, whole
    event_rows = [line for line in out if longest in line and line.startswith("2026-")]
    assert event_rows and all(line[:19].count(":") == 2 for line in event_rows)


def test_attacker_text_is_not_markup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # wide enough for the user column
    path = tmp_path / "auth.log"
    path.write_text("".join(failed("203.0.113.7", s, user="[bold red]x[/]") for s in range(6)))
    assert run(args(str(path))) == 0
    assert "[bold red]x[/]" in capsys.readouterr().out


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
    assert run(args(str(log))) == 1  # an empty file is a scan with nothing found


@pytest.mark.parametrize("mode", [[], ["--json"], ["--ips"]])
def test_a_reader_that_goes_away_ends_the_output_quietly(tmp_path: Path, mode: list[str]) -> None:
    """``pilot-tui scan … | head``: the pipe closes before the output is written; no traceback, the exit status
    still says whether something would fire."""
    path = tmp_path / "auth.log"
    generate(path, "auth", 3000, seed=2)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pilot_tui", "scan", *mode, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before a byte was written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0
    assert err == ""


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


def test_equivalence_property() -> None:
    from hypothesis import HealthCheck, given, settings

    rules = load_rules()

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_lines_strategy())
    def check(lines: list[str]) -> None:
        now = 1_795_608_100.0
        fed = Detector(rules)
        expected = [e for line in lines for e in fed.feed(line, "t", now=now)]
        scanned = Detector(rules)
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
