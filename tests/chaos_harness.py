"""The chaos run: an oracle and an orchestrator on pilot-sim, a log that keeps growing and rotating, and every kind of
kill — then a checker that proves each detection arrived exactly once.

:func:`run_chaos` drives one run and returns a :class:`ChaosResult` (paths to everything the processes left behind,
plus figures); :func:`check_chaos` reads only those files and returns the list of problems (empty = the delivery
guarantee held). Keeping the two apart is what lets the checker be tested on its own: :func:`doctor` copies a
result and plants one fault (a stored event deleted, a shown line repeated, a line detected twice), and the checker
must report it.

What one run does (defaults; see :class:`ChaosConfig`):

* the test writes ``events`` log lines in chunks, each line one detection from a distinct IP (``BURST_RULES``);
* the orchestrator's node drops ``drop_rate`` of incoming streams (pilot-sim answers the sender with ``timeout``
  after ``$PILOT_TUI_CONNECT_TIMEOUT``; the data is lost, the oracle must resend);
* between chunks: the orchestrator is killed and restarted ``orchestrator_restarts`` times (SIGKILL and SIGTERM in
  turn, a short random downtime), the oracle is SIGKILLed ``oracle_kills`` times and restarted (each time shortly
  after a rename, while it still drains the renamed file), the log is rotated by rename and by copytruncate.

copytruncate has a window of its own that no tailer can close: lines written between the copy and the truncate, or
not yet read when the file is emptied, exist only in the copy, which the oracle does not follow (logrotate's
documentation says as much). The harness therefore plays a careful logrotate: it pauses the writer, waits until the
oracle has committed the end of the file, copies, truncates, and waits until the oracle has committed the
truncation before writing again. Rename rotations need no such care (the tailer drains the renamed file by inode,
also across a restart); this run still waits for the oracle to have moved on to the current file before the next
rename, so that each oracle kill lands while it drains one renamed file. Renames faster than the tailer's rotation
grace, and files deleted soon after a rename, are the subject of :func:`run_rotation` (the end of this module).
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson
from e2e_helpers import BURST_RULES, Proc, burst_ip, burst_lines, query

from pilot_tui.sim.cluster import SimCluster

ORACLE, ORCH = "chaos-oracle", "chaos-orch"
SENSOR = "chaos-1"


@dataclass(frozen=True)
class ChaosConfig:
    """One chaos run's shape. The defaults are the issue's: 10,000 detections, 5 orchestrator restarts, 2 oracle
    SIGKILLs, 10 % dropped connects, 2 rename and 2 copytruncate rotations."""

    events: int = 10_000
    chunk: int = 250
    """Lines written at a time; actions happen between chunks."""
    chunk_pause_s: float = 0.1
    orchestrator_restarts: int = 5
    oracle_kills: int = 2
    renames: int = 2
    copytruncates: int = 2
    drop_rate: float = 0.10
    connect_timeout_s: float = 1.0
    """``$PILOT_TUI_CONNECT_TIMEOUT`` for the oracle: what a dropped stream costs before the resend."""
    seed: int = 20261125
    step_timeout_s: float = 60.0
    """Bound on any single wait (oracle caught up, drained, …)."""
    deadline_s: float = 300.0
    """Bound on the whole run; a wait past it fails the run."""


@dataclass
class OrchRun:
    """One orchestrator process: where its stdout went, how it ended, the highest event rowid when it ended."""

    out: Path
    ended: str = "running"
    """``sigkill`` | ``sigterm`` | ``final`` (stopped after the run)."""
    max_rowid: int = 0


@dataclass
class ChaosResult:
    """Everything a run left behind (paths only, so a doctored copy is just another result)."""

    workdir: Path
    log: Path
    oracle_db: Path
    orch_db: Path
    orch_runs: list[OrchRun]
    oracle_outs: list[Path]
    lines_written: int
    figures: dict[str, Any] = field(default_factory=dict)


def line_ip(i: int) -> str:
    """Source IP of line ``i`` as :func:`pilot_tui.sim.burst.burst_lines` writes it."""
    return burst_ip(i)


# --------------------------------------------------------------------------------------------------------------
# state readers


def outbox_pending(db: Path) -> int | None:
    rows = query(db, "SELECT COUNT(*) FROM outbox WHERE state='pending'")
    return int(rows[0][0]) if rows else None


def stored_count(db: Path) -> int:
    rows = query(db, "SELECT COUNT(*) FROM events")
    return int(rows[0][0]) if rows else 0


def max_rowid(db: Path) -> int:
    rows = query(db, "SELECT COALESCE(MAX(rowid), 0) FROM events")
    return int(rows[0][0]) if rows else 0


def stored_position(db: Path, log: Path) -> dict[str, Any] | None:
    """The oracle's committed position for ``log`` (its ``offsets`` row), or None."""
    rows = query(db, "SELECT position FROM offsets WHERE key=?", "file:" + os.path.abspath(log))
    return orjson.loads(rows[0][0]) if rows else None


