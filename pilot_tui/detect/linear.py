"""Linear-time regexes for user rules: Python ``re`` syntax *and meaning*, run by RE2 (``google-re2``).

Why: Python's ``re`` backtracks, so a user pattern such as ``( (a+)+)$`` takes exponential time on a line of many
``a`` s that ends in ``!``. The matcher runs on the oracle's event-loop thread, and asyncio's SIGTERM handler only
schedules a callback on that busy loop, so one such line wedged the oracle: no events, SIGTERM ignored, and the
same again after a restart (the line is read again). RE2 runs in time linear in the line for every pattern it
accepts, so a user rule cannot stop detection however it is written and whatever an attacker puts in a log. A
per-match timeout (the ``regex`` module) would only turn the hang into a line rate an attacker can set; refusing
"nested quantifiers" at load is a heuristic (``(a|aa)+`` has none and is exponential, and polynomial blow-ups
have many shapes).

The meaning stays Python's: a pattern is parsed by Python's own parser (so the syntax is exactly what ``re``
accepts) and re-emitted for RE2 with every character class spelled out as the very code points Python's ``re``
matches for it (``\\d``, ``\\w``, ``\\s`` over Unicode, case-insensitive letters, ``.`` with or without DOTALL),
so an accepted pattern gives the same matches and the same groups as ``re`` (a differential test checks it).
What RE2 cannot do exactly is refused with :class:`UnsupportedRegex`, whose message says what and why:
backreferences, lookahead/lookbehind, conditionals, atomic groups and possessive quantifiers (they need
backtracking), ``\\b``/``\\B`` over Unicode letters (RE2's are ASCII; ``(?a:\\b)`` is ASCII in Python too and
is accepted), ``$`` outside MULTILINE (Python's also matches before a final newline), a repetition count above
1000, a repeated part that can match nothing (``(a*)*``: the two engines capture different empty groups there),
``\\d``/``\\w``/``\\s`` inside ``(?a:…)`` (where ``re``'s search and match disagree) and a pattern that can
match an empty string.

:class:`LinearPattern` offers the part of ``re.Pattern`` the detector uses (``search``, ``match``,
``fullmatch``, ``finditer``, ``groups``, ``groupindex``, ``pattern``, ``flags``) and its matches the part of
``re.Match`` it reads, ``lastindex`` included. Text is handed to RE2 as UTF-8; an ASCII text (the usual log) is
passed as is, and the last text seen is kept encoded with a char↔byte offset table, so scanning one large chunk
with many calls costs one encoding, not one per call. Known gaps: a text holding lone surrogates (never produced
by our sources, which decode with ``errors="replace"``) is matched as RE2 sees their bytes; ``lastindex`` picks the
group that closes last, by position and then by the place of its ``)`` in the pattern, which is Python's answer
except when two groups close empty at one position in different rounds of a loop.
"""

from __future__ import annotations

import bisect
import re
import sys
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import re2

if sys.version_info >= (3, 11):
    from re import _constants as _c
    from re import _parser as _p
else:  # pragma: no cover - exercised on 3.10 only
    import sre_constants as _c
    import sre_parse as _p

MAX_REPEAT_COUNT = 1000
"""RE2's limit on a counted repetition such as ``{2,1000}``."""

_MAX_CP = 0x10FFFF
_SURROGATES = (0xD800, 0xDFFF)
_ASCII_WORD = re.compile(r"[A-Za-z0-9_]+\Z")


class UnsupportedRegex(ValueError):
    """A valid Python pattern that RE2 cannot run with the same meaning; the message says what and why."""


# ----------------------------------------------------------------------------------------------------------------
# Translation: Python's parse tree -> RE2 syntax


