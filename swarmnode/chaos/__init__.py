"""Chaos for real processes: `python -m swarmnode.chaos`.

Where `swarmnode.sim` proves the protocols on a virtual network, this runs
real `swarmnode run` processes, each in a network namespace of its own on a
Linux bridge, loads them with concurrent clients, and breaks them on a
seeded schedule: partitions (nftables inside the namespaces), kill -9 and
restart, SIGSTOP stalls, wall-clock jumps and drift, a full disk, and a
cluster-key rotation. Every client operation is recorded (invoke, then ok,
fail or info) in a JSON Lines history; once the faults are healed the run
waits for the cluster to converge by itself and checks the same oracles as
the simulator against what the real processes did.
"""
