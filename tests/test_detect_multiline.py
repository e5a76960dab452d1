"""Connection-tied counting (``conn`` group; ``nofail`` / ``success`` / ``closes`` patterns) and how sources are
read from lines an attacker helps write. The fail2ban conformance logs are in ``test_detect_conformance.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

from pilot_tui.detect import Detector, RuleError, load_rules
from pilot_tui.detect.multiline import MAX_CONNECTIONS

NOW = 1_795_608_100.0  # 2026-11-25T12:01:40Z


def counts(lines: list[str], packs: tuple[str, ...] = ("sshd",)) -> dict[str, int]:
    det = Detector(load_rules(packs=packs))
    for line in lines:
        det.feed(line, "auth.log", now=NOW)
    return dict(det.stats.ip_hits)


def sshd(pid: int, msg: str, second: int = 1) -> str:
    return f"Nov 25 12:00:{second:02d} web-1 sshd[{pid}]: {msg}"


def test_user_name_imitating_the_address_part_plants_nothing() -> None:
    """Where we deliberately read differently from fail2ban 1.0.2: its filter takes the first "from A" when a
    one-word user name is followed by "port N ssh2: ", which a user name can imitate. sshd's own suffix after the
    port never ends like the line's address part, so such a line's source is its last address."""
    lines = [
        sshd(1, "Failed password for invalid user a from 192.0.2.204 port 1 ssh2: b from 198.51.100.102 port 40084 ssh2"),
        sshd(2, "Failed password for invalid user test from 192.0.2.205 port 58946 ssh2: from 198.51.100.102 port 5 ssh2"),
        sshd(3, "Failed password for invalid user x y from 192.0.2.206 port 1 ssh2 from 198.51.100.102 port 6 ssh2"),
    ]
    assert counts(lines) == {"198.51.100.102": 3}


def test_suffix_after_the_real_address_plants_nothing() -> None:
    lines = [
        sshd(1, "Failed password for user from 198.51.100.103 port 20000 ssh1: ruser XXXXXXXX from 192.0.2.207"),
        sshd(2, "Failed publickey for invalid user a b from 198.51.100.103 port 5 ssh2: RSA SHA256:from 192.0.2.208"),
        sshd(3, 'Failed hostbased for kim from 198.51.100.103 port 4 ssh2: RSA SHA256:q, client user "u", client host '
             '"from 192.0.2.209 port 1 ssh2"'),
    ]
    assert counts(lines) == {"198.51.100.103": 3}


def test_a_failure_without_address_waits_for_its_connection() -> None:
    waiting = sshd(7, "Disconnecting: Too many authentication failures for root [preauth]")
    assert counts([waiting]) == {}
    assert counts([waiting, sshd(8, "Connection closed by 203.0.113.7 port 1 [preauth]")]) == {}  # another pid
    assert counts([waiting, sshd(7, "Connection closed by 203.0.113.7 port 1 [preauth]")]) == {"203.0.113.7": 1}


def test_login_after_failures_of_the_same_user_is_not_one() -> None:
    mistyped = [
        sshd(5, "Failed password for alice from 192.0.2.50 port 4 ssh2"),
        sshd(5, "Accepted password for alice from 192.0.2.50 port 4 ssh2"),
    ]
    assert counts(mistyped) == {"192.0.2.50": 1}
    guessed = [
        sshd(6, "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser=oracle rhost=192.0.2.60"),
        sshd(6, "Accepted password for deploy from 192.0.2.60 port 4 ssh2"),
    ]
    assert counts(guessed) == {"192.0.2.60": 1}  # a second user name on one connection is guessing


def test_repeated_failure_counts_n_within_its_connection() -> None:
    lines = [
        sshd(9, "Invalid user admin from 203.0.113.9 port 4"),
        sshd(9, "Failed password for invalid user admin from 203.0.113.9 port 4 ssh2"),
        sshd(9, "message repeated 3 times: [ Failed password for invalid user admin from 203.0.113.9 port 4 ssh2]"),
        sshd(9, "Connection closed by invalid user admin 203.0.113.9 port 4 [preauth]"),
    ]
    assert counts(lines) == {"203.0.113.9": 5}


def test_open_connections_are_bounded() -> None:
    det = Detector(load_rules(packs=("sshd",)))
    for pid in range(1000):
        det.feed(sshd(pid, f"Connection from 203.0.113.{pid % 250} port {pid} on 192.0.2.1 port 22"), "a", now=NOW)
    (conns,) = det.connections.values()
    assert len(conns) == MAX_CONNECTIONS
    # the oldest are forgotten first: a late failure line of pid 0 has no address to count under
    det.feed(sshd(0, "Disconnecting: Too many authentication failures [preauth]"), "a", now=NOW)
    det.feed(sshd(999, "Disconnecting: Too many authentication failures [preauth]"), "a", now=NOW)
    assert dict(det.stats.ip_hits) == {f"203.0.113.{999 % 250}": 1}


def test_sudo_counts_one_failure_per_wrong_password() -> None:
    """pam_unix and a module stacked after it (pam_sss) both log the same wrong password; sudo's summary too."""
    det = Detector(load_rules(packs=("sudo",)))
    attempt = [
        "Nov 25 12:00:{:02d} web-1 sudo: pam_unix(sudo:auth): authentication failure; logname=mallory uid=1001 "
        "euid=0 tty=/dev/pts/1 ruser=mallory rhost=  user=mallory",
        "Nov 25 12:00:{:02d} web-1 sudo: pam_sss(sudo:auth): authentication failure; logname=mallory uid=1001 "
        "euid=0 tty=/dev/pts/1 ruser=mallory rhost= user=mallory",
    ]
    summary = (
        "Nov 25 12:00:09 web-1 sudo:  mallory : 2 incorrect password attempts ; TTY=pts/1 ; PWD=/home/mallory ; "
        "USER=root ; COMMAND=/bin/bash"
    )
    events = [e for s in (3, 6) for line in attempt for e in det.feed(line.format(s), "a", now=NOW)]
    events += det.feed(summary, "a", now=NOW)
    assert events == [] and det.rule_hits()["sudo-auth"] == 2  # two wrong passwords, under maxretry 3
    sudo_i = attempt[0].replace("(sudo:auth)", "(sudo-i:auth)").format(12)
    (event,) = det.feed(sudo_i, "a", now=NOW)  # sudo -i uses PAM service "sudo-i"
    assert (event.anomaly, event.user, event.count) == ("sudo_auth_failure", "mallory", 3)


