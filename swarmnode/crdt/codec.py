"""Binary encoding of entries and their parts.

Format: one version byte, then a msgpack array of fixed shape (see
`encode_entry`). Maps and sets are written as sorted lists of pairs and user
values are canonical (sorted map keys), so equal states encode to identical
bytes on every replica: anti-entropy compares hashes of these bytes.

Audit fields are optional trailing elements: an entry's `agent` (the agent of
its latest write) follows its five parts, an MV version's `agent` its seven,
and each is written only when set. So every state written before agents
existed keeps its exact bytes (and digest), and one decoder reads both.

Decoding is for untrusted bytes from peers and disk alike. It raises
`DecodeError` for anything malformed and nothing else; msgpack's size limits
are bound to the input length, and msgpack's own nesting limit stops deep
recursion, so no input can hang the decoder or make it allocate without bound.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgpack

from swarmnode.crdt.causal import CausalContext, Dot
from swarmnode.crdt.counter import PNCounter
from swarmnode.crdt.entry import Entry
from swarmnode.crdt.lww import LWWRegister
from swarmnode.crdt.mvreg import MVRegister, Version
from swarmnode.crdt.orset import ORSet
from swarmnode.crdt.values import InvalidValue, canonical
from swarmnode.errors import DecodeError
from swarmnode.lazyimport import lazy_module

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy")

FORMAT_VERSION = 1
# Dots and counter slots are named by actors (`Entry.actor`): a node id of up
# to 64 bytes (the membership limit), a dot, and a timestamp in up to 16 hex digits.
MAX_NODE_ID = 64 + 1 + 16
MAX_MEMBER = 4096
MAX_AGENT = 64
"""Characters of an agent id (`agents/registrations.py` AGENT_RE)."""
U63 = (1 << 63) - 1

_packer = msgpack.Packer(use_bin_type=True, autoreset=True)


def packb(obj: Any) -> bytes:
    return _packer.pack(obj)


def unpackb(data: bytes) -> Any:
    """msgpack with limits tied to the input size and no extension types."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError("expected bytes")
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            use_list=True,
            ext_hook=_reject_ext,
        )
    except DecodeError:
        raise
    except Exception as exc:  # msgpack raises a zoo of types; callers see one.
        raise DecodeError(f"malformed msgpack: {exc.__class__.__name__}: {exc}") from None


def _reject_ext(code: int, data: bytes) -> Any:
    raise DecodeError(f"msgpack extension type {code} not allowed")


# --- encoding ----------------------------------------------------------------


def _pairs(d: dict[str, int]) -> list[list[Any]]:
    return [[k, d[k]] for k in sorted(d)]


def _dots(dots: Any) -> list[list[Any]]:
    return [[node, n] for node, n in sorted(dots)]


def _cc(cc: CausalContext) -> list[Any]:
    return [_pairs(cc.vv), _dots(cc.cloud)]


def _reg(r: LWWRegister | None) -> list[Any] | None:
    if r is None:
        return None
    return [r.ts, r.node, r.deleted, r.value, r.meta, r.vector, r.expires_at]


def _mv(m: MVRegister | None) -> list[Any] | None:
    if m is None:
        return None
    versions = [
        [node, n, v.value, v.ts, v.meta, v.vector, v.expires_at]
        + ([] if v.agent is None else [v.agent])
        for (node, n), v in sorted(m.versions.items())
    ]
    return [_cc(m.cc), versions]


def _counter(c: PNCounter | None) -> list[Any] | None:
    if c is None:
        return None
    return [_pairs(c.p), _pairs(c.n), _pairs(c.fp), _pairs(c.fn), c.expires_at, c.expiry_ts]


def orset_members_wire(s: ORSet) -> list[list[Any]]:
    return [[e, _dots(s.elems[e])] for e in sorted(s.elems)]


def _orset(s: ORSet | None) -> list[Any] | None:
    if s is None:
        return None
    return [_cc(s.cc), orset_members_wire(s), s.expires_at, s.expiry_ts]


