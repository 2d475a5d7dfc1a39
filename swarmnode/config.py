"""One configuration for a node, in the manner of memberlist's config.go.

Every knob lives in the dataclass of the layer that uses it (StoreConfig,
MembershipConfig, DisseminationConfig, AntiEntropyConfig, TransportConfig,
ApiLimits, VectorConfig, MetricsConfig), each field declared with its unit and
allowed range (`swarmnode.settings.setting`) and documented by its docstring; each
section refuses values that cannot work when it is built. This module composes
them, picks a profile (`lan`: the defaults; `local`: fast timers for clusters on one
host and for tests), layers the sources, checks the types of what the sources give
and what involves several sections, and stops with one line naming the key.

Sources, later ones winning: profile defaults < TOML file < environment < command
line. The profile itself is chosen the same way: `--profile` over
`$SWARMNODE_PROFILE` over the file's `profile` over `lan`.

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
    [metrics]        bind = "127.0.0.1:9117"
    [resp]           socket = "/run/swarmnode/redis.sock"
    [placement]      dead_grace = 30.0
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swarmnode.agents.config import AgentsConfig
from swarmnode.api.limits import ApiLimits
from swarmnode.archive.config import ArchiveConfig
from swarmnode.consensus.config import ConsensusConfig
from swarmnode.membership.compat import ClusterSettings
from swarmnode.membership.config import MembershipConfig
from swarmnode.paths import default_data_dir, socket_path_for
from swarmnode.placement.config import PlacementConfig
from swarmnode.replication.antientropy import AntiEntropyConfig
from swarmnode.replication.dissemination import DisseminationConfig
from swarmnode.resp.config import RespConfig
from swarmnode.runtime.metrics_http import MetricsConfig
from swarmnode.sansio import Address
from swarmnode.settings import (
    DEFAULT_PORT,
    SETTING,
    ConfigError,
    Setting,
    check_settings,
    check_type,
    field_types,
    is_loopback,
    kind_of,
    parse_address,
    refuse,
    require,
    setting,
    settings_of,
    show,
)
from swarmnode.storage.config import StoreConfig
from swarmnode.transport.config import TransportConfig
from swarmnode.vectors.config import VectorConfig

__all__ = ["DEFAULT_PORT", "Config", "ConfigError", "NodeTimers", "load_config", "parse_address"]

PROFILES = ("lan", "local")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
MAX_SOCKET_PATH_BYTES = 107
"""sun_path of a Unix socket holds 108 bytes including the terminating NUL."""
NODE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""Node ids travel in every gossip header (at most 64 bytes) and name writers in
`<node id>.<hex ts>` actors, so no dot and nothing that needs quoting in logs."""
FRAME_SLACK = 4096
"""Bytes of a put request beyond its key and value: the map, the op, the other arguments."""
STREAM_SLACK = 64 * 1024
"""Bytes of a replicated entry beyond its value and metadata: timestamps, causal context,
the message around it."""


@dataclass
class NodeTimers:
    """Timers of the node's own loop (the protocols have theirs): the `[node]` section."""

    tick_interval: float = setting(0.02, "s", low=0.001)
    """Least seconds between two ticks of the node loop: the resolution of every protocol
    timer. The node is ticked only when a timer is due, so an idle node sleeps longer than
    this, and a busy node batches its timer work per tick. Gossip's eager pushes have
    their own pace (`[dissemination] push_interval`). At most `[membership]
    probe_timeout`, or a probe would be judged before its indirect checks could answer."""

    sweep_interval: float = setting(1.0, "s", low=0, above=True)
    """Seconds between sweeps for expired entries and collectable tombstones. Expired
    entries are invisible at once; the sweep only reclaims them."""

    sweep_batch: int = setting(500, "entries", low=1, high=100_000)
    """Entries one sweep handles in one write transaction. The writer is single: a larger
    batch makes every client write wait behind a longer transaction."""

    sync_timeout: float = setting(30.0, "s", low=0, above=True)
    """Seconds a `sync` waits for all its rounds before it reports what it has."""

    def __post_init__(self) -> None:
        check_settings(self, "node")

    @classmethod
    def local(cls) -> NodeTimers:
        return cls(tick_interval=0.01, sweep_interval=0.25)

    @classmethod
    def lan(cls) -> NodeTimers:
        return cls()


