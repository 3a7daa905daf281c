"""One public port: scheduler TLS relayed by SNI, dashboards behind the gateway's auth (reference section 6).
Every test here runs once per relay path: splice (the native addon) and js."""
from __future__ import annotations

import json
import socket
import ssl

import pytest
import requests

from conftest import REMOTE_URL, USERS, connect, start_main_gateway, stop_gateway, wait_for

RELAY_PATHS = ["splice", "js"]


@pytest.fixture(scope="module", params=RELAY_PATHS)
def gateway(request, tmp_path_factory, users_file):
    """This module's own gateway, set up as the session's main one, once per relay path (the setting `relay`)."""
    if REMOTE_URL:
        pytest.skip("the relay path of a remote gateway is not ours to choose")
    gw = start_main_gateway(tmp_path_factory.mktemp(f"proxy-{request.param}"), users_file, relay=request.param)
    yield gw
    stop_gateway(gw)


def test_the_chosen_relay_path_is_logged(gateway):
    mode = gateway.settings["relay"]
    started = [json.loads(line) for line in gateway.log_text().splitlines() if line.startswith("{") and '"relay":' in line]
    assert [entry["relay"] for entry in started] == [mode], started


@pytest.fixture(scope="module")
def running(gateway):
    """A cluster of alice's with two workers, shared by the tests of this module."""
    gw = connect(gateway, "alice")
    cluster = gw.new_cluster()
    cluster.scale(2)
    client = cluster.get_client()
    client.wait_for_workers(2, timeout=120)
    yield cluster, client
    client.close()
    cluster.shutdown()
    gw.close()


def test_compute_through_the_relay(running):
    cluster, client = running
    assert client.submit(lambda x: x + 1, 1).result(timeout=60) == 2
    assert client.run_on_scheduler(lambda: "hello from the scheduler") == "hello from the scheduler"
    assert client.dashboard_link == cluster.dashboard_link


def test_compute_across_two_workers(running):
    _, client = running
    workers = list(client.scheduler_info()["workers"])
    assert len(workers) == 2
    futures = [client.submit(lambda x: x * 2, i, workers=[w], pure=False) for i, w in enumerate(workers)]
    assert client.gather(futures) == [0, 2]
    # The cluster's own view of its workers, through the client's worker-status subscription.
    wait_for(lambda: len(running[0].scheduler_info.get("workers", {})) == 2, 30, what="cluster.scheduler_info")


def test_100_mb_round_trip(running):
    _, client = running
    payload = b"x" * (100 * 1024 * 1024)
    future = client.scatter(payload)
    assert client.submit(len, future).result(timeout=120) == len(payload)
    assert len(future.result(timeout=120)) == len(payload)


def test_two_clusters_each_reach_their_own_scheduler(gateway, running):
    first, first_client = running
    with connect(gateway, "alice") as gw:
        second = gw.new_cluster()
        try:
            with second.get_client() as second_client:
                a = first_client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.id)
                b = second_client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.id)
                assert a != b
                assert first_client.scheduler_info()["id"] == a
                assert second_client.scheduler_info()["id"] == b
        finally:
            second.shutdown()


