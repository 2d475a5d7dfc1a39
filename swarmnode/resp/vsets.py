"""Redis 8's vector sets over namespaces with a vector dimension.

A vector set key is a namespace name, and an element is a key of it: VADD
puts the element's vector (and its SETATTR attributes as the entry's meta,
keeping the value a msgpack client may have stored), VSIM is `vsearch`,
VREM a `delete`, VEMB a `get` with the vector. VADD on a set that does not
exist creates the namespace with the vector's dimension and the cosine
metric (`ns_init`); a namespace that exists without a dimension is not a
vector set (WRONGTYPE).

Scores: in a cosine namespace VSIM reports Redis's similarity, (1 + cosine)
/ 2, from 0 (opposite) to 1 (identical); namespaces made through the msgpack
API with the l2 or ip metric report the node's own score (distance or inner
product). FILTER takes the part of Redis's expression language the node's
filters can carry out inside the search (`translate_filter`). Index options
(Q8, BIN, NOQUANT, CAS, EF, M, FILTER-EF, TRUTH, NOTHREAD) are accepted and
have no effect: vectors are stored as float32 and searched with the node's
own parameters; REDUCE and VEMB's RAW form are refused.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from swarmnode.errors import SwarmError
from swarmnode.resp.args import parse_float, parse_int
from swarmnode.resp.codec import ErrorReply
from swarmnode.resp.errors import SYNTAX, WRONGTYPE
from swarmnode.resp.keys import decode_key
from swarmnode.resp.table import Spec

if TYPE_CHECKING:
    from swarmnode.resp.commands import Commands
    from swarmnode.resp.session import Session

IGNORED_FLAGS = frozenset({b"CAS", b"NOQUANT", b"Q8", b"BIN", b"TRUTH", b"NOTHREAD"})
IGNORED_WITH_VALUE = frozenset({b"EF", b"M", b"FILTER-EF"})


def _vector(argv: list[bytes], i: int) -> tuple[bytes | list[float], int, int]:
    """The vector at argv[i] (FP32 blob or VALUES n x...): (vector, its dimension, next i)."""
    if i >= len(argv):
        raise ErrorReply(SYNTAX)
    form = argv[i].upper()
    if form == b"FP32" and i + 1 < len(argv):
        blob = argv[i + 1]
        if not blob or len(blob) % 4:
            raise ErrorReply("ERR invalid vector specification: FP32 needs 4 bytes per component")
        return blob, len(blob) // 4, i + 2
    if form == b"VALUES" and i + 1 < len(argv):
        count = parse_int(argv[i + 1])
        if count < 1 or i + 2 + count > len(argv):
            raise ErrorReply("ERR invalid vector specification")
        values = [parse_float(x) for x in argv[i + 2 : i + 2 + count]]
        return values, count, i + 2 + count
    if form == b"REDUCE":
        raise ErrorReply("ERR REDUCE is not supported: vectors are stored at their full dimension")
    raise ErrorReply(SYNTAX)


async def _vector_set(c: Commands, raw: bytes) -> tuple[str, int | None]:
    """(namespace, its dimension); WRONGTYPE for a namespace that has no dimension."""
    ns = decode_key(raw)
    dim = await c.keys.dim(ns)
    if dim is None and ns in await c.keys.namespaces():
        raise ErrorReply(WRONGTYPE)
    return ns, dim


async def cmd_vadd(c: Commands, s: Session, argv: list[bytes]) -> Any:
    vector, dim, i = _vector(argv, 2)
    if i >= len(argv):
        raise ErrorReply(SYNTAX)
    element = decode_key(argv[i])
    i += 1
    attrs: dict[str, Any] | None = None
    set_attrs = False
    while i < len(argv):
        option = argv[i].upper()
        if option in IGNORED_FLAGS:
            i += 1
        elif option in IGNORED_WITH_VALUE and i + 1 < len(argv):
            parse_int(argv[i + 1])
            i += 2
        elif option == b"SETATTR" and i + 1 < len(argv):
            attrs = _attributes(argv[i + 1])
            set_attrs = True
            i += 2
        else:
            raise ErrorReply(SYNTAX)
    ns, have = await _vector_set(c, argv[1])
    if have is None:
        await c.call(s, "ns_init", ns=ns, dim=dim, metric="cosine")
        c.keys.invalidate()
    elif have != dim:
        raise ErrorReply(f"ERR Vector dimension mismatch - got {dim} but set has {have}")
    current = await c.call_quiet(s, "get", ns=ns, key=element)
    meta = attrs if set_attrs else (current or {}).get("meta")
    value = current["value"] if current is not None else None
    await c.call(s, "put", ns=ns, key=element, value=value, vector=vector, meta=meta)
    return 0 if current is not None else 1


def _attributes(raw: bytes) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        attrs = json.loads(raw)
    except ValueError:
        raise ErrorReply("ERR invalid JSON in SETATTR") from None
    if not isinstance(attrs, dict):
        raise ErrorReply("ERR SETATTR attributes must be a JSON object")
    return attrs


async def cmd_vsim(c: Commands, s: Session, argv: list[bytes]) -> Any:
    args: dict[str, Any] = {}
    if len(argv) > 3 and argv[2].upper() == b"ELE":
        args["key"] = decode_key(argv[3])
        i = 4
    else:
        args["vector"], _, i = _vector(argv, 2)
    with_scores = with_attrs = False
    epsilon: float | None = None
    while i < len(argv):
        option = argv[i].upper()
        if option == b"WITHSCORES":
            with_scores = True
            i += 1
        elif option == b"WITHATTRIBS":
            with_attrs = True
            i += 1
        elif option in IGNORED_FLAGS:
            i += 1
        elif i + 1 >= len(argv):
            raise ErrorReply(SYNTAX)
        elif option == b"COUNT":
            args["k"] = parse_int(argv[i + 1])
            if args["k"] < 1:
                raise ErrorReply("ERR COUNT must be a positive integer")
            i += 2
        elif option == b"EPSILON":
            epsilon = parse_float(argv[i + 1])
            i += 2
        elif option == b"FILTER":
            args["filter"] = translate_filter(argv[i + 1].decode("utf-8", "replace"))
            i += 2
        elif option == b"EF":
            args["ef"] = parse_int(argv[i + 1])
            i += 2
        elif option in IGNORED_WITH_VALUE:
            parse_int(argv[i + 1])
            i += 2
        else:
            raise ErrorReply(SYNTAX)
    ns, dim = await _vector_set(c, argv[1])
    if dim is None:
        return []
    try:
        reply = await c.call(s, "vsearch", ns=ns, **args)
    except SwarmError as exc:
        if exc.code == "not_found" and "key" in args:
            raise ErrorReply("ERR element not found in set") from None
        raise
    cosine = reply["metric"] == "cosine"
    hits = []
    for item in reply["items"]:
        score = (1 + item["score"]) / 2 if cosine else item["score"]
        if epsilon is not None and 1 - score > epsilon:
            continue
        attrs = json.dumps(item["meta"]) if item.get("meta") is not None else None
        hits.append((item["key"].encode(), float(score), attrs))
    if not with_scores and not with_attrs:
        return [name for name, _, _ in hits]
    if with_scores and with_attrs:
        if s.resp3:
            return {name: [score, attrs] for name, score, attrs in hits}
        return [x for hit in hits for x in hit]
    if with_scores:
        return {name: score for name, score, _ in hits}
    return {name: attrs for name, _, attrs in hits}


async def cmd_vrem(c: Commands, s: Session, argv: list[bytes]) -> Any:
    ns, dim = await _vector_set(c, argv[1])
    if dim is None:
        return 0
    result = await c.call(s, "delete", ns=ns, key=decode_key(argv[2]))
    return int(result["deleted"])


async def cmd_vcard(c: Commands, s: Session, argv: list[bytes]) -> Any:
    ns, dim = await _vector_set(c, argv[1])
    if dim is None:
        return 0
    return (await c.call(s, "ns_stats", ns=ns))["entries"]


async def cmd_vdim(c: Commands, s: Session, argv: list[bytes]) -> Any:
    _, dim = await _vector_set(c, argv[1])
    if dim is None:
        raise ErrorReply("ERR key does not exist")
    return dim


async def cmd_vemb(c: Commands, s: Session, argv: list[bytes]) -> Any:
    if len(argv) > 3:
        if len(argv) == 4 and argv[3].upper() == b"RAW":
            raise ErrorReply("ERR RAW is not supported: vectors are stored as float32")
        raise ErrorReply(SYNTAX)
    ns, dim = await _vector_set(c, argv[1])
    if dim is None:
        return None
    view = await c.call_quiet(s, "get", ns=ns, key=decode_key(argv[2]), vector=True)
    if view is None or view.get("vector") is None:
        return None
    return [float(x) for x in view["vector"]]


# --- FILTER expressions ---------------------------------------------------------------

_FILTER_TOKEN = re.compile(
    r"""\s*(?:
        (?P<field>\.[A-Za-z_][A-Za-z0-9_]*)
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
      | (?P<op>==|&&|\[|\]|,)
      | (?P<word>[A-Za-z_]+)
    )""",
    re.VERBOSE,
)
_WORDS = {"true": True, "false": False, "null": None}
FILTER_HELP = (
    "ERR FILTER supports .field == value, .field in [value, ...] and value in .field, "
    "joined by and (&&)"
)


def _tokens(expression: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    text = expression.rstrip()
    while pos < len(text):
        m = _FILTER_TOKEN.match(text, pos)
        if m is None:
            raise ErrorReply(FILTER_HELP)
        pos = m.end()
        kind = m.lastgroup
        raw = m.group(kind)
        if kind == "field":
            out.append(("field", raw[1:]))
        elif kind == "string":
            out.append(("value", re.sub(r"\\(.)", r"\1", raw[1:-1])))
        elif kind == "number":
            out.append(("value", int(raw) if re.fullmatch(r"-?\d+", raw) else float(raw)))
        elif kind == "word" and raw in _WORDS:
            out.append(("value", _WORDS[raw]))
        elif kind == "word" and raw in ("and", "in"):
            out.append(("op", "&&" if raw == "and" else "in"))
        elif kind == "op":
            out.append(("op", raw))
        else:
            raise ErrorReply(FILTER_HELP)
    return out


def translate_filter(expression: str) -> dict[str, Any]:
    """Redis's FILTER expression as the node's filter map (clauses ANDed, one per field).

    `.year == 1984` → {"year": 1984}; `.genre in ["a", "b"]` → {"genre": {"$in": [...]}};
    `"sf" in .tags` → {"tags": "sf"} (the node matches a list field by membership).
    """
    tokens = _tokens(expression)
    clauses: dict[str, Any] = {}
    i = 0
    while True:
        field, condition, i = _clause(tokens, i)
        if field in clauses:
            raise ErrorReply(f"ERR FILTER names .{field} twice; the node ANDs one clause a field")
        clauses[field] = condition
        if i == len(tokens):
            return clauses
        if tokens[i] != ("op", "&&"):
            raise ErrorReply(FILTER_HELP)
        i += 1


def _clause(tokens: list[tuple[str, Any]], i: int) -> tuple[str, Any, int]:
    window = tokens[i : i + 3]
    if len(window) == 3:
        (k1, a), op, (k3, b) = window
        if op == ("op", "==") and k1 == "field" and k3 == "value":
            return a, b, i + 3
        if op == ("op", "==") and k1 == "value" and k3 == "field":
            return b, a, i + 3
        if op == ("op", "in") and k1 == "value" and k3 == "field":
            return b, a, i + 3
        if op == ("op", "in") and k1 == "field" and window[2] == ("op", "["):
            values, j = _list(tokens, i + 3)
            return a, {"$in": values}, j
    raise ErrorReply(FILTER_HELP)


def _list(tokens: list[tuple[str, Any]], i: int) -> tuple[list[Any], int]:
    values: list[Any] = []
    while i < len(tokens):
        kind, value = tokens[i]
        if kind != "value":
            break
        values.append(value)
        i += 1
        if i < len(tokens) and tokens[i] == ("op", ","):
            i += 1
            continue
        if i < len(tokens) and tokens[i] == ("op", "]"):
            return values, i + 1
        break
    raise ErrorReply(FILTER_HELP)


SPECS: tuple[Spec, ...] = (
    Spec("vadd", -5, "Adds an element and its vector to a vector set (creating the set).",
         "key [REDUCE dim] (FP32 vector | VALUES num component ...) element [CAS] "
         "[NOQUANT | Q8 | BIN] [EF exploration-factor] [SETATTR attributes] [M numlinks]",
         "vector_set", "get, then put with vector and meta; ns_init for a new set",
         ("write", "denyoom"), (1, 1, 1), since="8.0.0", complexity="O(log(N))",
         handler=cmd_vadd),
    Spec("vsim", -4, "Returns the elements most similar to a vector or to an element.",
         "key (ELE element | FP32 vector | VALUES num component ...) [WITHSCORES] "
         "[WITHATTRIBS] [COUNT num] [EPSILON delta] [EF exploration-factor] "
         "[FILTER expression] [FILTER-EF effort] [TRUTH] [NOTHREAD]",
         "vector_set", "vsearch (k, ef, filter; key for ELE)", ("readonly",), (1, 1, 1),
         since="8.0.0", complexity="O(log(N))", handler=cmd_vsim),
    Spec("vrem", 3, "Removes an element from a vector set.", "key element", "vector_set",
         "delete", ("write",), (1, 1, 1), since="8.0.0", complexity="O(log(N))",
         handler=cmd_vrem),
    Spec("vcard", 2, "Returns the number of elements in a vector set.", "key",
         "vector_set", "ns_stats (live entries)", ("readonly", "fast"), (1, 1, 1),
         since="8.0.0", handler=cmd_vcard),
    Spec("vdim", 2, "Returns the dimension of the vectors in a vector set.", "key",
         "vector_set", "ns_list (the namespace's dim)", ("readonly", "fast"), (1, 1, 1),
         since="8.0.0", handler=cmd_vdim),
    Spec("vemb", -3, "Returns the vector of an element.", "key element [RAW]", "vector_set",
         "get with vector", ("readonly", "fast"), (1, 1, 1), since="8.0.0",
         handler=cmd_vemb),
)  # fmt: skip