def _head_fp(path: Path, length: int) -> str:
    with path.open("rb") as f:
        head = f.read(length)
    return hashlib.blake2b(head, digest_size=16).hexdigest()


def position_problem(pos: dict[str, Any] | None, log: Path) -> str | None:
    """Why ``pos`` is not "the end of the current log, on a line boundary, of this very file" (None when it is)."""
    if pos is None:
        return "no stored position for the log"
    st = log.stat()
    if pos.get("ino") != st.st_ino:
        return f"stored position is for inode {pos.get('ino')}, the log is inode {st.st_ino}"
    if pos.get("offset") != st.st_size:
        return f"stored offset {pos.get('offset')} != log size {st.st_size}"
    fp_len = int(pos.get("fp_len", -1))
    if fp_len != min(st.st_size, 1024) or pos.get("fp") != _head_fp(log, fp_len):
        return "stored fingerprint does not match the log's head"
    if st.st_size:
        with log.open("rb") as f:
            f.seek(st.st_size - 1)
            if f.read(1) != b"\n":
                return "stored offset is not on a line boundary"
    return None


def parse_json_lines(path: Path, *, allow_torn_tail: bool) -> tuple[list[dict[str, Any]], int]:
    """JSON objects of a headless process's stdout; a torn last line is counted (and allowed only when asked)."""
    objs: list[dict[str, Any]] = []
    torn = 0
    if not path.exists():
        return objs, torn
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            if i == len(lines) - 1 and allow_torn_tail:
                torn += 1
                continue
            raise AssertionError(f"{path.name}: line {i + 1} is not JSON: {line[:120]!r}") from None
        if isinstance(obj, dict):
            objs.append(obj)
    return objs, torn


# --------------------------------------------------------------------------------------------------------------
# the run


