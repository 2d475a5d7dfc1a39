"""One configuration for a node, in the manner of memberlist's config.go.

Every knob lives in the dataclass of the layer that uses it (StoreConfig,
MembershipConfig, DisseminationConfig, AntiEntropyConfig, TransportConfig,
ApiLimits), each field documented with its unit, default and why one would
change it. This module composes them, picks a profile (`lan`: the defaults;
`local`: fast timers for clusters on one host and for tests), and layers the
sources: profile defaults < TOML file < environment < command-line flags.

TOML layout (every section and key optional; unknown keys are an error):

    data_dir = "/var/lib/swarmnode"
    socket = "/run/swarmnode/swarmnode.sock"
    bind = "10.0.0.5:7117"
    join = ["10.0.0.6:7117", "10.0.0.7:7117"]
    cluster_key_file = "/etc/swarmnode/cluster.key"
    profile = "lan"
    [store]          max_value_bytes = 1048576
    [membership]     probe_interval = 1.0
    [dissemination]  fanout = 3
    [antientropy]    interval = 5.0
    [transport]      max_datagram = 1400
    [api]            max_frame = 16777216
    [node]           sweep_interval = 1.0
    [vectors]        exact_below = 2000
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swarmnode.api.limits import ApiLimits
from swarmnode.membership.config import MembershipConfig
from swarmnode.paths import default_data_dir, socket_path_for
from swarmnode.replication.antientropy import AntiEntropyConfig
from swarmnode.replication.dissemination import DisseminationConfig
from swarmnode.sansio import Address
from swarmnode.storage.config import StoreConfig
from swarmnode.transport.config import TransportConfig
from swarmnode.vectors.config import VectorConfig

DEFAULT_PORT = 7117
PROFILES = ("lan", "local")


class ConfigError(ValueError):
    """A configuration that cannot work; the message says which setting and why."""


@dataclass
class NodeTimers:
    """Timers of the node's own loop (the protocols have theirs)."""

    # Seconds between two ticks of the node loop: the resolution of every
    # protocol timer. Lower costs CPU on idle nodes; higher delays gossip.
    tick_interval: float = 0.02
    # Seconds between sweeps for expired entries and collectable tombstones.
    # Expired entries are invisible at once; the sweep only reclaims them.
    sweep_interval: float = 1.0
    # Entries one sweep handles in one write transaction.
    sweep_batch: int = 500
    # Seconds a `sync` waits for all its rounds before it reports what it has.
    sync_timeout: float = 30.0

    @classmethod
    def local(cls) -> NodeTimers:
        return cls(tick_interval=0.01, sweep_interval=0.25)

    @classmethod
    def lan(cls) -> NodeTimers:
        return cls()


@dataclass
class Config:
    data_dir: Path = field(default_factory=default_data_dir)
    socket: Path | None = None
    bind: Address = ("127.0.0.1", DEFAULT_PORT)
    join: list[Address] = field(default_factory=list)
    node_id: str | None = None
    cluster_key_file: Path | None = None
    insecure: bool = False
    profile: str = "lan"
    log_level: str = "info"
    log_format: str = "text"  # text | json
    node: NodeTimers = field(default_factory=NodeTimers)
    store: StoreConfig = field(default_factory=StoreConfig)
    membership: MembershipConfig = field(default_factory=MembershipConfig)
    dissemination: DisseminationConfig = field(default_factory=DisseminationConfig)
    antientropy: AntiEntropyConfig = field(default_factory=AntiEntropyConfig)
    transport: TransportConfig = field(default_factory=TransportConfig)
    api: ApiLimits = field(default_factory=ApiLimits)
    vectors: VectorConfig = field(default_factory=VectorConfig)

    @property
    def socket_path(self) -> Path:
        return self.socket if self.socket is not None else socket_path_for(self.data_dir)

    @classmethod
    def for_profile(cls, profile: str = "lan", **overrides: Any) -> Config:
        if profile not in PROFILES:
            raise ConfigError(f"profile must be one of {', '.join(PROFILES)}, not {profile!r}")
        pick = "local" if profile == "local" else "lan"
        cfg = cls(
            profile=profile,
            node=getattr(NodeTimers, pick)(),
            membership=getattr(MembershipConfig, pick)(),
            dissemination=getattr(DisseminationConfig, pick)(),
            antientropy=getattr(AntiEntropyConfig, pick)(),
            transport=getattr(TransportConfig, pick)(),
            vectors=getattr(VectorConfig, pick)(),
        )
        if profile == "local":
            cfg.store = StoreConfig(tombstone_grace=3600.0)
        for k, v in overrides.items():
            setattr(cfg, k, v)
        return cfg


