"""Injected faults: the gateway SIGKILLed mid-create and mid-stop, a worker killed. Nothing lost, nothing orphaned."""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import requests

from conftest import start_gateway, stop_gateway, wait_for

AUTH = ("rita", "fault-pw-9f2c")
SETTINGS = {"auth.password": AUTH[1]}
CREATED = 1  # Job.CREATED in src/clusters/model.ts


def processes_in(workdir) -> list[tuple[int, bytes]]:
    """(pid, command line) of every process of the cluster whose directory is `workdir`, even once it is removed."""
    marker = f"DASK_GATEWAY_CLUSTER_NAME={Path(workdir).name}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if marker in open(f"/proc/{entry}/environ", "rb").read().split(b"\0"):
                found.append((int(entry), open(f"/proc/{entry}/cmdline", "rb").read()))
        except OSError:
            continue
    return found


def schedulers_in(workdir) -> list[int]:
    return [pid for pid, cmd in processes_in(workdir) if b"\0scheduler\0" in cmd]


def status(url: str, name: str) -> str:
    return requests.get(f"{url}/api/v1/clusters/{name}", auth=AUTH, timeout=10).json()["status"]


def sigkill(gw) -> None:
    os.kill(gw.proc.pid, signal.SIGKILL)
    gw.proc.wait()


def restart(tmp_path, gw):
    return start_gateway(tmp_path, **SETTINGS, address=gw.settings["address"])


def forget_launches(gw, name: str, workers: bool) -> None:
    """Rewrites a cluster's record as if the gateway had died between starting processes and recording them."""
    path = gw.state_dir / "records" / f"{name}.json"
    record = json.loads(path.read_text())
    if workers:
        for worker in record["workers"]:
            worker.update(status=CREATED, state={}, submittedAt=None)
    else:  # a cluster that is still starting has no workers yet
        record.update(status=CREATED, state={}, schedulerAddress="", dashboardAddress="", apiAddress="", count=0, workers=[])
    path.write_text(json.dumps(record))


@pytest.mark.parametrize("lost", ["scheduler", "worker"])
def test_gateway_killed_before_recording_a_start_leaves_no_twin(tmp_path, lost):
    gw = start_gateway(tmp_path, **SETTINGS)
    name = requests.post(f"{gw.url}/api/v1/clusters/", json={}, auth=AUTH, timeout=30).json()["name"]
    workdir = gw.state_dir / "clusters" / name
    wait_for(lambda: status(gw.url, name) == "RUNNING", 90, what="the cluster to run")
    requests.post(f"{gw.url}/api/v1/clusters/{name}/scale", json={"count": 1}, auth=AUTH, timeout=30).raise_for_status()
    [old_worker] = wait_for(lambda: gw.worker_pids(name), 90, what="a worker process")
    [old_scheduler] = schedulers_in(workdir)
    sigkill(gw)
    forget_launches(gw, name, workers=lost == "worker")
    gw2 = restart(tmp_path, gw)
    try:
        workers = 1 if lost == "worker" else 0
        wait_for(lambda: status(gw2.url, name) == "RUNNING" and len(gw2.worker_pids(name)) == workers
                 and old_worker not in gw2.worker_pids(name), 90, what="the cluster to run again")
        # The unrecorded process was replaced, not duplicated; the recorded one was adopted as it was.
        [scheduler] = schedulers_in(workdir)
        assert (scheduler != old_scheduler) == (lost == "scheduler")
        assert requests.delete(f"{gw2.url}/api/v1/clusters/{name}", auth=AUTH, timeout=30).status_code == 204
        wait_for(lambda: status(gw2.url, name) == "STOPPED", 60, what="the stop")
        assert processes_in(workdir) == [] and not workdir.exists()
    finally:
        stop_gateway(gw2)


def test_gateway_killed_while_stopping_finishes_the_stop_after_restart(tmp_path):
    gw = start_gateway(tmp_path, **SETTINGS)
    name = requests.post(f"{gw.url}/api/v1/clusters/", json={}, auth=AUTH, timeout=30).json()["name"]
    wait_for(lambda: status(gw.url, name) == "RUNNING", 90, what="the cluster to run")
    requests.post(f"{gw.url}/api/v1/clusters/{name}/scale", json={"count": 1}, auth=AUTH, timeout=30).raise_for_status()
    workdir = gw.state_dir / "clusters" / name
    wait_for(lambda: gw.worker_pids(name), 90, what="a worker process")
    assert requests.delete(f"{gw.url}/api/v1/clusters/{name}", auth=AUTH, timeout=30).status_code == 204
    sigkill(gw)  # the graceful stop (SIGINT to scheduler and worker) is still under way
    gw2 = restart(tmp_path, gw)
    try:
        wait_for(lambda: status(gw2.url, name) == "STOPPED", 60, what="the stop to finish")
        wait_for(lambda: processes_in(workdir) == [], 30, what="every process of the cluster to end")
        assert not workdir.exists()
    finally:
        stop_gateway(gw2)


def test_killed_worker_is_replaced(gateway, alice):
    cluster = alice.new_cluster()
    cluster.scale(1)
    client = cluster.get_client()
    try:
        client.wait_for_workers(1, timeout=120)
        [first] = wait_for(lambda: gateway.worker_pids(cluster.name), 30, what="the worker process")
        os.killpg(first, signal.SIGKILL)
        replacement = wait_for(lambda: [p for p in gateway.worker_pids(cluster.name) if p != first], 120, what="a new worker")
        assert first not in gateway.worker_pids(cluster.name) and len(replacement) == 1
        client.wait_for_workers(1, timeout=120)
        assert client.submit(lambda x: x + 1, 41, pure=False).result(timeout=60) == 42
        kinds = [e["kind"] for e in requests.get(f"{gateway.url}/api/v1/clusters/{cluster.name}/events",
                                                 auth=("alice", "alice-pw"), timeout=10).json()["events"]]
        assert {"worker-lost", "worker-failed"} & set(kinds), kinds  # found by the heartbeat or by the pid check
    finally:
        client.close()
        cluster.shutdown()