class ChaosRun:
    """Drives one chaos run on ``cluster`` inside ``workdir``. Use :func:`run_chaos`."""

    def __init__(self, cluster: SimCluster, workdir: Path, config: ChaosConfig,
                 log: Callable[[str], None] | None = None) -> None:
        self.cfg = config
        self.cluster = cluster
        self.dir = workdir
        self.rng = random.Random(config.seed)
        self.say = log or (lambda _msg: None)
        self.logfile = workdir / "app.log"
        self.rules = workdir / "burst.toml"
        self.oracle_db = workdir / "oracle" / "oracle.db"
        self.orch_db = workdir / "orch" / "orchestrator.db"
        self.orch_runs: list[OrchRun] = []
        self.oracle_outs: list[Path] = []
        self.written = 0
        self.rotated = 0
        self.started = 0.0
        self.timeline: list[dict[str, Any]] = []
        self.orch: Proc | None = None
        self.oracle: Proc | None = None
        self.nodes: dict[str, Any] = {}

    # -- processes -------------------------------------------------------------------------------------------

    def start_orch(self) -> None:
        k = len(self.orch_runs) + 1
        run = OrchRun(self.dir / f"orch{k}.out")
        self.orch_runs.append(run)
        self.orch = Proc("orchestrator", ["--state-dir", str(self.dir / "orch")], self.nodes[ORCH].env, run.out,
                         err=self.dir / f"orch{k}.err")

    def stop_orch(self, how: str) -> None:
        assert self.orch is not None
        sig = signal.SIGKILL if how == "sigkill" else signal.SIGTERM
        code = self.orch.stop(sig)
        if how != "sigkill" and code != 0:
            raise AssertionError(f"orchestrator exited {code} on SIGTERM: {self.orch.stderr()[-2000:]}")
        run = self.orch_runs[-1]
        run.ended, run.max_rowid = how, max_rowid(self.orch_db)
        self.orch = None

    def start_oracle(self) -> None:
        k = len(self.oracle_outs) + 1
        out = self.dir / f"oracle{k}.out"
        self.oracle_outs.append(out)
        env = {**self.nodes[ORACLE].env, "PILOT_TUI_CONNECT_TIMEOUT": str(self.cfg.connect_timeout_s)}
        self.oracle = Proc("oracle", ["--peer", ORCH, "--log", str(self.logfile), "--from-start", "--rules",
                                      str(self.rules), "--sensor", SENSOR, "--state-dir", str(self.dir / "oracle")],
                           env, out, err=self.dir / f"oracle{k}.err")

    def procs(self) -> list[Proc]:
        return [p for p in (self.orch, self.oracle) if p is not None]

    def stop_all(self) -> None:
        """Stop whatever still runs (SIGTERM, then SIGKILL after a grace period): nothing outlives the run."""
        if self.oracle is not None:
            self.oracle.stop()
            self.oracle = None
        if self.orch is not None:
            self.stop_orch("final")

    # -- waiting ---------------------------------------------------------------------------------------------

    def wait(self, cond: Callable[[], bool], what: str, timeout: float | None = None) -> float:
        """Poll ``cond`` until true; fail when a process died, the step timed out or the run's deadline passed."""
        began = time.monotonic()
        limit = min(began + (timeout or self.cfg.step_timeout_s), self.started + self.cfg.deadline_s)
        while not cond():
            for p in self.procs():
                if p.popen.poll() is not None:
                    raise AssertionError(f"{what}: a process exited early ({p.popen.returncode}): "
                                         f"{p.stderr()[-2000:]}")
            if time.monotonic() > limit:
                raise AssertionError(f"chaos: timed out waiting for {what} "
                                     f"(pending={outbox_pending(self.oracle_db)}, stored={stored_count(self.orch_db)}, "
                                     f"written={self.written}, t={time.monotonic() - self.started:.0f}s)")
            time.sleep(0.05)
        return time.monotonic() - began

    def oracle_on_current_file(self) -> bool:
        pos = stored_position(self.oracle_db, self.logfile)
        return pos is not None and self.logfile.exists() and pos.get("ino") == self.logfile.stat().st_ino

    def oracle_at_end(self) -> bool:
        return position_problem(stored_position(self.oracle_db, self.logfile), self.logfile) is None

    # -- actions ---------------------------------------------------------------------------------------------

    def note(self, action: str, **extra: Any) -> None:
        entry = {"t": round(time.monotonic() - self.started, 2), "action": action, "written": self.written, **extra}
        self.timeline.append(entry)
        self.say(f"[{entry['t']:6.1f}s] {action} after {self.written} lines {extra or ''}")

    def write_chunk(self, n: int) -> None:
        with self.logfile.open("a") as f:
            f.write(burst_lines(self.written, n))
        self.written += n

    def orch_ready(self) -> bool:
        """The current orchestrator's stream receiver is bound (its status line on stderr says so)."""
        assert self.orch is not None and self.orch.err is not None
        text = self.orch.err.read_bytes() if self.orch.err.exists() else b""
        return b'"name":"stream"' in text and b'"state":"running"' in text

    def do_orchestrator_restart(self, k: int) -> None:
        how = "sigkill" if k % 2 == 0 else "sigterm"
        self.wait(self.orch_ready, "the orchestrator's stream receiver to run")  # kill a working one
        time.sleep(self.rng.uniform(0.0, 0.3))  # land anywhere in a send
        stored_before = stored_count(self.orch_db)
        self.stop_orch(how)
        down = self.rng.uniform(0.2, 1.5)
        time.sleep(down)
        self.start_orch()
        self.note(f"orchestrator {how} + restart", down_s=round(down, 2), stored=stored_before)

    def do_oracle_kill(self) -> None:
        assert self.oracle is not None
        time.sleep(self.rng.uniform(0.0, 0.2))
        code = self.oracle.stop(signal.SIGKILL)
        if code != -signal.SIGKILL:
            raise AssertionError(f"oracle was not SIGKILLed (exit {code}): {self.oracle.stderr()[-2000:]}")
        self.oracle = None
        draining = not self.oracle_on_current_file()
        self.start_oracle()
        self.note("oracle SIGKILL + restart", while_draining_renamed_file=draining)

    def do_rename(self) -> None:
        waited = self.wait(self.oracle_on_current_file, "the oracle to follow the current file before a rename")
        self.rotated += 1
        os.rename(self.logfile, self.logfile.with_name(f"{self.logfile.name}.{self.rotated}"))
        self.logfile.touch()
        self.note("rotate by rename", waited_s=round(waited, 2))

    def do_copytruncate(self) -> None:
        waited = self.wait(self.oracle_at_end, "the oracle to commit the end of the log before copytruncate")
        self.rotated += 1
        shutil.copyfile(self.logfile, self.logfile.with_name(f"{self.logfile.name}.{self.rotated}"))
        os.truncate(self.logfile, 0)

        def truncation_seen() -> bool:
            pos = stored_position(self.oracle_db, self.logfile)
            return pos is not None and pos.get("offset") == 0

        waited += self.wait(truncation_seen, "the oracle to commit the truncation")
        self.note("rotate by copytruncate", waited_s=round(waited, 2))

    def schedule(self) -> dict[int, str]:
        """Chunk index -> action, spread evenly; an oracle kill follows each rename closely (kill while draining)."""
        left = Counter(orch=self.cfg.orchestrator_restarts, oracle=self.cfg.oracle_kills, rename=self.cfg.renames,
                       copytruncate=self.cfg.copytruncates)
        pattern = ["orch", "rename", "oracle", "orch", "copytruncate", "orch", "rename", "oracle", "copytruncate",
                   "orch", "orch"]
        order: list[str] = []
        while sum(left.values()):
            for kind in pattern:
                if left[kind] > 0:
                    order.append(kind)
                    left[kind] -= 1
        chunks = max(1, -(-self.cfg.events // self.cfg.chunk))
        first, last = 1, max(1, chunks - 2)
        out: dict[int, str] = {}
        for i, kind in enumerate(order):
            at = first + round(i * (last - first) / max(1, len(order) - 1))
            while at in out:
                at += 1
            out[at] = kind
        return out

    # -- the run ---------------------------------------------------------------------------------------------

    def run(self) -> ChaosResult:
        cfg = self.cfg
        self.dir.mkdir(parents=True, exist_ok=True)
        self.rules.write_text(BURST_RULES)
        self.logfile.touch()
        self.nodes = {n.hostname: n for n in self.cluster.start(
            ORACLE, ORCH, trust=[(ORACLE, ORCH)],
            faults={ORCH: {"drop_rate": cfg.drop_rate, "seed": cfg.seed}})}
        self.started = time.monotonic()
        orch_restarts = oracle_kills = 0
        plan = self.schedule()
        try:
            self.start_orch()
            self.start_oracle()
            chunk = 0
            while self.written < cfg.events:
                self.write_chunk(min(cfg.chunk, cfg.events - self.written))
                kind = plan.get(chunk)
                if kind == "orch":
                    orch_restarts += 1
                    self.do_orchestrator_restart(orch_restarts)
                elif kind == "oracle":
                    oracle_kills += 1
                    self.do_oracle_kill()
                elif kind == "rename":
                    self.do_rename()
                elif kind == "copytruncate":
                    self.do_copytruncate()
                chunk += 1
                time.sleep(cfg.chunk_pause_s)
            writing_done = time.monotonic() - self.started
            self.note("all lines written")

            def settled() -> bool:
                # Nothing left to do: the oracle committed the end of the log and has nothing pending. (Whether
                # what it delivered was really stored is the checker's business, not a reason to keep waiting.)
                return outbox_pending(self.oracle_db) == 0 and self.oracle_at_end()

            self.wait(settled, "the oracle to read everything and deliver its outbox", timeout=cfg.deadline_s)
            self.note("settled")
        finally:
            self.stop_all()
        wall = time.monotonic() - self.started
        result = ChaosResult(self.dir, self.logfile, self.oracle_db, self.orch_db, self.orch_runs, self.oracle_outs,
                             self.written)
        result.figures = self.figures(wall, writing_done, orch_restarts, oracle_kills)
        return result

    def figures(self, wall: float, writing: float, orch_restarts: int, oracle_kills: int) -> dict[str, Any]:
        sends: list[dict[str, Any]] = []
        for out in self.oracle_outs:
            objs, _ = parse_json_lines(out, allow_torn_tail=True)
            sends += [o for o in objs if o.get("type") == "SendResult"]
        failed = Counter(str(o.get("error_code")) for o in sends if not o.get("ok"))
        acks = dict(query(self.oracle_db, "SELECT COALESCE(ack, state), COUNT(*) FROM outbox GROUP BY 1"))
        return {
            "events": self.cfg.events,
            "wall_s": round(wall, 1),
            "writing_s": round(writing, 1),
            "drain_after_writing_s": round(wall - writing, 1),
            "orchestrator_restarts": orch_restarts,
            "oracle_sigkills": oracle_kills,
            "rotations": {"rename": self.cfg.renames, "copytruncate": self.cfg.copytruncates},
            "drop_rate": self.cfg.drop_rate,
            "connect_timeout_s": self.cfg.connect_timeout_s,
            "send_attempts": len(sends),
            "send_failures": dict(failed),
            "outbox_acks": acks,
            "stored": stored_count(self.orch_db),
            "timeline": self.timeline,
        }


def run_chaos(cluster: SimCluster, workdir: Path, config: ChaosConfig | None = None,
              log: Callable[[str], None] | None = None) -> ChaosResult:
    """Run one chaos scenario (see the module docstring); every process it started is stopped when it returns."""
    return ChaosRun(cluster, workdir, config or ChaosConfig(), log).run()


# --------------------------------------------------------------------------------------------------------------
# the checker


def check_chaos(result: ChaosResult) -> list[str]:
    """Every way the run could have broken the guarantee, as readable problems (empty list = it held).

    * stored exactly once: the orchestrator's ids == the oracle's outbox ids (nothing lost, nothing invented);
    * detected exactly once: one stored event per written line (source IP), none for anything else — a line re-read
      after a kill -9 must not produce a second event;
    * shown exactly once: across every orchestrator run's stdout each stored id appears once; the only excuse for
      "stored but not shown" is a SIGKILL between the commit and the print, and then only for that run's very last
      transaction (reported in ``figures`` as ``unshown_at_sigkill``);
    * nothing quarantined, nothing left pending or rejected in the outbox, per-sensor seq without holes or repeats;
    * offsets consistent: the stored position is the end of the current log, on a line boundary, of that file.

    ``figures["lost_unconfirmed"]`` counts lost events the oracle had marked ``unconfirmed`` (a connect that ended
    without a reply), the signature of the fixed sender bug — reported to make a regression easy to recognise.
    """
    problems: list[str] = []
    outbox = query(result.oracle_db, "SELECT id, state, seq, ack, body FROM outbox")
    events = query(result.orch_db, "SELECT id, source_ip, seq, rowid, received_at FROM events")
    if not outbox:
        problems.append("the oracle's outbox is empty or unreadable")
    if not events:
        problems.append("the orchestrator stored nothing or its database is unreadable")

    stored = [r[0] for r in events]
    known = set(stored)
    unconfirmed_lost = {r[0]: r for r in outbox if r[3] == "unconfirmed" and r[0] not in known}
    result.figures["lost_unconfirmed"] = len(unconfirmed_lost)
    sent = [r[0] for r in outbox]
    for label, ids in (("outbox", [r[0] for r in outbox]), ("orchestrator", stored)):
        for i, n in Counter(ids).items():
            if n > 1:
                problems.append(f"{label} holds id {i} {n} times")
    missing, extra = set(sent) - known, known - set(sent)
    for i in sorted(missing)[:20]:
        problems.append(f"lost: detection {i} was committed by the oracle but never stored by the orchestrator")
    for i in sorted(extra)[:20]:
        problems.append(f"unknown: the orchestrator stored {i}, which the oracle never produced")

    states = Counter(r[1] for r in outbox)
    if set(states) - {"delivered"}:
        problems.append(f"outbox rows not delivered at the end: {dict(states)}")

    ips = Counter(r[1] for r in events)
    expected = {line_ip(i) for i in range(result.lines_written)}
    for ip, n in ips.items():
        if n > 1:
            problems.append(f"line for {ip} produced {n} stored events (detected more than once)")
    for ip in sorted(expected - set(ips))[:20]:
        problems.append(f"line for {ip} was written but no event for it was stored")
    for ip in sorted(set(ips) - expected)[:20]:
        problems.append(f"event for {ip}, which no written line holds")

    numbered = sorted(r[2] for r in outbox)
    if numbered != list(range(len(numbered))):
        problems.append("the oracle's seq numbers are not 0..n-1 (a repeat or a hole at the source)")
    seqs = sorted(r[2] for r in events)
    want = sorted(r[2] for r in outbox)
    if seqs != want:
        dup = [s for s, n in Counter(seqs).items() if n > 1][:5]
        holes = sorted(set(want) - set(seqs))[:5]
        problems.append(f"per-sensor seq at the orchestrator: repeated {dup}, missing {holes}")

    quarantined = query(result.orch_db, "SELECT COUNT(*) FROM quarantine")
    if quarantined != [(0,)]:
        problems.append(f"quarantine is not empty: {quarantined}")

    problems += _check_shown(result, events)

    pos_problem = position_problem(stored_position(result.oracle_db, result.log), result.log)
    if pos_problem:
        problems.append(f"offsets: {pos_problem}")
    keys = [r[0] for r in query(result.oracle_db, "SELECT key FROM offsets")]
    if keys != ["file:" + os.path.abspath(result.log)]:
        problems.append(f"offsets: unexpected keys {keys}")
    return problems


def _check_shown(result: ChaosResult, events: list[tuple[Any, ...]]) -> list[str]:
    problems: list[str] = []
    shown: Counter[str] = Counter()
    by_rowid = {r[0]: (r[3], r[4]) for r in events}
    unshown_ok: set[str] = set()
    lower = 0
    for run in result.orch_runs:
        killed = run.ended == "sigkill"
        try:
            objs, _torn = parse_json_lines(run.out, allow_torn_tail=killed)
        except AssertionError as exc:
            problems.append(f"shown output: {exc}")
            objs = []
        shown.update(str(o.get("id")) for o in objs)
        if killed:
            # Events this run committed in its last transaction may have missed the print (SIGKILL in between).
            mine = [(rid, at, i) for i, (rid, at) in by_rowid.items() if lower < rid <= run.max_rowid]
            if mine:
                last_at = max(at for _, at, _ in mine)
                unshown_ok |= {i for _, at, i in mine if at == last_at}
        lower = max(lower, run.max_rowid)
    for i, n in shown.items():
        if n > 1:
            problems.append(f"shown {n} times: {i}")
        if i not in by_rowid:
            problems.append(f"shown but not stored: {i}")
    unshown = set(by_rowid) - set(shown)
    excused = unshown & unshown_ok
    for i in sorted(unshown - excused)[:20]:
        problems.append(f"stored but never shown: {i}")
    result.figures["unshown_at_sigkill"] = len(excused)
    result.figures["shown"] = sum(shown.values())
    return problems


# --------------------------------------------------------------------------------------------------------------
# planting faults (the harness's own test)


def doctor(result: ChaosResult, dest: Path, fault: str, rng: random.Random | None = None) -> tuple[ChaosResult, str]:
    """Copy ``result`` into ``dest`` and plant one fault; returns the doctored result and the id/IP affected.

    ``lose``: delete one stored event from the orchestrator's database (a lost event).
    ``show_twice``: repeat one accepted-event line in an orchestrator run's stdout (shown twice).
    ``detect_twice``: add a second event (new id, both sides) for an IP already detected (a re-read line).
    """
    rng = rng or random.Random(0)
    shutil.copytree(result.workdir, dest, ignore=shutil.ignore_patterns("*.log*", "sim"))
    moved = replace(
        result,
        workdir=dest,
        oracle_db=dest / result.oracle_db.relative_to(result.workdir),
        orch_db=dest / result.orch_db.relative_to(result.workdir),
        orch_runs=[replace(r, out=dest / r.out.relative_to(result.workdir)) for r in result.orch_runs],
        oracle_outs=[dest / p.relative_to(result.workdir) for p in result.oracle_outs],
        figures={},
    )
    ids = [r[0] for r in query(moved.orch_db, "SELECT id FROM events ORDER BY rowid")]
    victim = rng.choice(ids)
    if fault == "lose":
        _write(moved.orch_db, "DELETE FROM events WHERE id=?", victim)
        return moved, victim
    if fault == "show_twice":
        for run in moved.orch_runs:
            lines = [x for x in run.out.read_bytes().splitlines() if x.strip()]
            if lines:
                line = rng.choice([x for x in lines if x.startswith(b"{") and x.endswith(b"}")])
                with run.out.open("ab") as f:
                    f.write(line + b"\n")
                return moved, str(orjson.loads(line)["id"])
        raise AssertionError("no shown lines to repeat")
    if fault == "detect_twice":
        row = query(moved.orch_db, "SELECT body, source_ip FROM events WHERE id=?", victim)[0]
        body = orjson.loads(row[0])
        body["id"] = "doctored-" + victim
        body["seq"] = 10**9
        raw = orjson.dumps(body)
        _write(moved.orch_db, "INSERT INTO events(id, received_at, source_ip, anomaly, severity, sensor, seq, body) "
               "VALUES (?, 0, ?, 'burst_test', 1, ?, ?, ?)", body["id"], row[1], SENSOR, body["seq"], raw)
        _write(moved.oracle_db, "INSERT INTO outbox(id, seq, created, body, state) VALUES (?, ?, 0, ?, 'delivered')",
               body["id"], body["seq"], raw)
        return moved, str(row[1])
    raise ValueError(f"unknown fault {fault!r}")


def _write(db: Path, sql: str, *args: Any) -> None:
    conn = sqlite3.connect(db)
    try:
        with conn:
            conn.execute(sql, args)
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------------------------
# fast rotation: the oracle's tailer at its real settings against a busy, fast-rotating log (issue 11, section 5)


@dataclass(frozen=True)
class RotationCase:
    """A writer at ``rate`` lines/s whose log logrotate shifts every ``shift_every_s`` (``auth.log`` -> ``.1`` ->
    ``.2`` …, ``rotate keep``, ``create``).

    Shifts and deletions happen at line counts, not at wall-clock times, so every run writes the same lines to the
    same generations; the pacing only makes the wall-clock spacing what the case says. After a rename the writer
    still writes ``late_lines`` through its old handle (a daemon that reopens its log on logrotate's HUP), which the
    tailer must deliver before the new file's lines.
    """

    name: str
    lines: int
    shift_every_s: float
    rate: float = 2500.0
    keep: int = 5
    """Rotated copies kept; a shift past that deletes the oldest (which the tailer may still be draining)."""
    late_lines: int = 20
    delete_new_after_s: float | None = None
    """Delete the new file this long after each rename; the writer then creates it again."""


@dataclass
class RotationResult:
    """What a rotation run left: the oracle's database, and which lines went to which generation."""

    case: RotationCase
    log: Path
    oracle_db: Path
    generations: list[tuple[str, int, int]]
    """(how the generation ended, first line, last line + 1), in writing order."""
    figures: dict[str, Any] = field(default_factory=dict)


class RotatingWriter:
    """Writes burst lines (one detection each) at a steady rate and rotates the log the way ``RotationCase`` says."""

    def __init__(self, case: RotationCase, log: Path) -> None:
        self.case = case
        self.log = log
        self.written = 0
        self.generations: list[tuple[str, int, int]] = []
        self._gen_start = 0
        self._handle = log.open("ab")
        self._stale: Any = None  # the handle still open on the renamed file, until the "HUP"
        self._stale_until = 0

    def _lines_at(self, seconds: float | None) -> int:
        return round(self.case.rate * seconds) if seconds else 0

    def _end_generation(self, how: str) -> None:
        self.generations.append((how, self._gen_start, self.written))
        self._gen_start = self.written

    def shift(self) -> None:
        keep, log = self.case.keep, self.log
        for n in range(keep - 1, 0, -1):
            older = log.with_name(f"{log.name}.{n}")
            if older.exists():
                os.replace(older, log.with_name(f"{log.name}.{n + 1}"))
        os.rename(log, log.with_name(f"{log.name}.1"))
        log.touch()  # logrotate's `create`
        self._stale, self._handle = self._handle, None
        self._stale_until = self.written + self.case.late_lines

    def delete_new(self) -> None:
        os.unlink(self.log)
        self._end_generation("deleted")
        assert self._handle is not None
        self._handle.close()
        self._handle = self.log.open("ab")  # the writer creates it again

    def _write(self, n: int) -> None:
        if self._stale is not None:
            n = min(n, self._stale_until - self.written)
            self._stale.write(burst_lines(self.written, n).encode())
            self._stale.flush()
            self.written += n
            if self.written >= self._stale_until:
                self._stale.close()
                self._stale = None
                self._end_generation("renamed")
                self._handle = self.log.open("ab")  # reopened after the "HUP"
            return
        assert self._handle is not None
        self._handle.write(burst_lines(self.written, n).encode())
        self._handle.flush()
        self.written += n

    def run(self) -> float:
        """Write every line; returns the wall time it took."""
        case = self.case
        every = self._lines_at(case.shift_every_s)
        delete_after = self._lines_at(case.delete_new_after_s)
        next_shift, next_delete = every, -1
        began = time.monotonic()
        while self.written < case.lines:
            stop_at = min(x for x in (case.lines, next_shift, next_delete) if x > self.written)
            n = min(25, stop_at - self.written)
            due = began + self.written / case.rate
            if due > time.monotonic():
                time.sleep(due - time.monotonic())
            self._write(n)
            if self.written == next_shift and self.written < case.lines:
                self.shift()
                next_shift += every
                if delete_after:
                    next_delete = self.written + delete_after
            elif self.written == next_delete and self._stale is None:
                self.delete_new()
                next_delete = -1
        if self._stale is not None:
            self._stale.close()
            self._stale = None
            self._end_generation("renamed")
        if self._handle is not None:
            self._handle.close()
        self._end_generation("current")
        return time.monotonic() - began


def run_rotation(case: RotationCase, workdir: Path, log: Callable[[str], None] | None = None,
                 settle_s: float = 20.0) -> RotationResult:
    """Start a headless oracle (real tailer settings: watchdog, 5 s rotation grace) on an empty log, write the case,
    and wait until it has committed as many detections as lines were written and the end of the current log (or
    ``settle_s`` has passed since writing ended). No orchestrator is needed: the oracle commits each detection to its
    outbox together with the log position, whether or not it can send it."""
    say = log or (lambda _msg: None)
    workdir.mkdir(parents=True, exist_ok=True)
    rules, logfile = workdir / "burst.toml", workdir / "auth.log"
    rules.write_text(BURST_RULES)
    logfile.touch()
    oracle_db = workdir / "oracle" / "oracle.db"
    oracle = Proc("oracle", ["--peer", "nobody-listens", "--log", str(logfile), "--from-start", "--rules",
                             str(rules), "--sensor", SENSOR, "--state-dir", str(workdir / "oracle")],
                  {}, workdir / "oracle.out", err=workdir / "oracle.err")
    writer = RotatingWriter(case, logfile)
    try:
        deadline = time.monotonic() + 30
        while stored_position(oracle_db, logfile) is None:  # placed on the (empty) log: every line is new
            if oracle.popen.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the oracle did not start: {oracle.stderr()[-2000:]}")
            time.sleep(0.05)
        writing = writer.run()
        say(f"{case.name}: wrote {writer.written} lines in {writing:.1f}s over {len(writer.generations)} files")
        ended = time.monotonic()
        while time.monotonic() - ended < settle_s:
            if oracle.popen.poll() is not None:
                raise AssertionError(f"the oracle exited ({oracle.popen.returncode}): {oracle.stderr()[-2000:]}")
            if detections(oracle_db) >= writer.written and position_problem(
                    stored_position(oracle_db, logfile), logfile) is None:
                break
            time.sleep(0.1)
        caught_up = time.monotonic() - ended
        time.sleep(0.3)  # anything read twice would show now
    finally:
        code = oracle.stop()
    result = RotationResult(case, logfile, oracle_db, writer.generations)
    result.figures = {"case": case.name, "lines": writer.written, "files": len(writer.generations),
                      "writing_s": round(writing, 2), "caught_up_after_writing_s": round(caught_up, 2),
                      "detections": detections(oracle_db), "oracle_exit": code}
    return result


def detections(db: Path) -> int:
    rows = query(db, "SELECT COUNT(*) FROM outbox")
    return int(rows[0][0]) if rows else 0


def check_rotation(result: RotationResult) -> list[str]:
    """Exact line accounting: each written line was detected once, in writing order (so the rest of a rotated file
    came before the next file's lines), and the stored position is the end of the current log. Lost lines are
    reported per generation."""
    problems: list[str] = []
    ips = [str(orjson.loads(body)["source_ip"]) for (body,) in
           query(result.oracle_db, "SELECT body FROM outbox ORDER BY seq")]
    index = {line_ip(i): i for i in range(result.generations[-1][2])}
    got = [index.get(ip, -1) for ip in ips]
    if -1 in got:
        problems.append(f"{got.count(-1)} detections for addresses no written line holds")
    for i, n in Counter(got).items():
        if n > 1 and i >= 0:
            problems.append(f"line {i} detected {n} times")
    seen = set(got)
    for k, (how, first, end) in enumerate(result.generations):
        lost = [i for i in range(first, end) if i not in seen]
        if lost:
            problems.append(f"file {k + 1} ({how}, lines {first}-{end - 1}): {len(lost)} of {end - first} lines "
                            f"lost (first {lost[0]})")
    delivered = [i for i in got if i >= 0]
    for pos, (a, b) in enumerate(zip(delivered, delivered[1:], strict=False)):
        if b <= a:
            problems.append(f"out of order: line {b} delivered after line {a} (detection {pos + 1})")
            break
    pos_problem = position_problem(stored_position(result.oracle_db, result.log), result.log)
    if pos_problem:
        problems.append(f"offsets: {pos_problem}")
    return problems
