"""Window semantics (thresholds, cooldown, escalation), allowlist, IPv4/IPv6, timestamps and bounded state."""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime

import pytest

from pilot_tui.detect import AddressError, Detector, load_rules
from pilot_tui.detect.rules import RuleSet
from pilot_tui.detect.timeparse import LineClock
from pilot_tui.model import MAX_EVIDENCE_LINES

NOW = datetime(2026, 11, 25, 13, 0, 0).timestamp()  # local time, like syslog's


def sshd_only(**changes: object) -> RuleSet:
    """The sshd pack with its brute-force rule's thresholds changed."""
    rules = load_rules(packs=("sshd",))
    return RuleSet(
        rules.filters,
        tuple(dataclasses.replace(r, **changes) if r.name == "sshd-auth" else r for r in rules.rules),
    )


def failed(second: int, ip: str = "203.0.113.7", user: str = "root", minute: int = 0) -> str:
    return f"Nov 25 12:{minute:02d}:{second:02d} web-1 sshd[811]: Failed password for {user} from {ip} port 52344 ssh2"


def feed_all(detector: Detector, lines: list[str]) -> list:
    return [e for line in lines for e in detector.feed(line, "/var/log/auth.log", now=NOW)]


def test_fires_once_at_maxretry_within_findtime() -> None:
    det = Detector(sshd_only(maxretry=3, findtime=60, cooldown=600))
    assert feed_all(det, [failed(1), failed(2)]) == []
    (event,) = det.feed(failed(3), "/var/log/auth.log", now=NOW)
    assert (event.count, event.anomaly, event.severity, event.window_s, event.rule) == (
        3,
        "brute_force_ssh",
        "high",
        60.0,
        "sshd-auth",
    )
    assert event.log == "/var/log/auth.log"
    assert event.evidence == (failed(1), failed(2), failed(3))
    assert feed_all(det, [failed(4), failed(5)]) == []  # cooldown: no event per line


def test_hits_outside_findtime_do_not_add_up() -> None:
    det = Detector(sshd_only(maxretry=3, findtime=10))
    lines = [failed(0), failed(9), failed(20), failed(29), failed(40)]  # never 3 within 10 s
    assert feed_all(det, lines) == []
    assert det.rule_hits()["sshd-auth"] == 5


def test_escalation_when_count_doubles_then_cooldown_expiry() -> None:
    det = Detector(sshd_only(maxretry=2, findtime=600, cooldown=120, severity_at=((4, "critical"),)))
    events = feed_all(det, [failed(s) for s in range(1, 9)])
    assert [(e.count, e.severity) for e in events] == [(2, "high"), (4, "critical"), (8, "critical")]
    assert len({e.id for e in events}) == 3
    # after the cooldown an ongoing attack is reported again
    (again,) = det.feed(failed(30, minute=3), "/var/log/auth.log", now=NOW)
    assert again.count == 9


def test_message_repeated_counts_n_times() -> None:
    det = Detector(sshd_only(maxretry=5))
    first = failed(1)
    repeated = (
        "Nov 25 12:00:02 web-1 sshd[811]: message repeated 4 times: [ Failed password for root from "
        "203.0.113.7 port 52344 ssh2]"
    )
    assert det.feed(first, "a", now=NOW) == []
    (event,) = det.feed(repeated, "a", now=NOW)
    assert event.count == 5
    assert det.rule_hits()["sshd-auth"] == 2  # lines, not weight


def test_repeat_weight_is_capped() -> None:
    det = Detector(sshd_only(maxretry=5))
    line = (
        "Nov 25 12:00:02 web-1 sshd[811]: message repeated 999999999999 times: [ Failed password for root from "
        "203.0.113.7 port 52344 ssh2]"
    )
    (event,) = det.feed(line, "a", now=NOW)
    assert event.count == 100_000


