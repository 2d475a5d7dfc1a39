"""Checking a request's arguments against its operation's table entry.

Unknown or mistyped arguments are `bad_request`, never ignored; defaults are
applied; namespaces are checked the same way by every operation (a read of a
namespace nobody defined and that holds nothing is `not_found`, naming the
known ones). Error messages quote at most a short prefix of what was sent:
an error must never be larger than the request that caused it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from swarmnode.errors import BadRequest, NotFound
from swarmnode.service.table import Arg, OpSpec
from swarmnode.storage.catalog import Catalog
from swarmnode.storage.namespaces import MAX_TTL_S, NAME_RE, SYSTEM_NS

QUOTE = 48
"""Characters of a client's input an error message may quote."""

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")


def brief(value: Any, limit: int = QUOTE) -> str:
    """`repr(value)`, cut to `limit` characters: what an error message may echo."""
    text = repr(value) if len(repr(value)) <= 4 * limit else repr(value)[: 4 * limit]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_duration(value: Any, what: str = "ttl") -> float:
    """Seconds from a number or a duration as swarmnode prints them: 90s, 5m, 4h, 7d, 2w, none."""
    if isinstance(value, bool):
        raise BadRequest(f"{what} must be a number of seconds or a duration like 5m, 4h, 7d")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        if value.strip().lower() in ("none", "never"):
            return 0.0
        m = _DURATION.match(value) if len(value) <= 32 else None
        if m is None:
            raise BadRequest(
                f"{what} must be a number of seconds or a duration like 90s, 5m, 4h, 7d "
                f"(or none), not {brief(value)}"
            )
        seconds = float(m.group(1)) * _UNITS[m.group(2) or "s"]
    else:
        raise BadRequest(f"{what} must be a number of seconds or a duration like 5m, 4h, 7d")
    if not math.isfinite(seconds) or seconds < 0 or seconds > MAX_TTL_S:
        raise BadRequest(f"{what} must be between 0 and {MAX_TTL_S} seconds (0 = never expire)")
    return seconds


def check_namespace(
    name: Any,
    catalog: Catalog,
    *,
    known: bool,
    op: str,
    visible: Callable[[str], bool] | None = None,
) -> str:
    """A namespace argument: a valid name, and for reads one that exists.

    An unknown name's error lists the known ones, only those `visible` admits (the
    ones the caller may read) when given."""
    if not isinstance(name, str):
        raise BadRequest(f"{op}: 'ns' must be a string")
    if not NAME_RE.match(name):
        raise BadRequest(
            f"{op}: invalid namespace {brief(name)}: 1-64 characters of letters, digits and "
            "_.:- starting with a letter or digit"
        )
    if known and not catalog.known(name):
        names = [n for n in catalog.names() if n != SYSTEM_NS and (visible is None or visible(n))]
        raise NotFound(f"namespace {name!r} does not exist; known: {', '.join(names)}")
    return name


def _type_name(kind: str) -> str:
    return {
        "str": "a string",
        "key": "a string",
        "int": "an integer",
        "number": "a number",
        "bool": "true or false",
        "map": "a map",
        "enum": "a string",
    }.get(kind, kind)


_ABSENT = object()


def _where(op: str, arg: Arg) -> str:
    """The argument an error is about; formatted only when one is raised."""
    return f"{op}: {arg.name!r}"


def _check_one(
    op: str, arg: Arg, value: Any, catalog: Catalog, visible: Callable[[str], bool] | None
) -> Any:
    kind = arg.kind
    if kind == "value":
        return value  # any stored value, checked by the command layer
    if kind == "ns":
        return check_namespace(value, catalog, known=arg.known, op=op, visible=visible)
    if kind in ("str", "key", "enum"):
        if not isinstance(value, str):
            raise BadRequest(f"{_where(op, arg)} must be {_type_name(kind)}")
        if kind == "key" and not value:
            raise BadRequest(f"{_where(op, arg)} must not be empty")
        if arg.max_len is not None and len(value) > arg.max_len:
            raise BadRequest(f"{_where(op, arg)} is longer than {arg.max_len} characters")
        if kind == "enum" and value not in arg.choices:
            raise BadRequest(
                f"{_where(op, arg)} must be one of {', '.join(arg.choices)}, not {brief(value)}"
            )
        return value
    if kind in ("int", "number"):
        ok = isinstance(value, int) if kind == "int" else isinstance(value, int | float)
        if isinstance(value, bool) or not ok:
            raise BadRequest(f"{_where(op, arg)} must be {_type_name(kind)}")
        if kind == "number" and not math.isfinite(value):
            raise BadRequest(f"{_where(op, arg)} must be a finite number")
        if (arg.lo is not None and value < arg.lo) or (arg.hi is not None and value > arg.hi):
            raise BadRequest(f"{_where(op, arg)} must be between {arg.lo:g} and {arg.hi:g}")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise BadRequest(f"{_where(op, arg)} must be true or false")
        return value
    if kind == "ttl":
        return parse_duration(value, _where(op, arg))
    if kind == "map":
        if not isinstance(value, dict):
            raise BadRequest(f"{_where(op, arg)} must be a map")
        return value
    if kind == "members":
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list):
            raise BadRequest(f"{_where(op, arg)} must be a string or a list of strings")
        return value
    if kind == "vector":
        if not isinstance(value, bytes | list | tuple):
            raise BadRequest(f"{_where(op, arg)} must be a list of numbers or float32 bytes")
        return value
    if kind == "vectors":
        if not isinstance(value, list | tuple):
            raise BadRequest(f"{_where(op, arg)} must be a list of vectors")
        if not arg.lo <= len(value) <= arg.hi:  # type: ignore[operator]
            raise BadRequest(
                f"{_where(op, arg)} must hold between {arg.lo:g} and {arg.hi:g} vectors, "
                f"not {len(value)}"
            )
        for i, v in enumerate(value):
            if not isinstance(v, bytes | list | tuple):
                raise BadRequest(
                    f"{_where(op, arg)}[{i}] must be a list of numbers or float32 bytes"
                )
        return value
    if kind == "replicas":
        if value == "all":
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadRequest(f"{_where(op, arg)} must be an integer or all")
        if (arg.lo is not None and value < arg.lo) or (arg.hi is not None and value > arg.hi):
            raise BadRequest(f"{_where(op, arg)} must be between {arg.lo:g} and {arg.hi:g}, or all")
        return value
    return value  # "value": any stored value, checked by the command layer


