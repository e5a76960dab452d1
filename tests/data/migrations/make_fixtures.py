"""Regenerate the old-database fixtures of ``tests/test_migrations.py`` from the code of earlier commits.

Each fixture is the SQL text (``Connection.iterdump``) of a database that an earlier version of pilot-tui wrote
through its own store classes — text, so a review sees what an old install holds, and no binary file to trust.
Run from the repository root: ``python tests/data/migrations/make_fixtures.py`` (needs git; writes the ``*.sql``
files beside this script). Not collected by pytest.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

MAKERS = {
    # name: (commit, code run with that commit's package on sys.path; ``db`` is the file to fill)
    "events_41e6827": ("41e6827", """
from pilot_tui.model import Rejected, make_event
from pilot_tui.store.events import EventStore
s = EventStore(db)
evs = [make_event("203.0.113.7", "brute_force_ssh", "high", sensor="web-1", seq=i, evidence=[f"line {i}"])
       for i in range(3)]
s.ingest(evs, [Rejected(0, "bad_json", "not JSON", b"{oops"), Rejected(1, "bad_field", "severity", b'{"x":1}')],
         sender="0:0000.0000.0001", transport="stream")
s.set_state([evs[0].id], "acknowledged", note="seen it", by="ana")
s.record_mitigation("req-1", evs[1].id, "203.0.113.7", "blocked", "nftables")
s.record_mitigation_target("req-1", "0:0000.0000.0009")
s.mark_inbox_seen("msg-1")
s.close()
"""),
    "events_45c0b6d": ("45c0b6d", """
from pilot_tui.model import Rejected, make_event
from pilot_tui.store.events import EventStore
s = EventStore(db)
evs = [make_event("198.51.100.4", "port_scan", "medium", sensor="edge", seq=i, evidence=[f"probe {i}"])
       for i in range(4)]
s.ingest(evs, [Rejected(2, "bad_json", "not JSON", b"{junk")], sender="0:0000.0000.0002", transport="inbox",
         payload=b"{junk\\n")
s.set_state([evs[1].id], "false_positive", note="our scanner", by="bo")
s.record_mitigation("req-2", evs[2].id, "198.51.100.4", "blocked", "iptables")
s.record_mitigation_target("req-2", "0:0000.0000.0009")
s.close()
"""),
    "outbox_45c0b6d": ("45c0b6d", """
from pilot_tui.model import make_event
from pilot_tui.store.outbox import Outbox
o = Outbox(db)
stored = o.record([make_event("192.0.2.1", "brute_force_ssh", "high", evidence=[f"try {i}"]) for i in range(3)],
                  {"/var/log/auth.log": {"inode": 42, "offset": 1234}})
o.mark_delivered([stored[0].id], "stored")
o.mark_failed([stored[1].id], "connection refused")
o.close()
"""),
    "blocks_45c0b6d": ("45c0b6d", """
from pilot_tui.store.blocks import Block, BlockStore, Record, Reply
b = BlockStore(db)
b.record(Record(at=1000.0, kind="request", status="blocked", request_id="req-1", sender="0:0000.0000.0001",
                message_id="m-1", action="block", ip="203.0.113.7", argv=(("nft", "add", "element"),),
                answer=b'{"status":"blocked"}', processed="m-1",
                put_block=Block("203.0.113.7", "nftables", "req-1", "0:0000.0000.0001", "m-1", 1000.0, 4600.0,
                                "brute force", "ev-1"),
                reply=Reply("0:0000.0000.0001", "m-1", b'{"status":"blocked"}')))
b.pin_obey("orch.example", "0:0000.0000.0001", 1, 999.0)
b.close()
"""),
}


def make(name: str, commit: str, code: str, work: Path) -> None:
    tree = work / commit
    if not tree.exists():
        tree.mkdir()
        archive = subprocess.run(["git", "archive", commit, "pilot_tui"], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    state = work / f"{name}.state"
    state.mkdir(mode=0o700)
    db = state / "x.db"
    subprocess.run([sys.executable, "-c", f"db = {str(db)!r}\n{code}"], cwd=tree, check=True)
    dump = subprocess.run([sys.executable, "-c", "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\n"
                           "print('\\n'.join(c.iterdump()))", str(db)], check=True, capture_output=True, text=True)
    header = f"-- A database written by pilot-tui at commit {commit}; made by make_fixtures.py.\n"
    (HERE / f"{name}.sql").write_text(header + dump.stdout)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, (commit, code) in MAKERS.items():
            make(name, commit, code, Path(tmp))
            print(f"wrote {name}.sql")


if __name__ == "__main__":
    main()