def entry_to_wire(e: Entry) -> list[Any]:
    wire = [e.ts, _reg(e.reg), _mv(e.mv), _counter(e.counter), _orset(e.orset)]
    if e.agent is not None:
        wire.append(e.agent)
    return wire


def encode_entry(e: Entry) -> bytes:
    """Canonical bytes of an entry (full state or delta)."""
    return bytes([FORMAT_VERSION]) + packb(entry_to_wire(e))


def encode_dots(dots: Any) -> bytes:
    """Canonical bytes of one set member's dots (the store keeps members apart)."""
    return packb(_dots(dots))


# --- decoding ----------------------------------------------------------------


def _fail(what: str) -> DecodeError:
    return DecodeError(f"invalid {what}")


def _int(x: Any, what: str, lo: int = 0, hi: int = U63) -> int:
    if type(x) is not int or not lo <= x <= hi:
        raise _fail(what)
    return x


def _opt_int(x: Any, what: str) -> int | None:
    return None if x is None else _int(x, what)


def _node(x: Any) -> str:
    if type(x) is not str or not 0 < len(x) <= MAX_NODE_ID:
        raise _fail("node id")
    return x


def _list(x: Any, what: str, n: int | None = None) -> list[Any]:
    if type(x) is not list or (n is not None and len(x) != n):
        raise _fail(what)
    return x


def _with_agent(x: Any, what: str, n: int) -> tuple[list[Any], str | None]:
    """A fixed-shape list of `n` parts, optionally followed by the writing agent's id."""
    if type(x) is not list or len(x) not in (n, n + 1):
        raise _fail(what)
    if len(x) == n:
        return x, None
    agent = x[n]
    if type(agent) is not str or not 0 < len(agent) <= MAX_AGENT:
        raise _fail(f"{what}: agent")
    return x[:n], agent


def _value(x: Any) -> Any:
    try:
        return canonical(x)
    except InvalidValue as exc:
        raise DecodeError(f"invalid value: {exc}") from None


def _meta(x: Any) -> dict[str, Any] | None:
    if x is None:
        return None
    if type(x) is not dict:
        raise _fail("meta")
    return _value(x)


def _vector(x: Any) -> bytes | None:
    if x is None:
        return None
    if type(x) is not bytes or not x or len(x) % 4:
        raise _fail("vector")
    # The same rule as for a vector a client writes: no NaN or infinity may
    # reach the index, where it would poison every distance computed against it.
    if not np.isfinite(np.frombuffer(x, "<f4")).all():
        raise _fail("vector: NaN or infinite component")
    return x


def _bool(x: Any, what: str) -> bool:
    if type(x) is not bool:
        raise _fail(what)
    return x


