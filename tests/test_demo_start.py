"""`pilot-tui demo`'s start-up: the nodes start while the demo imports its UI, and nothing outlives a start that
fails half-way (the emulated node processes are stopped, the temporary directory goes)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pilot_tui.commands.demo import ORACLE, ORCH, demo_world

pytestmark = pytest.mark.timeout(60)


def _sim_daemons(root: Path) -> list[int]:
    """Live node processes whose command line names a directory under ``root``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"pilot_tui.sim.daemon" in cmdline and str(root).encode() in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def test_a_failure_while_the_nodes_start_stops_them(tmp_path: Path) -> None:
    seen: list[bool] = []

    def failing_import() -> None:
        seen.append(True)
        raise ImportError("a broken UI install")

    with pytest.raises(ImportError, match="a broken UI install"), demo_world(tmp_path, walk_ons=False,
                                                                         while_starting=failing_import):
        pytest.fail("the world must not come up")
    assert seen == [True]
    assert _sim_daemons(tmp_path) == []
    assert not (tmp_path / "sim").exists()


def test_the_nodes_come_up_trusted_while_the_caller_works(tmp_path: Path) -> None:
    with demo_world(tmp_path, walk_ons=False, while_starting=lambda: None) as world:
        pids = [node.pid for node in world.nodes.values()]
        assert len(pids) == 3 and all(pids)
        trusted = {t["hostname"] for t in world.cluster[ORACLE].json("trust")["trusted"]}
        assert trusted == {ORCH}
        assert os.path.isdir(world.logs)
    assert _sim_daemons(tmp_path) == []
