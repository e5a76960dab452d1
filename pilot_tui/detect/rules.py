"""Rules: what a detection pack says, how it is loaded from TOML, and how a bad one is reported.

Vocabulary (the same in built-in packs and user files):

* A **filter** is an ordered list of named **patterns** (regexes) sharing an optional ``prefix``; it is compiled into
  one alternation, so each line is matched by *at most one* pattern of a filter — the leftmost match, and at the
  same position the first listed (like fail2ban, where the first failregex wins). An optional ``require`` literal
  must appear in a line for the filter to apply at all (the scanner also uses it to skip whole chunks).
* A **rule** counts the hits of some patterns of one filter per source (``key = "ip"``, or ``"user"`` for local
  sources such as sudo) and fires when ``maxretry`` hits fall within ``findtime`` seconds; then it stays quiet for
  ``cooldown`` seconds unless the count doubles (an escalation). ``distinct = "port"`` counts distinct values of a
  named group instead of hits (port scans, user enumeration). ``severity`` is the base; ``severity_at`` raises it
  at higher counts.

Named groups a pattern (or the prefix) may set: ``ip`` (required for ``key = "ip"`` rules), ``user``, ``repeat``
(rsyslog's "message repeated N times: [ … ]": the line counts N times), ``count`` (a line that reports N failures
itself, multiplied with ``repeat``) and any group a rule's ``distinct`` names. Patterns see one line at a time:
``^`` and ``$`` anchor to its ends.

**Connections** (several lines, one attempt). A filter whose ``prefix`` sets a ``conn`` group (sshd's process id)
ties the lines of one connection together, and then not every matched line is a failure (see :mod:`.multiline`,
which follows fail2ban's sshd filter). Pattern attributes, all ``false`` by default, say what a line is:

* ``nofail = true`` — context, not a failure: it gives the connection its address and user, and counts only when
  a failure of that connection is still waiting for an address, or the connection has tried several user names;
* ``success = true`` — authentication succeeded (implies ``nofail``; clears a waiting failure);
* ``closes = true`` — the connection ends after this line (its state is forgotten);
* ``login = true`` (any filter) — a successful login, remembered so user-keyed rules can name the address; in a
  ``conn`` filter a login pattern that is not also ``success`` takes no part in the connection's story.

In a ``conn`` filter a failure pattern may omit ``ip`` (the connection's address is used), and a rule's patterns
may include ``nofail`` ones (they count exactly when the connection says so). Without a ``conn`` group these three
attributes are refused. PCRE-style ``(?<name>…)`` is accepted and rewritten to Python's ``(?P<name>…)``.
Patterns of the built-in packs run on Python's ``re``; every other pattern (a user's file) runs on RE2 through
:mod:`.linear`, with ``re``'s meaning but in time linear in the line, so no rule and no line can stall detection;
what RE2 cannot do (backreferences, lookarounds, Unicode ``\b``…) is refused at load (see :func:`compile_regex`).

A user file may use the short form — a ``[[rule]]`` with its own ``regex`` (a string or a list) and no filter::

    [[rule]]
    name = "gitea-auth"
    regex = 'Failed authentication attempt for (?P<user>\\S+) from (?P<ip>[0-9a-fA-F:.]+)'
    anomaly = "gitea_brute_force"
    severity = "medium"
    maxretry = 5
    findtime = 300

Everything is validated at load; the first problem raises :class:`RuleError` naming the file and the rule.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pilot_tui.model import SEVERITIES

from . import linear

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

BUILTIN_PACKS: tuple[str, ...] = ("sshd", "sudo", "web", "portscan")
"""The packs shipped in ``pilot_tui/detect/packs/``, in the order they are applied."""

RESERVED_GROUPS = ("ip", "user", "repeat", "count", "conn")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_ANOMALY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$")  # the wire model's rule for names
_PCRE_GROUP_RE = re.compile(r"(?<!\\)((?:\\\\)*)\(\?<([A-Za-z_]\w*)>")
_RULE_KEYS = {
    "name",
    "filter",
    "patterns",
    "regex",
    "prefix",
    "require",
    "anomaly",
    "severity",
    "severity_at",
    "maxretry",
    "findtime",
    "cooldown",
    "key",
    "distinct",
    "description",
}
_FILTER_KEYS = {"name", "prefix", "require", "patterns", "description"}
_PATTERN_KEYS = {"id", "regex", "login", "nofail", "success", "closes", "description"}


class RuleError(ValueError):
    """A rule or filter that cannot be loaded; the message names the file and the rule (``rule 'x': …``)."""


@dataclass(frozen=True, slots=True)
class PatternSpec:
    """One named regex of a filter; ``login`` marks a successful login (``user`` from ``ip``), which lets user-keyed
    rules such as sudo's name the address the user came from. ``nofail``, ``success`` and ``closes`` place the line
    in its connection's story (filters with a ``conn`` group only; see the module doc)."""

    id: str
    regex: str
    login: bool = False
    nofail: bool = False
    success: bool = False
    closes: bool = False


