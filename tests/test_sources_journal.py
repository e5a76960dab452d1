"""systemd journal follower, against a stand-in ``journalctl`` that replays recorded JSON (CI has no journal).

The stand-in (``tests/data/journal/fake_journalctl.py``) honours ``--unit``, ``--after-cursor``, ``--lines`` and
``--no-tail``, follows its data file for appended entries, logs each argv it was given, and can be told to exit.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from task_helpers import stop_tasks

from pilot_tui.sources import (
    STATE_FOLLOWING,
    FileTailer,
    JournalSource,
    LineBatch,
    MultiSource,
    TailOptions,
    format_entry,
    journal_key,
)
from pilot_tui.sources.journal import syslog_timestamp

pytestmark = pytest.mark.timeout(20)

DATA = Path(__file__).parent / "data" / "journal"
FAKE = DATA / "fake_journalctl.py"
RECORDED = [json.loads(line) for line in (DATA / "sshd.jsonl").read_text().splitlines()]
SSH = ["ssh.service"]
KEY = journal_key(SSH)


@pytest.fixture
def journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the recorded journal (tests append to it) wired into the stand-in's environment."""
    path = tmp_path / "journal.jsonl"
    shutil.copy(DATA / "sshd.jsonl", path)
    monkeypatch.setenv("FAKE_JOURNAL", str(path))
    monkeypatch.setenv("FAKE_JOURNAL_ARGV", str(tmp_path / "argv.jsonl"))
    return path


def invocations(journal: Path) -> list[list[str]]:
    argv_log = journal.parent / "argv.jsonl"
    return [json.loads(x) for x in argv_log.read_text().splitlines()] if argv_log.exists() else []


def expected(entry: dict[str, Any]) -> str:
    line = format_entry(entry, "unused")
    assert line is not None
    return line