SECTIONS: dict[str, type] = {
    "node": NodeTimers,
    "store": StoreConfig,
    "membership": MembershipConfig,
    "dissemination": DisseminationConfig,
    "antientropy": AntiEntropyConfig,
    "transport": TransportConfig,
    "api": ApiLimits,
    "vectors": VectorConfig,
    "metrics": MetricsConfig,
    "resp": RespConfig,
    "consensus": ConsensusConfig,
    "placement": PlacementConfig,
    "agents": AgentsConfig,
    "archive": ArchiveConfig,
}

_CLUSTER_SOURCES = ("store", "antientropy", "membership")


def cluster_settings(store: StoreConfig, antientropy: AntiEntropyConfig) -> ClusterSettings:
    """The settings every member of a cluster must share, taken from their sections."""
    return ClusterSettings(
        tree_fanout=antientropy.tree_fanout,
        tree_depth=antientropy.tree_depth,
        tombstone_grace_ms=store.grace_ms,
        max_clock_offset_ms=store.max_clock_offset_ms,
    )


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
    log_format: str = "text"
    node: NodeTimers = field(default_factory=NodeTimers)
    store: StoreConfig = field(default_factory=StoreConfig)
    membership: MembershipConfig = field(default_factory=MembershipConfig)
    dissemination: DisseminationConfig = field(default_factory=DisseminationConfig)
    antientropy: AntiEntropyConfig = field(default_factory=AntiEntropyConfig)
    transport: TransportConfig = field(default_factory=TransportConfig)
    api: ApiLimits = field(default_factory=ApiLimits)
    vectors: VectorConfig = field(default_factory=VectorConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    resp: RespConfig = field(default_factory=RespConfig)
    consensus: ConsensusConfig = field(default_factory=ConsensusConfig)
    placement: PlacementConfig = field(default_factory=PlacementConfig)
    agents: AgentsConfig = field(default_factory=AgentsConfig)
    archive: ArchiveConfig = field(default_factory=ArchiveConfig)

    def __setattr__(self, name: str, value: Any) -> None:
        """Keep `membership.cluster` equal to what `[store]` and `[antientropy]` say.

        SWIM carries those settings to peers (`membership/compat.py`) and only sees its
        own section, so whenever one of them is replaced, by the loader, a test or the
        simulator (`dataclasses.replace` included), the copy is refreshed here and can
        never go stale.
        """
        object.__setattr__(self, name, value)
        if name in _CLUSTER_SOURCES and all(hasattr(self, n) for n in _CLUSTER_SOURCES):
            wanted = cluster_settings(self.store, self.antientropy)
            if self.membership.cluster != wanted:
                bound = dataclasses.replace(self.membership, cluster=wanted)
                object.__setattr__(self, "membership", bound)

    @property
    def socket_path(self) -> Path:
        return self.socket if self.socket is not None else socket_path_for(self.data_dir)

    @classmethod
    def for_profile(cls, profile: str = "lan", **overrides: Any) -> Config:
        if profile not in PROFILES:
            raise refuse(None, "profile", profile, f"must be one of {', '.join(PROFILES)}")
        pick = "local" if profile == "local" else "lan"
        cfg = cls(
            profile=profile,
            node=getattr(NodeTimers, pick)(),
            store=StoreConfig(tombstone_grace=3600.0) if pick == "local" else StoreConfig(),
            membership=getattr(MembershipConfig, pick)(),
            dissemination=getattr(DisseminationConfig, pick)(),
            antientropy=getattr(AntiEntropyConfig, pick)(),
            transport=getattr(TransportConfig, pick)(),
            vectors=getattr(VectorConfig, pick)(),
            consensus=getattr(ConsensusConfig, pick)(),
            placement=getattr(PlacementConfig, pick)(),
        )
        for k, v in overrides.items():
            setattr(cfg, k, v)
        return cfg

    def validate(self) -> Config:
        """Check what involves several sections; ConfigError naming the key if it cannot work."""
        store, api, transport = self.store, self.api, self.transport
        require(
            self.node.tick_interval <= self.membership.probe_timeout,
            "node",
            "tick_interval",
            self.node.tick_interval,
            f"must be at most [membership] probe_timeout ({show(self.membership.probe_timeout)})"
            ": a probe must be judged no later than its timeout",
        )
        value_frame = store.max_value_bytes + store.max_key_bytes + FRAME_SLACK
        require(
            api.max_frame >= value_frame,
            "api",
            "max_frame",
            api.max_frame,
            f"must be at least {value_frame} bytes, so that the largest value "
            f"([store] max_value_bytes = {store.max_value_bytes}) and key fit one request",
        )
        entry = 2 * store.max_value_bytes + store.max_key_bytes + STREAM_SLACK
        largest = max(
            entry, self.antientropy.max_message_bytes, self.dissemination.max_message_bytes
        )
        require(
            transport.max_stream_message >= largest,
            "transport",
            "max_stream_message",
            transport.max_stream_message,
            f"must be at least {largest} bytes: one entry with the largest value and metadata "
            f"([store] max_value_bytes = {store.max_value_bytes}) and every anti-entropy and "
            "gossip message must cross a stream",
        )
        host = self.bind[0]
        require(
            is_loopback(host) or self.cluster_key_file is not None or self.insecure,
            None,
            "bind",
            f"{host}:{self.bind[1]}",
            "not a loopback address, and gossip without a cluster key would travel in "
            "plaintext: give cluster_key_file (--cluster-key-file), or set insecure = true "
            "(--insecure)",
        )
        metrics = self.metrics.address
        require(
            metrics is None or metrics[1] == 0 or metrics != self.bind,
            "metrics",
            "bind",
            self.metrics.bind,
            "is the gossip address (bind); gossip uses TCP on that port too",
        )
        resp = self.resp.address
        require(
            resp is None or is_loopback(resp[0]) or self.insecure or self.agents.require_tokens,
            "resp",
            "bind",
            self.resp.bind,
            "not a loopback address, and RESP has no encryption: require agent tokens "
            "([agents] require_tokens = true: clients then AUTH with one) or set insecure = "
            "true (--insecure) to serve it to other hosts",
        )
        require(
            resp is None or resp[1] == 0 or resp != self.bind,
            "resp",
            "bind",
            self.resp.bind,
            "is the gossip address (bind); gossip uses TCP on that port too",
        )
        path = os.fsencode(self.socket_path)
        require(
            len(path) <= MAX_SOCKET_PATH_BYTES,
            None,
            "socket",
            str(self.socket_path),
            f"is {len(path)} bytes long; a Unix socket path holds at most "
            f"{MAX_SOCKET_PATH_BYTES} (give a shorter socket or data_dir)",
        )
        return self


# --- top-level keys -------------------------------------------------------------------


def _path(key: str) -> Callable[[Any], Path]:
    def convert(value: Any) -> Path:
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if type(value) is not str or not value:
            raise refuse(None, key, value, f"must be a non-empty path, not {kind_of(value)}")
        try:
            return Path(value).expanduser().resolve()
        except (RuntimeError, OSError) as exc:
            raise refuse(None, key, value, f"is not a usable path ({exc})") from None

    return convert


def _address(key: str, value: Any) -> Address:
    if type(value) is not str:
        raise refuse(None, key, value, f"must be a string HOST:PORT, not {kind_of(value)}")
    try:
        return parse_address(value)
    except ConfigError as exc:
        raise refuse(None, key, value, str(exc).split(": ", 1)[-1]) from None


def _join(value: Any) -> list[Address]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise refuse(None, "join", value, "must be an array of HOST:PORT strings")
    return [_address("join", item) for item in items]


def _node_id(value: Any) -> str:
    if type(value) is not str or not NODE_ID.fullmatch(value):
        raise refuse(
            None, "node_id", value, "must be 1 to 64 letters, digits, '-' or '_' (no dots)"
        )
    return value


def _choice(key: str, choices: tuple[str, ...]) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        text = value.lower() if type(value) is str else value
        if text not in choices:
            raise refuse(None, key, value, f"must be one of {', '.join(choices)}")
        return text

    return convert


def _bool(key: str) -> Callable[[Any], bool]:
    return lambda value: check_type(None, key, value, bool)


TOP_LEVEL: dict[str, Callable[[Any], Any]] = {
    "data_dir": _path("data_dir"),
    "socket": _path("socket"),
    "bind": lambda v: _address("bind", v),
    "join": _join,
    "node_id": _node_id,
    "cluster_key_file": _path("cluster_key_file"),
    "insecure": _bool("insecure"),
    "log_level": _choice("log_level", LOG_LEVELS),
    "log_format": _choice("log_format", LOG_FORMATS),
}
"""Every top-level key but `profile` (which picks the defaults before anything else), with
the function that checks its value and converts it."""

ENVIRONMENT = {
    "SWARMNODE_DATA_DIR": "data_dir",
    "SWARMNODE_SOCKET": "socket",
    "SWARMNODE_BIND": "bind",
    "SWARMNODE_JOIN": "join",
    "SWARMNODE_CLUSTER_KEY_FILE": "cluster_key_file",
    "SWARMNODE_LOG_LEVEL": "log_level",
    "SWARMNODE_LOG_FORMAT": "log_format",
}
"""Environment variables and the key each sets (`SWARMNODE_PROFILE` picks the profile).
An empty variable counts as unset; `SWARMNODE_JOIN` is comma-separated."""


def _unknown(section: str | None, key: str, known: list[str]) -> ConfigError:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    where = f"[{section}] {key}" if section else key
    return ConfigError(f"{where}: unknown setting{hint}")


def section_settings(cls: type) -> dict[str, Setting]:
    """The unit and range of every setting of a section."""
    return {f.name: f.metadata[SETTING] for f in settings_of(cls)}


def _section(cls: type, current: Any, values: dict[str, Any], name: str) -> Any:
    """`current` with `values` applied: types checked, then the section's own checks."""
    known = [f.name for f in settings_of(cls)]
    for key in values:
        if key not in known:
            raise _unknown(name, key, known)
    types = field_types(cls)
    specs = section_settings(cls)
    checked = {}
    for key, value in values.items():
        checked[key] = check_type(name, key, value, types[key])
        spec = specs[key]
        if not spec.admits(value):
            raise refuse(name, key, value, f"must be {spec.allowed()}")
    try:
        return dataclasses.replace(current, **checked)
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(f"[{name}] {exc}") from None


def apply_mapping(cfg: Config, data: dict[str, Any], *, origin: str) -> Config:
    """Apply a TOML-shaped mapping onto `cfg`; errors are prefixed with `origin`."""
    try:
        for key, value in data.items():
            if key in SECTIONS:
                if not isinstance(value, dict):
                    raise ConfigError(f"[{key}] must be a table, not {kind_of(value)}")
                setattr(cfg, key, _section(SECTIONS[key], getattr(cfg, key), value, key))
            elif key in TOP_LEVEL:
                setattr(cfg, key, TOP_LEVEL[key](value))
            elif isinstance(value, dict):
                close = difflib.get_close_matches(key, list(SECTIONS), n=1)
                hint = f"; did you mean [{close[0]}]?" if close else ""
                raise ConfigError(f"[{key}]: unknown section{hint}")
            elif key != "profile":
                raise _unknown(None, key, [*TOP_LEVEL, "profile", *SECTIONS])
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc}") from None
    return cfg


