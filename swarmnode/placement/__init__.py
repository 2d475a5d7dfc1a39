"""Placement of sharded namespaces: which nodes hold which partitions.

A namespace with `replicas = R` is split into a fixed power-of-two number of
partitions; a key's partition is the top bits of the same hash that picks its
Merkle leaf, so a partition is a contiguous run of leaves (a subtree) of the
namespace's tree. Each partition lives on the R members ranked highest by
rendezvous (highest-random-weight) hashing. Everything here is pure: the node
feeds membership in and gets owners, moves, covering sets and handoff traffic
out.
"""
