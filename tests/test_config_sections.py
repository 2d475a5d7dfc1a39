"""Every configuration section refuses what cannot work when it is built, whoever builds it.

The loader is one builder; tests and the simulator build sections directly. The checks
are generic, driven by each field's declared range and type, so these tests walk every
declared setting rather than a hand-picked few.
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from swarmnode.config import SECTIONS, section_settings
from swarmnode.membership.config import MembershipConfig
from swarmnode.settings import ConfigError, field_types, settings_of
from swarmnode.transport.config import TransportConfig

OWN_CHECKS = {name: cls for name, cls in SECTIONS.items() if cls is not TransportConfig}


def declared() -> list[tuple[str, type, str]]:
    return [(name, cls, f.name) for name, cls in OWN_CHECKS.items() for f in settings_of(cls)]


def outside(spec, kind: type) -> list[float]:
    """Values just beyond each bound of a range."""
    step = 1 if kind is int else 1e-6
    values = []
    if spec.low is not None:
        values.append(spec.low if spec.above else spec.low - step)
    if spec.high is not None:
        values.append(spec.high + step)
    return [kind(v) if kind is int else v for v in values]


@pytest.mark.parametrize("name, cls, key", declared())
def test_a_value_beyond_its_declared_range_is_refused_by_the_section(name, cls, key):
    spec = section_settings(cls)[key]
    kind = field_types(cls)[key]
    for value in outside(spec, kind):
        with pytest.raises(ConfigError) as info:
            cls(**{key: value})
        assert str(info.value).startswith(f"[{name}] {key} = ")
        assert spec.allowed() in str(info.value)


@pytest.mark.parametrize("name, cls, key", declared())
def test_a_value_of_another_type_is_refused_by_the_section(name, cls, key):
    kind = field_types(cls)[key]
    wrong = {bool: 1, int: True, float: "0.5", str: 5}[kind]
    with pytest.raises(ConfigError, match=rf"^\[{name}\] {key} = .*: must be "):
        cls(**{key: wrong})
    if kind in (int, float):
        with pytest.raises(ConfigError, match="must be"):
            cls(**{key: str(getattr(cls(), key))})


@pytest.mark.parametrize("name, cls", list(OWN_CHECKS.items()))
def test_the_defaults_and_profiles_of_every_section_are_valid(name, cls):
    for make in ("lan", "local"):
        if hasattr(cls, make):
            getattr(cls, make)()
    cls()


def test_the_probe_timeout_must_be_shorter_than_the_probe_interval():
    with pytest.raises(ConfigError, match=r"^\[membership\] probe_timeout = 1\.0: must be less"):
        MembershipConfig(probe_interval=1.0, probe_timeout=1.0)
    MembershipConfig(probe_interval=1.0, probe_timeout=0.999)


def test_non_finite_numbers_are_refused_everywhere():
    for name, cls in OWN_CHECKS.items():
        for f in settings_of(cls):
            if field_types(cls)[f.name] is float:
                for bad in (math.nan, math.inf, -math.inf):
                    with pytest.raises(ConfigError, match=rf"^\[{name}\] {f.name} = "):
                        cls(**{f.name: bad})


def test_derived_fields_are_not_settings():
    names = {f.name for f in settings_of(MembershipConfig)}
    assert "cluster" not in names
    assert "cluster" in {f.name for f in dataclasses.fields(MembershipConfig)}
