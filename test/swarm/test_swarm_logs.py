"""Logs and nodes on a real swarm, through the gateway `make up` deploys (it reaches the schedulers on the overlay
network, which a gateway on the host cannot): the engine's service logs with timestamps for the scheduler and a
worker, a followed worker log that ends when the worker goes, the failed scheduler's log still readable after its
service is gone, and the nodes with this gateway's counts."""
from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import requests

from helpers import ROOT, sh, wait_for

URL = "http://127.0.0.1:8000"
ADMIN = "olga"
AUTH: tuple[str, str] = (ADMIN, "")

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ")


def _healthy() -> bool:
    try:
        return requests.get(f"{URL}/api/health", timeout=2).ok
    except requests.RequestException:
        return False


@pytest.fixture(scope="module")
def url():
    """make up's gateway, with an admin (for the nodes view) set as an operator would, in the service's environment."""
    global AUTH
    subprocess.run([str(ROOT / "scripts" / "up.sh")], check=True, stdout=subprocess.DEVNULL, env={**os.environ, "POOL_SIZE": "0"})
    AUTH = (ADMIN, (Path.home() / ".local/state/dask-gateway-swarm/swarm-password").read_text().strip())
    update = ["docker", "service", "update", "--quiet", "dgw_gateway"]
    sh(*update, "--env-add", f"DGW_AUTH_ADMIN_USERS={ADMIN}")
    try:
        wait_for(lambda: _healthy() and requests.get(f"{URL}/api/v1/whoami", auth=AUTH, timeout=5).json().get("admin"), 120, "the reconfigured gateway")
        yield URL
    finally:
        sh(*update, "--env-rm", "DGW_AUTH_ADMIN_USERS", check=False)
        wait_for(_healthy, 120, "the gateway as deployed")


def _running_cluster(url: str) -> str:
    name = requests.post(f"{url}/api/v1/clusters/", json={}, auth=AUTH).json()["name"]
    wait_for(lambda: requests.get(f"{url}/api/v1/clusters/{name}", auth=AUTH).json()["status"] == "RUNNING", 120, "RUNNING")
    return name


def _components(url: str, name: str) -> list[dict]:
    return requests.get(f"{url}/api/v1/clusters/{name}/logs", auth=AUTH).json()["components"]


def test_service_logs_follow_and_nodes(url):
    name = _running_cluster(url)
    try:
        assert requests.post(f"{url}/api/v1/clusters/{name}/scale", json={"count": 1}, auth=AUTH).json()["ok"]
        workers = wait_for(lambda: [c for c in _components(url, name) if c["kind"] == "worker" and c["live"]], 120, "a worker's log")
        assert _components(url, name)[0] == {"name": "scheduler", "kind": "scheduler", "live": True, "kept": False}

        text = requests.get(f"{url}/api/v1/clusters/{name}/logs/scheduler?tail=5", auth=AUTH).text
        lines = text.splitlines()
        assert len(lines) == 5 and all(LINE.match(line) for line in lines), text
        assert "distributed" in requests.get(f"{url}/api/v1/clusters/{name}/logs/scheduler", auth=AUTH).text

        # A worker counts on its node once its task runs (its service, and so its log, exists before).
        def nodes_with_the_worker():
            view = requests.get(f"{url}/api/v1/admin/nodes", auth=AUTH).json()
            return view if sum(n.get("workers", 0) for n in view["nodes"]) == 1 else None

        nodes = wait_for(nodes_with_the_worker, 120, "the worker counted on its node")
        assert nodes["backend"] == "swarm"
        assert sum(n.get("schedulers", 0) for n in nodes["nodes"]) >= 1
        assert all(n["state"] in ("ready", "down", "unknown", "disconnected") and n["cores"] > 0 for n in nodes["nodes"])

        # Follow the worker, then take it away: the response ends by itself.
        worker = workers[0]["name"]
        started = time.time()
        with requests.get(f"{url}/api/v1/clusters/{name}/logs/{worker}?tail=1&follow=1", auth=AUTH, stream=True, timeout=120) as followed:
            assert followed.status_code == 200
            requests.post(f"{url}/api/v1/clusters/{name}/scale", json={"count": 0}, auth=AUTH)
            body = b"".join(followed.iter_content(chunk_size=None))
        assert time.time() - started < 90
        assert all(LINE.match(line) for line in body.decode().splitlines())
    finally:
        requests.delete(f"{url}/api/v1/clusters/{name}", auth=AUTH)


def test_failed_schedulers_log_outlives_its_service(url):
    name = _running_cluster(url)
    # The scheduler runs on this manager (make up's placement); its service is named dgw-<cluster>.
    container = wait_for(lambda: sh("docker", "ps", "-q", "--filter", f"label=com.docker.swarm.service.name=dgw-{name}"), 30, "the container")
    sh("docker", "kill", container)
    wait_for(lambda: requests.get(f"{url}/api/v1/clusters/{name}", auth=AUTH).json()["status"] == "FAILED", 90, "FAILED")
    wait_for(lambda: sh("docker", "service", "ls", "-q", "--filter", f"label=dask-gateway.cluster={name}") == "", 60, "the services to go")
    assert _components(url, name) == [{"name": "scheduler", "kind": "scheduler", "live": False, "kept": True}]
    kept = requests.get(f"{url}/api/v1/clusters/{name}/logs/scheduler", auth=AUTH)
    assert kept.status_code == 200 and "distributed.scheduler" in kept.text
    assert all(LINE.match(line) for line in kept.text.splitlines())
    assert requests.get(f"{url}/api/v1/clusters/{name}/logs/scheduler?follow=1", auth=AUTH, timeout=30).status_code == 200  # ends at once