def append(journal: Path, entry: dict[str, Any]) -> None:
    with open(journal, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")


def new_entry(n: int, message: str) -> dict[str, Any]:
    entry = dict(RECORDED[1])
    entry["__CURSOR"] = f"s=new;i={n}"
    entry["MESSAGE"] = message
    return entry


class Follow:
    """Runs a source in a task and records what the engine would see and persist."""

    def __init__(self, source: JournalSource | MultiSource) -> None:
        self.source = source
        self.batches: list[LineBatch] = []
        self.positions: dict[str, Any] = {}
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Follow:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.source.close()
        assert self._task is not None
        await asyncio.wait_for(self._task, 5)

    async def _run(self) -> None:
        async for batch in self.source.batches():
            self.batches.append(batch)
            self.positions[batch.key] = batch.position

    @property
    def lines(self) -> list[str]:
        return [line for b in self.batches for line in b.lines]

    async def until(self, cond: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; lines={self.lines!r}")
            await asyncio.sleep(0.01)

    async def lines_are(self, want: list[str]) -> None:
        await self.until(lambda: len(self.lines) >= len(want), f"{len(want)} lines")
        await asyncio.sleep(0.1)  # and nothing more (no duplicates)
        assert self.lines == want


def source(positions: Mapping[str, Any] | None = None, **kw: Any) -> JournalSource:
    kw.setdefault("journalctl", [sys.executable, str(FAKE)])
    kw.setdefault("restart_backoff", (0.05, 0.2))
    return JournalSource(SSH, positions, **kw)


SSH_ENTRIES = [e for e in RECORDED if e["_SYSTEMD_UNIT"] == "ssh.service" and e["MESSAGE"] is not None]


def test_entries_become_syslog_lines() -> None:
    stamp = syslog_timestamp(RECORDED[1]["__REALTIME_TIMESTAMP"])
    assert format_entry(RECORDED[1], "h") == (
        f"{stamp} gcp-log-oracle sshd[9021]: Failed password for root from 203.0.113.7 port 52311 ssh2"
    )
    # MESSAGE as a list of byte values (not valid UTF-8): decoded with replacement characters.
    assert format_entry(RECORDED[4], "h").endswith(
        "sshd[9044]: Invalid user \ufffd\ufffdadm from 198.51.100.9 port 40022"
    )
    assert format_entry(RECORDED[5], "h") is None  # null MESSAGE (too large for journalctl to print)
    assert "Too many authentication failures#012[preauth]" in expected(RECORDED[6])  # one entry, one line
    assert format_entry({"MESSAGE": "x", "__REALTIME_TIMESTAMP": "0"}, "myhost").endswith(
        " myhost journal: x"
    )
    assert format_entry({"MESSAGE": ["first", "second"], "_COMM": "su"}, "h").endswith(" h su: first")
    assert len(syslog_timestamp("1732536001125000")) == 15  # "Nov 25 12:00:01" whatever the time zone


async def test_replay_from_start_filters_units(journal: Path) -> None:
    async with Follow(source(from_start=True)) as f:
        await f.lines_are([expected(e) for e in SSH_ENTRIES])
        assert f.positions[KEY] == {"v": 1, "cursor": RECORDED[-1]["__CURSOR"]}
        assert f.source.stats().state == STATE_FOLLOWING and f.source.stats().skipped == 1
        append(journal, new_entry(1, "Failed password for root from 203.0.113.8 port 1 ssh2"))
        await f.until(lambda: len(f.lines) == len(SSH_ENTRIES) + 1, "the live entry")
    assert invocations(journal)[-1][-1] == "--no-tail"


async def test_start_at_end_persists_the_end_then_follows(journal: Path) -> None:
    async with Follow(source()) as f:
        await f.until(lambda: bool(f.batches), "the start position")
        assert f.batches[0].lines == [] and f.positions[KEY]["cursor"] == RECORDED[-1]["__CURSOR"]
        append(journal, new_entry(1, "Failed password for root from 203.0.113.8 port 1 ssh2"))
        await f.lines_are([expected(new_entry(1, "Failed password for root from 203.0.113.8 port 1 ssh2"))])
    follow = invocations(journal)[-1]
    assert follow[-2:] == ["--after-cursor", RECORDED[-1]["__CURSOR"]] and "--follow" in follow


async def test_cursor_resume_reads_only_what_follows(journal: Path) -> None:
    stored = {KEY: {"v": 1, "cursor": RECORDED[3]["__CURSOR"]}, "file:/elsewhere": {"v": 1}}
    async with Follow(source(stored)) as f:
        await f.lines_are([expected(e) for e in SSH_ENTRIES if RECORDED.index(e) > 3])
    assert invocations(journal) == [
        [
            "--follow",
            "--output=json",
            "--unit",
            "ssh.service",
            "--after-cursor",
            RECORDED[3]["__CURSOR"],
        ]
    ]


async def test_exit_is_an_error_state_and_restart_resumes_after_cursor(
    journal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_JOURNAL_EXIT", "3")
    async with Follow(source(from_start=True)) as f:
        await f.until(lambda: f.source.stats().restarts >= 2, "restarts")
        state = f.source.stats().state
        assert state.startswith("error: journalctl exited with status 3") or state == STATE_FOLLOWING
        assert f.lines == [expected(e) for e in SSH_ENTRIES]  # replayed once, not once per restart
    runs = [r for r in invocations(journal) if "--follow" in r]  # not the one look for a missing journal
    assert runs[0][-1] == "--no-tail"
    assert all(r[-2:] == ["--after-cursor", RECORDED[-1]["__CURSOR"]] for r in runs[1:])


async def test_rejected_cursor_falls_back_to_the_end(journal: Path) -> None:
    async with Follow(source({KEY: {"v": 1, "cursor": "s=vacuumed-away"}})) as f:
        await f.until(lambda: bool(f.batches), "a position")
        assert f.positions[KEY]["cursor"] == RECORDED[-1]["__CURSOR"] and f.lines == []


async def test_missing_journalctl_is_an_error_state(tmp_path: Path) -> None:
    src = source(journalctl=str(tmp_path / "no" / "journalctl"))
    async with Follow(src) as f:
        await f.until(lambda: f.source.stats().state.startswith("error: journalctl not found"), "error state")
        await f.until(lambda: f.source.stats().restarts >= 2, "retries with backoff")
    assert f.batches == []


async def test_journalctl_found_on_path(
    journal: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "journalctl"
    script.write_text(f"#!{sys.executable}\n" + FAKE.read_text())
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    async with Follow(JournalSource(SSH, from_start=True)) as f:
        await f.lines_are([expected(e) for e in SSH_ENTRIES])


async def test_close_and_cancel_kill_the_subprocess(journal: Path) -> None:
    src = source(from_start=True)
    f = Follow(src)
    async with f:
        await f.until(lambda: src._proc is not None and bool(f.lines), "running")
        proc = src._proc
        assert proc is not None
    assert proc.returncode is not None

    src2 = source(from_start=True)
    task = asyncio.create_task(_drain(src2))
    deadline = time.monotonic() + 5
    while src2._proc is None and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    proc2 = src2._proc
    assert proc2 is not None
    await stop_tasks(task)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert proc2.returncode is not None  # killed in finally, not leaked


async def _drain(src: JournalSource) -> None:
    async for _ in src.batches():
        pass


async def test_multisource_merges_files_and_journal(journal: Path, tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text("f1\n")
    tailer = FileTailer([log], from_start=True, options=TailOptions(poll_interval=0.05, use_watchdog=False))
    multi = MultiSource([tailer, source(from_start=True)])
    async with Follow(multi) as f:
        await f.until(lambda: len(f.lines) == 1 + len(SSH_ENTRIES), "both sources")
        assert set(f.positions) == {f"file:{log}", KEY}
        assert [type(s).__name__ for s in multi.stats()] == ["FileStats", "JournalStats"]


async def test_restart_with_persisted_cursor_neither_loses_nor_repeats(journal: Path) -> None:
    async with Follow(source(from_start=True)) as f:
        await f.lines_are([expected(e) for e in SSH_ENTRIES])
        stored = dict(f.positions)
    append(journal, new_entry(1, "written while the oracle was down"))
    async with Follow(source(stored)) as f:
        await f.lines_are([expected(new_entry(1, "written while the oracle was down"))])


def test_whole_journal_when_no_unit_is_given() -> None:
    src = JournalSource([], journalctl="jc")
    assert src.key == "journal:*"
    assert src.argv() == ["jc", "--follow", "--output=json", "--lines", "0"]


async def test_multisource_surfaces_a_source_bug() -> None:
    class Broken:
        async def batches(self) -> Any:
            raise ValueError("bug in a source")
            yield  # pragma: no cover - makes this an async generator

        async def close(self) -> None:
            return None

        def stats(self) -> Any:
            return None

    with pytest.raises(ValueError, match="bug in a source"):
        async for _ in MultiSource([Broken()]).batches():  # type: ignore[list-item]
            pass


# journalctl 252 as observed on a host without journal files (and, per systemd's sources, for a user who may not
# read them): with --output=json it prints nothing and --follow just waits; in the short format it says why on
# stderr. The follower must not call that "following".
_SILENT_JOURNALCTL = """
import sys, time
why = {why!r}
if "--output=json" not in sys.argv:
    for line in why:
        print(line, file=sys.stderr)
    print("-- No entries --")
    sys.exit(0)
while "--follow" in sys.argv:
    time.sleep(0.05)
"""


def _journalctl_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, why: list[str]) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "journalctl"
    script.write_text(f"#!{sys.executable}\n" + _SILENT_JOURNALCTL.format(why=why))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")


@pytest.mark.parametrize(
    ("why", "state", "reason"),
    [
        (["No journal files were found."], "no journal files: ", "journald keeps no files"),
        (["No journal files were opened due to insufficient permissions."], "journal unreadable: ",
         "group systemd-journal"),
        (["Hint: You are currently not seeing messages from other users and the system.",
          "      Users in groups 'adm', 'systemd-journal' can see all messages.",
          "      Pass -q to turn off this notice."], "following own messages only: ", "group systemd-journal"),
    ],
    ids=["no-files", "no-permission", "own-only"],
)
@pytest.mark.parametrize("from_start", [False, True], ids=["at-end", "from-start"])
async def test_a_missing_journal_is_named_not_following(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, why: list[str], state: str, reason: str, from_start: bool
) -> None:
    _journalctl_on_path(tmp_path, monkeypatch, why)
    src = JournalSource(SSH, from_start=from_start, restart_backoff=(0.05, 0.2))
    async with Follow(src) as f:
        await f.until(lambda: src._proc is not None, "journalctl following")
        await asyncio.sleep(0.2)  # what it says on stderr while following must not turn it back to "following"
        shown = src.stats().state
        assert shown.startswith(state) and reason in shown, shown
        assert f.lines == []


async def test_missing_journalctl_on_path_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no journalctl anywhere
    src = JournalSource(SSH, restart_backoff=(0.05, 0.2))
    async with Follow(src) as f:
        await f.until(lambda: src.stats().state.startswith("error: journalctl not found"), "error state")