@dataclass(frozen=True, slots=True)
class FilterSpec:
    """Patterns matched together as one alternation (see the module doc); ``pack`` is the file it came from."""

    name: str
    patterns: tuple[PatternSpec, ...]
    prefix: str = ""
    require: str | None = None
    pack: str = ""
    builtin: bool = False
    """Shipped with pilot-tui: matched by Python's ``re``; every other filter by :mod:`.linear` (see
    :func:`compile_regex`)."""


@dataclass(frozen=True, slots=True)
class Rule:
    """Thresholds and naming for one anomaly; counts hits of ``patterns`` of filter ``filter`` per ``key``."""

    name: str
    filter: str
    patterns: tuple[str, ...]
    anomaly: str
    severity: str
    maxretry: int
    findtime: float
    cooldown: float
    key: str = "ip"
    distinct: str | None = None
    severity_at: tuple[tuple[int, str], ...] = ()
    pack: str = ""

    def severity_for(self, count: int) -> str:
        """Severity of an event with ``count`` hits: the base, raised by the highest ``severity_at`` step reached."""
        severity = self.severity
        for threshold, level in self.severity_at:
            if count >= threshold:
                severity = level
        return severity


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Everything a :class:`~pilot_tui.detect.engine.Detector` needs: filters in match order and their rules."""

    filters: tuple[FilterSpec, ...] = field(default_factory=tuple)
    rules: tuple[Rule, ...] = field(default_factory=tuple)

    def rule(self, name: str) -> Rule:
        """The rule called ``name`` (KeyError if none)."""
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(name)


# ----------------------------------------------------------------------------------------------------------------
# Loading


def load_rules(packs: Iterable[str] = BUILTIN_PACKS, rules_file: str | Path | None = None) -> RuleSet:
    """Built-in ``packs`` (see :data:`BUILTIN_PACKS`) plus the rules of ``rules_file``, validated.

    Raises :class:`RuleError` for an unknown pack, an unreadable or invalid TOML file, or a bad rule.
    """
    filters: list[FilterSpec] = []
    rules: list[Rule] = []
    for pack in packs:
        if pack not in BUILTIN_PACKS:
            raise RuleError(f"unknown rule pack {pack!r}; built-in packs: {', '.join(BUILTIN_PACKS)}")
        text = (
            (resources.files("pilot_tui.detect") / "packs" / f"{pack}.toml").read_text(encoding="utf-8")
        )
        f, r = parse_pack(text, pack, source=f"built-in pack {pack}", builtin=True)
        filters += f
        rules += r
    if rules_file is not None:
        path = Path(rules_file)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RuleError(f"{path}: cannot read rules file: {exc}") from None
        f, r = parse_pack(text, path.stem, source=str(path))
        filters += f
        rules += r
    _check_unique([f.name for f in filters], "filter")
    _check_unique([r.name for r in rules], "rule")
    return RuleSet(tuple(filters), tuple(rules))


def parse_pack(
    text: str, pack: str, source: str = "<rules>", builtin: bool = False
) -> tuple[list[FilterSpec], list[Rule]]:
    """Parse one TOML pack (built-in or user) into filters and rules; ``source`` prefixes every error message.
    ``builtin`` is for the packs shipped with pilot-tui only: their patterns run on ``re``, not RE2."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RuleError(f"{source}: not valid TOML: {exc}") from None
    unknown = set(doc) - {"filter", "rule", "description"}
    if unknown:
        raise RuleError(
            f"{source}: unknown top-level key(s) {sorted(unknown)}; expected [[filter]] and [[rule]]"
        )
    filters: dict[str, FilterSpec] = {}
    for i, raw in enumerate(_table_list(doc, "filter", source)):
        spec = _parse_filter(raw, pack, f"{source}: filter #{i + 1}", builtin)
        if spec.name in filters:
            raise RuleError(f"{source}: filter {spec.name!r} is defined twice")
        filters[spec.name] = spec
    rules: list[Rule] = []
    for i, raw in enumerate(_table_list(doc, "rule", source)):
        name = raw.get("name") if isinstance(raw, dict) else None
        where = f"{source}: rule {name!r}" if isinstance(name, str) else f"{source}: rule #{i + 1}"
        rule, inline = _parse_rule(raw, pack, filters, where, builtin)
        if inline is not None:
            filters[inline.name] = inline
        rules.append(rule)
    return list(filters.values()), rules