SECTIONS = {
    "node": NodeTimers,
    "store": StoreConfig,
    "membership": MembershipConfig,
    "dissemination": DisseminationConfig,
    "antientropy": AntiEntropyConfig,
    "transport": TransportConfig,
    "api": ApiLimits,
    "vectors": VectorConfig,
}


def parse_address(text: str, *, default_port: int = DEFAULT_PORT) -> Address:
    """`HOST:PORT`, `HOST` or `[v6]:PORT` to (host, port); hosts must be IP literals."""
    import ipaddress

    if not isinstance(text, str):
        raise ConfigError(f"{text!r}: an address is a string, HOST:PORT")
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


def _kind_of(default: Any) -> str | None:
    """What a setting's default says its values must be (None: not checked here)."""
    for kind, types in (("true or false", bool), ("an integer", int), ("a number", float)):
        if isinstance(default, types):
            return kind
    return "a string" if isinstance(default, str) else None


def _is_kind(value: Any, kind: str) -> bool:
    """TOML gives exact types; a number setting takes an integer too, nothing takes a bool
    in place of a number (`True` is an int in Python)."""
    if kind == "true or false":
        return type(value) is bool
    if kind == "an integer":
        return type(value) is int
    if kind == "a number":
        return type(value) in (int, float)
    return isinstance(value, str)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, not {type(value).__name__} {value!r}")
    return value


def _path(value: Any) -> Path:
    if not isinstance(value, str | os.PathLike):
        raise TypeError(f"expected a path, not {type(value).__name__} {value!r}")
    try:
        return Path(value).expanduser().resolve()
    except RuntimeError as exc:  # `~user` of no such user, or no home directory at all
        raise ValueError(f"{value}: {exc}") from None


def _flag(value: Any) -> bool:
    if type(value) is not bool:
        raise TypeError(f"expected true or false, not {type(value).__name__} {value!r}")
    return value


def _addresses(value: Any) -> list[Address]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise TypeError(f"expected a list of HOST:PORT strings, not {type(value).__name__}")
    return [parse_address(x) for x in value]


def _section(cls: type, current: Any, values: dict[str, Any], name: str) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"[{name}]: unknown setting(s) {', '.join(unknown)}")
    for key, value in values.items():
        wanted = _kind_of(known[key].default)
        if wanted is not None and not _is_kind(value, wanted):
            raise ConfigError(
                f"[{name}] {key}: expected {wanted}, not {type(value).__name__} {value!r}"
            )
    try:
        return dataclasses.replace(current, **values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[{name}]: {exc}") from None


def apply_mapping(cfg: Config, data: dict[str, Any], *, origin: str) -> Config:
    """Apply a TOML-shaped mapping onto `cfg`."""
    data = dict(data)
    for name, cls in SECTIONS.items():
        if name in data:
            section = data.pop(name)
            if not isinstance(section, dict):
                raise ConfigError(f"{origin}: [{name}] must be a table")
            setattr(cfg, name, _section(cls, getattr(cfg, name), section, name))
    simple = {
        "data_dir": _path,
        "socket": _path,
        "bind": parse_address,
        "join": _addresses,
        "node_id": _text,
        "cluster_key_file": _path,
        "insecure": _flag,
        "log_level": _text,
        "log_format": _text,
    }
    for key, value in data.items():
        if key == "profile":
            continue
        if key not in simple:
            raise ConfigError(f"{origin}: unknown setting {key!r}")
        try:
            setattr(cfg, key, simple[key](value))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{origin}: {key}: {exc}") from None
    return cfg


def load_config(
    path: Path | None = None,
    *,
    profile: str | None = None,
    env: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Config:
    """Build the effective configuration: profile < file < environment < overrides."""
    env = dict(os.environ) if env is None else env
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"config file {path} is not UTF-8 text: {exc}") from None
    chosen = profile or data.get("profile") or env.get("SWARMNODE_PROFILE") or "lan"
    cfg = Config.for_profile(chosen)
    apply_mapping(cfg, data, origin=str(path))
    env_map: dict[str, Any] = {}
    for var, key in (
        ("SWARMNODE_DATA_DIR", "data_dir"),
        ("SWARMNODE_SOCKET", "socket"),
        ("SWARMNODE_BIND", "bind"),
        ("SWARMNODE_CLUSTER_KEY_FILE", "cluster_key_file"),
        ("SWARMNODE_LOG_LEVEL", "log_level"),
    ):
        if env.get(var):
            env_map[key] = env[var]
    if env.get("SWARMNODE_JOIN"):
        env_map["join"] = [x for x in env["SWARMNODE_JOIN"].split(",") if x.strip()]
    apply_mapping(cfg, env_map, origin="environment")
    if overrides:
        apply_mapping(cfg, {k: v for k, v in overrides.items() if v is not None}, origin="flags")
    if cfg.log_format not in ("text", "json"):
        raise ConfigError("log_format must be text or json")
    return cfg
