"""Built-in packs on real-format sample lines, and the TOML loader's validation of user rules."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pilot_tui.detect import Detector, RuleError, load_rules
from pilot_tui.detect.rules import BUILTIN_PACKS, RuleSet, pcre_to_python

NOW = 1_795_608_100.0  # 2026-11-25T12:01:40Z, just after the sample lines below

# One sample line per built-in pattern, in the exact formats OpenSSH, sudo/pam, nginx and the kernel write.
SAMPLES: list[tuple[str, str, str, str | None]] = [  # (line, rule, source address, user)
    (
        "Nov 25 12:00:01 web-1 sshd[811]: Failed password for root from 203.0.113.7 port 52344 ssh2",
        "sshd-auth",
        "203.0.113.7",
        "root",
    ),
    (
        "Nov 25 12:00:01 web-1 sshd[811]: Failed password for invalid user admin from 203.0.113.7 port 52344 ssh2",
        "sshd-auth",
        "203.0.113.7",
        "admin",
    ),
    (
        "Nov 25 12:00:01 web-1 sshd[811]: Failed keyboard-interactive/pam for root from 203.0.113.7 port 52344 ssh2",
        "sshd-auth",
        "203.0.113.7",
        "root",
    ),
    (
        "Nov 25 12:00:01 web-1 sshd[812]: Invalid user oracle from 198.51.100.23 port 40022",
        "sshd-auth",
        "198.51.100.23",
        "oracle",
    ),
    (
        "Nov 25 12:00:01 web-1 sshd[813]: error: PAM: Authentication failure for root from 203.0.113.8",
        "sshd-auth",
        "203.0.113.8",
        "root",
    ),
    (
        "Nov 25 12:00:01 web-1 sshd[813]: User root from 203.0.113.9 not allowed because not listed in AllowUsers",
        "sshd-auth",
        "203.0.113.9",
        "root",
    ),
    (
        "Nov 25 12:00:01 web-1 sshd[814]: error: maximum authentication attempts exceeded for root from 203.0.113.10 "
        "port 52344 ssh2 [preauth]",
        "sshd-auth",
        "203.0.113.10",
        "root",
    ),
    (
        "Nov 25 12:00:01 web-1 sshd[815]: Invalid user git from 198.51.100.24 port 40100",
        "sshd-enum",
        "198.51.100.24",
        "git",
    ),
    (
        "Nov 25 12:00:01 web-1 sshd[815]: Illegal user pi from 198.51.100.25",
        "sshd-enum",
        "198.51.100.25",
        "pi",
    ),
    (
        "2026-11-25T12:00:01.123456+00:00 web-1 sshd-session[900]: Failed password for root from 2001:db8::7 port 22 "
        "ssh2",
        "sshd-auth",
        "2001:db8::7",
        "root",
    ),
    (
        "Nov 25 12:00:01 web-1 sudo: pam_unix(sudo:auth): authentication failure; logname=mallory uid=1001 euid=0 "
        "tty=/dev/pts/1 ruser=mallory rhost=  user=mallory",
        "sudo-auth",
        "127.0.0.1",
        "mallory",
    ),
    (
        "Nov 25 12:00:01 web-1 sudo:  mallory : user NOT in sudoers ; TTY=pts/1 ; PWD=/home/mallory ; USER=root ; "
        "COMMAND=/bin/cat /etc/shadow",
        "sudo-not-in-sudoers",
        "127.0.0.1",
        "mallory",
    ),
    (
        '203.0.113.50 - - [25/Nov/2026:12:00:01 +0000] "GET /static/../../../../etc/passwd HTTP/1.1" 400 157 "-" '
        '"curl/8.5.0"',
        "web-traversal",
        "203.0.113.50",
        None,
    ),
    (
        '203.0.113.51 - - [25/Nov/2026:12:00:01 +0000] "GET /download?file=..%2f..%2fetc%2fshadow HTTP/1.1" 400 157 '
        '"-" "curl/8.5.0"',
        "web-traversal",
        "203.0.113.51",
        None,
    ),
    (
        '203.0.113.52 - - [25/Nov/2026:12:00:01 +0000] "GET /item?id=1+UNION+SELECT+username,password+FROM+users-- '
        'HTTP/1.1" 500 0 "-" "Mozilla/5.0"',
        "web-sqli",
        "203.0.113.52",
        None,
    ),
    (
        '2001:db8::53 - - [25/Nov/2026:12:00:01 +0000] "GET /products?id=1%27%20OR%20%271%27=%271 HTTP/1.1" 200 512 '
        '"-" "Mozilla/5.0"',
        "web-sqli",
        "2001:db8::53",
        None,
    ),
    (
        '203.0.113.54 - - [25/Nov/2026:12:00:01 +0000] "GET /.env HTTP/1.1" 404 162 "-" "Mozilla/5.0"',
        "web-scanner",
        "203.0.113.54",
        None,
    ),
    (
        '203.0.113.55 - - [25/Nov/2026:12:00:01 +0000] "GET / HTTP/1.1" 200 612 "-" "sqlmap/1.7.2#stable '
        '(https://sqlmap.org)"',
        "web-scanner",
        "203.0.113.55",
        None,
    ),
    (
        '203.0.113.56 - - [25/Nov/2026:12:00:01 +0000] "GET /missing HTTP/1.1" 404 162 "-" "Mozilla/5.0"',
        "web-4xx-burst",
        "203.0.113.56",
        None,
    ),
    (
        "Nov 25 12:00:01 web-1 kernel: [12345.678901] [UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:"
        "08:00 SRC=203.0.113.99 DST=10.0.0.5 LEN=44 TOS=0x00 PREC=0x00 TTL=243 ID=54321 PROTO=TCP SPT=54321 DPT=22 "
        "WINDOW=1024 RES=0x00 SYN URGP=0",
        "portscan",
        "203.0.113.99",
        None,
    ),
    (
        "Nov 25 12:00:01 web-1 kernel: [UFW BLOCK] IN=eth0 OUT= MAC=33:33:00:00:00:01:52:54:00:12:34:56:86:dd "
        "SRC=2001:0db8:0000:0000:0000:0000:0000:0099 DST=2001:0db8:0000:0000:0000:0000:0000:0001 LEN=80 TC=0 "
        "HOPLIMIT=52 FLOWLBL=0 PROTO=TCP SPT=45000 DPT=443 WINDOW=1024 RES=0x00 SYN URGP=0",
        "portscan",
        "2001:db8::99",
        None,
    ),
    (
        "Nov 25 12:00:01 web-1 kernel: IPTABLES-DROP: IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 "
        "SRC=198.51.100.98 DST=10.0.0.5 LEN=60 TOS=0x00 PREC=0x00 TTL=51 ID=0 DF PROTO=TCP SPT=40000 DPT=3306 "
        "WINDOW=65535 RES=0x00 SYN URGP=0",
        "portscan",
        "198.51.100.98",
        None,
    ),
]

BENIGN = [
    "Nov 25 12:00:01 web-1 sshd[900]: Accepted publickey for deploy from 192.0.2.10 port 50122 ssh2: ED25519 SHA256:x",
    "Nov 25 12:00:01 web-1 sshd[900]: pam_unix(sshd:session): session opened for user deploy(uid=1000) by (uid=0)",
    "Nov 25 12:00:01 web-1 sshd[900]: Received disconnect from 192.0.2.10 port 50122:11: disconnected by user",
    "Nov 25 12:00:01 web-1 sshd[900]: Disconnected from user deploy 192.0.2.10 port 50122",
    "Nov 25 12:00:01 web-1 sshd[901]: Failed publickey for deploy from 192.0.2.10 port 50123 ssh2: RSA SHA256:x",
    # context lines of an attempt sshd reports itself: alone they are no failure (see detect/multiline.py)
    "Nov 25 12:00:01 web-1 sshd[813]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh "
    "ruser= rhost=203.0.113.8  user=root",
    "Nov 25 12:00:01 web-1 sshd[815]: Connection closed by invalid user git 198.51.100.24 port 40100 [preauth]",
    "Nov 25 12:00:01 web-1 sshd[816]: Disconnecting authenticating user root 203.0.113.8 port 40101: Too many "
    "authentication failures [preauth]",
    "Nov 25 12:00:01 web-1 sudo: pam_sss(sudo:auth): authentication failure; logname=mallory uid=1001 euid=0 "
    "tty=/dev/pts/1 ruser=mallory rhost= user=mallory",
    "Nov 25 12:00:01 web-1 CRON[12345]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)",
    "Nov 25 12:00:01 web-1 sudo:   deploy : TTY=pts/0 ; PWD=/home/deploy ; USER=root ; COMMAND=/usr/bin/apt update",
    "Nov 25 12:00:01 web-1 app[77]: Failed password for root from 203.0.113.7 port 22 ssh2",  # not sshd: injected
    '198.51.100.200 - - [25/Nov/2026:12:00:01 +0000] "GET /blog/2026/11/pilot HTTP/1.1" 200 5120 "-" "Mozilla/5.0"',
    '198.51.100.200 - - [25/Nov/2026:12:00:01 +0000] "GET /index.html HTTP/1.1" 304 0 "-" "Mozilla/5.0"',
]


def eager(rules: RuleSet) -> RuleSet:
    """The same rules with maxretry 1 (and distinct rules counting one value), so one line fires."""
    return RuleSet(rules.filters, tuple(dataclasses.replace(r, maxretry=1) for r in rules.rules))


@pytest.mark.parametrize(
    ("line", "rule", "source", "user"), SAMPLES, ids=[f"{s[1]}-{i}" for i, s in enumerate(SAMPLES)]
)
def test_every_builtin_rule_fires_on_real_format_line(
    line: str, rule: str, source: str, user: str | None
) -> None:
    detector = Detector(eager(load_rules()), sensor="web-1")
    events = [e for e in detector.feed(line, "/var/log/test.log", now=NOW) if e.rule == rule]
    assert len(events) == 1, f"{rule} did not fire on {line!r}"
    event = events[0]
    assert event.source_ip == source
    assert event.user == user
    assert event.anomaly == load_rules().rule(rule).anomaly
    assert event.sensor == "web-1" and event.seq is None and event.count == 1
    assert event.evidence == (line,)
    assert event.ts is not None and event.ts.startswith("2026-11-25T12:00:01")


def test_every_builtin_rule_has_a_sample() -> None:
    covered = {s[1] for s in SAMPLES}
    assert covered == {r.name for r in load_rules().rules}


@pytest.mark.parametrize("line", BENIGN)
def test_benign_lines_fire_nothing(line: str) -> None:
    assert Detector(eager(load_rules())).feed(line, "x", now=NOW) == []


def test_anomaly_names() -> None:
    assert {r.anomaly for r in load_rules().rules} == {
        "brute_force_ssh",
        "ssh_user_enumeration",
        "sudo_auth_failure",
        "sudo_not_in_sudoers",
        "web_path_traversal",
        "web_sqli",
        "web_scanner",
        "web_4xx_burst",
        "port_scan",
    }


def test_packs_can_be_chosen() -> None:
    assert {r.pack for r in load_rules(packs=("sudo",)).rules} == {"sudo"}
    assert set(BUILTIN_PACKS) == {"sshd", "sudo", "web", "portscan"}
    with pytest.raises(RuleError, match="unknown rule pack 'nope'"):
        load_rules(packs=("nope",))


def test_user_rule_file_short_form(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(
        """
