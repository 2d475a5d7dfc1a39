"""Deterministic simulation: a whole swarmnode cluster in one process, replayable from a seed.

The production `Node` (membership, dissemination, anti-entropy, LMDB storage)
runs unmodified on a virtual clock and a virtual network that loses,
duplicates, delays, reorders and cuts packets, with nodes that crash and
restart, run skewed clocks or run slowly. A workload records every client
operation; oracles judge the final state against that history.

    python -m swarmnode.sim --scenario partition --seed 1234 --nodes 10

Modules: `loop` (virtual time), `network` (links and faults), `cluster` (nodes
and their hosts), `workload` (clients and history), `nemesis` (fault
schedules), `oracles` (what must hold), `run` (one run, end to end),
`metrics` (measurements for the scenario reports in simulations/).
"""

from swarmnode.sim.cluster import Cluster, ClusterConfig, SimNode
from swarmnode.sim.nemesis import SCENARIOS, Nemesis, NemesisConfig
from swarmnode.sim.network import Latency, LinkProfile, Network
from swarmnode.sim.run import RunResult, RunSpec, run
from swarmnode.sim.workload import History, OpRecord, Workload, WorkloadConfig

__all__ = [
    "SCENARIOS",
    "Cluster",
    "ClusterConfig",
    "History",
    "Latency",
    "LinkProfile",
    "Nemesis",
    "NemesisConfig",
    "Network",
    "OpRecord",
    "RunResult",
    "RunSpec",
    "SimNode",
    "Workload",
    "WorkloadConfig",
    "run",
]