def translate(pattern: str, flags: int = 0) -> tuple[str, int, dict[str, int], tuple[int, ...]]:
    """``pattern`` (Python ``re`` syntax, str) as RE2 syntax with the same meaning under ``flags``.

    Returns ``(re2_text, python_flags, groupindex, close_rank)`` where ``close_rank[g]`` orders groups by the place
    of their closing parenthesis (for ``lastindex``). Raises ``re.error`` for a pattern Python rejects and
    :class:`UnsupportedRegex` for one RE2 cannot run identically.
    """
    if not isinstance(pattern, str):
        raise TypeError("linear patterns are str patterns")
    tree = _p.parse(pattern, flags)
    state = tree.state
    if state.flags & re.LOCALE:
        raise UnsupportedRegex("the LOCALE flag is for bytes patterns")
    if tree.getwidth()[0] == 0:
        raise UnsupportedRegex("it can match an empty string, so it would match at every position of a line")
    names = {num: name for name, num in state.groupdict.items()}
    ranks: list[int] = []
    text = _emit(tree, state.flags, names, ranks)
    close_rank = [0] * state.groups
    for rank, group in enumerate(ranks, 1):
        close_rank[group] = rank
    return text, state.flags, dict(state.groupdict), tuple(close_rank)


_TYPE_FLAGS = re.ASCII | re.UNICODE
_SCOPED_TYPE = 1 << 30
"""Internal mark: inside a group that switches ASCII/Unicode, as ``(?a:…)`` does."""


def _emit(tree: Any, flags: int, names: dict[int, str], ranks: list[int]) -> str:
    out: list[str] = []
    for op, av in tree:
        if op in (_c.LITERAL, _c.NOT_LITERAL, _c.IN, _c.ANY):
            if flags & _SCOPED_TYPE and any(str(o) == "CATEGORY" for o, _ in _items(op, av)):
                # CPython's search() pre-checks a leading class with the pattern's global flags while match()
                # uses the group's: re itself gives two answers there, so there is no one meaning to keep
                raise UnsupportedRegex(
                    "\\d, \\w or \\s inside (?a:…) or (?u:…), where Python's own re is inconsistent; spell the "
                    "class out, e.g. [0-9] or [A-Za-z0-9_]"
                )
            out.append(_charset(op, av, flags))
        elif op is _c.SUBPATTERN:
            group, add, remove, sub = av
            scoped = flags
            if (add | remove) & _TYPE_FLAGS:
                scoped = (flags & ~_TYPE_FLAGS) | _SCOPED_TYPE
            inner = _emit(sub, (scoped | add) & ~remove, names, ranks)
            if group is None:
                out.append(f"(?:{inner})")
            else:
                ranks.append(group)
                name = names.get(group)
                out.append(f"(?P<{_group_name(name)}>{inner})" if name is not None else f"({inner})")
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT):
            lo, hi, sub = av
            unbounded = hi is _c.MAXREPEAT or hi >= _c.MAXREPEAT
            if lo > MAX_REPEAT_COUNT or (not unbounded and hi > MAX_REPEAT_COUNT):
                raise UnsupportedRegex(f"a repetition count above {MAX_REPEAT_COUNT} is past RE2's limit")
            if (unbounded or hi > 1) and sub.getwidth()[0] == 0:
                raise UnsupportedRegex(
                    "a repeated part that can match nothing, such as (a*)* or (a|)+, captures differently in RE2; "
                    "make each round consume a character"
                )
            if lo == 0 and unbounded:
                quant = "*"
            elif lo == 1 and unbounded:
                quant = "+"
            elif lo == 0 and hi == 1:
                quant = "?"
            elif unbounded:
                quant = f"{{{lo},}}"
            elif lo == hi:
                quant = f"{{{lo}}}"
            else:
                quant = f"{{{lo},{hi}}}"
            lazy = "?" if op is _c.MIN_REPEAT else ""
            out.append(f"(?:{_emit(sub, flags, names, ranks)}){quant}{lazy}")
        elif op is _c.BRANCH:
            out.append("(?:" + "|".join(_emit(alt, flags, names, ranks) for alt in av[1]) + ")")
        elif op is _c.AT:
            out.append(_anchor(av, flags))
        else:
            raise UnsupportedRegex(_refusal(op))
    return "".join(out)


