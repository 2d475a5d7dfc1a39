"""A configuration file an operator got wrong is a ConfigError naming the setting.

Found by fuzz/config_file.py: load_config let UnicodeDecodeError (a binary
file) and AttributeError (`bind = 35554`) escape, so `swarmnode run --config`
died with a traceback instead of its one-line message and exit status 2; and
it took settings of the wrong type, one of them dangerously: `insecure = "no"`
was `bool("no")`, which turned plaintext gossip on.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from swarmnode.config import ConfigError, load_config


def test_a_file_that_is_not_utf8_is_refused_with_its_name(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_bytes(b'profile = "lan"\n# caf\xe9\n')
    with pytest.raises(ConfigError, match="not UTF-8") as err:
        load_config(path, env={})
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    "text, names",
    [
        ("bind = 35554", "bind"),  # found by fuzz/config_file.py: AttributeError escaped
        ('insecure = "no"', "insecure"),  # was bool("no"), i.e. insecure turned ON
        ("log_level = []", "log_level"),
        ("node_id = 7", "node_id"),
        ("join = 5", "join"),
        ('join = ["10.0.0.1:7117", 3]', "join"),
        ('[store]\nmax_value_bytes = "x"', "max_value_bytes"),
        ("[store]\nmax_value_bytes = true", "max_value_bytes"),
        ('[membership]\nprobe_interval = "a"', "probe_interval"),
        ('socket = "~no-such-user-here/s.sock"', "socket"),  # RuntimeError escaped
    ],
)
def test_a_setting_of_the_wrong_type_is_refused_by_name(
    tmp_path: Path, text: str, names: str
) -> None:
    path = tmp_path / "node.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError, match=names):
        load_config(path, env={})


def test_numbers_and_flags_of_the_right_type_are_taken(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text("insecure = true\n[store]\ntombstone_grace = 10\nmax_value_bytes = 4096\n")
    cfg = load_config(path, env={})
    assert cfg.insecure is True
    assert cfg.store.tombstone_grace == 10 and cfg.store.max_value_bytes == 4096
