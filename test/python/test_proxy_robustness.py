"""Hostile and broken input on the public port: random bytes, mutated and truncated ClientHellos, hellos for
clusters that do not exist, oversized records, resets, and silent clients held open through the whole storm.
The gateway closes them, counts them, keeps serving (REST and a real computation through the relay), and its
open descriptors settle back to where they were. Once per relay path: splice (the native addon) and js."""
from __future__ import annotations

import os
import random
import socket
import ssl
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from dask_gateway import BasicAuth, Gateway

from conftest import start_gateway, stop_gateway, wait_for

CONNECTIONS = 3000
STALLED = 50
HELLO_TIMEOUT = 3  # seconds; the gateway's default is 10
MAX_RECORD = 16384 + 2048  # the largest TLS record body the classifier accepts
COUNTER = "dask_gateway_connections_total"


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


def randbytes(rng: random.Random, n: int) -> bytes:
    return rng.getrandbits(8 * n).to_bytes(n, "little") if n else b""


def payloads(hello: bytes, strangers: list[bytes], n: int, rng: random.Random):
    """(bytes to send, close with a reset) for n connections, eight kinds in turn."""
    for i in range(n):
        kind = i % 8
        if kind == 0:  # random bytes; most do not start with 0x16 and go to the HTTP server
            yield randbytes(rng, rng.randint(1, 600)), False
        elif kind == 1:  # bytes flipped anywhere in a real hello
            data = bytearray(hello)
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] = rng.getrandbits(8)
            yield bytes(data), False
        elif kind == 2:  # truncated, then the client ends its side
            yield hello[: rng.randint(1, len(hello) - 1)], False
        elif kind == 3:  # a record header that claims more than a record may hold
            yield b"\x16\x03\x01" + struct.pack(">H", rng.randint(MAX_RECORD + 1, 0xFFFF)) + randbytes(rng, rng.randint(0, 200)), False
        elif kind == 4:  # a largest-allowed record full of junk, or a real hello whose inner lengths lie
            if rng.random() < 0.5:
                yield b"\x16\x03\x01" + struct.pack(">H", MAX_RECORD) + b"\x01" + randbytes(rng, MAX_RECORD - 1), False
            else:
                data = bytearray(hello)
                # the handshake length, the session id length or the cipher suites length
                at = rng.choice([6, 43, 44 + hello[43]])
                data[at] = 0xFF
                yield bytes(data), False
        elif kind == 5:  # a well-formed hello for a cluster that does not exist
            yield rng.choice(strangers), False
        elif kind == 6:  # a partial hello, then a reset instead of a close
            yield hello[: rng.randint(1, 60)], True
        else:  # a real hello with its record length changed (too short or too long by a little)
            data = bytearray(hello)
            struct.pack_into(">H", data, 3, max(0, len(hello) - 5 + rng.choice([-40, -1, 1, 40])))
            yield bytes(data), False


def poke(port: int, data: bytes, reset: bool) -> None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(data)
            if reset:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            s.shutdown(socket.SHUT_WR)
            while s.recv(65536):
                pass
    except OSError:
        pass  # reset by the gateway or the scheduler: fine


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def counters(gw) -> dict[str, float]:
    return {o: gw.metric(COUNTER, f'outcome="{o}"') for o in ("invalid", "unknown-cluster", "timeout", "tls-scheduler", "http")}


@pytest.fixture(scope="module", params=["splice", "js"])
def target(request, tmp_path_factory):
    gw = start_gateway(tmp_path_factory.mktemp("robust"), **{"auth.password": "pw", "limits.hello_timeout": str(HELLO_TIMEOUT),
                                                             "log.level": "warn", "relay": request.param})
    gateway = Gateway(gw.url, auth=BasicAuth("rob", "pw"))
    cluster = gateway.new_cluster()
    cluster.scale(1)
    with cluster.get_client() as client:
        client.wait_for_workers(1, timeout=120)
    yield gw, cluster
    cluster.shutdown()
    gateway.close()
    stop_gateway(gw)


def test_storm_of_hostile_connections_leaves_the_gateway_serving(target):
    gw, cluster = target
    pid = gw.proc.pid
    time.sleep(1)
    before = open_fds(pid)
    counts_before = counters(gw)
    hello = client_hello("daskgateway-" + cluster.name)
    strangers = [client_hello(f"daskgateway-{random.Random(i).getrandbits(128):032x}") for i in range(8)]

    # Silent clients, held open through the whole storm: half send nothing, half a partial hello.
    stalled = []
    for i in range(STALLED):
        s = socket.create_connection(("127.0.0.1", gw.port), timeout=HELLO_TIMEOUT + 15)
        if i % 2:
            s.sendall(hello[:20])
        stalled.append(s)
    stalled_at = time.time()

    peak = [before]
    storming = threading.Event()

    def sample():
        while not storming.wait(0.05):
            try:
                peak[0] = max(peak[0], open_fds(pid))
            except OSError:
                return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    rng = random.Random(1234)
    started = time.time()
    with ThreadPoolExecutor(64) as pool:
        list(pool.map(lambda p: poke(gw.port, *p), payloads(hello, strangers, CONNECTIONS, rng)))
    storm_seconds = time.time() - started
    storming.set()
    sampler.join()

    # Every silent client is closed by the gateway, and only after the hello timeout.
    closed_after = []
    for s in stalled:
        try:
            assert s.recv(10) == b""
        except ConnectionResetError:
            pass
        closed_after.append(time.time() - stalled_at)
        s.close()
    assert min(closed_after) >= HELLO_TIMEOUT - 0.5, closed_after
    assert max(closed_after) < HELLO_TIMEOUT + 15, closed_after

    # Still serving: REST, and a real computation on the cluster through the relay.
    assert requests.get(f"{gw.url}/api/health", timeout=5).json() == {"status": "pass"}
    with cluster.get_client() as client:
        assert client.submit(sum, range(10)).result(timeout=60) == 45
        assert client.run_on_scheduler(lambda: 6 * 7) == 42

    wait_for(lambda: open_fds(pid) <= before + 3, 30, what=f"descriptors to settle (before {before}, now {open_fds(pid)})")
    after = open_fds(pid)

    moved = {k: v - counts_before[k] for k, v in counters(gw).items()}
    assert moved["invalid"] >= CONNECTIONS / 8 * 3, moved  # kinds 3, 4 and 7 at least, plus most of 1, 2 and 6
    assert moved["unknown-cluster"] >= CONNECTIONS / 8, moved  # kind 5, plus any mutation that kept a valid SNI
    assert moved["timeout"] >= STALLED, moved
    assert moved["tls-scheduler"] >= 1, moved  # the client above
    print(f"\n{CONNECTIONS} hostile connections in {storm_seconds:.1f} s; descriptors {before} before, "
          f"{peak[0]} at most during, {after} after; silent clients closed after "
          f"{min(closed_after):.1f}-{max(closed_after):.1f} s; counters moved {moved}")
