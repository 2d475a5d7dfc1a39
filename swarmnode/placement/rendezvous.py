"""Rendezvous (highest-random-weight) hashing: the owners of each partition.

Every member gets a weight for every (namespace, partition) from a hash of the
three; the partition's owners are the R members of highest weight, in that
order (Thaler and Ravishankar, 1996). Each node computes the same answer from
the same member list, nothing is stored, and when a member joins or goes, a
partition changes owners only where that member enters or leaves its top R:
about R/N of the partitions, the least any placement can move.

The namespace takes part in the hash so that two sharded namespaces do not
put the same partitions on the same nodes.
"""

from __future__ import annotations

from collections.abc import Iterable
from hashlib import blake2b

_PERSON = b"swarmnode-hrw"


def weight(ns: str, partition: int, node_id: str) -> int:
    """The rendezvous weight of `node_id` for one partition (64 bits)."""
    data = f"{ns}\x00{partition}\x00{node_id}".encode("utf-8", "surrogatepass")
    return int.from_bytes(blake2b(data, digest_size=8, person=_PERSON).digest(), "big")


def ranked(ns: str, partition: int, members: Iterable[str]) -> list[str]:
    """Every member, highest weight first (ties, which need a 64-bit collision, by id)."""
    return sorted(members, key=lambda m: (-weight(ns, partition, m), m))


def owners(
    ns: str, partition: int, members: Iterable[str], replicas: int | None
) -> tuple[str, ...]:
    """The owners of a partition: the `replicas` members of highest weight, best first
    (`None`: every member, still in rank order)."""
    order = ranked(ns, partition, members)
    return tuple(order if replicas is None else order[:replicas])


def owner_table(
    ns: str, partitions: int, members: Iterable[str], replicas: int | None
) -> list[tuple[str, ...]]:
    """The owners of every partition of a namespace, indexed by partition."""
    members = sorted(set(members))
    return [owners(ns, p, members, replicas) for p in range(partitions)]