def test_allowlist_ipv4_cidr_and_ipv6() -> None:
    det = Detector(sshd_only(maxretry=1), allowlist=["203.0.113.0/24", "2001:db8:1::/48", "198.51.100.9"])
    assert det.feed(failed(1, "203.0.113.200"), "a", now=NOW) == []
    assert det.feed(failed(1, "2001:db8:1:2::5"), "a", now=NOW) == []
    assert det.feed(failed(1, "::ffff:203.0.113.5"), "a", now=NOW) == []  # v4-mapped is the v4 address
    assert det.feed(failed(1, "198.51.100.9"), "a", now=NOW) == []
    assert det.stats.allowlisted == 4
    (event,) = det.feed(failed(1, "198.51.100.10"), "a", now=NOW)
    assert event.source_ip == "198.51.100.10"
    with pytest.raises(AddressError, match="'10.0.0.0/33'"):
        Detector(load_rules(), allowlist=["10.0.0.0/33"])


def test_ipv6_normalised_and_optionally_grouped_per_64() -> None:
    lines = [
        failed(1, "2001:db8:abcd:12::5"),
        failed(2, "2001:DB8:ABCD:12:0::6"),
        failed(3, "2001:db8:abcd:12::7"),
    ]
    det = Detector(sshd_only(maxretry=3))
    assert feed_all(det, lines) == []  # three different addresses, one hit each
    assert set(det.stats.ip_hits) == {"2001:db8:abcd:12::5", "2001:db8:abcd:12::6", "2001:db8:abcd:12::7"}
    grouped = Detector(sshd_only(maxretry=3), group_ipv6_64=True)
    (event,) = feed_all(grouped, lines)
    assert event.count == 3 and event.source_ip == "2001:db8:abcd:12::7"  # the last real address


def test_username_cannot_plant_a_different_address() -> None:
    det = Detector(sshd_only(maxretry=1))
    line = (
        "Nov 25 12:00:01 web-1 sshd[1]: Failed password for invalid user x from 192.0.2.1 port 1 ssh2 "
        "from 203.0.113.66 port 4242 ssh2"
    )
    (event,) = det.feed(line, "a", now=NOW)
    assert event.source_ip == "203.0.113.66"


def test_user_enumeration_counts_distinct_users() -> None:
    det = Detector(load_rules(packs=("sshd",)))
    probe = "Nov 25 12:00:{:02d} web-1 sshd[9]: Invalid user {} from 198.51.100.23 port 4000{}"
    same_user = [probe.format(i, "admin", i) for i in range(8)]
    assert [e.anomaly for e in feed_all(det, same_user)] == ["brute_force_ssh"]  # 8 tries, one name
    users = ["oracle", "test", "git", "pi", "ubuntu"]
    events = feed_all(det, [probe.format(10 + i, u, i) for i, u in enumerate(users)])
    enum = [e for e in events if e.anomaly == "ssh_user_enumeration"]
    assert len(enum) == 1 and enum[0].count == 5 and enum[0].user == "pi"  # admin + four new names


