"""Everything made from the operation table agrees with it: a consumer that drifts fails here.

The table (`swarmnode/service/table.py`) is the one description of the client
operations; the service's executors, both Python clients, the CLI's parser,
the MCP tools' argument schemas and docs/PROTOCOL.md are made from it.
"""

from __future__ import annotations

import argparse
import inspect

import pytest

from swarmnode.cli import build_parser
from swarmnode.cli_ops import flag_of
from swarmnode.client import AsyncClient, Client
from swarmnode.mcp import schema
from swarmnode.service import codegen
from swarmnode.service.table import OPERATIONS, TABLE, OpSpec


def test_the_generated_client_methods_and_protocol_table_are_up_to_date() -> None:
    assert codegen.stale() == [], "run: python -m swarmnode.service.codegen --write"


@pytest.mark.parametrize("cls", [Client, AsyncClient])
@pytest.mark.parametrize("spec", [op for op in OPERATIONS if op.client], ids=lambda s: s.name)
def test_each_client_has_a_method_per_operation_taking_exactly_its_arguments(
    cls: type, spec: OpSpec
) -> None:
    method = getattr(cls, spec.name)
    params = [p for p in inspect.signature(method).parameters if p != "self"]
    assert [p.rstrip("_") for p in params] == [a.name for a in spec.args]


async def test_a_node_serves_every_operation_of_the_table_and_no_other(tmp_path) -> None:
    from inprocess import InProcessNode

    from swarmnode.analytics import Analytics, AnalyticsConfig, Measure, analytics_op
    from swarmnode.vectors.service import attach_vectors

    node = InProcessNode(tmp_path)
    vectors = attach_vectors(node.host, node.service, tmp_path)
    analytics = Analytics(AnalyticsConfig(), 0.0)
    node.service.register("analytics", analytics_op(analytics, node.services.stats, lambda: 0.0))
    node.service.use(Measure(analytics, lambda: 0.0), before="authorise")
    try:
        assert set(node.service.executors) == set(TABLE)
        steps = [s.name for s in node.service.steps]
        assert steps == ["measure", "authorise", "activity", "validate", "quota", "reads", "embed"]
    finally:
        await vectors.close()
        await node.close()


def _subparser(parser: argparse.ArgumentParser, words: tuple[str, ...]) -> argparse.ArgumentParser:
    for word in words:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[word]
    return parser


@pytest.mark.parametrize("spec", [op for op in OPERATIONS if op.cli], ids=lambda s: s.name)
def test_the_cli_command_of_an_operation_takes_exactly_its_arguments(spec: OpSpec) -> None:
    assert spec.cli is not None
    sp = _subparser(build_parser(), spec.cli.command)
    common = {"help", "socket", "json", "timeout", "json_value"}
    dests = {a.dest for a in sp._actions} - common
    assert dests == {a.name for a in spec.args if a.cli != "hidden"}
    for arg in spec.args:
        action = next(a for a in sp._actions if a.dest == arg.name)
        positional = arg.cli in ("positional", "optional", "many")
        assert (not action.option_strings) == positional, arg.name
        if not positional:
            assert flag_of(arg) in action.option_strings
        if arg.kind == "enum":
            assert list(action.choices) == list(arg.choices)


def _mcp_properties() -> list[tuple[str, str, dict]]:
    return [
        (tool.name, name, prop)
        for tool in schema.TOOLS
        for name, prop in tool.properties.items()
        if id(prop) in schema.ORIGINS
    ]


@pytest.mark.parametrize(("tool", "name", "prop"), _mcp_properties(), ids=lambda x: str(x)[:20])
def test_an_mcp_argument_passed_to_an_operation_accepts_nothing_the_operation_refuses(
    tool: str, name: str, prop: dict
) -> None:
    op, arg_name = schema.ORIGINS[id(prop)]
    arg = TABLE[op].arg(arg_name)
    node = schema.op_schema(arg)
    assert prop.get("type") == node.get("type"), f"{tool}.{name} -> {op}.{arg_name}"
    for bound, tighter in (("minimum", max), ("minLength", max)):
        if bound in node:
            assert tighter(prop.get(bound, node[bound]), node[bound]) == prop[bound]
    for bound in ("maximum", "maxLength"):
        if bound in node:
            assert prop[bound] <= node[bound]
    if "enum" in node:
        assert set(prop["enum"]) <= set(node["enum"])


def test_most_mcp_arguments_come_from_the_table() -> None:
    """The ones that don't are the tools' own (actions, search modes the bridge composes)."""
    own = {
        (tool.name, name)
        for tool in schema.TOOLS
        for name, prop in tool.properties.items()
        if id(prop) not in schema.ORIGINS
    }
    assert {name for _, name in own} <= {"action", "value", "pattern", "query", "limit", "mode"}
