"""Hostile and broken input on the public port: random bytes, mutated and truncated ClientHellos, oversized
records and silent clients. The gateway closes them, keeps serving, and its open descriptors settle back."""
from __future__ import annotations

import os
import random
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from dask_gateway import BasicAuth, Gateway

from conftest import start_gateway, stop_gateway, wait_for

CONNECTIONS = 3000
STALLED = 50


def client_hello(sni: str) -> bytes:
    """The first flight of a real Python TLS client, captured from a memory BIO."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    conn = ctx.wrap_bio(incoming, outgoing, server_hostname=sni)
    with pytest.raises(ssl.SSLWantReadError):
        conn.do_handshake()
    return outgoing.read()


def payloads(hello: bytes, n: int, rng: random.Random):
    for i in range(n):
        kind = i % 5
        if kind == 0:
            yield bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 600)))
        elif kind == 1:  # flipped bytes anywhere in a real hello
            data = bytearray(hello)
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] = rng.getrandbits(8)
            yield bytes(data)
        elif kind == 2:  # truncated, then the client closes its side
            yield hello[: rng.randint(1, len(hello) - 1)]
        elif kind == 3:  # a record that claims to be huge
            yield b"\x16\x03\x01\xff\xff" + bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 200)))
        else:  # a handshake record whose inner lengths lie
            data = bytearray(hello)
            data[6:9] = b"\xff\xff\xff"
            yield bytes(data)


def poke(port: int, data: bytes) -> None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            while s.recv(4096):
                pass
    except OSError:
        pass  # reset by the gateway or the scheduler: fine


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    gw = start_gateway(tmp_path_factory.mktemp("robust"), **{"auth.password": "pw", "limits.hello_timeout": "3", "log.level": "warn"})
    client = Gateway(gw.url, auth=BasicAuth("rob", "pw"))
    cluster = client.new_cluster()
    yield gw, cluster
    cluster.shutdown()
    client.close()
    stop_gateway(gw)


def test_storm_of_hostile_connections_leaves_the_gateway_serving(target):
    gw, cluster = target
    pid = gw.proc.pid
    time.sleep(1)
    before = open_fds(pid)
    hello = client_hello("daskgateway-" + cluster.name)
    stalled = []
    for i in range(STALLED):
        s = socket.create_connection(("127.0.0.1", gw.port), timeout=15)
        if i % 2:
            s.sendall(hello[:20])  # a partial hello, then nothing
        stalled.append(s)
    rng = random.Random(1234)
    started = time.time()
    with ThreadPoolExecutor(64) as pool:
        list(pool.map(lambda d: poke(gw.port, d), payloads(hello, CONNECTIONS, rng)))
    storm_seconds = time.time() - started

    for s in stalled:  # every silent client was closed by the gateway's hello timeout
        s.settimeout(15)
        try:
            assert s.recv(10) == b""
        except ConnectionResetError:
            pass
        s.close()

    assert requests.get(f"{gw.url}/api/health", timeout=5).json() == {"status": "pass"}
    with cluster.get_client() as client:
        assert client.run_on_scheduler(lambda: 6 * 7) == 42
    wait_for(lambda: open_fds(pid) <= before + 5, 30, what=f"descriptors to settle (before {before}, now {open_fds(pid)})")
    assert gw.metric("dask_gateway_connections_total", 'outcome="invalid"') > CONNECTIONS / 5
    assert gw.metric("dask_gateway_connections_total", 'outcome="timeout"') >= STALLED
    print(f"{CONNECTIONS} hostile connections in {storm_seconds:.1f} s; descriptors {before} -> {open_fds(pid)}")