def _refusal(op: Any) -> str:
    """Why a construct is refused, in words a rule author knows."""
    name = str(op)
    if name == "GROUPREF":
        return "a backreference such as \\1 or (?P=name) needs backtracking"
    if name in ("ASSERT", "ASSERT_NOT"):
        return "a lookahead or lookbehind such as (?=…), (?!…), (?<=…) or (?<!…) needs backtracking"
    if name == "GROUPREF_EXISTS":
        return "a conditional group (?(1)…|…) needs backtracking"
    if name in ("ATOMIC_GROUP", "POSSESSIVE_REPEAT"):
        return "an atomic group (?>…) or a possessive quantifier such as a*+ needs backtracking"
    return f"RE2 cannot run {name}"


def _group_name(name: str) -> str:
    if not _ASCII_WORD.match(name):
        raise UnsupportedRegex(f"group name {name!r}: RE2 takes only ASCII letters, digits and _ there")
    return name


def _anchor(at: Any, flags: int) -> str:
    name = str(at)
    multiline = bool(flags & re.MULTILINE)
    if name == "AT_BEGINNING_STRING" or (name == "AT_BEGINNING" and not multiline):
        return r"\A"
    if name == "AT_BEGINNING":
        return "(?m:^)"
    if name == "AT_END_STRING":
        return r"\z"
    if name == "AT_END":
        if multiline:
            return "(?m:$)"
        raise UnsupportedRegex(
            "'$' outside MULTILINE also matches before a final newline in Python, which RE2 cannot; use \\Z or (?m:$)"
        )
    if name in ("AT_BOUNDARY", "AT_NON_BOUNDARY"):
        if flags & re.ASCII:
            return r"\b" if name == "AT_BOUNDARY" else r"\B"
        raise UnsupportedRegex(
            "\\b and \\B over Unicode letters have no RE2 equivalent, as RE2's know only ASCII; write (?a:\\b) for an "
            "ASCII word boundary, or match the separator itself (a space, ^, $)"
        )
    raise UnsupportedRegex(f"the anchor {name}")  # pragma: no cover - the parser makes no others


# ----------------------------------------------------------------------------------------------------------------
# Character classes, spelled out as the code points Python matches

_CATEGORY = {
    "CATEGORY_DIGIT": r"\d",
    "CATEGORY_NOT_DIGIT": r"\D",
    "CATEGORY_SPACE": r"\s",
    "CATEGORY_NOT_SPACE": r"\S",
    "CATEGORY_WORD": r"\w",
    "CATEGORY_NOT_WORD": r"\W",
}
_SET_FLAGS = re.IGNORECASE | re.ASCII | re.DOTALL


def _charset(op: Any, av: Any, flags: int) -> str:
    """RE2 text matching exactly the characters Python's ``re`` matches for one character node under ``flags``."""
    ignore = bool(flags & re.IGNORECASE)
    if op is _c.LITERAL and not ignore:
        return _cp(av)
    if op is _c.ANY:
        return r"[^\n]" if not flags & re.DOTALL else r"[\x00-\x{10ffff}]"
    snippet = _python_class(op, av)
    plain = op is not _c.LITERAL and not ignore and not any(str(o) == "CATEGORY" for o, _ in _items(op, av))
    if plain:  # literal code points and ranges only: RE2 reads them exactly as Python does
        return _class_text(snippet)
    return _class_text(_enumerated(snippet, flags & _SET_FLAGS))


def _items(op: Any, av: Any) -> list[tuple[Any, Any]]:
    return list(av) if op is _c.IN else []


def _python_class(op: Any, av: Any) -> str:
    """The node back in Python syntax, as one bracketed class (code points spelled ``\\Uxxxxxxxx``)."""
    if op is _c.LITERAL:
        return "[" + _py(av) + "]"
    if op is _c.NOT_LITERAL:
        return "[^" + _py(av) + "]"
    parts: list[str] = []
    for item, value in av:
        kind = str(item)
        if kind == "NEGATE":
            parts.insert(0, "^")
        elif kind == "LITERAL":
            parts.append(_py(value))
        elif kind == "RANGE":
            parts.append(_py(value[0]) + "-" + _py(value[1]))
        elif kind == "CATEGORY" and str(value) in _CATEGORY:
            parts.append(_CATEGORY[str(value)])
        else:  # pragma: no cover - the parser puts nothing else in a class
            raise UnsupportedRegex(f"the class item {kind} {value}")
    return "[" + "".join(parts) + "]"


