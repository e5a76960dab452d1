"""Issue 11 §4: no user rule can stall detection.

User patterns run on RE2 through :mod:`pilot_tui.detect.linear` (time linear in the line) with Python ``re``'s
meaning; what RE2 cannot run identically is refused at load with one line naming the file and the rule. The
reported rule and line — which made ``re`` backtrack for hours, wedged the headless oracle (SIGTERM ignored) and
``scan`` — are the fixtures here.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from pilot_tui.detect import Detector, RuleError, linear, load_rules
from pilot_tui.sim import loggen

REDOS_REGEX = r"^login failed from (?P<ip>\d+\.\d+\.\d+\.\d+)( (a+)+)$"
EVIL_LINE = "login failed from 203.0.113.9 " + "a" * 34 + "!"
"""Does not match; ``re`` tries about 2**34 ways to split the a's before it says so."""
GOOD_LINE = "login failed from 203.0.113.9 aaaa"
NOW = 1_795_608_100.0


def _rules_file(
    tmp_path: Path, regex: str = REDOS_REGEX, name: str = "login-redos", file: str = "local.toml"
) -> Path:
    path = tmp_path / file
    path.write_text(
        f"""[[rule]]
name = "{name}"
regex = '{regex}'
anomaly = "login_failed"
severity = "medium"
maxretry = 1
findtime = 60
""",
        encoding="utf-8",
    )
    return path


# ----------------------------------------------------------------------------------------------------------------
# The reported rule


@pytest.mark.timeout(30)  # with re this test never ends: pytest-timeout is what would fail it
def test_reported_rule_loads_and_its_line_costs_nothing(tmp_path: Path) -> None:
    detector = Detector(load_rules(rules_file=_rules_file(tmp_path)))
    assert detector.feed(EVIL_LINE, "app.log", now=NOW) == []
    assert detector.feed("login failed from 203.0.113.9 " + "a" * 60_000 + "!", "app.log", now=NOW) == []
    events = detector.feed(GOOD_LINE, "app.log", now=NOW)
    assert [(e.anomaly, e.source_ip) for e in events] == [("login_failed", "203.0.113.9")]


@pytest.mark.timeout(30)
def test_a_user_file_named_like_a_builtin_pack_gets_no_exemption(tmp_path: Path) -> None:
    detector = Detector(load_rules(rules_file=_rules_file(tmp_path, file="sshd.toml")))
    assert detector.feed(EVIL_LINE, "app.log", now=NOW) == []


