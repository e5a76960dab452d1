"""Issue 14 item 8: attacker text on screen cannot be confused with what our escaping made visible.

``printable`` escapes the backslash itself and gives every invisible character a fixed-width escape, so what an
analyst reads maps back to exactly one original — a typed ``\\x1b`` and a real ESC no longer look alike, and a
right-to-left override is ``\\u202e``, not ``\\x20`` followed by ``2e``.
"""

from __future__ import annotations

import io

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from pilot_tui.engines import updates as u
from pilot_tui.engines.fanout import TRIAGE_SCHEMA, TriageNote, parse_shared
from pilot_tui.engines.mitigation import RESULT_SCHEMA, parse_result
from pilot_tui.model import make_event, printable
from pilot_tui.ui.notices import notices_for
from pilot_tui.ui.widgets.event_detail import detail_renderable

ESC = "\x1b"
TYPED_ESC = "\\x1b"  # four characters an attacker can type: backslash, x, 1, b


def unescape(shown: str) -> str:
    """What a reader (or a test) gets back from the escaped form: Python's own escape syntax."""
    return shown.encode("latin-1", "backslashreplace").decode("unicode_escape")


def test_a_typed_escape_and_a_real_one_look_different() -> None:
    assert printable(ESC + "[31mred") == "\\x1b[31mred"
    assert printable(TYPED_ESC + "[31mred") == "\\\\x1b[31mred"
    assert unescape(printable(TYPED_ESC)) == TYPED_ESC and unescape(printable(ESC)) == ESC


def test_invisible_characters_get_fixed_width_escapes() -> None:
    assert printable("a\u202e5") == "a\\u202e5"  # right-to-left override, then a digit it cannot swallow
    assert printable("a\u202e5") != printable("a 2e5")
    assert printable("admin\U000e0001") == "admin\\U000e0001"  # a tag character: invisible in most fonts
    assert printable("ro\u200bot") == "ro\\u200bot"  # zero-width space inside a user name
    assert printable("root\u00a0") == "root\\xa0"  # a space that is not one
    assert printable("a\tb\nc\rd") == "a\\x09b\\x0ac\\x0dd"  # one cell stays one line
    assert printable("\x9b2J") == "\\x9b2J"  # the 8-bit CSI
    assert printable("bad\udc80byte") == "bad\\udc80byte"  # a surrogate left by an undecodable byte


def test_visible_text_is_left_alone() -> None:
    text = "Ошибка входа: müller 中文 😀 [bold]x[/] 'quotes' \"too\""
    assert printable(text) == text


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(exclude_categories=()), max_size=80))
def test_every_text_reads_back_and_nothing_invisible_reaches_the_terminal(text: str) -> None:
    shown = printable(text)
    assert unescape(shown) == text
    assert all(char.isprintable() for char in shown)


def _render(renderable: object) -> str:
    console = Console(width=200, record=True, color_system=None, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def test_the_detail_pane_shows_evidence_literally_and_escaped_once() -> None:
    event = make_event("203.0.113.9", "brute_force_ssh", "high", user="ev\\il\u202e",
                       evidence=[f"{ESC}]52;c;ZXZpbA=={chr(7)} {TYPED_ESC} [bold red]alarm[/]"])
    shown = _render(detail_renderable(event))
    assert ESC not in shown and "\u202e" not in shown
    assert "\\x1b]52;c;ZXZpbA==\\x07 \\\\x1b [bold red]alarm[/]" in shown  # markup shown as typed
    assert "ev\\\\il\\u202e" in shown


def test_a_notice_escapes_the_executors_detail_once() -> None:
    update = u.MitigationUpdate(at=0.0, request_id="r-1", source_ip="203.0.113.9", status="failed",
                                detail=f"nft said {ESC}[2J and {TYPED_ESC}")
    ((level, text),) = notices_for([update])
    assert level == "error" and text == "203.0.113.9: block failed — nft said \\x1b[2J and \\\\x1b"


def test_shared_notes_and_results_are_kept_as_sent_so_the_screen_escapes_them_once() -> None:
    """Escaping where a message is read *and* where it is shown would double every backslash: a real ESC would
    then look like a typed one."""
    note = parse_shared(orjson.dumps({"schema": TRIAGE_SCHEMA, "ids": ["ev-1"], "state": "acknowledged",
                                      "note": f"seen {ESC}[2J", "by": f"ana{ESC}"}))
    assert isinstance(note, TriageNote) and note.note == f"seen {ESC}[2J" and note.by == f"ana{ESC}"
    result = parse_result(orjson.dumps({"schema": RESULT_SCHEMA, "request_id": "r-1", "ip": "203.0.113.9",
                                        "action": "block", "status": "failed", "backend": "nft",
                                        "detail": f"Error:{ESC}[31m \\ line\n"}))
    assert result.detail == f"Error:{ESC}[31m \\ line\n"
    assert printable(result.detail) == "Error:\\x1b[31m \\\\ line\\x0a"
