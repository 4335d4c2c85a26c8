"""Ray tests: one throwaway local Ray cluster (one node, 2 CPUs) per module, started with
``ray start --block`` on loopback and stopped at the module's end, so only one Ray is up
at a time; each run connects to it with ``--ray-address`` as a user would."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "dataset"))  # dataset_kit


@pytest.fixture(scope="module")
def cluster():
    from flowrun.ray_engine.local_cluster import LocalCluster  # Ray: in the test extra

    with LocalCluster(nodes=1, cpus_per_node=2) as c:
        yield c