@pytest.mark.timeout(60)
def test_scan_with_the_reported_rule_ends(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text(f"{EVIL_LINE}\n" * 50 + f"{GOOD_LINE}\n" + f"{EVIL_LINE}\n" * 50, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "pilot_tui", "scan", "--rules", str(_rules_file(tmp_path)), str(log)],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert "login_failed" in done.stdout and "203.0.113.9" in done.stdout, done.stdout + done.stderr


@pytest.mark.timeout(90)
def test_headless_oracle_detects_past_the_line_and_stops_on_sigterm_mid_detection(tmp_path: Path) -> None:
    """The reported hang: a match first, then hundreds of thousands of the line that made ``re`` backtrack. The
    match's event must come out (detection got past the first bad line), and SIGTERM, sent while the rest is
    being detected, must stop the oracle within 2 s, leaving its saved position inside the file."""
    log = tmp_path / "app.log"
    with log.open("w", encoding="utf-8") as f:
        f.write(GOOD_LINE + "\n")
        f.write((EVIL_LINE + "\n") * 400_000)
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pilot_tui", "oracle", "--headless", "--pilotctl", "/bin/true", "--peer", "orch",
         "--log", str(log), "--rules", str(_rules_file(tmp_path)), "--from-start", "--state-dir", str(state)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 45
        detected = False
        while not detected and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            detected = '"login_failed"' in line
        assert detected, "no detection came out: the oracle is stuck on the line " + (proc.stderr.read() if
                                                                                     proc.poll() is not None else "")
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        rc = proc.wait(timeout=10)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == 0
    assert took < 2.0, f"the oracle took {took:.2f} s to stop after SIGTERM"

    from pilot_tui.store.outbox import Outbox

    outbox = Outbox(state / "oracle.db")
    try:
        (position,) = outbox.offsets().values()
    finally:
        outbox.close()
    assert 0 < position["offset"] < log.stat().st_size, "SIGTERM did not arrive mid-detection; make the log longer"


# ----------------------------------------------------------------------------------------------------------------
# What is refused, and how it is said


@pytest.mark.parametrize(
    ("regex", "said"),
    [
        (r"^(?P<ip>\S+) (\w+) \2$", "backreference"),
        (r"^from (?P<ip>\S+)(?= port)", "lookahead or lookbehind"),
        (r"(?<=from )(?P<ip>\S+)", "lookahead or lookbehind"),
        (r"\bfrom (?P<ip>\S+)", "\\b and \\B over Unicode letters"),
        (r"from (?P<ip>\S+)(a*)*x", "repeated part that can match nothing"),
        (r"from (?P<ip>\S+) x{2000}", "repetition count above 1000"),
        (r"from (?>(?P<ip>\S+))", "atomic group"),
        (r"(?-m:from (?P<ip>\S+)$)", "'$' outside MULTILINE"),
    ],
)
def test_refused_pattern_is_one_line_naming_file_and_rule(tmp_path: Path, regex: str, said: str) -> None:
    if "(?>" in regex and sys.version_info < (3, 11):
        pytest.skip("atomic groups are Python 3.11+ syntax")
    path = _rules_file(tmp_path, regex, name="my-rule")
    with pytest.raises(RuleError) as caught:
        load_rules(rules_file=path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: rule 'my-rule': pattern 'my-rule' cannot be used: "), message
    assert said in message and "RE2" in message


def test_ascii_word_boundary_is_accepted_and_means_what_re_means(tmp_path: Path) -> None:
    detector = Detector(load_rules(rules_file=_rules_file(tmp_path, r"(?a:\b)from (?P<ip>\S+)(?a:\b)")))
    assert detector.feed("xfrom 203.0.113.9", "app.log", now=NOW) == []
    assert [e.source_ip for e in detector.feed("bad login from 203.0.113.9", "app.log", now=NOW)] == ["203.0.113.9"]


def test_builtin_packs_still_run_on_re() -> None:
    """Built-in patterns are exempt (shipped, reviewed, and what the scanner's speed rests on): they load even where
    RE2 could not take them, e.g. the web pack's Unicode ``\\b``."""
    detector = Detector(load_rules())
    detector.feed(
        '203.0.113.52 - - [25/Nov/2026:12:00:01 +0000] "GET /item?id=1+UNION+SELECT+username,password+FROM+users-- '
        'HTTP/1.1" 500 0 "-" "Mozilla/5.0"',
        "/var/log/nginx/access.log", now=NOW,
    )
    assert detector.pattern_hits()["web-attack/sqli"] == 1


# ----------------------------------------------------------------------------------------------------------------
# Same matches as re


def _describe(m: re.Match[str] | linear.LinearMatch | None, groups: int) -> object:
    if m is None:
        return None
    return tuple(m.span(g) for g in range(groups + 1)), m.lastindex, m.group(0)


def _assert_same(pattern: str, flags: int, text: str) -> None:
    try:
        py = re.compile(pattern, flags)
    except re.error:
        reject()
    try:
        lin = linear.compile(pattern, flags)
    except linear.UnsupportedRegex:
        reject()
    assert lin.groups == py.groups and lin.groupindex == dict(py.groupindex)
    for pos in {0, 1, len(text) // 2}:
        for how in ("search", "match", "fullmatch"):
            expected = _describe(getattr(py, how)(text, pos), py.groups)
            assert _describe(getattr(lin, how)(text, pos), py.groups) == expected, (how, pos, lin.re2_pattern)
        expected_all = [_describe(m, py.groups) for m in py.finditer(text, pos)]
        assert [_describe(m, py.groups) for m in lin.finditer(text, pos)] == expected_all, (pos, lin.re2_pattern)
    end = max(len(text) - 2, 0)
    assert _describe(lin.search(text, 0, end), py.groups) == _describe(py.search(text, 0, end), py.groups)


_ATOMS = st.sampled_from([
    "a", "b", " ", "K", "k", "é", "İ", "ı", "1", "٣", r"\n", r"\.", ".", r"\d", r"\D", r"\w", r"\W", r"\s", r"\S",
    "[ab]", "[^a]", "[a-z]", r"[\d_]", r"[^\s]", "[é-ï]", "[^\\n ]", r"(?a:\b)", r"(?a:\B)", "^", "$", r"\A", r"\Z",
])
_QUANTIFIERS = st.sampled_from(["*", "+", "?", "{1,3}", "{2}", "{2,}", "*?", "+?", "??", "{0,2}?"])


def _compound(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.lists(children, min_size=2, max_size=3).map("".join),
        st.lists(children, min_size=2, max_size=3).map(lambda alts: "(?:" + "|".join(alts) + ")"),
        children.map(lambda s: f"({s})"),
        st.tuples(children, _QUANTIFIERS).map(lambda t: f"(?:{t[0]}){t[1]}"),
        st.tuples(children, _QUANTIFIERS).map(lambda t: f"({t[0]}){t[1]}"),
        st.tuples(st.sampled_from(["i", "s", "a", "-i"]), children).map(lambda t: f"(?{t[0]}:{t[1]})"),
    )


_PATTERNS = st.recursive(_ATOMS, _compound, max_leaves=8)
_FLAGS = st.sampled_from([re.M, re.M | re.I, re.M | re.S, re.M | re.A, re.M | re.I | re.A])
_TEXTS = st.text(alphabet="ab Kké\u0130\u0131\u212a1\u0663_\n.x", max_size=14)
_HEALTH = [HealthCheck.filter_too_much, HealthCheck.too_slow]


@settings(max_examples=300, deadline=None, suppress_health_check=_HEALTH)
@given(_PATTERNS, _FLAGS, _TEXTS)
def test_accepted_patterns_match_exactly_as_re(pattern: str, flags: int, text: str) -> None:
    _assert_same(pattern, flags, text)


@pytest.mark.fuzz
@pytest.mark.timeout(900)
@settings(max_examples=3000, deadline=None, suppress_health_check=_HEALTH)
@given(_PATTERNS, _FLAGS, _TEXTS)
def test_accepted_patterns_match_exactly_as_re_fuzz(pattern: str, flags: int, text: str) -> None:
    _assert_same(pattern, flags, text)


def test_offsets_in_a_large_mixed_width_chunk() -> None:
    """Chunk scanning: many calls on one large text, ASCII mixed with 2-, 3- and 4-byte characters; every span is
    a character offset, as with ``re``."""
    lines = []
    for i in range(3000):
        user = ["root", "jörg", "管理员", "\U0001f600x", "ok"][i % 5]
        lines.append(f"Nov 25 12:00:01 h sshd[{i}]: Failed password for {user} from 203.0.113.{i % 250} port 22")
    chunk = "\n".join(lines) + "\n"
    pattern = r"^.*Failed password for (?P<user>\S+) from (?P<ip>[\d.]+)"
    py, lin = re.compile(pattern, re.M), linear.compile(pattern, re.M)
    assert [(m.span(), m["user"], m.span("ip")) for m in lin.finditer(chunk)] == [
        (m.span(), m["user"], m.span("ip")) for m in py.finditer(chunk)
    ]
    for pos in (0, 17, len(chunk) // 3, len(chunk) // 2 + 1):
        a, b = lin.search(chunk, pos), py.search(chunk, pos)
        assert a is not None and b is not None
        assert (a.span(), a.groupdict()) == (b.span(), b.groupdict())
    assert lin.search("only ascii here") is None  # another text after the cached one


def test_builtin_patterns_that_re2_can_run_give_the_same_matches(tmp_path: Path) -> None:
    """The translation on real patterns: every built-in pattern RE2 can take matches generated logs exactly as
    ``re`` does (the built-ins themselves keep running on ``re``)."""
    texts = []
    for kind in loggen.KINDS:
        path = tmp_path / kind
        loggen.generate(path, kind, 1500, seed=3)
        texts.append(path.read_text(encoding="utf-8"))
    chunk = "".join(texts)
    rules = load_rules()
    checked = 0
    for spec in rules.filters:
        for p in spec.patterns:
            source = spec.prefix + "(?:" + p.regex + ")"
            try:
                lin = linear.compile(source, re.M)
            except linear.UnsupportedRegex:
                continue
            py = re.compile(source, re.M)
            got = [(m.span(), m.groups()) for m in lin.finditer(chunk)]
            assert got == [(m.span(), m.groups()) for m in py.finditer(chunk)], f"{spec.name}/{p.id}"
            checked += 1
    assert checked >= 10
