"""redis-py (sync) against a real node over RESP, on the Unix socket and the TCP port."""

from __future__ import annotations

import socket as socketlib
import struct
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from swarmnode.client import Client
from swarmnode.resp.codec import ReplyParser, encode_command

from .conftest import RespNode

WAIT_S = 60.0
"""Patience for conditions that need the node to act (expiry, notifications)."""


def eventually(check: Callable[[], Any], timeout: float = WAIT_S) -> Any:
    """Poll `check` until it returns something truthy; fail with its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, f"condition not met within {timeout}s: {value!r}"
            return value
        time.sleep(0.02)


def connect(node: RespNode, transport: str, **kwargs: Any) -> redis.Redis:
    if transport == "unix":
        return redis.Redis(unix_socket_path=str(node.socket), socket_timeout=60, **kwargs)
    return redis.Redis(host=node.host, port=node.port, socket_timeout=60, **kwargs)


@pytest.fixture(params=["unix", "tcp"])
def r(request: pytest.FixtureRequest, resp_node: RespNode) -> Iterator[redis.Redis]:
    client = connect(resp_node, request.param)
    yield client
    client.close()


@pytest.fixture
def r3(resp_node: RespNode) -> Iterator[redis.Redis]:
    client = connect(resp_node, "unix", protocol=3)
    yield client
    client.close()


@pytest.fixture
def api(resp_node: RespNode) -> Iterator[Client]:
    """The node's msgpack API, to check what the RESP commands did to the data."""
    with Client(resp_node.base / "run" / "api.sock", timeout=60) as client:
        yield client


def test_strings_round_trip_text_and_bytes(r: redis.Redis, unique: Callable[[str], str]) -> None:
    k, raw = unique("s"), unique("raw")
    assert r.set(k, "héllo") is True
    assert r.get(k) == "héllo".encode()
    blob = bytes(range(256))
    r.set(raw, blob)
    assert r.get(raw) == blob
    assert r.get(unique("missing")) is None
    assert r.exists(k, raw, unique("missing")) == 2
    assert r.type(k) == b"string"
    assert r.delete(k, unique("missing")) == 1
    assert r.unlink(raw) == 1
    assert r.exists(k, raw) == 0


def test_set_conditions_and_get_option(r: redis.Redis, unique: Callable[[str], str]) -> None:
    k = unique("cond")
    assert r.set(k, "a", xx=True) is None
    assert r.get(k) is None
    assert r.set(k, "a", nx=True) is True
    assert r.set(k, "b", nx=True) is None
    assert r.get(k) == b"a"
    assert r.set(k, "c", xx=True, get=True) == b"a"
    assert r.set(k, "d", get=True) == b"c"
    assert r.get(k) == b"d"
    with pytest.raises(redis.ResponseError, match=r"^syntax error$"):
        r.execute_command("SET", k, "v", "NX", "XX")
    with pytest.raises(redis.ResponseError, match="invalid expire time in 'set' command"):
        r.execute_command("SET", k, "v", "EX", "0")


def test_mset_and_mget(r: redis.Redis, unique: Callable[[str], str]) -> None:
    a, b, s = unique("ma"), unique("mb"), unique("mset")
    assert r.mset({a: "1", b: "2"}) is True
    r.sadd(s, "x")
    assert r.mget(a, unique("none"), b, s) == [b"1", None, b"2", None]
    with pytest.raises(redis.ResponseError, match="wrong number of arguments for 'mset'"):
        r.execute_command("MSET", a, "1", b)