def _py(cp: int) -> str:
    return f"\\U{cp:08x}"


def _cp(cp: int) -> str:
    ch = chr(cp)
    return ch if ch.isascii() and ch.isalnum() else f"\\x{{{cp:x}}}"


def _class_text(snippet: str | tuple[tuple[int, int], ...]) -> str:
    """RE2 class text: from a plain Python class snippet (its ``\\U`` escapes become ``\\x{…}``) or from ranges."""
    if isinstance(snippet, str):
        return re.sub(r"\\U([0-9a-f]{8})", lambda m: f"\\x{{{int(m.group(1), 16):x}}}", snippet)
    ranges = snippet
    if not ranges:
        return r"[^\x00-\x{10ffff}]"  # matches nothing, like Python's [^\s\S]
    size = sum(hi - lo + 1 for lo, hi in ranges)
    if size > 0x88000:  # most of Unicode: the complement is the shorter text
        rest = _complement(ranges)
        if not rest:
            return r"[\x00-\x{10ffff}]"  # every character, like Python's [\s\S]
        return "[^" + "".join(_range_text(lo, hi) for lo, hi in rest) + "]"
    return "[" + "".join(_range_text(lo, hi) for lo, hi in ranges) + "]"


def _range_text(lo: int, hi: int) -> str:
    return f"\\x{{{lo:x}}}" if lo == hi else f"\\x{{{lo:x}}}-\\x{{{hi:x}}}"


def _complement(ranges: tuple[tuple[int, int], ...]) -> list[tuple[int, int]]:
    """Code points (surrogates aside, which UTF-8 text never holds) outside ``ranges``."""
    out: list[tuple[int, int]] = []
    nxt = 0
    for lo, hi in [*ranges, (_MAX_CP + 1, _MAX_CP + 1)]:
        for a, b in _split_surrogates(nxt, lo - 1):
            out.append((a, b))
        nxt = hi + 1
    return out


def _split_surrogates(lo: int, hi: int) -> list[tuple[int, int]]:
    if lo > hi:
        return []
    s_lo, s_hi = _SURROGATES
    if hi < s_lo or lo > s_hi:
        return [(lo, hi)]
    return [(a, b) for a, b in ((lo, s_lo - 1), (s_hi + 1, hi)) if a <= b]


@lru_cache(maxsize=1)
def _all_code_points() -> str:
    """Every code point but the surrogates, in order (about 1.1 M characters; built once, when first needed)."""
    return "".join(map(chr, range(_SURROGATES[0]))) + "".join(map(chr, range(_SURROGATES[1] + 1, _MAX_CP + 1)))


@lru_cache(maxsize=512)
def _enumerated(snippet: str, flags: int) -> tuple[tuple[int, int], ...]:
    """The code points Python's ``re`` matches with the one-character ``snippet`` under ``flags``, as ranges.

    Asking Python's own engine over all of Unicode is what makes the class exact (``\\w``, ``\\s``,
    case-insensitive letters such as K/k/U+212A all come out as ``re`` sees them on this Python). Cost: a few
    tens of milliseconds per distinct class, cached.
    """
    text = _all_code_points()
    gap = _SURROGATES[1] - _SURROGATES[0] + 1
    ranges: list[tuple[int, int]] = []
    for m in re.finditer(f"(?:{snippet})+", text, flags):
        start, end = m.span()
        lo = start if start < _SURROGATES[0] else start + gap
        hi = end - 1 if end - 1 < _SURROGATES[0] else end - 1 + gap
        ranges.extend(_split_surrogates(lo, hi))
    return tuple(ranges)


# ----------------------------------------------------------------------------------------------------------------
# Running: a re.Pattern-like object over RE2


