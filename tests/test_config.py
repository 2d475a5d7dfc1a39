"""Configuration: profiles, layering of sources, and loud errors for bad settings."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from swarmnode.config import (
    ENVIRONMENT,
    SECTIONS,
    Config,
    ConfigError,
    load_config,
    parse_address,
)
from swarmnode.membership.compat import ClusterSettings
from swarmnode.replication.antientropy import AntiEntropyConfig
from swarmnode.storage.config import StoreConfig

ROOT = Path(__file__).resolve().parents[1]


def load_text(tmp_path: Path, text: str, **kw) -> Config:
    f = tmp_path / "c.toml"
    f.write_text(text)
    kw.setdefault("env", {})
    return load_config(f, **kw)


def refusal(tmp_path: Path, text: str, **kw) -> str:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text, **kw)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_the_shipped_example_configuration_loads():
    cfg = load_config(ROOT / "deploy" / "swarmnode.toml", env={})
    assert cfg.bind == ("10.0.0.5", 7117)
    assert cfg.join == [("10.0.0.6", 7117), ("10.0.0.7", 7117)]
    assert cfg.socket_path == Path("/run/swarmnode/swarmnode.sock")


def test_both_profiles_load_with_nothing_set():
    for profile in ("lan", "local"):
        assert load_config(profile=profile, env={}).profile == profile


def test_local_profile_has_faster_timers_than_lan():
    lan, local = Config.for_profile("lan"), Config.for_profile("local")
    assert local.membership.probe_interval < lan.membership.probe_interval
    assert local.antientropy.interval < lan.antientropy.interval
    assert local.node.tick_interval <= lan.node.tick_interval


def test_the_socket_defaults_to_an_owner_only_dir_under_the_data_dir(tmp_path):
    cfg = load_config(env={"SWARMNODE_DATA_DIR": str(tmp_path)})
    assert cfg.socket_path == tmp_path.resolve() / "run" / "swarmnode.sock"


# --- what the operator tried: each is refused, naming the key, the value and the range


@pytest.mark.parametrize(
    "text, message",
    [
        ("[node]\ntick_interval = 0", "[node] tick_interval = 0: must be at least 0.001"),
        ("[node]\nsweep_batch = 0", "[node] sweep_batch = 0: must be between 1 and 100000"),
        ("[api]\nmax_inflight_per_conn = 0", "[api] max_inflight_per_conn = 0: must be at least 1"),
        ("[api]\nmax_inflight_per_conn = -1", "[api] max_inflight_per_conn = -1: must be at"),
        ("[api]\nmax_frame = 0", "[api] max_frame = 0: must be between 512 and 4294967295"),
        ("[api]\nmax_connections = 0", "[api] max_connections = 0: must be at least 1"),
        ("[store]\nmax_value_bytes = -1", "[store] max_value_bytes = -1: must be between 1 and"),
        ("[dissemination]\nfanout = '3'", '[dissemination] fanout = "3": must be an integer'),
        ("[dissemination]\nfanout = 0", "[dissemination] fanout = 0: must be at least 1"),
        ("log_level = 'loud'", 'log_level = "loud": must be one of debug, info, warning, error'),
        ("log_format = 'xml'", 'log_format = "xml": must be one of text, json'),
        ("[node]\nsweep_interval = -1", "[node] sweep_interval = -1: must be greater than 0"),
        ("[node]\nsync_timeout = -1.5", "[node] sync_timeout = -1.5: must be greater than 0"),
        ("[store]\ntombstone_grace = -5", "[store] tombstone_grace = -5: must be between 0 and"),
        ("[dissemination]\nmax_queue = 0", "[dissemination] max_queue = 0: must be at least 1"),
        ("[store]\nmap_size = 0", "[store] map_size = 0: must be between 1048576 and"),
        ("[membership]\nprobe_timeout = 5.0", "probe_timeout = 5.0: must be less than"),
        ("[transport]\nmax_datagram = 50", "[transport] max_datagram = 50: must be between 128"),
        ("[transport]\nstream_hello_timeout = 0", "stream_hello_timeout = 0: must be greater"),
        ("[antientropy]\ntree_fanout = 12", "tree_fanout = 12: must be a power of two"),
        ("[vectors]\ncompact_below = 1.5", "[vectors] compact_below = 1.5: must be between 0"),
        ("[metrics]\nmax_connections = 0", "[metrics] max_connections = 0: must be at least 1"),
        ("[node]\ntick_interval = nan", "[node] tick_interval = nan: must be a finite number"),
        ("[node]\ntick_interval = inf", "[node] tick_interval = inf: must be a finite number"),
        ("node_id = 'a.b'", 'node_id = "a.b": must be 1 to 64 letters'),
        ("profile = 'wan'", 'profile = "wan": must be one of lan, local'),
    ],
)
def test_an_unworkable_value_is_refused_naming_key_value_and_range(tmp_path, text, message):
    got = refusal(tmp_path, text)
    assert message in got
    assert got.startswith(f"config file {tmp_path / 'c.toml'}: ")


@pytest.mark.parametrize(
    "text, message",
    [
        ("colour = 3", "colour: unknown setting"),
        ("[store]\nnope = 1", "[store] nope: unknown setting"),
        ("[store]\nmax_value_byte = 5", "did you mean max_value_bytes?"),
        ("log_levle = 'info'", "did you mean log_level?"),
        ("[storage]\nsync = false", "[storage]: unknown section; did you mean [store]?"),
        ("[membership]\ncluster = 1", "[membership] cluster: unknown setting"),
        ("store = 3", "[store] must be a table, not an integer"),
    ],
)
def test_unknown_settings_are_refused(tmp_path, text, message):
    assert message in refusal(tmp_path, text)


# --- types come from the dataclass annotations


@pytest.mark.parametrize(
    "text, message",
    [
        ("[dissemination]\nfanout = 3.0", "fanout = 3.0: must be an integer, not a number"),
        ("[dissemination]\nfanout = true", "fanout = true: must be an integer, not a boolean"),
        ("[node]\ntick_interval = true", "must be a number, not a boolean"),
        ("[node]\ntick_interval = '0.02'", "must be a number, not a string"),
        ("[store]\nsync = 1", "[store] sync = 1: must be a boolean (true or false)"),
        ("[store]\nsync = 'false'", 'sync = "false": must be a boolean'),
        ("insecure = 'yes'", 'insecure = "yes": must be a boolean'),
        ("[metrics]\nbind = 9117", "[metrics] bind = 9117: must be a string"),
        ("bind = 7117", "bind = 7117: must be a string HOST:PORT"),
        ("join = 7", "join = 7: must be an array"),
        ("data_dir = 5", "data_dir = 5: must be a non-empty path"),
        ("log_level = 3", "log_level = 3: must be one of"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused(tmp_path, text, message):
    assert message in refusal(tmp_path, text)


def test_an_integer_is_taken_where_a_number_is_expected(tmp_path):
    cfg = load_text(tmp_path, "[node]\nsync_timeout = 10\n[store]\ntombstone_grace = 60")
    assert cfg.node.sync_timeout == 10.0 and type(cfg.node.sync_timeout) is float
    assert cfg.store.tombstone_grace == 60.0 and type(cfg.store.tombstone_grace) is float


def test_log_level_is_taken_in_any_case(tmp_path):
    assert load_text(tmp_path, "log_level = 'WARNING'").log_level == "warning"


# --- checks across sections


@pytest.mark.parametrize(
    "text, message",
    [
        ("[antientropy]\ntree_fanout = 12", "[antientropy] tree_fanout = 12: must be a power"),
        ("[antientropy]\ntree_depth = 7", "[antientropy] tree_depth = 7: fanout 16 and depth 7"),
        ("[node]\ntick_interval = 0.6", "[node] tick_interval = 0.6: must be at most [membership]"),
        ("[api]\nmax_frame = 100000", "[api] max_frame = 100000: must be at least 1053696"),
        (
            "[store]\nmax_value_bytes = 20000000",
            "[api] max_frame = 16777216: must be at least 20005120",
        ),
        ("[transport]\nmax_stream_message = 2000", "max_stream_message = 2000: must be at least"),
        ('bind = "10.1.1.1:7117"', 'bind = "10.1.1.1:7117": not a loopback address'),
        ('[metrics]\nbind = "0.0.0.0:9117"', "set [metrics] allow_remote = true"),
        ('bind = "127.0.0.1:9117"\n[metrics]\nbind = "127.0.0.1:9117"', "is the gossip address"),
        (f'socket = "/tmp/{"s" * 120}.sock"', "a Unix socket path holds at most 107"),
    ],
)
def test_combinations_that_cannot_work_are_refused(tmp_path, text, message):
    assert message in refusal(tmp_path, text)


def test_combinations_that_work_are_accepted(tmp_path):
    cfg = load_text(
        tmp_path,
        'bind = "10.1.1.1:7117"\ninsecure = true\n'
        "[antientropy]\ntree_fanout = 4\ntree_depth = 8\n"
        "[store]\nmax_value_bytes = 20000000\n[api]\nmax_frame = 20005120\n"
        "[transport]\nmax_stream_message = 40066560\n"
        '[metrics]\nbind = "0.0.0.0:9117"\nallow_remote = true\n',
    )
    assert cfg.antientropy.tree_fanout == 4
    assert cfg.metrics.address == ("0.0.0.0", 9117)


# --- precedence: profile < file < environment < flags, the profile itself included


def test_every_layer_wins_over_the_one_below(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text(
        'profile = "local"\nbind = "127.0.0.1:9000"\ndata_dir = "/tmp/from-file"\n'
        'log_level = "debug"\nlog_format = "json"\nsocket = "/tmp/file.sock"\n'
        "[dissemination]\nfanout = 5\n"
    )
    # The file's own values beat the profile's defaults, section by section.
    only_file = load_config(f, env={})
    assert only_file.profile == "local" and only_file.dissemination.fanout == 5
    assert (
        only_file.membership.probe_interval == Config.for_profile("local").membership.probe_interval
    )
    assert (only_file.bind, only_file.data_dir) == (("127.0.0.1", 9000), Path("/tmp/from-file"))
    assert (only_file.log_level, only_file.log_format) == ("debug", "json")

    env = {
        "SWARMNODE_DATA_DIR": "/tmp/from-env",
        "SWARMNODE_BIND": "127.0.0.1:9001",
        "SWARMNODE_LOG_LEVEL": "warning",
        "SWARMNODE_LOG_FORMAT": "text",
        "SWARMNODE_JOIN": "127.0.0.2:1,127.0.0.3:2",
        "SWARMNODE_SOCKET": "/tmp/env.sock",
    }
    with_env = load_config(f, env=env)
    assert with_env.data_dir == Path("/tmp/from-env")
    assert with_env.bind == ("127.0.0.1", 9001)
    assert (with_env.log_level, with_env.log_format) == ("warning", "text")
    assert with_env.join == [("127.0.0.2", 1), ("127.0.0.3", 2)]
    assert with_env.socket_path == Path("/tmp/env.sock")
    assert with_env.dissemination.fanout == 5  # untouched by the environment

    flags = {
        "data_dir": Path("/tmp/from-flag"),
        "bind": "127.0.0.1:9002",
        "log_level": "error",
        "log_format": "json",
        "join": ["127.0.0.4:3"],
        "socket": Path("/tmp/flag.sock"),
        "node_id": None,  # a flag not given leaves the lower layers alone
    }
    with_flags = load_config(f, env=env, overrides=flags)
    assert with_flags.data_dir == Path("/tmp/from-flag")
    assert with_flags.bind == ("127.0.0.1", 9002)
    assert (with_flags.log_level, with_flags.log_format) == ("error", "json")
    assert with_flags.join == [("127.0.0.4", 3)]
    assert with_flags.socket_path == Path("/tmp/flag.sock")


@pytest.mark.parametrize(
    "in_file, in_env, flag, chosen",
    [
        (None, None, None, "lan"),
        ("local", None, None, "local"),
        ("local", "lan", None, "lan"),
        ("lan", "local", None, "local"),
        ("local", "lan", "local", "local"),
        ("lan", "local", "lan", "lan"),
        (None, "local", None, "local"),
        (None, None, "local", "local"),
    ],
)
def test_the_profile_is_chosen_flag_over_environment_over_file(
    tmp_path, in_file, in_env, flag, chosen
):
    text = f'profile = "{in_file}"\n' if in_file else ""
    env = {"SWARMNODE_PROFILE": in_env} if in_env else {}
    cfg = load_text(tmp_path, text, env=env, profile=flag)
    assert cfg.profile == chosen
    expected = Config.for_profile(chosen)
    assert cfg.membership.probe_interval == expected.membership.probe_interval
    assert cfg.store.tombstone_grace == expected.store.tombstone_grace


def test_a_bad_value_names_the_layer_it_came_from(tmp_path):
    env = {"SWARMNODE_LOG_LEVEL": "loud"}
    assert refusal(tmp_path, "", env=env).startswith("$SWARMNODE_LOG_LEVEL: log_level = ")
    env = {"SWARMNODE_PROFILE": "wan"}
    assert refusal(tmp_path, "", env=env).startswith("$SWARMNODE_PROFILE: profile = ")
    env = {"SWARMNODE_JOIN": "host:1"}
    assert "host must be an IP address" in refusal(tmp_path, "", env=env)
    message = refusal(tmp_path, "", overrides={"bind": "127.0.0.1:x"})
    assert message.startswith('--bind: bind = "127.0.0.1:x": the port must be a number')


def test_a_flag_can_set_a_section(tmp_path):
    cfg = load_text(tmp_path, "", overrides={"metrics": {"bind": "127.0.0.1:9200"}})
    assert cfg.metrics.address == ("127.0.0.1", 9200)


def test_every_documented_environment_variable_is_read(tmp_path):
    values = {
        "data_dir": "/tmp/d",
        "socket": "/tmp/s.sock",
        "bind": "127.0.0.1:9",
        "join": "127.0.0.1:10",
        "cluster_key_file": "/tmp/k",
        "log_level": "error",
        "log_format": "json",
    }
    env = {var: values[key] for var, key in ENVIRONMENT.items()}
    cfg = load_config(env=env)
    assert cfg.data_dir == Path("/tmp/d") and cfg.socket_path == Path("/tmp/s.sock")
    assert cfg.bind == ("127.0.0.1", 9) and cfg.join == [("127.0.0.1", 10)]
    assert cfg.cluster_key_file == Path("/tmp/k")
    assert (cfg.log_level, cfg.log_format) == ("error", "json")


def test_a_missing_or_malformed_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("this is = = not toml")
    with pytest.raises(ConfigError):
        load_config(bad, env={})


# --- the settings peers must agree on follow their sections


def test_membership_carries_the_cluster_settings_of_its_sections(tmp_path):
    cfg = load_text(
        tmp_path,
        "[antientropy]\ntree_fanout = 4\ntree_depth = 8\n"
        "[store]\ntombstone_grace = 60\nmax_clock_offset_ms = 250\n",
    )
    assert cfg.membership.cluster == ClusterSettings(4, 8, 60_000, 250)
    assert Config().membership.cluster == ClusterSettings()
    assert Config.for_profile("local").membership.cluster.tombstone_grace_ms == 3_600_000


def test_the_cluster_settings_follow_every_later_change():
    cfg = Config.for_profile("lan")
    cfg.store = dataclasses.replace(cfg.store, tombstone_grace=5.0)
    assert cfg.membership.cluster.tombstone_grace_ms == 5000
    again = dataclasses.replace(cfg, antientropy=AntiEntropyConfig(tree_fanout=4, tree_depth=8))
    assert again.membership.cluster.tree_fanout == 4
    assert again.membership.cluster.tombstone_grace_ms == 5000
    # Replacing membership itself cannot smuggle in other values.
    again.membership = dataclasses.replace(again.membership, probe_interval=2.0)
    assert again.membership.cluster.tree_fanout == 4
    assert again.membership.probe_interval == 2.0


def test_default_cluster_settings_are_the_default_sections():
    settings = ClusterSettings()
    assert (settings.tree_fanout, settings.tree_depth) == (16, 4)
    assert settings.tombstone_grace_ms == StoreConfig().grace_ms
    assert settings.max_clock_offset_ms == StoreConfig().max_clock_offset_ms


# --- addresses


@pytest.mark.parametrize(
    "text, expected",
    [
        ("127.0.0.1:7117", ("127.0.0.1", 7117)),
        ("127.0.0.1", ("127.0.0.1", 7117)),
        ("localhost:80", ("127.0.0.1", 80)),
        ("[::1]:9", ("::1", 9)),
    ],
)
def test_addresses_parse(text, expected):
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["127.0.0.1:x", "127.0.0.1:70000", "host:1"])
def test_bad_addresses_are_refused(text):
    with pytest.raises(ConfigError):
        parse_address(text)


def test_every_section_is_a_dataclass_the_loader_knows():
    assert all(dataclasses.is_dataclass(cls) for cls in SECTIONS.values())