def test_ttl_expire_persist_and_keepttl(r: redis.Redis, unique: Callable[[str], str]) -> None:
    k = unique("ttl")
    assert r.ttl(k) == -2
    r.set(k, "v", ex=100)
    assert 95 <= r.ttl(k) <= 100
    assert 95_000 <= r.pttl(k) <= 100_000
    r.set(k, "w", keepttl=True)
    assert r.get(k) == b"w" and 90 <= r.ttl(k) <= 100
    assert r.persist(k) is True
    assert r.ttl(k) == -1
    assert r.persist(k) is False
    assert r.expire(k, 50) is True
    assert 45 <= r.ttl(k) <= 50
    assert r.expire(k, 500, nx=True) is False
    assert r.expire(k, 10, gt=True) is False
    assert r.expire(k, 500, gt=True) is True
    assert r.expire(k, 20, lt=True) is True
    assert 15 <= r.ttl(k) <= 20
    assert r.pexpire(unique("absent"), 1000) is False
    r.set(k, "plain")
    assert r.ttl(k) == -1
    r.set(k, "gone", px=1)
    eventually(lambda: r.get(k) is None)
    assert r.ttl(k) == -2


def test_expire_zero_deletes(r: redis.Redis, unique: Callable[[str], str]) -> None:
    k = unique("ex0")
    r.set(k, "v")
    assert r.expire(k, 0) is True
    assert r.get(k) is None


def test_counters(r: redis.Redis, unique: Callable[[str], str]) -> None:
    c = unique("ctr")
    assert r.incr(c) == 1
    assert r.incrby(c, 10) == 11
    assert r.decr(c) == 10
    assert r.decrby(c, 4) == 6
    assert r.get(c) == b"6"
    assert r.type(c) == b"string"
    with pytest.raises(redis.ResponseError, match=r"^value is not an integer or out of range$"):
        r.incrby(c, "ten")
    with pytest.raises(redis.ResponseError, match=r"^WRONGTYPE Operation against a key"):
        r.set(c, "text")
    s = unique("str")
    r.set(s, "10")
    with pytest.raises(redis.ResponseError, match=r"^WRONGTYPE Operation against a key"):
        r.incr(s)


def test_sets(r: redis.Redis, unique: Callable[[str], str]) -> None:
    s = unique("set")
    assert r.sadd(s, "a", "b", "c") == 3
    assert r.sadd(s, "a", "d") == 1
    assert r.smembers(s) == {b"a", b"b", b"c", b"d"}
    assert r.sismember(s, "b") == 1 and r.sismember(s, "z") == 0
    assert r.scard(s) == 4
    assert r.srem(s, "a", "z") == 1
    assert r.type(s) == b"set"
    assert r.smembers(unique("none")) == set()
    assert r.scard(unique("none")) == 0
    with pytest.raises(redis.ResponseError, match=r"^WRONGTYPE"):
        r.get(s)
    text = unique("text")
    r.set(text, "1")
    with pytest.raises(redis.ResponseError, match=r"^WRONGTYPE"):
        r.sadd(text, "m")


def test_keys_map_to_namespaces(r: redis.Redis, api: Client, unique: Callable[[str], str]) -> None:
    """`ns:key` reaches namespace ns when it exists, anything else is `default`."""
    key = unique("plan")
    r.set(f"swarm:{key}", "v")
    assert api.get("swarm", key)["value"] == "v"
    assert 86_000 <= r.ttl(f"swarm:{key}") <= 86_400  # the built-in namespace's 24 h
    other = unique("nons") + ":x"
    r.set(other, "w")
    assert api.get("default", other)["value"] == "w"
    api.put("default", unique("map"), {"a": [1, 2], "b": "t"})
    assert r.get(unique("map")) == b'{"a":[1,2],"b":"t"}'


def test_scan_and_keys(r: redis.Redis, unique: Callable[[str], str]) -> None:
    prefix = unique("scan")
    names = {f"{prefix}:{i}" for i in range(25)}
    r.mset(dict.fromkeys(names, "v"))
    r.sadd(f"{prefix}:set", "m")
    found = list(r.scan_iter(match=f"{prefix}:*", count=7))
    assert len(found) == len(set(found)) == 26
    assert {k.decode() for k in found} == names | {f"{prefix}:set"}
    typed = list(r.scan_iter(match=f"{prefix}:*", _type="set"))
    assert typed == [f"{prefix}:set".encode()]
    assert sorted(r.keys(f"{prefix}:1?")) == sorted(f"{prefix}:{i}".encode() for i in range(10, 20))
    with pytest.raises(redis.ResponseError, match="invalid cursor"):
        r.scan(cursor=987654321)
    assert r.dbsize() >= 26