def test_port_scan_counts_distinct_ports() -> None:
    det = Detector(load_rules(packs=("portscan",)))
    ufw = (
        "Nov 25 12:00:{:02d} web-1 kernel: [99.5] [UFW BLOCK] IN=eth0 OUT= MAC=aa SRC=203.0.113.99 DST=10.0.0.5 "
        "LEN=44 TOS=0x00 PREC=0x00 TTL=243 ID=1 PROTO=TCP SPT=5555 DPT={} WINDOW=1024 RES=0x00 SYN URGP=0"
    )
    assert feed_all(det, [ufw.format(i, 22) for i in range(30)]) == []  # one port, retried
    events = feed_all(det, [ufw.format(30 + i // 2, 1000 + i) for i in range(15)])
    assert [(e.anomaly, e.count) for e in events] == [("port_scan", 15)]


def test_web_4xx_burst() -> None:
    det = Detector(load_rules(packs=("web",)))
    line = '203.0.113.56 - - [25/Nov/2026:12:00:{:02d} +0000] "GET /p{} HTTP/1.1" 404 162 "-" "Mozilla/5.0"'
    events = feed_all(det, [line.format(i, i) for i in range(20)])
    assert [(e.anomaly, e.count) for e in events] == [("web_4xx_burst", 20)]
    slow = Detector(load_rules(packs=("web",)))
    spread = '203.0.113.57 - - [25/Nov/2026:12:{:02d}:00 +0000] "GET /p HTTP/1.1" 404 162 "-" "Mozilla/5.0"'
    assert feed_all(slow, [spread.format(m) for m in range(30)]) == []  # one a minute is no burst


def test_sudo_event_names_the_users_ssh_address() -> None:
    det = Detector(load_rules(packs=("sshd", "sudo")))
    login = "Nov 25 12:00:01 web-1 sshd[5]: Accepted password for mallory from 192.0.2.55 port 40404 ssh2"
    pam = (
        "Nov 25 12:00:{:02d} web-1 sudo: pam_unix(sudo:auth): authentication failure; logname=mallory uid=1001 "
        "euid=0 tty=/dev/pts/1 ruser=mallory rhost=  user=mallory"
    )
    events = feed_all(det, [login] + [pam.format(s) for s in (5, 6, 7)])
    assert [(e.anomaly, e.source_ip, e.user, e.count) for e in events] == [
        ("sudo_auth_failure", "192.0.2.55", "mallory", 3)
    ]


def test_evidence_is_capped() -> None:
    det = Detector(sshd_only(maxretry=8))
    long_user = "u" * 2000
    events = feed_all(det, [failed(i, user=long_user) for i in range(8)])
    assert len(events[0].evidence) == MAX_EVIDENCE_LINES
    assert all(len(x) <= 512 for x in events[0].evidence)
    assert events[0].user is not None and len(events[0].user) <= 128


def test_state_is_bounded() -> None:
    det = Detector(sshd_only(maxretry=50), max_keys=100)
    for i in range(1000):
        det.feed(failed(i % 60, f"198.51.{i // 250}.{i % 250}"), "a", now=NOW)
    assert len(det.tracker) <= 100
    assert det.tracker.evicted > 0


def test_idle_keys_are_swept() -> None:
    det = Detector(sshd_only(maxretry=50))
    for i in range(200):
        det.feed(failed(0, f"198.51.100.{i}"), "a", now=NOW)
    later = "Nov 25 {:02d}:00:00 web-1 sshd[1]: Failed password for root from 203.0.113.{} port 1 ssh2"
    for i in range(5000):  # hours later: the first 200 keys are long expired
        det.feed(later.format(14 + i // 1000, i % 250), "a", now=NOW + 4 * 3600)
    assert not any(key.startswith("198.51.100.") for _, key in det.tracker.states)


def test_line_time_formats_and_year_rollover() -> None:
    clock = LineClock()
    jan2 = datetime(2027, 1, 2, 12, 0, 0).timestamp()
    assert clock.line_time("Dec 31 23:59:59 h x", jan2) == datetime(2026, 12, 31, 23, 59, 59).timestamp()
    assert clock.line_time("Jan  1 00:00:01 h x", jan2) == datetime(2027, 1, 1, 0, 0, 1).timestamp()
    assert (
        clock.line_time("2026-11-25T12:00:01.250+01:00 h x", jan2)
        == datetime.fromisoformat("2026-11-25T12:00:01.250+01:00").timestamp()
    )
    assert (
        clock.line_time("<34>1 2026-11-25T12:00:01Z h x", jan2)
        == datetime.fromisoformat("2026-11-25T12:00:01+00:00").timestamp()
    )
    clf = '1.2.3.4 - - [25/Nov/2026:12:00:01 -0230] "GET / HTTP/1.1" 200 1'
    assert clock.line_time(clf, jan2) == datetime.fromisoformat("2026-11-25T12:00:01-02:30").timestamp()
    assert clock.line_time("no time here", jan2) is None
    assert clock.line_time("Nov 99 12:00:01 h x", jan2) is None


def test_lines_without_time_use_now_and_feed_defaults_to_wall_clock() -> None:
    det = Detector(sshd_only(maxretry=1))
    (event,) = det.feed("sshd[1]: Failed password for root from 203.0.113.7 port 1 ssh2\n", "a")
    assert abs(datetime.fromisoformat(event.ts.replace("Z", "+00:00")).timestamp() - time.time()) < 5  # type: ignore[union-attr]


def test_bad_sensor_name_rejected() -> None:
    with pytest.raises(ValueError, match="sensor name"):
        Detector(load_rules(), sensor="bad sensor!")


def test_detect_and_loggen_import_no_textual() -> None:
    import subprocess
    import sys

    code = "import sys, pilot_tui.detect, pilot_tui.detect.scan_cmd, pilot_tui.sim.loggen; print('textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