def _hello(gateway, sni: str) -> bytes:
    """Opens TLS with the given SNI to the public port and answers what came back before it closed."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname=sni) as tls:
                return tls.recv(10)
        except (ssl.SSLError, ConnectionError, OSError):
            return b""


def test_unknown_cluster_and_junk_are_closed_and_the_gateway_keeps_serving(gateway):
    before = gateway.metric("dask_gateway_connections_total", 'outcome="unknown-cluster"')
    assert _hello(gateway, "daskgateway-" + "0" * 32) == b""
    assert gateway.metric("dask_gateway_connections_total", 'outcome="unknown-cluster"') == before + 1
    for junk in [b"\x16\x03\x01\x00\x05hello", b"\x16\x03\x01\xff\xff" + b"a" * 100, b"\x16\x03"]:
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as s:
            s.sendall(junk)
            s.shutdown(socket.SHUT_WR)
            s.settimeout(15)
            assert s.recv(10) == b""
    assert requests.get(f"{gateway.url}/api/health").json() == {"status": "pass"}


def test_dashboard_for_owner_only(gateway, running):
    cluster, _ = running
    url = f"{gateway.url}/clusters/{cluster.name}/status"
    anonymous = requests.get(url)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic")
    assert requests.get(url, auth=("bob", USERS["bob"][0])).status_code == 403
    owner = requests.get(url, auth=("alice", USERS["alice"][0]))
    assert owner.status_code == 200
    assert "text/html" in owner.headers["Content-Type"]
    assert "bokeh" in owner.text.lower()
    admin = requests.get(url, auth=("root", USERS["root"][0]))
    assert admin.status_code == 200
    # The query string is kept and the prefix stripped: the dashboard's JSON API answers through the gateway.
    info = requests.get(f"{gateway.url}/clusters/{cluster.name}/json/identity.json?x=1", auth=("alice", USERS["alice"][0]))
    assert info.status_code == 200 and info.json()["type"] == "Scheduler"
    unknown = requests.get(f"{gateway.url}/clusters/{'0' * 32}/status", auth=("alice", USERS["alice"][0]))
    assert unknown.status_code == 404


def test_dashboard_cookie_spares_password_checks(gateway, running):
    cluster, _ = running
    with requests.Session() as s:
        s.auth = ("alice", USERS["alice"][0])
        assert s.get(f"{gateway.url}/clusters/{cluster.name}/status").status_code == 200
        s.auth = None
        assert s.get(f"{gateway.url}/clusters/{cluster.name}/json/identity.json").status_code == 200


def test_routes_vanish_when_the_cluster_stops(gateway):
    with connect(gateway, "alice") as gw:
        cluster = gw.new_cluster()
        url = f"{gateway.url}/clusters/{cluster.name}/status"
        assert requests.get(url, auth=("alice", USERS["alice"][0])).status_code == 200
        cluster.shutdown()
        wait_for(lambda: requests.get(url, auth=("alice", USERS["alice"][0])).status_code == 404, 30, what="route removal")
        assert _hello(gateway, "daskgateway-" + cluster.name) == b""


def test_dashboard_websocket_through_the_gateway(gateway, running):
    import asyncio
    import re

    import aiohttp

    cluster, _ = running
    auth = aiohttp.BasicAuth("alice", USERS["alice"][0])
    base = f"{gateway.url}/clusters/{cluster.name}/status"
    html = requests.get(base, auth=("alice", USERS["alice"][0])).text
    token = re.search(r'token":"([^"]+)"', html).group(1)

    async def exchange():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{base}/ws", auth=auth, protocols=("bokeh", token)) as ws:
                frames = [await asyncio.wait_for(ws.receive(), 30) for _ in range(3)]
                return [f.data for f in frames if isinstance(f.data, str)]
            
    texts = asyncio.run(exchange())
    assert any('"msgtype":"ACK"' in t.replace(" ", "") for t in texts), texts

    async def refused():
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                await session.ws_connect(f"{base}/ws", protocols=("bokeh", token))
            return err.value.status

    assert asyncio.run(refused()) == 401


@pytest.fixture(scope="module", params=RELAY_PATHS)
def orphaning(request, tmp_path_factory):
    from conftest import start_gateway

    gw = start_gateway(tmp_path_factory.mktemp("orphan"), **{"auth.password": "pw", "clusters.orphan_timeout": "4", "relay": request.param})
    yield gw
    stop_gateway(gw)


@pytest.mark.local_only
def test_orphan_cluster_is_stopped_after_its_last_client_left(orphaning):
    from dask_gateway import BasicAuth, Gateway

    with Gateway(orphaning.url, auth=BasicAuth("olga", "pw")) as gw:
        cluster = gw.new_cluster(shutdown_on_close=False)
        name = cluster.name
        client = cluster.get_client()
        assert client.run_on_scheduler(lambda: 42) == 42
        import time
        time.sleep(6)  # Longer than the orphan timeout, but a client is connected: the cluster stays.
        assert [c.name for c in gw.list_clusters()] == [name]
        client.close()
        cluster.close()
        wait_for(lambda: gw.list_clusters() == [], 30, what="orphan stop")
        reason = requests.get(f"{orphaning.url}/api/v1/clusters/{name}/events", auth=("olga", "pw")).json()["reason"]
        assert "no client connected" in reason