def test_errors_as_redis_words_them(r: redis.Redis) -> None:
    with pytest.raises(
        redis.ResponseError,
        match=r"^unknown command 'FOO', with args beginning with: 'a' 'b' $",
    ):
        r.execute_command("FOO", "a", "b")
    with pytest.raises(redis.ResponseError, match=r"^wrong number of arguments for 'get' command$"):
        r.execute_command("GET")
    with pytest.raises(redis.ResponseError, match=r"^unknown subcommand 'NOPE'\. Try CLIENT"):
        r.execute_command("CLIENT", "NOPE")
    with pytest.raises(redis.ResponseError, match=r"^DB index is out of range$"):
        r.execute_command("SELECT", "1")
    assert r.execute_command("SELECT", "0") is True


def test_connection_commands(r: redis.Redis) -> None:
    assert r.ping() is True
    assert r.echo("hi") == b"hi"
    assert r.client_setname("worker-1") is True
    assert r.client_getname() == "worker-1"  # redis-py decodes this reply itself
    assert isinstance(r.client_id(), int)
    info = r.info()
    assert info["redis_version"] == "8.0.0" and "swarmnode_node_id" in info
    assert r.info("keyspace") == {} or "db0" in r.info("keyspace")
    assert r.config_get("appendonly") == {"appendonly": "yes"}


def test_command_table_is_published(r: redis.Redis) -> None:
    count = r.command_count()
    docs = r.execute_command("COMMAND DOCS", "set")
    assert count >= 40
    flat = repr(docs)
    for word in ("NX", "KEEPTTL", "arguments", "oneof"):
        assert word in flat
    info = r.command()
    assert info["get"]["arity"] == 2 and info["mset"]["step_count"] == 2


def test_pipeline_replies_in_order_and_reads_see_earlier_writes(
    r: redis.Redis, unique: Callable[[str], str]
) -> None:
    k, c = unique("pk"), unique("pc")
    pipe = r.pipeline(transaction=False)
    expected: list[Any] = []
    for i in range(100):
        pipe.set(k, str(i))
        pipe.incr(c)
        pipe.get(k)
        expected += [True, i + 1, str(i).encode()]
    pipe.execute_command("NOSUCH")
    pipe.get(c)
    results = pipe.execute(raise_on_error=False)
    assert results[:-2] == expected
    assert isinstance(results[-2], redis.ResponseError)
    assert results[-1] == b"100"


def test_resp3(r3: redis.Redis, unique: Callable[[str], str]) -> None:
    s, k = unique("r3set"), unique("r3k")
    r3.sadd(s, "a", "b")
    assert r3.smembers(s) == {b"a", b"b"}
    assert r3.set(k, "v") is True and r3.get(k) == b"v"
    hello = r3.execute_command("HELLO", "3")
    assert hello[b"proto"] == 3 and hello[b"server"] == b"redis"
    assert r3.ttl(k) == -1


def test_keyspace_notifications(r: redis.Redis, unique: Callable[[str], str]) -> None:
    k = unique("note")
    p = r.pubsub()
    p.psubscribe(f"__keyspace@0__:{k}*")
    p.subscribe("__keyevent@0__:del")
    confirmations = [eventually(lambda: p.get_message(timeout=1)) for _ in range(2)]
    assert {m["type"] for m in confirmations} == {"psubscribe", "subscribe"}
    r.set(k, "v")
    r.expire(k, 100)
    r.incr(k + "c")
    r.delete(k)
    r.set(k, "short", px=50)
    wanted = [
        (k, "set"),
        (k, "expire"),
        (k + "c", "incrby"),
        (k, "del"),
        (k, "set"),
        (k, "expired"),
    ]
    got: list[tuple[str, str]] = []
    deleted_keys: list[bytes] = []

    def collect() -> bool:
        message = p.get_message(timeout=1)
        if message is not None and message["type"] == "pmessage":
            got.append((message["channel"].decode().split(":", 1)[1], message["data"].decode()))
        elif message is not None and message["type"] == "message":
            deleted_keys.append(message["data"])
        return len(got) >= len(wanted)

    eventually(collect)
    assert got == wanted
    assert k.encode() in deleted_keys
    p.close()