USER_FILTER = """
[[filter]]
name = "vpn"
prefix = 'vpnd\\[(?P<conn>\\d+)\\]: '

[[filter.patterns]]
id = "hello"
nofail = true
regex = 'client connected from (?P<ip>[0-9a-fA-F:.]+)'

[[filter.patterns]]
id = "bad"
regex = 'bad password for (?P<user>\\S+)'

[[filter.patterns]]
id = "bye"
nofail = true
closes = true
regex = 'client gone'

[[rule]]
name = "vpn-auth"
filter = "vpn"
anomaly = "vpn_brute_force"
maxretry = 2
findtime = 60
"""


def test_user_filter_ties_lines_of_a_connection(tmp_path: Path) -> None:
    rules_file = tmp_path / "vpn.toml"
    rules_file.write_text(USER_FILTER)
    det = Detector(load_rules(packs=(), rules_file=rules_file))
    lines = [
        "Nov 25 12:00:01 gw vpnd[40]: client connected from 203.0.113.44",
        "Nov 25 12:00:02 gw vpnd[41]: client connected from 203.0.113.45",
        "Nov 25 12:00:03 gw vpnd[40]: bad password for bob",
        "Nov 25 12:00:04 gw vpnd[41]: bad password for eve",
        "Nov 25 12:00:05 gw vpnd[40]: bad password for bob",
        "Nov 25 12:00:06 gw vpnd[40]: client gone",
    ]
    events = [e for line in lines for e in det.feed(line, "vpn.log", now=NOW)]
    assert [(e.source_ip, e.user, e.count) for e in events] == [("203.0.113.44", "bob", 2)]
    assert dict(det.stats.ip_hits) == {"203.0.113.44": 2, "203.0.113.45": 1}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[[filter]]\nname='f'\n[[filter.patterns]]\nid='p'\nnofail=true\nregex='x (?P<ip>\\S+)'\n",
            "'nofail', 'success' and 'closes' need a (?P<conn>…) group in the filter's 'prefix'",
        ),
        (
            "[[filter]]\nname='f'\n[[filter.patterns]]\nid='p'\nregex='x(?P<conn>\\d+) (?P<ip>\\S+)'\n",
            "pattern 'p': the (?P<conn>…) group belongs in the filter's 'prefix'",
        ),
        (
            "[[filter]]\nname='f'\nprefix='d\\[(?P<conn>\\d+)\\]: '\n[[filter.patterns]]\nid='p'\ncloses='yes'\n"
            "regex='x (?P<ip>\\S+)'\n",
            "pattern 'p': 'closes' must be true or false",
        ),
        (
            "[[filter]]\nname='f'\n[[filter.patterns]]\nid='p'\nregex='bad password for (?P<user>\\S+)'\n"
            "[[rule]]\nname='r'\nfilter='f'\nanomaly='a'\n",
            "pattern 'p' has no (?P<ip>…) group, which key = 'ip' needs",
        ),
    ],
)
def test_connection_vocabulary_is_validated(tmp_path: Path, text: str, message: str) -> None:
    rules_file = tmp_path / "bad.toml"
    rules_file.write_text(text)
    with pytest.raises(RuleError) as err:
        load_rules(packs=(), rules_file=rules_file)
    assert message in str(err.value)
