"""A configuration file that is not UTF-8 text is a ConfigError naming it, not a traceback.

Found by fuzz/config_file.py: load_config let UnicodeDecodeError escape, so
`swarmnode run --config` on a binary file died with a traceback instead of
its one-line message and exit status 2.
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