class _Offsets:
    """Char ↔ UTF-8 byte offsets of one non-ASCII text, from its runs of equally wide characters (so a mostly
    ASCII text costs a handful of entries, and each lookup is a bisection)."""

    _RUNS = re.compile("[\x80-\u07ff]+|[\u0800-\uffff]+|[\U00010000-\U0010ffff]+")

    __slots__ = ("chars", "bytes", "byte_ends", "widths", "extra")

    def __init__(self, text: str) -> None:
        self.chars: list[int] = []
        self.bytes: list[int] = []
        self.byte_ends: list[int] = []
        self.widths: list[int] = []
        self.extra: list[int] = []  # extra bytes after each run ends
        extra = 0
        for m in self._RUNS.finditer(text):
            start, end = m.span()
            cp = ord(text[start])
            width = 2 if cp < 0x800 else 3 if cp < 0x10000 else 4
            self.chars.append(start)
            self.bytes.append(start + extra)
            extra += (end - start) * (width - 1)
            self.byte_ends.append(end + extra)
            self.widths.append(width)
            self.extra.append(extra)

    def to_byte(self, char: int) -> int:
        k = bisect.bisect_right(self.chars, char) - 1
        if k < 0:
            return char
        in_run = char - self.chars[k]
        if self.bytes[k] + in_run * self.widths[k] < self.byte_ends[k]:
            return self.bytes[k] + in_run * self.widths[k]
        return char + self.extra[k]

    def to_char(self, byte: int) -> int:
        k = bisect.bisect_right(self.bytes, byte) - 1
        if k < 0:
            return byte
        if byte < self.byte_ends[k]:
            return self.chars[k] + (byte - self.bytes[k]) // self.widths[k]
        return byte - self.extra[k]


_last: tuple[str, bytes, _Offsets | None] | None = None
"""The last text handed to RE2, encoded (one entry: a chunk scan calls many patterns many times on one chunk)."""


def _encoded(text: str) -> tuple[bytes, _Offsets | None]:
    global _last
    last = _last
    if last is not None and last[0] is text:
        return last[1], last[2]
    entry: tuple[str, bytes, _Offsets | None]
    if text.isascii():
        entry = (text, text.encode("ascii"), None)
    else:
        entry = (text, text.encode("utf-8", "surrogatepass"), _Offsets(text))
    _last = entry
    return entry[1], entry[2]


class LinearPattern:
    """A compiled pattern with ``re``'s meaning and RE2's linear running time (see the module doc)."""

    __slots__ = ("pattern", "flags", "groups", "groupindex", "re2_pattern", "_rx", "_rank", "_names")

    def __init__(self, pattern: str, flags: int = 0) -> None:
        text, pyflags, groupindex, rank = translate(pattern, flags)
        options = re2.Options()
        options.log_errors = False
        try:
            rx = re2.compile(text, options)
        except re2.error as exc:
            raise UnsupportedRegex(f"RE2 cannot compile it: {exc}") from None
        if rx.groups != len(rank) - 1:  # pragma: no cover - a translation bug, never a user error
            raise UnsupportedRegex("internal error: group numbering changed in translation")
        self.pattern = pattern
        self.flags = pyflags
        self.groups = rx.groups
        self.groupindex = groupindex
        self.re2_pattern = text
        self._rx = rx
        self._rank = rank
        self._names = {num: name for name, num in groupindex.items()}

    def __repr__(self) -> str:
        return f"LinearPattern({self.pattern!r})"

    def search(self, string: str, pos: int = 0, endpos: int = sys.maxsize) -> LinearMatch | None:
        return self._one("search", string, pos, endpos)

    def match(self, string: str, pos: int = 0, endpos: int = sys.maxsize) -> LinearMatch | None:
        return self._one("match", string, pos, endpos)

    def fullmatch(self, string: str, pos: int = 0, endpos: int = sys.maxsize) -> LinearMatch | None:
        return self._one("fullmatch", string, pos, endpos)

    def finditer(self, string: str, pos: int = 0, endpos: int = sys.maxsize) -> Iterator[LinearMatch]:
        """Non-overlapping matches left to right, as ``re`` gives them (no pattern here can match empty)."""
        prepared = self._prepare(string, pos, endpos)
        if prepared is None:
            return
        data, offsets, bpos, pos, endpos = prepared
        for m in self._rx.finditer(data, bpos):
            yield self._wrap(m, offsets, string, pos, endpos)

    def _one(self, how: str, string: str, pos: int, endpos: int) -> LinearMatch | None:
        prepared = self._prepare(string, pos, endpos)
        if prepared is None:
            return None
        data, offsets, bpos, pos, endpos = prepared
        m = getattr(self._rx, how)(data, bpos)
        return None if m is None else self._wrap(m, offsets, string, pos, endpos)

    @staticmethod
    def _prepare(string: str, pos: int, endpos: int) -> tuple[bytes, _Offsets | None, int, int, int] | None:
        """The UTF-8 text RE2 reads and the byte position to start at, or ``None`` when ``pos > endpos``."""
        if not isinstance(string, str):
            raise TypeError(f"expected a str, not {type(string).__name__}")
        size = len(string)
        pos = min(max(pos, 0), size)
        endpos = min(max(endpos, 0), size)
        if pos > endpos:
            return None
        # Python reads endpos as the end of the string ($ and \Z match there): hand RE2 just that much
        data, offsets = _encoded(string if endpos == size else string[:endpos])
        return data, offsets, pos if offsets is None else offsets.to_byte(pos), pos, endpos

    def _wrap(self, m: Any, offsets: _Offsets | None, string: str, pos: int, endpos: int) -> LinearMatch:
        spans = [m.span(g) for g in range(self.groups + 1)]
        if offsets is not None:
            to_char = offsets.to_char
            spans = [(-1, -1) if s < 0 else (to_char(s), to_char(e)) for s, e in spans]
        return LinearMatch(self, string, pos, endpos, spans)