Checker = Callable[[Any, Catalog, Callable[[str], bool] | None], dict[str, Any]]


def checker(spec: OpSpec) -> Checker:
    """`check_args` for one operation, bound once: the same answers, found faster for the
    arguments requests usually carry (namespaces, keys, flags, numbers, values, maps).

    The common shape is checked in one pass over what was sent, with the operation's
    defaults copied in; anything else (a missing argument, a wrong type, an argument kind
    without a quick check) goes through `check_args`, so every error is exactly the one
    it gives (the first problem in the table's order of arguments)."""
    defaults = {a.name: a.default for a in spec.args if a.default is not None}
    required = frozenset(a.name for a in spec.args if a.required)
    quick = {a.name: _quick(a) for a in spec.args}
    values = frozenset(a.name for a in spec.args if a.kind == "value")

    def check(
        args: Any, catalog: Catalog, visible: Callable[[str], bool] | None = None
    ) -> dict[str, Any]:
        if type(args) is dict:
            out = defaults.copy()
            for name, value in args.items():
                test = quick.get(name)
                if test is None:
                    break  # unknown, or no quick check: check_args says
                if value is None and name not in values:
                    continue  # null is absent
                value = test(value, catalog)
                if value is _NO:
                    break
                out[name] = value
            else:
                if out.keys() >= required:
                    return out
        return check_args(spec, args, catalog, visible)

    return check


_NO = object()
"""What a quick check answers when it leaves the value to `check_args`."""


def _quick(arg: Arg) -> Callable[[Any, Catalog], Any] | None:
    """A check that answers what `_check_one` does for the values it takes as they are,
    and `_NO` for any other (`check_args` then decides); None for the kinds without one."""
    kind, max_len, lo, hi = arg.kind, arg.max_len, arg.lo, arg.hi
    if kind == "value":
        return lambda value, catalog: value
    if kind == "bool":
        return lambda value, catalog: value if value is True or value is False else _NO
    if kind == "map":
        return lambda value, catalog: value if type(value) is dict else _NO
    if kind in ("key", "str"):
        empty_ok = kind == "str"
        limit = max_len if max_len is not None else math.inf
        return lambda value, catalog: (
            value
            if type(value) is str and len(value) <= limit and (empty_ok or value != "")
            else _NO
        )
    if kind == "ns":
        if arg.known:
            return lambda value, catalog: (
                value if valid_name(value) and catalog.known(value) else _NO
            )
        return lambda value, catalog: value if valid_name(value) else _NO
    low = -math.inf if lo is None else lo
    high = math.inf if hi is None else hi
    if kind == "int":
        return lambda value, catalog: value if type(value) is int and low <= value <= high else _NO
    if kind == "number":
        return lambda value, catalog: (
            value
            if type(value) in (int, float) and math.isfinite(value) and low <= value <= high
            else _NO
        )
    if kind == "vector":
        return lambda value, catalog: value if type(value) in (bytes, list, tuple) else _NO
    if kind == "members":
        return lambda value, catalog: (
            [value] if type(value) is str else value if type(value) is list else _NO
        )
    if kind == "ttl":
        return lambda value, catalog: (
            float(value) if type(value) in (int, float) and 0 <= value <= MAX_TTL_S else _NO
        )
    return None


_VALID: set[str] = set()
"""Namespace names seen valid (bounded: cleared when full), so a request to a namespace
in use costs a set lookup instead of a regular expression."""
MAX_VALID = 4096


def valid_name(value: Any) -> bool:
    """Is `value` a namespace name (a str that NAME_RE matches)?"""
    if type(value) is not str:
        return False
    if value in _VALID:
        return True
    if not NAME_RE.match(value):
        return False
    if len(_VALID) >= MAX_VALID:
        _VALID.clear()
    _VALID.add(value)
    return True


def check_args(
    spec: OpSpec,
    args: Any,
    catalog: Catalog,
    visible: Callable[[str], bool] | None = None,
) -> dict[str, Any]:
    """The request's arguments, checked, with defaults applied; raises BadRequest/NotFound.

    A null counts as absent, except for a `value`, where null is a value.
    """
    if not isinstance(args, dict):
        raise BadRequest(f"{spec.name}: args must be a map")
    if not spec.arg_names.issuperset(args):
        unknown = [name for name in args if name not in spec.arg_names]
        shown = ", ".join(brief(u, 32) if not isinstance(u, str) else u[:32] for u in unknown[:5])
        takes = ", ".join(a.name for a in spec.args) or "no arguments"
        raise BadRequest(f"{spec.name}: unknown argument(s) {shown}; it takes {takes}")
    out: dict[str, Any] = {}
    for arg in spec.args:
        name = arg.name
        value = args.get(name, _ABSENT)
        if value is _ABSENT or (value is None and arg.kind != "value"):
            if arg.required:
                raise BadRequest(f"{spec.name}: missing argument {name!r}")
            if arg.default is not None:
                out[name] = arg.default
            continue
        out[name] = _check_one(spec.name, arg, value, catalog, visible)
    return out
