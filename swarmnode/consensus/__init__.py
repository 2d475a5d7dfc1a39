"""Consensus for what CRDTs cannot merge: a small Raft group and its state machine.

Two agents taking the same task, two contradicting decisions, a
compare-and-swap: these go through `raft.Raft` (a sans-IO state machine in
etcd-io/raft's shape, driven by the Ready contract of `ready.py`) into
`machine.StateMachine` (CAS registers, task claims with leases and fencing
tokens, first-wins decisions). `storage.py` keeps Raft's durable state,
`leases.py` ends leases on the leader's clock, `voters.py` chooses who votes.
`simnet.py`, `oracles.py`, `simworkload.py` and `chaos.py` simulate a group
under faults and check its safety at every step.
"""