[[rule]]
name = "gitea-auth"
regex = 'Failed authentication attempt for (?<user>\\S+) from (?<ip>[0-9a-fA-F:.]+)'
anomaly = "gitea_brute_force"
severity = "low"
severity_at = { 3 = "high" }
maxretry = 2
findtime = 60
cooldown = 600
"""
    )
    rules = load_rules(rules_file=path)
    detector = Detector(rules)
    line = "Nov 25 12:00:0{} git gitea[5]: Failed authentication attempt for bob from 203.0.113.77"
    assert detector.feed(line.format(1), "g", now=NOW) == []
    (first,) = detector.feed(line.format(2), "g", now=NOW)
    assert (first.anomaly, first.severity, first.count, first.user, first.rule) == (
        "gitea_brute_force",
        "low",
        2,
        "bob",
        "gitea-auth",
    )
    assert detector.feed(line.format(3), "g", now=NOW) == []  # cooldown, and 3 < 2 * 2
    (update,) = detector.feed(line.format(4), "g", now=NOW)  # count doubled: escalation at a higher severity
    assert (update.count, update.severity) == (4, "high")


def test_user_file_long_form_and_builtin_filter_reuse(tmp_path: Path) -> None:
    path = tmp_path / "long.toml"
    path.write_text(
        """
