"""The logs API with real dask processes (local backend): the components that have logs, timestamped lines with
tail and since, a followed worker log that ends when the worker stops, a client that leaves frees its slot
(logs.max_streams bounds reads at once), and a stopped cluster's scheduler log kept after its directory is gone."""
from __future__ import annotations

import re
import time
from datetime import datetime, timezone

import pytest
import requests

from conftest import start_gateway, stop_gateway, wait_for

pytestmark = pytest.mark.local_only
LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (.*)$")
AUTH = ("alice", "logs-pw")


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    gateway = start_gateway(tmp_path_factory.mktemp("logs"), **{"auth.password": AUTH[1], "logs.max_streams": "2", "pool.size": "0"})
    yield gateway
    stop_gateway(gateway)


def components(gw, name: str) -> list[dict]:
    return requests.get(f"{gw.url}/api/v1/clusters/{name}/logs", auth=AUTH).json()["components"]


def test_logs_of_a_cluster_from_start_to_after_its_stop(gw):
    name = requests.post(f"{gw.url}/api/v1/clusters/", json={}, auth=AUTH).json()["name"]
    try:
        wait_for(lambda: requests.get(f"{gw.url}/api/v1/clusters/{name}", auth=AUTH).json()["status"] == "RUNNING", 60, what="RUNNING")
        requests.post(f"{gw.url}/api/v1/clusters/{name}/scale", json={"count": 1}, auth=AUTH)
        workers = wait_for(lambda: [c for c in components(gw, name) if c["kind"] == "worker" and c["live"]], 60, what="a worker's log")
        worker = workers[0]["name"]
        assert components(gw, name)[0] == {"name": "scheduler", "kind": "scheduler", "live": True, "kept": False}
        wait_for(lambda: "Starting established connection" in requests.get(f"{gw.url}/api/v1/clusters/{name}/logs/{worker}", auth=AUTH).text, 30,
                 what="the worker's connection in its log")

        full = requests.get(f"{gw.url}/api/v1/clusters/{name}/logs/scheduler", auth=AUTH)
        assert full.headers["Content-Type"].startswith("text/plain") and full.headers["X-Content-Type-Options"] == "nosniff"
        lines = full.text.splitlines()
        assert lines and all(LINE.match(line) for line in lines)
        assert requests.get(f"{gw.url}/api/v1/clusters/{name}/logs/scheduler?tail=3", auth=AUTH).text.splitlines() == lines[-3:]
        cut = LINE.match(lines[-1]).group(1)
        since = requests.get(f"{gw.url}/api/v1/clusters/{name}/logs/scheduler", params={"since": cut}, auth=AUTH).text.splitlines()
        assert since and all(LINE.match(line).group(1) >= cut for line in since)
        assert requests.get(f"{gw.url}/api/v1/clusters/{name}/logs/scheduler?since=soon", auth=AUTH).status_code == 422
        assert requests.get(f"{gw.url}/api/v1/clusters/{name}/logs/nobody", auth=AUTH).status_code == 404
        assert requests.get(f"{gw.url}/api/v1/clusters/{name}/logs/{'0' * 32}", auth=AUTH).status_code == 404
        assert requests.get(f"{gw.url}/api/v1/clusters/{name}/logs", auth=("bob", AUTH[1])).status_code == 403

        # Two followers fill logs.max_streams; a third is refused; one that leaves frees its slot.
        first = requests.get(f"{gw.url}/api/v1/clusters/{name}/logs/scheduler?tail=1&follow=1", auth=AUTH, stream=True, timeout=60)
        second = requests.get(f"{gw.url}/api/v1/clusters/{name}/logs/{worker}?tail=1&follow=1", auth=AUTH, stream=True, timeout=60)
        assert first.status_code == second.status_code == 200
        refused = requests.get(f"{gw.url}/api/v1/clusters/{name}/logs/scheduler?tail=1", auth=AUTH)
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "5"
        first.close()
        wait_for(lambda: requests.get(f"{gw.url}/api/v1/clusters/{name}/logs/scheduler?tail=1", auth=AUTH).status_code == 200, 10,
                 what="the slot of the follower that left")

        # The followed worker goes: its stream ends by itself, with the worker's last lines.
        started = time.time()
        requests.post(f"{gw.url}/api/v1/clusters/{name}/scale", json={"count": 0}, auth=AUTH)
        tail = b"".join(second.iter_content(chunk_size=None)).decode()
        assert time.time() - started < 30
        assert "End worker" in tail or "Stopping worker" in tail, tail[-2000:]
        assert next(c for c in components(gw, name) if c["name"] == worker)["live"] is False
    finally:
        requests.delete(f"{gw.url}/api/v1/clusters/{name}", auth=AUTH)

    # Stopped: the directory is gone, the end of the scheduler's log is kept for the retention period.
    wait_for(lambda: requests.get(f"{gw.url}/api/v1/clusters/{name}", auth=AUTH).json()["status"] == "STOPPED", 60, what="STOPPED")
    assert not (gw.state_dir / "clusters" / name).exists()
    assert components(gw, name) == [{"name": "scheduler", "kind": "scheduler", "live": False, "kept": True}]
    kept = requests.get(f"{gw.url}/api/v1/clusters/{name}/logs/scheduler?follow=1", auth=AUTH, timeout=30)  # ends at once
    assert kept.status_code == 200 and "distributed.scheduler" in kept.text
    assert (gw.state_dir / "logs" / f"{name}.scheduler.log").stat().st_mode & 0o777 == 0o600
    first_time = LINE.match(kept.text.splitlines()[0]).group(1)
    assert datetime.fromisoformat(first_time.replace("Z", "+00:00")) <= datetime.now(timezone.utc)

