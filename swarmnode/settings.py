"""What every configuration section shares: the error, how a setting declares its unit and
its allowed range, and the checks that enforce them.

A section is a dataclass whose fields are declared with `setting(default, unit, low=...,
high=...)` and documented by the docstring that follows each field. Its `__post_init__`
calls `check_settings(self, "<section>")`, then checks what involves several of its
fields. So a section that cannot work is refused when it is built, whoever builds it:
the TOML loader (`swarmnode/config.py`), a test or the simulator. The operator-facing
reference table in docs/OPERATIONS.md is generated from the same declarations
(`swarmnode/configdoc.py`).

Messages name the key as `[section] key`, show the value given as TOML would write it
and say what is allowed, on one line, so `swarmnode run` can print them and stop.

This module imports nothing from the rest of the package, so every layer can use it
without an import cycle.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

SETTING = "swarmnode.setting"
"""Key of a field's metadata holding its `Setting`."""
DERIVED = "swarmnode.derived"
"""Key of a field's metadata marking it as computed from other settings, not set by hand."""

DEFAULT_PORT = 7117

UNIT_NAMES = {
    "s": "seconds",
    "ms": "milliseconds",
    "bytes": "bytes",
}


class ConfigError(ValueError):
    """A configuration that cannot work; the message says which setting and why."""


@dataclass(frozen=True)
class Setting:
    """The unit and allowed range of one configurable field.

    `low`/`high` bound numbers (inclusive; `above=True` makes `low` exclusive); `choices`
    lists the allowed strings. Floats must also be finite: TOML allows `inf` and `nan`,
    and no timer or size of this program works with either.
    """

    unit: str = ""
    low: float | None = None
    high: float | None = None
    above: bool = False
    choices: tuple[str, ...] = ()

    def admits(self, value: Any) -> bool:
        if self.choices:
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, int | float):
            return True
        if self.low is not None and (value <= self.low if self.above else value < self.low):
            return False
        return self.high is None or value <= self.high

    def allowed(self) -> str:
        """The allowed values in words: `at least 1`, `between 0 and 1`, `one of a, b`."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        low, high = self.low, self.high
        if low is not None and high is not None and not self.above:
            text = f"between {show(low)} and {show(high)}"
        elif low is not None:
            text = f"greater than {show(low)}" if self.above else f"at least {show(low)}"
            if high is not None:
                text += f" and at most {show(high)}"
        elif high is not None:
            text = f"at most {show(high)}"
        else:
            return "any value"
        unit = UNIT_NAMES.get(self.unit, self.unit)
        return f"{text} ({unit})" if unit else text

    def range_text(self, fmt: Callable[[float], str] | None = None) -> str:
        """The allowed values in a table cell: `≥ 1`, `> 0`, `0 … 1`, `a, b`; "" if any."""
        fmt = fmt or show
        if self.choices:
            return ", ".join(self.choices)
        low, high = self.low, self.high
        if low is not None and high is not None and not self.above:
            return f"{fmt(low)} … {fmt(high)}"
        parts = []
        if low is not None:
            parts.append(f"{'>' if self.above else '≥'} {fmt(low)}")
        if high is not None:
            parts.append(f"≤ {fmt(high)}")
        return ", ".join(parts)


def setting(
    default: Any,
    unit: str = "",
    *,
    low: float | None = None,
    high: float | None = None,
    above: bool = False,
    choices: tuple[str, ...] = (),
) -> Any:
    """A dataclass field with a default, a unit and an allowed range (see `Setting`)."""
    spec = Setting(unit, low, high, above, choices)
    return field(default=default, metadata={SETTING: spec})


def key_name(section: str | None, key: str) -> str:
    return f"[{section}] {key}" if section else key


def show(value: Any) -> str:
    """A value as it would be written in TOML, so the operator recognises what they wrote."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return f"{value:.1f}"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "a table"
    return repr(value)


def refuse(section: str | None, key: str, value: Any, why: str) -> ConfigError:
    """The error for one key: `[section] key = value: why`."""
    return ConfigError(f"{key_name(section, key)} = {show(value)}: {why}")


def kind_of(value: Any) -> str:
    """A value's type in TOML's words, for messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


_EXPECTED = {
    bool: "a boolean (true or false)",
    int: "an integer",
    float: "a number",
    str: "a string",
}


def check_type(section: str | None, key: str, value: Any, expected: type) -> Any:
    """`value` if it has the type a field of type `expected` needs, else ConfigError.

    An int is accepted (and converted) where a float is expected; a bool is never taken
    for a number, nor a number for a bool, nor a string of digits for a number.
    """
    if expected is float and type(value) is int:
        value = float(value)
    if type(value) is not expected:
        raise refuse(section, key, value, f"must be {_EXPECTED[expected]}, not {kind_of(value)}")
    if expected is float and not math.isfinite(value):
        raise refuse(section, key, value, "must be a finite number")
    return value


@cache
def field_types(cls: type) -> dict[str, type]:
    """The scalar type (bool, int, float, str) of every field of a section dataclass."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if hints[f.name] in _EXPECTED}


def settings_of(cls: type) -> list[dataclasses.Field[Any]]:
    """The fields of a section an operator may set: every field not derived from others."""
    return [f for f in dataclasses.fields(cls) if not f.metadata.get(DERIVED)]


def check_settings(obj: Any, section: str) -> None:
    """Check every declared field of a section instance for its type and its range."""
    types = field_types(type(obj))
    for f in dataclasses.fields(obj):
        spec: Setting | None = f.metadata.get(SETTING)
        if spec is None:
            continue
        value = getattr(obj, f.name)
        if f.name in types:
            check_type(section, f.name, value, types[f.name])
        if not spec.admits(value):
            raise refuse(section, f.name, value, f"must be {spec.allowed()}")


def require(ok: bool, section: str, key: str, value: Any, why: str) -> None:
    """Raise `refuse(...)` unless `ok`: the shape of every cross-field check."""
    if not ok:
        raise refuse(section, key, value, why)


def parse_address(text: str, *, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """`HOST:PORT`, `HOST` or `[v6]:PORT` to (host, port); hosts must be IP literals."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.lstrip(":")
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"{text!r}: the host must be an IP address") from None
    try:
        port = int(port_text) if port_text else default_port
    except ValueError:
        raise ConfigError(f"{text!r}: the port must be a number") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"{text!r}: the port must be between 0 and 65535")
    return host, port


def is_loopback(host: str) -> bool:
    return ipaddress.ip_address(host).is_loopback
