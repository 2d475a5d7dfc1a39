"""Metadata filters for `vsearch`: equality and membership, applied inside the search.

A filter maps metadata fields to conditions, all of which must hold:

    {"topic": "x"}                    meta["topic"] == "x", or "x" is in the list meta["topic"]
    {"tag": {"$in": ["a", "b"]}}      the same test for any of the values
    {"tag": {"$eq": "a"}}             the same as {"tag": "a"}

Conditions compare scalars (strings, numbers, booleans, null, bytes). The index
keeps, per namespace, a posting set of labels for every (field, value) pair of
every entry's metadata, so a filter turns into a set of allowed labels before
the graph walk starts: hnswlib then only ever returns allowed labels, and the
size of that set says whether an exact scan is cheaper (`exact_below`).
Values are tagged with their type so that `true` never matches `1`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from swarmnode.errors import BadRequest

Posting = tuple[str, str, Any]

MAX_FIELDS = 32
MAX_VALUES = 1_024


def _tag(value: Any) -> str | None:
    if isinstance(value, bool):
        return "b"
    if isinstance(value, int | float):
        return "n"
    if isinstance(value, str):
        return "s"
    if isinstance(value, bytes):
        return "y"
    if value is None:
        return "z"
    return None


def posting_keys(meta: dict[str, Any] | None) -> tuple[Posting, ...]:
    """The (field, type, value) pairs an entry's metadata can be filtered on."""
    if not meta:
        return ()
    out: dict[Posting, None] = {}
    for field, value in meta.items():
        items = value if isinstance(value, list) else (value,)
        for item in items:
            tag = _tag(item)
            if tag is not None:
                out[(field, tag, item)] = None
    return tuple(out)


@dataclass(frozen=True)
class Filter:
    """Every clause must hold; a clause holds when any of its postings is present."""

    clauses: tuple[tuple[Posting, ...], ...]

    def matches(self, postings: tuple[Posting, ...]) -> bool:
        have = set(postings)
        return all(any(p in have for p in clause) for clause in self.clauses)

    def allowed(self, index: dict[Posting, set[int]]) -> set[int]:
        """The labels that pass, from the posting sets (the caller must not mutate the result)."""
        sets: list[set[int]] = []
        for clause in self.clauses:
            found = [index[p] for p in clause if p in index]
            if not found:
                return set()
            if len(found) == 1:
                sets.append(found[0])
            else:
                sets.append(set().union(*found))
        sets.sort(key=len)
        if len(sets) == 1:
            return sets[0]
        result = sets[0] & sets[1]
        for s in sets[2:]:
            result &= s
        return result


def _scalar(field: str, value: Any) -> Posting:
    tag = _tag(value)
    if tag is None:
        raise BadRequest(
            f"vsearch: filter on {field!r} must compare a string, number, boolean, null or bytes"
        )
    return (field, tag, value)


def parse_filter(raw: Any) -> Filter | None:
    """A client's filter map, validated; None when there is nothing to filter on."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise BadRequest("vsearch: filter must be a map of metadata field to condition")
    if len(raw) > MAX_FIELDS:
        raise BadRequest(f"vsearch: a filter has at most {MAX_FIELDS} fields")
    clauses = []
    for field, cond in raw.items():
        if not isinstance(field, str) or not field:
            raise BadRequest("vsearch: filter fields must be non-empty strings")
        if isinstance(cond, dict):
            if len(cond) != 1 or next(iter(cond)) not in ("$in", "$eq"):
                raise BadRequest(
                    f"vsearch: filter on {field!r}: the only operators are $in and $eq"
                )
            op, arg = next(iter(cond.items()))
            if op == "$eq":
                clauses.append((_scalar(field, arg),))
                continue
            if not isinstance(arg, list) or not arg or len(arg) > MAX_VALUES:
                raise BadRequest(
                    f"vsearch: $in on {field!r} takes a list of 1 to {MAX_VALUES} values"
                )
            clauses.append(tuple(dict.fromkeys(_scalar(field, v) for v in arg)))
        else:
            clauses.append((_scalar(field, cond),))
    return Filter(tuple(clauses)) if clauses else None
