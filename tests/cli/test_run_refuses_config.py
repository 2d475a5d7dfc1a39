"""`swarmnode run` with a configuration that cannot work stops at once, as an operator sees it.

Each case runs the real command: it must exit with code 2, say what is wrong in one
line on stderr, print no traceback, and leave the data directory it was given
uncreated.
"""

from __future__ import annotations

import pytest
from nodeproc import clean_env, remove_dir, run_cli, short_dir

CASES = [
    ("unknown key", "[store]\nmax_value_byte = 5\n", {}, "[store] max_value_byte: unknown"),
    ("unworkable value", "[node]\ntick_interval = 0\n", {}, "[node] tick_interval = 0: must"),
    ("wrong type", '[dissemination]\nfanout = "3"\n', {}, "must be an integer, not a string"),
    ("bad log level", 'log_level = "loud"\n', {}, 'log_level = "loud": must be one of'),
    ("bad log format", 'log_format = "xml"\n', {}, 'log_format = "xml": must be one of'),
    ("bad level from env", "", {"SWARMNODE_LOG_LEVEL": "loud"}, "$SWARMNODE_LOG_LEVEL: "),
    ("mismatched sections", "[api]\nmax_frame = 1024\n", {}, "[api] max_frame = 1024: must"),
    ("tree shape", "[antientropy]\ntree_fanout = 12\n", {}, "tree_fanout = 12: must be a power"),
]


@pytest.mark.parametrize("what, toml, env, message", CASES, ids=[c[0] for c in CASES])
def test_run_stops_with_exit_2_and_one_line_before_touching_the_data_dir(what, toml, env, message):
    base = short_dir()
    try:
        config = base / "node.toml"
        config.write_text(toml)
        data_dir = base / "data"
        result = run_cli(
            "run",
            "--data-dir",
            str(data_dir),
            "--config",
            str(config),
            "--bind",
            "127.0.0.1:0",
            env=clean_env(**env),
        )
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("swarmnode: ") and message in lines[0]
        assert "Traceback" not in result.stderr
        assert not data_dir.exists()
        assert result.stdout == ""
    finally:
        remove_dir(base)
