"""A gateway killed with SIGKILL and started again adopts its clusters: nothing lost, nothing orphaned."""
from __future__ import annotations

import os
import signal
import socket
import time

import requests
from dask_gateway import BasicAuth, Gateway

from conftest import start_gateway, stop_gateway, wait_for


def test_sigkilled_gateway_readopts_running_cluster(tmp_path):
    # Without a pool: its warm schedulers would outlive this test's gateways (clusters.stop_on_shutdown false), and
    # test_pool.py re-adopts warm and claimed schedulers on its own.
    settings = {"auth.password": "pw", "clusters.stop_on_shutdown": "false", "pool.size": "0"}
    gw = start_gateway(tmp_path, **settings)
    settings["address"] = gw.settings["address"]
    gateway = Gateway(gw.url, auth=BasicAuth("rita", "pw"))
    cluster = gateway.new_cluster()
    cluster.scale(1)
    client = cluster.get_client()
    client.wait_for_workers(1, timeout=120)
    assert client.submit(lambda x: x + 1, 1).result(timeout=60) == 2
    workdir = gw.state_dir / "clusters" / cluster.name

    os.kill(gw.proc.pid, signal.SIGKILL)
    gw.proc.wait()
    assert workdir.exists(), "the cluster's processes and files outlive the gateway"

    gw2 = start_gateway(tmp_path, **settings)
    try:
        reports = gateway.list_clusters()  # the same client object, after a fresh 401 challenge
        assert [(r.name, r.status.name) for r in reports] == [(cluster.name, "RUNNING")]
        # The same distributed client reconnects through the new gateway's relay and computes again.
        assert client.submit(lambda x: x * 3, 5, pure=False).result(timeout=90) == 15
        events = requests.get(f"{gw2.url}/api/v1/clusters/{cluster.name}/events", auth=("rita", "pw")).json()["events"]
        assert any(e["kind"] == "adopted" for e in events)
        client.close()
        cluster.shutdown()
        wait_for(lambda: not workdir.exists(), 60, what="cleanup of the adopted cluster")
        assert gw2.worker_pids(cluster.name) == []
    finally:
        gateway.close()
        stop_gateway(gw2)


def test_leftovers_of_unknown_clusters_are_removed_at_start(tmp_path):
    gw = start_gateway(tmp_path, **{"auth.password": "pw"})
    stop_gateway(gw)
    stray = gw.state_dir / "clusters" / ("f" * 32)
    stray.mkdir(parents=True)
    gw2 = start_gateway(tmp_path, **{"auth.password": "pw"})
    try:
        wait_for(lambda: not stray.exists(), 10, what="orphan cleanup")
    finally:
        stop_gateway(gw2)


def test_sigterm_does_not_wait_for_idle_keepalive_connections(tmp_path):
    """A stopping gateway closes idle keep-alive connections at once: held open, they kept an old gateway (and, on
    Swarm, its name in DNS, so schedulers could not reach the new one) for up to a minute."""
    gw = start_gateway(tmp_path, **{"auth.password": "pw", "clusters.stop_on_shutdown": "false", "pool.size": "0"})  # no warm scheduler left behind
    idle = socket.create_connection(("127.0.0.1", gw.port))
    try:
        idle.sendall(b"GET /api/health HTTP/1.1\r\nHost: gw\r\nConnection: keep-alive\r\n\r\n")
        assert idle.recv(4096).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        gw.proc.send_signal(signal.SIGTERM)
        gw.proc.wait(30)
        assert time.monotonic() - started < 10
        assert idle.recv(4096) == b"", "the idle connection was closed"
    finally:
        idle.close()
        stop_gateway(gw)
