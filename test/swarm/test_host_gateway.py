"""A swarm gateway run on the host, so that a test controls its settings and its path to the Docker engine.

When the engine becomes unreachable, requests that need it get a 503 that says why, nothing is half-done, running
clusters are not failed, and the gateway recovers by itself when the engine returns. The gateway reaches the
engine through a Unix-socket relay that the test switches off and on, so the engine keeps running the cluster's
services meanwhile. A missing image fails a cluster at once with Docker's reason.
"""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from helpers import ROOT, sh, wait_for

ENGINE = "/var/run/docker.sock"
NETWORK = "dgw-outage-test"
GATEWAY_ID = "outage-test"
AUTH = ("olga", "outage-pw-51c3")


class SocketSwitch:
    """A Unix socket relayed to the Docker engine's socket, which the test can cut and restore."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.listener: socket.socket | None = None
        self.open: set[socket.socket] = set()

    def on(self) -> None:
        if self.path.exists():
            return
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(str(self.path))
        self.listener.listen(64)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def off(self) -> None:
        """Refuses new connections (the socket file is gone) and cuts the open ones."""
        if self.listener is None or not self.path.exists():
            return
        self.listener.close()
        self.path.unlink(missing_ok=True)
        for conn in list(self.open):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            engine = socket.socket(socket.AF_UNIX)
            engine.connect(ENGINE)
            for a, b in ((client, engine), (engine, client)):
                self.open.add(a)
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self.open.discard(src)
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def labelled(kind: str) -> list[str]:
    return sh("docker", kind, "ls", "-q", "--filter", f"label=dask-gateway.gateway={GATEWAY_ID}").split()


@contextlib.contextmanager
def host_gateway(tmp_path: Path, *extra: str):
    """A swarm gateway on the host, reaching the engine through a SocketSwitch; yields (url, switch)."""
    # The host as containers see it: the address of docker0 (scripts/docker-engine.sh advertises the same).
    host_ip = sh("ip", "-4", "-o", "addr", "show", "docker0").split()[3].split("/")[0]
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        port = s.getsockname()[1]
    switch = SocketSwitch(tmp_path / "docker.sock")
    switch.on()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DGW_")},
           "DOCKER_HOST": f"unix://{switch.path}", "DGW_AUTH_PASSWORD": AUTH[1]}
    args = ["node", str(ROOT / "dist" / "cli.js"), "--backend", "swarm", "--address", f"0.0.0.0:{port}",
            "--api_url", f"http://{host_ip}:{port}/api", "--swarm.network", NETWORK, "--swarm.gateway_id", GATEWAY_ID,
            "--state_dir", str(tmp_path / "state"), "--clusters.check_period", "1", "--log.format", "json",
            # On the manager, where the image was built: nodes pull only from a registry (see test_swarm.py).
            "--swarm.scheduler_constraint", "node.role==manager",
            # These tests count the gateway's services: no warm pool (test_swarm.py tests it with make up).
            "--pool.size", "0",
            "--log.level", "debug", *extra]
    log = tmp_path / "gateway.log"
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _healthy(url), 30, "the gateway to start")
        yield url, switch
    finally:
        switch.on()
        proc.terminate()
        proc.wait(60)
        switch.off()
        wait_for(lambda: labelled("service") == [] and labelled("secret") == [], 60, "the test gateway's objects to go")
        print(log.read_text()[-3000:])


@pytest.fixture(scope="module", autouse=True)
def network_and_image():
    """The sidecar image and the overlay network, once for the module (removing a network takes a moment)."""
    subprocess.run([str(ROOT / "scripts" / "build-images.sh"), "--sidecar-only"], check=True, stdout=subprocess.DEVNULL)
    if subprocess.run(["docker", "network", "inspect", NETWORK], capture_output=True).returncode != 0:
        sh("docker", "network", "create", "--driver", "overlay", "--attachable", NETWORK)
    yield
    sh("docker", "network", "rm", NETWORK, check=False)


@pytest.fixture
def outage_gateway(tmp_path):
    with host_gateway(tmp_path) as running:
        yield running


def _healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/api/health", timeout=2).ok
    except requests.RequestException:
        return False


def status(url: str, name: str) -> str:
    return requests.get(f"{url}/api/v1/clusters/{name}", auth=AUTH, timeout=10).json()["status"]


def test_engine_outage_gives_503_and_the_gateway_recovers(outage_gateway):
    url, switch = outage_gateway
    switch.off()
    refused = requests.post(f"{url}/api/v1/clusters/", json={}, auth=AUTH, timeout=30)
    assert refused.status_code == 503
    assert "cannot be reached" in refused.json()["error"] and "nothing was created" in refused.json()["error"]
    assert requests.get(f"{url}/api/v1/clusters/", auth=AUTH, timeout=10).json() == {}
    assert requests.get(f"{url}/api/health", timeout=10).ok

    switch.on()
    name = requests.post(f"{url}/api/v1/clusters/", json={}, auth=AUTH, timeout=30).json()["name"]
    wait_for(lambda: status(url, name) == "RUNNING", 120, "the cluster to run once the engine is back")

    # A running cluster survives an outage: its scheduler still heartbeats, and nothing is failed for it.
    switch.off()
    time.sleep(4)
    assert status(url, name) == "RUNNING"
    scale = requests.post(f"{url}/api/v1/clusters/{name}/scale", json={"count": 1}, auth=AUTH, timeout=30)
    assert scale.status_code == 503 and "the scale was not changed" in scale.json()["error"]

    # A stop asked during the outage is finished when the engine returns.
    assert requests.delete(f"{url}/api/v1/clusters/{name}", auth=AUTH, timeout=30).status_code == 204
    time.sleep(2)
    switch.on()
    wait_for(lambda: status(url, name) == "STOPPED", 90, "the stop to finish after the outage")
    wait_for(lambda: labelled("service") == [] and labelled("secret") == [], 60, "the cluster's services and secrets to go")


def test_missing_image_fails_the_cluster_at_once_with_dockers_reason(tmp_path):
    with host_gateway(tmp_path, "--swarm.image", "dgw-no-such-image:0") as (url, _switch):
        started = time.time()
        name = requests.post(f"{url}/api/v1/clusters/", json={}, auth=AUTH, timeout=30).json()["name"]
        wait_for(lambda: status(url, name) == "FAILED", 60, "the cluster to fail")
        assert time.time() - started < 30, "a missing image fails the start at once, not after clusters.start_timeout"
        reason = requests.get(f"{url}/api/v1/clusters/{name}/events", auth=AUTH, timeout=10).json()["reason"]
        assert "dgw-no-such-image:0" in reason or "No such image" in reason, reason
        wait_for(lambda: labelled("service") == [] and labelled("secret") == [], 60, "the cluster's objects to go")


def test_image_missing_from_the_registry_fails_at_once_with_its_reason(tmp_path):
    """With a registry, the image is pinned by digest before anything is created: one the registry lacks fails the
    start with the registry's own answer, whichever node would have run it."""
    registry = sh(str(ROOT / "scripts" / "registry.sh"), "up")
    with host_gateway(tmp_path, "--swarm.registry", registry, "--swarm.image", "dgw-no-such-image:0") as (url, _switch):
        started = time.time()
        name = requests.post(f"{url}/api/v1/clusters/", json={}, auth=AUTH, timeout=30).json()["name"]
        wait_for(lambda: status(url, name) == "FAILED", 60, "the cluster to fail")
        assert time.time() - started < 10
        reason = requests.get(f"{url}/api/v1/clusters/{name}/events", auth=AUTH, timeout=10).json()["reason"]
        assert f"image {registry}/dgw-no-such-image:0 cannot be pulled from its registry" in reason, reason
        assert "manifest unknown" in reason or "not found" in reason, reason