def _profile(value: Any, origin: str) -> str:
    if value not in PROFILES:
        why = f"must be one of {', '.join(PROFILES)}"
        raise ConfigError(f"{origin}: {refuse(None, 'profile', value, why)}")
    return value


def load_config(
    path: Path | None = None,
    *,
    profile: str | None = None,
    env: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Config:
    """Build the effective configuration: profile < file < environment < overrides (flags).

    `overrides` holds top-level keys (None values are ignored) and may hold sections as
    dicts, e.g. `{"metrics": {"bind": "127.0.0.1:9117"}}`. Raises ConfigError, whose
    message names the source and the key, for anything that cannot work.
    """
    env = dict(os.environ) if env is None else env
    data: dict[str, Any] = {}
    origin = f"config file {path}"
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"config file {path} is not UTF-8 text: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"config file {path} cannot be read: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
    if profile is not None:
        chosen = _profile(profile, "--profile")
    elif env.get("SWARMNODE_PROFILE"):
        chosen = _profile(env["SWARMNODE_PROFILE"], "$SWARMNODE_PROFILE")
    elif "profile" in data:
        chosen = _profile(data["profile"], origin)
    else:
        chosen = "lan"
    cfg = Config.for_profile(chosen)
    apply_mapping(cfg, data, origin=origin)
    for var, key in ENVIRONMENT.items():
        raw = env.get(var)
        if raw:
            value: Any = [x for x in raw.split(",") if x.strip()] if key == "join" else raw
            apply_mapping(cfg, {key: value}, origin=f"${var}")
    for key, value in (overrides or {}).items():
        if value is not None:
            apply_mapping(cfg, {key: value}, origin=f"--{key.replace('_', '-')}")
    return cfg.validate()