class LinearMatch:
    """What ``re.Match`` offers that the detector reads, over spans RE2 found (char offsets into ``string``)."""

    __slots__ = ("re", "string", "pos", "endpos", "_spans")

    def __init__(self, pattern: LinearPattern, string: str, pos: int, endpos: int,
                 spans: list[tuple[int, int]]) -> None:
        self.re = pattern
        self.string = string
        self.pos = pos
        self.endpos = endpos
        self._spans = spans

    def __repr__(self) -> str:
        return f"<LinearMatch span={self.span()} match={self.group()!r}>"

    def _index(self, group: int | str) -> int:
        if isinstance(group, str):
            try:
                return self.re.groupindex[group]
            except KeyError:
                raise IndexError("no such group") from None
        if not 0 <= group < len(self._spans):
            raise IndexError("no such group")
        return group

    def __getitem__(self, group: int | str) -> str | None:
        start, end = self._spans[self._index(group)]
        return None if start < 0 else self.string[start:end]

    def group(self, *groups: int | str) -> Any:
        if len(groups) <= 1:
            return self[groups[0] if groups else 0]
        return tuple(self[g] for g in groups)

    def groups(self, default: Any = None) -> tuple[Any, ...]:
        return tuple(default if (v := self[g]) is None else v for g in range(1, len(self._spans)))

    def groupdict(self, default: Any = None) -> dict[str, Any]:
        return {name: default if (v := self[num]) is None else v for name, num in self.re.groupindex.items()}

    def start(self, group: int | str = 0) -> int:
        return self._spans[self._index(group)][0]

    def end(self, group: int | str = 0) -> int:
        return self._spans[self._index(group)][1]

    def span(self, group: int | str = 0) -> tuple[int, int]:
        return self._spans[self._index(group)]

    @property
    def lastindex(self) -> int | None:
        """The group that closed last: the furthest end, then the later ``)`` in the pattern (an enclosing group
        closes after the groups inside it), as ``re`` reports it."""
        rank = self.re._rank
        best: int | None = None
        best_key = (-1, -1)
        for g in range(1, len(self._spans)):
            end = self._spans[g][1]
            if end >= 0 and (end, rank[g]) > best_key:
                best, best_key = g, (end, rank[g])
        return best

    @property
    def lastgroup(self) -> str | None:
        last = self.lastindex
        return None if last is None else self.re._names.get(last)


def compile(pattern: str, flags: int = 0) -> LinearPattern:  # noqa: A001 - mirrors re.compile on purpose
    """:class:`LinearPattern` for ``pattern``; ``re.error`` when Python rejects it, :class:`UnsupportedRegex` when
    RE2 cannot run it with the same meaning."""
    return LinearPattern(pattern, flags)
