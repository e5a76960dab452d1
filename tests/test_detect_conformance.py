"""sshd failures counted like fail2ban's sshd filter, address by address, on hand-written logs.

``tests/data/conformance/*.log`` hold the line shapes fail2ban 1.0.2's sshd filter knows in its normal mode (OpenSSH
5 to 9.8 with sshd-session, IPv6, PAM, Solaris and RFC 5424 prefixes, preauth closes, user-name injection…). Next to
each log, ``*.expected.json`` holds what ``fail2ban-regex`` counted per address (the command is in the file) and the
one place pilot-tui deliberately counts more ("message repeated N times" counts N). CI checks pilot-tui against those
files; where ``fail2ban-regex`` is installed (Debian's ``fail2ban`` package), the files themselves are checked
against it too.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from pilot_tui.detect import Detector, load_rules
from pilot_tui.detect.chunkscan import scan_files

DATA = Path(__file__).parent / "data" / "conformance"
LOGS = ["sshd.log", "sshd-rfc5424.log"]
NOW = 1_795_608_100.0  # 2026-11-25T12:01:40Z: the logs' syslog times fall in 2026
FAIL2BAN_FILTER = Path("/etc/fail2ban/filter.d/sshd.conf")


def expected(log: str) -> dict:
    return json.loads((DATA / log).with_suffix(".expected.json").read_text(encoding="utf-8"))


def ours_expected(log: str) -> dict[str, int]:
    """fail2ban's counts with pilot-tui's documented differences applied."""
    exp = expected(log)
    counts = dict(exp["fail2ban_counts"])
    counts.update({ip: d["count"] for ip, d in exp["pilot_tui_differs"].items()})
    return counts


def fed(log: str) -> Detector:
    det = Detector(load_rules(packs=("sshd",)))
    for line in (DATA / log).read_text(encoding="utf-8").splitlines():
        det.feed(line, log, now=NOW)
    return det


@pytest.mark.parametrize("log", LOGS)
def test_failures_per_address_equal_fail2ban(log: str) -> None:
    det = fed(log)
    assert dict(det.stats.ip_hits) == ours_expected(log)


@pytest.mark.parametrize("log", LOGS)
def test_scan_counts_the_same(log: str) -> None:
    """The offline scanner (whole chunks, small ones here so connections span chunk boundaries) agrees."""
    for chunk_size in (4096, 1 << 20):
        report = scan_files([DATA / log], Detector(load_rules(packs=("sshd",))), chunk_size=chunk_size, reference=NOW)
        assert dict(report.ip_hits) == ours_expected(log)


def test_only_documented_differences() -> None:
    for log in LOGS:
        exp = expected(log)
        for ip, diff in exp["pilot_tui_differs"].items():
            assert diff["count"] != exp["fail2ban_counts"].get(ip, 0) and "message repeated" in diff["why"]


def test_two_attempts_are_three_failures_and_no_brute_force() -> None:
    """The issue's example: invalid user FILTER then root from one address is 3 failures (fail2ban's count), under
    maxretry 5, while addresses with 5+ failures within findtime are reported."""
    det = Detector(load_rules(packs=("sshd",)))
    events = [e for line in (DATA / "sshd.log").read_text().splitlines() for e in det.feed(line, "auth.log", now=NOW)]
    assert det.stats.ip_hits["203.0.113.10"] == 3
    brute = {e.source_ip for e in events if e.anomaly == "brute_force_ssh"}
    assert "203.0.113.10" not in brute
    assert brute == {"203.0.113.20", "203.0.113.30", "198.51.100.70", "198.51.100.90", "203.0.113.99"}
    (ev,) = [e for e in events if e.source_ip == "203.0.113.99"]
    assert ev.count == 5 and len(ev.evidence) == 5 and all("pam_unix" not in x for x in ev.evidence)


def test_injected_addresses_get_nothing() -> None:
    counts = fed("sshd.log").stats.ip_hits
    for planted in ("192.0.2.200", "192.0.2.201", "192.0.2.202", "192.0.2.203"):
        assert planted not in counts


def _fail2ban_counts(log: str) -> Counter[str]:
    exp = expected(log)
    options = '_daemon="sshd(?:-session)?"' + (", logtype=rfc5424" if "rfc5424" in log else "")
    out = subprocess.run(
        ["fail2ban-regex", "-o", "ip", str(DATA / log), f"{FAIL2BAN_FILTER}[{options}]"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert options.split(",")[0] in exp["command"]
    counts: Counter[str] = Counter()
    for word in out.split():
        addr = ipaddress.ip_address(word)
        if addr.version == 6 and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        counts[str(addr)] += 1
    return counts


@pytest.mark.skipif(
    shutil.which("fail2ban-regex") is None or not FAIL2BAN_FILTER.exists(),
    reason="fail2ban-regex not installed (Debian package fail2ban); the expected files are the CI check",
)
@pytest.mark.parametrize("log", LOGS)
def test_expected_files_are_what_fail2ban_regex_counts(log: str) -> None:
    assert dict(_fail2ban_counts(log)) == expected(log)["fail2ban_counts"]


def test_same_counts_whatever_the_thresholds() -> None:
    """Counting does not depend on rule thresholds (a rule firing or cooling down changes no failure count)."""
    rules = load_rules(packs=("sshd",))
    quiet = dataclasses.replace(rules, rules=tuple(dataclasses.replace(r, maxretry=10_000) for r in rules.rules))
    det = Detector(quiet)
    for line in (DATA / "sshd.log").read_text().splitlines():
        assert det.feed(line, "auth.log", now=NOW) == []
    assert dict(det.stats.ip_hits) == ours_expected("sshd.log")
