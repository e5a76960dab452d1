"""Reusable pytest fixtures that run pilot-sim nodes (emulated Pilot network on Unix sockets).

Use from any test module::

    from sim_fixtures import sim_cluster, sim_nodes  # noqa: F401  (or: pytest_plugins = ["sim_fixtures"])

    def test_something(sim_nodes):
        nodes = sim_nodes("oracle", "orch", trust=[("oracle", "orch")])
        orch = nodes["orch"]
        orch.env       # environment to run pilot-sim / pilot-tui as that node (HOME, PILOT_SOCKET, PILOT_SIM_HOME)
        orch.hostname, orch.address, orch.socket, orch.home, orch.node_id
        orch.json("inbox")                      # `pilot-sim --json inbox` as orch -> data dict
        orch.run("connect", "oracle", "1000", input="...")   # CompletedProcess (text)

Every node is stopped when the test ends, whatever happens. Faults per node:
``sim_nodes("a", "b", faults={"b": {"refuse_dials": 2}})``; at runtime: ``cluster.set_faults(node, ...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pilot_tui.sim.cluster import SimCluster, SimNode


@pytest.fixture
def sim_cluster(tmp_path: Any) -> Iterator[SimCluster]:
    """A :class:`SimCluster` rooted in the test's tmp dir; every node it started is stopped afterwards."""
    cluster = SimCluster(tmp_path / "sim")
    try:
        yield cluster
    finally:
        cluster.stop_all()


@pytest.fixture
def sim_nodes(sim_cluster: SimCluster) -> Callable[..., dict[str, SimNode]]:
    """Factory: ``sim_nodes("a", "b", trust=[("a", "b")], faults={...})`` -> ``{"a": SimNode, "b": SimNode}``."""

    def factory(*hostnames: str, **kwargs: Any) -> dict[str, SimNode]:
        return {node.hostname: node for node in sim_cluster.start(*hostnames, **kwargs)}

    return factory