[[filter]]
name = "vsftpd"
require = "vsftpd"
prefix = 'vsftpd\\[\\d+\\]: '
[[filter.patterns]]
id = "fail"
regex = '\\[(?P<user>[^\\]]+)\\] FAIL LOGIN: Client "(?P<ip>[0-9a-fA-F:.]+)"'

[[rule]]
name = "ftp-auth"
filter = "vsftpd"
anomaly = "brute_force_ftp"
maxretry = 1
"""
    )
    detector = Detector(load_rules(packs=(), rules_file=path))
    (event,) = detector.feed(
        'Nov 25 12:00:01 h vsftpd[9]: [ann] FAIL LOGIN: Client "198.51.100.9"', "f", now=NOW
    )
    assert (event.source_ip, event.user, event.anomaly, event.severity) == (
        "198.51.100.9",
        "ann",
        "brute_force_ftp",
        "medium",
    )


BAD_RULES = [
    ("regex = '(unclosed'", "rule 'bad': pattern 'bad' is not a valid regex"),
    ("regex = 'Failed from (?P<addr>\\S+)'", "rule 'bad': pattern 'bad' has no (?P<ip>"),
    ("regex = 'f (?P<ip>\\S+)'\npatterns = ['x']", "rule 'bad': give either 'regex' or 'filter'/'patterns'"),
    ("regex = '(?P<ip>\\S*)'", "rule 'bad': pattern 'bad' matches an empty line"),
    ("regex = 'f (?P<ip>\\S+)'\nseverity = 'urgent'", "rule 'bad': 'severity' 'urgent' is not one of"),
    ("regex = 'f (?P<ip>\\S+)'\nmaxretry = 0", "rule 'bad': 'maxretry' must be a whole number from 1"),
    ("regex = 'f (?P<ip>\\S+)'\nfindtime = -5", "rule 'bad': 'findtime' must be seconds"),
    ("regex = 'f (?P<ip>\\S+)'\nfindtime = 0", "rule 'bad': 'findtime' must be more than 0"),
    ("regex = 'f (?P<ip>\\S+)'\nmaxretri = 5", "rule 'bad': unknown key(s) ['maxretri']"),
    ("regex = 'f (?P<ip>\\S+)'\nkey = 'host'", "rule 'bad': 'key' must be"),
    ("regex = 'f (?P<ip>\\S+)'\ndistinct = 'port'", "rule 'bad': pattern 'bad' has no (?P<port>"),
    ("regex = 'f (?P<ip>\\S+)'\nseverity_at = { ten = 'high' }", "rule 'bad': 'severity_at' keys"),
    ("regex = 'f (?P<ip>\\S+)'\nanomaly = 'brute force!'", "rule 'bad': 'anomaly' must be"),
    ("filter = 'nowhere'", "rule 'bad': needs a 'regex', or a 'filter' naming one of"),
]


@pytest.mark.parametrize(("body", "message"), BAD_RULES)
def test_bad_rule_is_named_in_the_error(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "rules.toml"
    text = f"[[rule]]\nname = 'good'\nregex = 'ok (?P<ip>\\S+)'\nanomaly = 'fine'\n\n[[rule]]\nname = 'bad'\n{body}\n"
    if "anomaly =" not in body:
        text += "anomaly = 'whatever'\n"
    path.write_text(text)
    with pytest.raises(RuleError) as err:
        load_rules(packs=(), rules_file=path)
    assert str(err.value).startswith(str(path))
    assert message in str(err.value)


def test_bad_toml_and_duplicates(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[[rule]\nname = 'x'\n")
    with pytest.raises(RuleError, match="not valid TOML"):
        load_rules(rules_file=broken)
    dup = tmp_path / "dup.toml"
    dup.write_text("[[rule]]\nname = 'sshd-auth'\nregex = 'x (?P<ip>\\S+)'\nanomaly = 'a'\n")
    with pytest.raises(RuleError, match="rule 'sshd-auth': defined more than once"):
        load_rules(rules_file=dup)
    with pytest.raises(RuleError, match="cannot read rules file"):
        load_rules(rules_file=tmp_path / "missing.toml")


def test_pcre_named_groups_are_rewritten_but_lookbehinds_kept() -> None:
    assert pcre_to_python(r"(?<ip>\S+) (?<=a)(?<!b)\(?<x>") == r"(?P<ip>\S+) (?<=a)(?<!b)\(?<x>"