def _pair_map(x: Any, what: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in _list(x, what):
        k, v = _list(item, what, 2)
        out[_node(k)] = _int(v, what)
    return out


def decode_dots(x: Any) -> frozenset[Dot]:
    dots = set()
    for item in _list(x, "dots"):
        node, n = _list(item, "dot", 2)
        dots.add((_node(node), _int(n, "dot counter", 1)))
    return frozenset(dots)


def _decode_cc(x: Any) -> CausalContext:
    vv_raw, cloud_raw = _list(x, "causal context", 2)
    vv = _pair_map(vv_raw, "version vector")
    if any(v < 1 for v in vv.values()):
        raise _fail("version vector")
    return CausalContext(vv, decode_dots(cloud_raw))


def _decode_reg(x: Any) -> LWWRegister | None:
    if x is None:
        return None
    ts, node, deleted, value, meta, vector, expires_at = _list(x, "register", 7)
    return LWWRegister(
        _int(ts, "timestamp"),
        _node(node),
        _value(value),
        _meta(meta),
        _vector(vector),
        deleted=_bool(deleted, "deleted flag"),
        expires_at=_opt_int(expires_at, "expiry"),
    )


def _decode_mv(x: Any) -> MVRegister | None:
    if x is None:
        return None
    cc_raw, versions_raw = _list(x, "mv register", 2)
    cc = _decode_cc(cc_raw)
    versions: dict[Dot, Version] = {}
    for item in _list(versions_raw, "versions"):
        parts, agent = _with_agent(item, "version", 7)
        node, n, value, ts, meta, vector, expires_at = parts
        dot = (_node(node), _int(n, "dot counter", 1))
        if dot not in cc:
            raise _fail("mv register: version outside its causal context")
        versions[dot] = Version(
            _value(value),
            _int(ts, "timestamp"),
            _meta(meta),
            _vector(vector),
            _opt_int(expires_at, "expiry"),
            agent,
        )
    return MVRegister(versions, cc)


def _decode_counter(x: Any) -> PNCounter | None:
    if x is None:
        return None
    p_raw, n_raw, fp_raw, fn_raw, expires_at, expiry_ts = _list(x, "counter", 6)
    p, n = _pair_map(p_raw, "counter"), _pair_map(n_raw, "counter")
    fp, fn = _pair_map(fp_raw, "counter"), _pair_map(fn_raw, "counter")
    # A reset floors what it observed, so a floor above its total is no state
    # any history produces; accepted, it would count negative increments.
    if any(v > p.get(k, 0) for k, v in fp.items()) or any(v > n.get(k, 0) for k, v in fn.items()):
        raise _fail("counter: reset floor above its total")
    return PNCounter(p, n, fp, fn, _opt_int(expires_at, "expiry"), _int(expiry_ts, "expiry ts"))


def decode_member(member: Any) -> str:
    if type(member) is not str or len(member) > MAX_MEMBER:
        raise _fail("set member")
    return member


def _decode_orset(x: Any) -> ORSet | None:
    if x is None:
        return None
    cc_raw, members_raw, expires_at, expiry_ts = _list(x, "set", 4)
    cc = _decode_cc(cc_raw)
    elems: dict[str, frozenset[Dot]] = {}
    for item in _list(members_raw, "set members"):
        member, dots_raw = _list(item, "set member", 2)
        dots = decode_dots(dots_raw)
        if not all(d in cc for d in dots):
            raise _fail("set: member dot outside its causal context")
        elems[decode_member(member)] = dots
    return ORSet(elems, cc, _opt_int(expires_at, "expiry"), _int(expiry_ts, "expiry ts"))


def entry_from_wire(x: Any) -> Entry:
    parts, agent = _with_agent(x, "entry", 5)
    ts, reg, mv, counter, orset = parts
    e = Entry(
        _int(ts, "timestamp"),
        reg=_decode_reg(reg),
        mv=_decode_mv(mv),
        counter=_decode_counter(counter),
        orset=_decode_orset(orset),
        agent=agent,
    )
    # `ts` is the max over every write the entry holds, and the receiver checks
    # only it against the max clock offset: a write stamped later inside would
    # slip past that check and win every LWW comparison until the clock caught up.
    inner = [e.reg.ts] if e.reg is not None else []
    if e.mv is not None:
        inner.extend(v.ts for v in e.mv.versions.values())
    # Counter and set expiries are last-writer-wins by the writing timestamp too.
    if e.counter is not None:
        inner.append(e.counter.expiry_ts)
    if e.orset is not None:
        inner.append(e.orset.expiry_ts)
    if inner and max(inner) > e.ts:
        raise _fail("entry: a write stamped after the entry's timestamp")
    return e


def decode_entry(data: bytes) -> Entry:
    """Decode `encode_entry` bytes; DecodeError for anything else."""
    if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) < 2:
        raise DecodeError("entry too short")
    if data[0] != FORMAT_VERSION:
        raise DecodeError(f"unknown entry format version {data[0]}")
    try:
        return entry_from_wire(unpackb(bytes(data[1:])))
    except DecodeError:
        raise
    except (TypeError, ValueError, RecursionError) as exc:
        raise DecodeError(f"invalid entry: {exc}") from None