def _table_list(doc: Mapping[str, Any], key: str, source: str) -> list[Any]:
    value = doc.get(key, [])
    if not isinstance(value, list):
        raise RuleError(f"{source}: {key!r} must be an array of tables ([[{key}]])")
    return value


def _check_unique(names: list[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise RuleError(
                f"{what} {name!r}: defined more than once (names must be unique across packs and files)"
            )
        seen.add(name)


def _parse_filter(raw: Any, pack: str, where: str, builtin: bool = False) -> FilterSpec:
    if not isinstance(raw, dict):
        raise RuleError(f"{where}: must be a table")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise RuleError(f"{where}: 'name' must be letters, digits and ._- (max 64)")
    where = where.rsplit(":", 1)[0] + f": filter {name!r}"
    _no_unknown(raw, _FILTER_KEYS, where)
    prefix = _opt_str(raw, "prefix", where) or ""
    patterns_raw = raw.get("patterns")
    if not isinstance(patterns_raw, list) or not patterns_raw:
        raise RuleError(f"{where}: 'patterns' must be a non-empty array of {{ id = …, regex = … }} tables")
    patterns: list[PatternSpec] = []
    for j, p in enumerate(patterns_raw):
        if not isinstance(p, dict):
            raise RuleError(f"{where}: pattern #{j + 1} must be a table")
        _no_unknown(p, _PATTERN_KEYS, f"{where}: pattern #{j + 1}")
        pid = p.get("id")
        if not isinstance(pid, str) or not _NAME_RE.match(pid):
            raise RuleError(f"{where}: pattern #{j + 1} needs an 'id' of letters, digits and ._-")
        regex = p.get("regex")
        if not isinstance(regex, str) or not regex:
            raise RuleError(f"{where}: pattern {pid!r} needs a non-empty 'regex' string")
        flags = {}
        for flag in ("login", "nofail", "success", "closes"):
            flags[flag] = p.get(flag, False)
            if not isinstance(flags[flag], bool):
                raise RuleError(f"{where}: pattern {pid!r}: {flag!r} must be true or false")
        patterns.append(PatternSpec(pid, pcre_to_python(regex), **flags))
    _check_unique([p.id for p in patterns], f"{where}: pattern")
    spec = FilterSpec(
        name, tuple(patterns), pcre_to_python(prefix), _opt_str(raw, "require", where), pack, builtin
    )
    connected = "conn" in set(re.compile(spec.prefix).groupindex)
    for p in spec.patterns:
        compile_pattern(spec, p, where)
        if not connected and "conn" in pattern_groups(spec, p):
            raise RuleError(f"{where}: pattern {p.id!r}: the (?P<conn>…) group belongs in the filter's 'prefix'")
        if (p.nofail or p.success or p.closes) and not connected:
            raise RuleError(
                f"{where}: pattern {p.id!r}: 'nofail', 'success' and 'closes' need a (?P<conn>…) group in the "
                "filter's 'prefix' (what ties the lines of one connection together)"
            )
        if p.login:
            groups = pattern_groups(spec, p)
            if "ip" not in groups or "user" not in groups:
                raise RuleError(
                    f"{where}: login pattern {p.id!r} needs both (?P<ip>…) and (?P<user>…) groups"
                )
    return spec


def _parse_rule(
    raw: Any, pack: str, filters: Mapping[str, FilterSpec], where: str, builtin: bool = False
) -> tuple[Rule, FilterSpec | None]:
    if not isinstance(raw, dict):
        raise RuleError(f"{where}: must be a table")
    _no_unknown(raw, _RULE_KEYS, where)
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise RuleError(f"{where}: 'name' must be letters, digits and ._- (max 64)")
    inline: FilterSpec | None = None
    if "regex" in raw:
        if "filter" in raw or "patterns" in raw:
            raise RuleError(f"{where}: give either 'regex' or 'filter'/'patterns', not both")
        regexes = raw["regex"] if isinstance(raw["regex"], list) else [raw["regex"]]
        if not regexes or not all(isinstance(r, str) and r for r in regexes):
            raise RuleError(f"{where}: 'regex' must be a non-empty string or array of strings")
        pats = tuple(
            PatternSpec(f"{name}.{i + 1}" if len(regexes) > 1 else name, pcre_to_python(r))
            for i, r in enumerate(regexes)
        )
        inline = FilterSpec(
            name,
            pats,
            pcre_to_python(_opt_str(raw, "prefix", where) or ""),
            _opt_str(raw, "require", where),
            pack,
            builtin,
        )
        if name in filters:
            raise RuleError(f"{where}: a filter with this name already exists; rename the rule")
        for p in pats:
            compile_pattern(inline, p, where)
        spec = inline
    else:
        fname = raw.get("filter")
        if fname is None and len(filters) == 1:
            fname = next(iter(filters))
        if not isinstance(fname, str) or fname not in filters:
            raise RuleError(
                f"{where}: needs a 'regex', or a 'filter' naming one of {sorted(filters) or 'none'}"
            )
        spec = filters[fname]
    ids = [p.id for p in spec.patterns]
    chosen = raw.get("patterns", ids if inline is None else ids)
    if not isinstance(chosen, list) or not chosen or not all(isinstance(c, str) for c in chosen):
        raise RuleError(f"{where}: 'patterns' must be a non-empty array of pattern ids")
    for c in chosen:
        if c not in ids:
            raise RuleError(f"{where}: pattern {c!r} is not in filter {spec.name!r} (has {', '.join(ids)})")
    anomaly = raw.get("anomaly")
    if not isinstance(anomaly, str) or not _ANOMALY_RE.match(anomaly):
        raise RuleError(
            f"{where}: 'anomaly' must be letters, digits and ._:/- (max 64), e.g. \"brute_force_ssh\""
        )
    severity = raw.get("severity", "medium")
    if severity not in SEVERITIES:
        raise RuleError(f"{where}: 'severity' {severity!r} is not one of {', '.join(SEVERITIES)}")
    maxretry = _int(raw, "maxretry", 5, 1, 1_000_000, where)
    findtime = _number(raw, "findtime", 600, where)
    if findtime <= 0:
        raise RuleError(f"{where}: 'findtime' must be more than 0 seconds")
    cooldown = _number(raw, "cooldown", max(findtime, 600.0), where)
    key = raw.get("key", "ip")
    if key not in ("ip", "user"):
        raise RuleError(f'{where}: \'key\' must be "ip" or "user", not {key!r}')
    distinct = _opt_str(raw, "distinct", where)
    steps = _severity_steps(raw.get("severity_at", {}), where)
    for pid in chosen:
        p = spec.patterns[ids.index(pid)]
        groups = pattern_groups(spec, p)
        if key not in groups and not (key == "ip" and "conn" in groups):  # a connection's line: its address
            raise RuleError(f"{where}: pattern {pid!r} has no (?P<{key}>…) group, which key = {key!r} needs")
        if distinct and distinct not in groups:
            raise RuleError(f"{where}: pattern {pid!r} has no (?P<{distinct}>…) group, which distinct needs")
    rule = Rule(
        name,
        spec.name,
        tuple(chosen),
        anomaly,
        severity,
        maxretry,
        findtime,
        cooldown,
        key,
        distinct,
        steps,
        pack,
    )
    return rule, inline


def _severity_steps(raw: Any, where: str) -> tuple[tuple[int, str], ...]:
    if not isinstance(raw, dict):
        raise RuleError(f"{where}: 'severity_at' must be a table like {{ 20 = \"critical\" }}")
    steps: list[tuple[int, str]] = []
    for k, v in raw.items():
        if not str(k).isdigit() or int(k) < 1:
            raise RuleError(f"{where}: 'severity_at' keys must be positive counts, not {k!r}")
        if v not in SEVERITIES:
            raise RuleError(f"{where}: 'severity_at' value {v!r} is not one of {', '.join(SEVERITIES)}")
        steps.append((int(k), v))
    return tuple(sorted(steps))


def _no_unknown(raw: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(raw) - allowed
    if unknown:
        raise RuleError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {', '.join(sorted(allowed))}")


def _opt_str(raw: Mapping[str, Any], key: str, where: str) -> str | None:
    value = raw.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise RuleError(f"{where}: {key!r} must be a non-empty string")
    return value


def _int(raw: Mapping[str, Any], key: str, default: int, low: int, high: int, where: str) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RuleError(f"{where}: {key!r} must be a whole number from {low} to {high}, not {value!r}")
    return value


def _number(raw: Mapping[str, Any], key: str, default: float, where: str) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 31_536_000:
        raise RuleError(f"{where}: {key!r} must be seconds from 0 to 31536000, not {value!r}")
    return float(value)


# ----------------------------------------------------------------------------------------------------------------
# Regex helpers shared with the engine


def pcre_to_python(regex: str) -> str:
    """Rewrite PCRE/.NET named groups ``(?<name>…)`` to Python's ``(?P<name>…)`` (lookbehinds are untouched)."""
    return _PCRE_GROUP_RE.sub(lambda m: f"{m.group(1)}(?P<{m.group(2)}>", regex)


Regex = re.Pattern[str] | linear.LinearPattern
"""A compiled filter or pattern: both offer ``search``, ``match``, ``finditer``, ``groups``, ``groupindex`` and
matches with ``group``, ``start``, ``end`` and ``lastindex``."""

Match = re.Match[str] | linear.LinearMatch
"""A match of a :data:`Regex`."""


def compile_regex(spec: FilterSpec, regex: str) -> Regex:
    """``regex`` (Python syntax, ``^``/``$`` at line ends) compiled for filter ``spec``: built-in packs with
    Python's ``re``, every other filter with :mod:`.linear` (RE2, linear time, the same matches).

    Why two: a user pattern must not be able to stall detection (``( (a+)+)$`` on a line of ``a`` s ending in
    ``!`` backtracks for hours in ``re``), while the built-in patterns ship with the program, are reviewed and
    tested like its code, and carry the scanner's speed. Raises ``re.error`` for a bad pattern and
    :class:`~.linear.UnsupportedRegex` for one RE2 cannot run with ``re``'s meaning.
    """
    if spec.builtin:
        return re.compile(regex, re.MULTILINE)
    return linear.compile(regex, re.MULTILINE)


def compile_pattern(spec: FilterSpec, pattern: PatternSpec, where: str) -> Regex:
    """Compile ``prefix + regex`` alone, to report a broken pattern by name before it is merged into the filter.

    Python's parser judges the syntax first (compiling never backtracks, nor does a search of the empty string),
    then a user pattern must pass :mod:`.linear`'s checks too.
    """
    text = spec.prefix + "(?:" + pattern.regex + ")"
    try:
        checked = re.compile(text, re.MULTILINE)
    except re.error as exc:
        raise RuleError(f"{where}: pattern {pattern.id!r} is not a valid regex: {exc}") from None
    if checked.search("") is not None:
        raise RuleError(
            f"{where}: pattern {pattern.id!r} matches an empty line, so it would match every line"
        )
    try:
        return compile_regex(spec, text)
    except linear.UnsupportedRegex as exc:
        raise RuleError(
            f"{where}: pattern {pattern.id!r} cannot be used: {exc}; user rules run on RE2, in time linear in the "
            "line, so that no line can stall detection (README: Your own rules)"
        ) from None


def pattern_groups(spec: FilterSpec, pattern: PatternSpec) -> set[str]:
    """Named groups visible to a pattern: its own plus the filter prefix's."""
    return set(re.compile(spec.prefix + "(?:" + pattern.regex + ")").groupindex)
