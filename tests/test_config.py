"""Configuration: profiles, layering of sources, and loud errors for bad settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarmnode.config import Config, ConfigError, load_config, parse_address

ROOT = Path(__file__).resolve().parents[1]


def test_the_shipped_example_configuration_loads():
    cfg = load_config(ROOT / "deploy" / "swarmnode.toml", env={})
    assert cfg.bind == ("10.0.0.5", 7117)
    assert cfg.join == [("10.0.0.6", 7117), ("10.0.0.7", 7117)]
    assert cfg.socket_path == Path("/run/swarmnode/swarmnode.sock")


def test_local_profile_has_faster_timers_than_lan():
    lan, local = Config.for_profile("lan"), Config.for_profile("local")
    assert local.membership.probe_interval < lan.membership.probe_interval
    assert local.antientropy.interval < lan.antientropy.interval
    assert local.node.tick_interval <= lan.node.tick_interval


def test_sources_layer_file_then_environment_then_flags(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text(
        'bind = "127.0.0.1:9000"\ndata_dir = "/tmp/from-file"\n[dissemination]\nfanout = 5\n'
    )
    env = {"SWARMNODE_DATA_DIR": "/tmp/from-env", "SWARMNODE_JOIN": "127.0.0.2:1,127.0.0.3:2"}
    cfg = load_config(f, env=env, overrides={"bind": "127.0.0.1:9001"})
    assert cfg.bind == ("127.0.0.1", 9001)
    assert cfg.data_dir == Path("/tmp/from-env")
    assert cfg.join == [("127.0.0.2", 1), ("127.0.0.3", 2)]
    assert cfg.dissemination.fanout == 5


def test_the_socket_defaults_to_an_owner_only_dir_under_the_data_dir(tmp_path):
    cfg = load_config(env={"SWARMNODE_DATA_DIR": str(tmp_path)})
    assert cfg.socket_path == tmp_path.resolve() / "run" / "swarmnode.sock"


@pytest.mark.parametrize(
    "text, message",
    [
        ("colour = 3", "unknown setting"),
        ("[store]\nnope = 1", "unknown setting"),
        ("[membership]\nprobe_timeout = 5.0", "probe_timeout"),
        ('bind = "example.com:1"', "IP address"),
        ("store = 3", "must be a table"),
        ("profile = 'wan'", "profile"),
    ],
)
def test_bad_settings_are_refused_with_a_message_naming_them(tmp_path, text, message):
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(f, env={})


def test_a_missing_or_malformed_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("this is = = not toml")
    with pytest.raises(ConfigError):
        load_config(bad, env={})


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
