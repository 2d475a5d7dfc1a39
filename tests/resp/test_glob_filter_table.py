"""Redis's glob rules, FILTER translation, and the command table with what is derived from it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmnode.resp.codec import ErrorReply
from swarmnode.resp.commands import COMMANDS
from swarmnode.resp.glob import glob_match, literal_prefix
from swarmnode.resp.table import command_docs, parse_syntax
from swarmnode.resp.vsets import translate_filter

RESP_DOC = Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md"


@pytest.mark.parametrize(
    ("pattern", "text", "match"),
    [
        ("h?llo", "hello", True),
        ("h?llo", "hllo", False),
        ("h*llo", "heeeello", True),
        ("h*llo", "hllo", True),
        ("h[ae]llo", "hallo", True),
        ("h[ae]llo", "hillo", False),
        ("h[^e]llo", "hallo", True),
        ("h[^e]llo", "hello", False),
        ("h[a-b]llo", "hbllo", True),
        ("h[b-a]llo", "hallo", True),  # a backwards range works in Redis
        ("h\\*llo", "h*llo", True),
        ("h\\*llo", "hello", False),
        ("[\\]]", "]", True),
        ("a.b", "axb", False),
        ("x[", "x", False),
        ("*", "", True),
        ("key:*", "key:1", True),
    ],
)
def test_glob_follows_redis(pattern: str, text: str, match: bool) -> None:
    assert glob_match(pattern, text) is match


@given(st.text(max_size=20))
def test_an_escaped_pattern_matches_only_its_text(text: str) -> None:
    pattern = "".join("\\" + c for c in text)
    assert glob_match(pattern, text)
    assert not glob_match(pattern, text + "x")
    assert literal_prefix(pattern) == text


def test_literal_prefix_stops_at_the_first_wildcard() -> None:
    assert literal_prefix("swarm:ta*sk") == "swarm:ta"
    assert literal_prefix("a\\?b?c") == "a?b"


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('.genre == "sf"', {"genre": "sf"}),
        ("'sf' == .genre", {"genre": "sf"}),
        (".year == 1984 and .ok == true", {"year": 1984, "ok": True}),
        (".year in [1984, 2001.5] && .x == null", {"year": {"$in": [1984, 2001.5]}, "x": None}),
        ('"tag" in .tags', {"tags": "tag"}),
    ],
)
def test_filters_the_node_can_run(expression: str, expected: dict[str, Any]) -> None:
    assert translate_filter(expression) == expected


@pytest.mark.parametrize(
    "expression",
    [".year > 1950", ".a == 1 or .b == 2", "not .a", ".a == 1 and .a == 2", ".a in [1,", ""],
)
def test_filters_it_cannot_run_are_refused(expression: str) -> None:
    with pytest.raises(ErrorReply, match="FILTER"):
        translate_filter(expression)


def test_set_syntax_becomes_the_arguments_redis_documents() -> None:
    args = parse_syntax("key value [NX | XX] [GET] [EX seconds | PX milliseconds | KEEPTTL]")
    assert [a["name"] for a in args] == ["key", "value", "nx-xx", "get", "ex-px"]
    assert args[0] == {"name": "key", "type": "key", "key_spec_index": 0}
    condition = args[2]
    assert condition["type"] == "oneof" and condition["flags"] == ["optional"]
    assert [a["token"] for a in condition["arguments"]] == ["NX", "XX"]
    expiry = args[4]["arguments"]
    assert expiry[0] == {"name": "seconds", "type": "integer", "token": "EX"}
    assert expiry[2] == {"name": "keepttl", "type": "pure-token", "token": "KEEPTTL"}


def test_repeated_arguments_are_marked_multiple() -> None:
    args = parse_syntax("key value [key value ...]")
    assert args[2]["type"] == "block"
    assert args[2]["flags"] == ["optional", "multiple"]


def test_every_command_has_docs_and_a_consistent_arity() -> None:
    names = [spec.name for spec in COMMANDS]
    assert len(names) == len(set(names))
    for spec in COMMANDS:
        docs = command_docs(spec)
        assert docs["summary"] and docs["group"]
        required = [a for a in spec.arguments if "optional" not in a.get("flags", [])]
        if spec.arity > 0 and not spec.subcommands:
            assert spec.arity == 1 + len(required), spec.name
        for sub in spec.subcommands:
            assert sub.name.startswith(spec.name + "|")


def test_the_compatibility_table_lists_exactly_the_commands() -> None:
    text = RESP_DOC.read_text()
    table = re.search(r"### Commands\n(.*?)\n### ", text, re.S)
    assert table is not None, "docs/PROTOCOL.md has no '### Commands' section"
    documented = set(re.findall(r"^\| `([A-Z]+)", table.group(1), re.M))
    assert documented == {spec.name.upper() for spec in COMMANDS}