def test_subscribed_resp2_connection_refuses_other_commands(resp_node: RespNode) -> None:
    with socketlib.socket(socketlib.AF_UNIX) as sock:
        sock.settimeout(60)
        sock.connect(str(resp_node.socket))
        sock.sendall(encode_command("SUBSCRIBE", "ch") + encode_command("GET", "x")
                     + encode_command("PING"))  # fmt: skip
        parser = ReplyParser()
        replies: list[Any] = []
        while len(replies) < 3:
            replies += parser.feed(sock.recv(65536))
    assert replies[0] == [b"subscribe", b"ch", 1]
    assert replies[1].text.startswith("ERR Can't execute 'get': only (P|S)SUBSCRIBE")
    assert replies[2] == [b"pong", b""]


def test_vector_sets(r: redis.Redis, unique: Callable[[str], str]) -> None:
    vs = unique("vs")
    vset = r.vset()
    assert vset.vadd(vs, [1.0, 0.0, 0.0], "x", attributes={"genre": "sf", "year": 1984}) == 1
    assert vset.vadd(vs, [0.0, 1.0, 0.0], "y", attributes={"genre": "drama"}) == 1
    assert vset.vadd(vs, [0.9, 0.1, 0.0], "z", attributes={"genre": "sf"}) == 1
    assert vset.vadd(vs, [0.8, 0.2, 0.0], "z") == 0
    assert vset.vdim(vs) == 3
    assert vset.vcard(vs) == 3
    assert r.type(vs) == b"vectorset"
    assert vset.vsim(vs, [1.0, 0.0, 0.0], count=2) == [b"x", b"z"]
    scored = vset.vsim(vs, "x", with_scores=True)
    assert next(iter(scored)) == b"x" and scored[b"x"] == pytest.approx(1.0)
    assert scored[b"y"] == pytest.approx(0.5)
    assert vset.vsim(vs, [0.0, 1.0, 0.0], filter='.genre == "sf"') == [b"z", b"x"]
    assert vset.vsim(vs, [1.0, 0.0, 0.0], filter=".year in [1984, 2001]") == [b"x"]
    assert vset.vemb(vs, "x") == pytest.approx([1.0, 0.0, 0.0])
    assert vset.vemb(vs, "nope") is None
    blob = struct.pack("<3f", 0.0, 0.0, 1.0)
    assert vset.vadd(vs, blob, "w") == 1
    assert vset.vsim(vs, blob, count=1) == [b"w"]
    assert vset.vrem(vs, "w") == 1 and vset.vrem(vs, "w") == 0
    with pytest.raises(redis.ResponseError, match="dimension mismatch - got 2 but set has 3"):
        vset.vadd(vs, [1.0, 2.0], "bad")
    with pytest.raises(redis.ResponseError, match=r"^FILTER supports"):
        vset.vsim(vs, [1.0, 0.0, 0.0], filter=".year > 1950")
    assert vset.vsim(unique("novs"), [1.0, 0.0, 0.0]) == []
    with pytest.raises(redis.ResponseError, match=r"^WRONGTYPE"):
        vset.vadd("default", [1.0, 0.0, 0.0], "e")


def test_vector_set_with_attributes_in_resp3(r3: redis.Redis, unique: Callable[[str], str]) -> None:
    vs = unique("vs3")
    vset = r3.vset()
    vset.vadd(vs, [1.0, 0.0], "a", attributes={"k": 1})
    vset.vadd(vs, [0.0, 1.0], "b")
    both = vset.vsim(vs, [1.0, 0.0], with_scores=True, with_attribs=True)
    assert both[b"a"]["score"] == pytest.approx(1.0)
    assert both[b"a"]["attributes"] == {"k": 1}
    assert both[b"b"]["attributes"] is None
