"""The RESP server byte for byte: inline commands, pipelining, protocol errors, QUIT, binds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from swarmnode.resp import InsecureRespBind, RespLimits, RespServer
from swarmnode.resp.codec import ErrorReply, SimpleString, encode_command

from .conftest import RespNode
from .rawclient import RawResp


def test_inline_commands_as_telnet_sends_them(
    resp_node: RespNode, unique: Callable[[str], str]
) -> None:
    k = unique("inline")
    with RawResp(resp_node.socket) as c:
        c.send(b"PING\r\n")
        assert c.replies(1) == [SimpleString("PONG")]
        c.send(f"SET {k} \"two words\\n\"\nGET {k}\r\n\r\nEXISTS {k} '{k}'\n".encode())
        assert c.replies(3) == [SimpleString("OK"), b"two words\n", 2]
        c.send(b'SET k "unbalanced\r\n')
        assert c.replies(1) == [ErrorReply("ERR Protocol error: unbalanced quotes in request")]
        assert c.closed()


def test_a_thousand_pipelined_commands_in_one_write_come_back_in_order(
    resp_node: RespNode, unique: Callable[[str], str]
) -> None:
    k = unique("pipe")
    batch = b"".join(
        encode_command("INCR", k) if i % 2 else encode_command("GET", k) for i in range(1000)
    )
    with RawResp(resp_node.socket) as c:
        c.send(batch)
        replies = c.replies(1000)
    assert replies[0] is None
    assert replies[1::2] == list(range(1, 501))
    assert replies[2::2] == [str(i).encode() for i in range(1, 500)]


def test_command_names_match_in_any_case(resp_node: RespNode, unique: Callable[[str], str]) -> None:
    k = unique("case")
    with RawResp(resp_node.socket) as c:
        c.send(
            encode_command("set", k, "v")
            + encode_command("GeT", k)
            + encode_command("GET", k)
            + encode_command("NoSuch", k)
        )
        assert c.replies(4) == [
            SimpleString("OK"),
            b"v",
            b"v",
            ErrorReply(f"ERR unknown command 'NoSuch', with args beginning with: '{k}' "),
        ]


@pytest.mark.parametrize(
    ("garbage", "error"),
    [
        (b"*abc\r\n", "invalid multibulk length"),
        (b"*2\r\n:1\r\n", "expected '$', got ':'"),
        (b"*1\r\n$-5\r\n", "invalid bulk length"),
        (b"*1\r\n$99999999999\r\n", "invalid bulk length"),
        (b"*99999999\r\n", "invalid multibulk length"),
        (b"*1\r\n$" + b"1" * 70_000, "too big bulk count string"),
        (b"x" * 70_000, "too big inline request"),
    ],
)
def test_protocol_errors_are_answered_like_redis_then_the_connection_closes(
    resp_node: RespNode, garbage: bytes, error: str
) -> None:
    with RawResp(resp_node.socket) as c:
        c.send(encode_command("PING") + garbage)
        assert c.replies(2) == [SimpleString("PONG"), ErrorReply(f"ERR Protocol error: {error}")]
        assert c.closed()


def test_quit_answers_then_closes_and_ignores_what_follows(resp_node: RespNode) -> None:
    with RawResp(resp_node.socket) as c:
        c.send(encode_command("ECHO", "a") + encode_command("QUIT") + encode_command("PING"))
        assert c.replies(2) == [b"a", SimpleString("OK")]
        assert c.closed()


def test_hello_switches_the_protocol_of_the_replies_after_it(resp_node: RespNode) -> None:
    with RawResp(resp_node.socket) as c:
        c.send(
            encode_command("HELLO", "3")
            + encode_command("SADD", "r3-set", "a")
            + encode_command("SMEMBERS", "r3-set")
            + encode_command("HELLO", "4")
            + encode_command("HELLO", "2")
            + encode_command("SMEMBERS", "r3-set")
        )
        hello3, _, as_set, noproto, hello2, as_list = c.replies(6)
    assert hello3[b"proto"] == 3 and as_set == {b"a"}
    assert noproto == ErrorReply("NOPROTO unsupported protocol version")
    assert hello2[hello2.index(b"proto") + 1] == 2 and as_list == [b"a"]


def test_auth_without_configured_auth_answers_like_redis(resp_node: RespNode) -> None:
    with RawResp(resp_node.socket) as c:
        c.send(encode_command("AUTH", "secret") + encode_command("AUTH", "someone", "secret")
               + encode_command("AUTH", "default", "anything"))  # fmt: skip
        missing, wrong, ok = c.replies(3)
    assert missing.text.startswith("ERR AUTH <password> called without any password configured")
    assert wrong == ErrorReply("WRONGPASS invalid username-password pair or user is disabled.")
    assert ok == SimpleString("OK")


async def _dispatch(op: str, args: dict, ctx: object) -> object:
    raise AssertionError("a server that is refused never dispatches")


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "::"])
def test_a_non_loopback_bind_needs_auth_or_insecure(host: str) -> None:
    with pytest.raises(InsecureRespBind, match="not a loopback address"):
        RespServer(_dispatch, tcp=(host, 6380))

    async def accept_all(ctx: object, token: str) -> str | None:
        return "agent"

    with pytest.raises(InsecureRespBind, match="not a loopback address"):
        # AUTH offered but not required: anyone on the network could still read everything.
        RespServer(_dispatch, tcp=(host, 6380), authenticate=accept_all)
    RespServer(_dispatch, tcp=(host, 6380), authenticate=accept_all, admit=lambda s: False)
    RespServer(_dispatch, tcp=(host, 6380), insecure=True)
    RespServer(_dispatch, tcp=("127.0.0.1", 6380))


def test_a_server_needs_somewhere_to_listen() -> None:
    with pytest.raises(ValueError, match="needs a socket_path"):
        RespServer(_dispatch)


def test_a_client_that_does_not_read_is_slowed_not_dropped(
    resp_node: RespNode, unique: Callable[[str], str]
) -> None:
    """5,000 pipelined writes (far past the 256 unanswered commands at which the server
    stops reading) sent before any reply is read: every reply arrives, in order, and the
    last write wins."""
    k = unique("flood")
    batch = b"".join(encode_command("SET", k, str(i)) for i in range(5000))
    with RawResp(resp_node.socket) as c:
        c.send(batch + encode_command("GET", k))
        replies = c.replies(5001)
    assert replies[:5000] == [SimpleString("OK")] * 5000
    assert replies[5000] == b"4999"


async def test_connections_past_the_limit_are_told_and_closed(short_tmp: Path) -> None:
    path = short_tmp / "run" / "resp.sock"
    server = RespServer(_dispatch, socket_path=path, limits=RespLimits(max_connections=1))
    async with server:
        _, first = await asyncio.open_unix_connection(str(path))
        reader, second = await asyncio.open_unix_connection(str(path))
        assert await reader.read() == b"-ERR max number of clients reached\r\n"
        assert server.stats()["connections_refused"] == 1
        assert server.stats()["connections_open"] == 1
        second.close()
        first.close()
    assert not path.exists()
