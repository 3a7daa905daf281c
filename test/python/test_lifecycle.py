"""Cluster lifecycle with real `dask scheduler` and `dask worker` processes (reference section 4)."""
from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import pytest
import requests
from dask_gateway import GatewayClusterError
from dask_gateway.client import GatewayWarning

from conftest import USERS, connect, start_gateway, stop_gateway, wait_for


def events(gateway, name, user="alice"):
    return requests.get(f"{gateway.url}/api/v1/clusters/{name}/events", auth=(user, USERS[user][0])).json()


def test_new_cluster_runs_and_report_has_exactly_eight_keys(gateway, alice):
    cluster = alice.new_cluster()
    try:
        r = requests.get(f"{gateway.url}/api/v1/clusters/{cluster.name}", auth=("alice", USERS["alice"][0]))
        body = r.json()
        assert set(body) == {"name", "dashboard_route", "status", "start_time", "stop_time", "options", "tls_cert", "tls_key"}
        assert body["status"] == "RUNNING"
        assert body["dashboard_route"] == f"/clusters/{cluster.name}/status"
        assert body["tls_cert"].startswith("-----BEGIN CERTIFICATE-----")
        assert body["tls_key"].startswith("-----BEGIN PRIVATE KEY-----")
        assert isinstance(body["start_time"], int) and body["stop_time"] is None
        assert cluster.dashboard_link == f"{gateway.url}/clusters/{cluster.name}/status"
        assert [c.name for c in alice.list_clusters()] == [cluster.name]
        assert [c.name for c in alice.list_clusters(status="RUNNING")] == [cluster.name]
        assert alice.list_clusters(status="PENDING") == []
    finally:
        cluster.shutdown()


@pytest.mark.local_only
def test_scale_starts_and_stops_worker_processes(gateway, alice):
    cluster = alice.new_cluster()
    try:
        cluster.scale(2)
        wait_for(lambda: len(gateway.worker_pids(cluster.name)) == 2, 90, what="two worker processes")
        # local.niceness (default 10): cluster processes yield the CPU to the gateway.
        gateway_nice = os.getpriority(os.PRIO_PROCESS, gateway.proc.pid)
        assert {os.getpriority(os.PRIO_PROCESS, pid) for pid in gateway.worker_pids(cluster.name)} == {min(19, gateway_nice + 10)}
        # Each process leads its own session; with scheduler autogroups on, the session's niceness is what
        # weighs against the gateway's session.
        if Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1":
            for pid in gateway.worker_pids(cluster.name):
                assert Path(f"/proc/{pid}/autogroup").read_text().split()[-1] == str(min(19, gateway_nice + 10))
        cluster.adapt(minimum=0, maximum=2)  # accepted by the scheduler
        cluster.scale(0)
        wait_for(lambda: len(gateway.worker_pids(cluster.name)) == 0, 90, what="no worker processes")
    finally:
        cluster.shutdown()


@pytest.mark.local_only
def test_shutdown_empties_list_at_once_and_stopped_stays_visible(gateway, alice):
    cluster = alice.new_cluster()
    name = cluster.name
    cluster.shutdown()
    assert alice.list_clusters() == []
    wait_for(lambda: name in [c.name for c in alice.list_clusters(status="STOPPED")], 30, what="STOPPED")
    report = next(c for c in alice.list_clusters(status="STOPPED") if c.name == name)
    assert report.stop_time is not None
    assert events(gateway, name)["reason"] == "stopped by its user"
    # Nothing left running or on disk for a stopped cluster.
    assert not (gateway.state_dir / "clusters" / name).exists()


def test_users_cannot_touch_each_others_clusters_but_admin_can(gateway, alice):
    cluster = alice.new_cluster()
    try:
        with connect(gateway, "bob") as bob:
            assert bob.list_clusters() == []
            with pytest.raises(Exception) as err:
                bob.get_cluster(cluster.name)
            assert "403" in str(err.value)
            with pytest.raises(Exception) as err:
                bob.stop_cluster(cluster.name)
            assert "403" in str(err.value)
            with pytest.raises(Exception):
                bob.scale_cluster(cluster.name, 1)
        assert [c.name for c in alice.list_clusters()] == [cluster.name]
        admin_all = requests.get(f"{gateway.url}/api/v1/admin/clusters", auth=("root", USERS["root"][0])).json()
        assert admin_all[cluster.name]["user"] == "alice"
        r = requests.get(f"{gateway.url}/api/v1/admin/clusters", auth=("bob", USERS["bob"][0]))
        assert r.status_code == 403
        with connect(gateway, "root") as root:
            assert root.get_cluster(cluster.name).name == cluster.name
            root.stop_cluster(cluster.name)
        assert alice.list_clusters() == []
        assert events(gateway, cluster.name)["reason"] == "stopped by admin root"
    finally:
        cluster.close()


def test_scale_of_pending_cluster_is_409(gateway, alice):
    r = requests.post(f"{gateway.url}/api/v1/clusters/", json={"cluster_options": {}}, auth=("alice", USERS["alice"][0]))
    name = r.json()["name"]
    try:
        r = requests.post(f"{gateway.url}/api/v1/clusters/{name}/scale", json={"count": 1}, auth=("alice", USERS["alice"][0]))
        assert r.status_code in (200, 409)  # 409 while PENDING, 200 if it was already running
        bad = requests.post(f"{gateway.url}/api/v1/clusters/{name}/scale", json={"count": -1}, auth=("alice", USERS["alice"][0]))
        assert bad.status_code == 422
        assert bad.json() == {"error": "Scale expects a non-negative integer, got -1"}
    finally:
        alice.stop_cluster(name)


def test_heartbeat_needs_the_cluster_token(gateway, alice):
    cluster = alice.new_cluster()
    try:
        r = requests.post(f"{gateway.url}/api/v1/clusters/{cluster.name}/heartbeat", json={}, headers={"Authorization": "token nope"})
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"] == "token"
    finally:
        cluster.shutdown()


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    gw = start_gateway(tmp_path_factory.mktemp("limited"), **{
        "auth.password": "shared-secret",
        "auth.admin_users": "boss",
        "limits.cluster_max_workers": "2",
        "limits.user_max_clusters": "1",
    })
    yield gw
    stop_gateway(gw)


@pytest.mark.local_only
def test_shared_password_mode_any_user(limited):
    from dask_gateway import BasicAuth, Gateway

    with Gateway(limited.url, auth=BasicAuth("anyone@example.org", "shared-secret")) as gw:
        assert gw.list_clusters() == []
    with Gateway(limited.url, auth=BasicAuth("anyone", "wrong")) as gw:
        with pytest.raises(Exception):
            gw.list_clusters()


@pytest.mark.local_only
def test_resource_limit_warnings_use_reference_texts(limited):
    from dask_gateway import BasicAuth, Gateway

    with Gateway(limited.url, auth=BasicAuth("carol", "shared-secret")) as gw:
        cluster = gw.new_cluster()
        try:
            with pytest.warns(GatewayWarning, match="Scaling to 2 instead"):
                cluster.scale(3)
            with pytest.warns(GatewayWarning, match="Using `maximum=2, minimum=0` instead"):
                cluster.adapt(maximum=3)
            with pytest.warns(GatewayWarning, match="Using `maximum=2, minimum=2` instead"):
                cluster.adapt(minimum=3, maximum=4)
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                cluster.scale(1)
            # The per-user cluster limit: a clear error, and nothing created.
            with pytest.raises(GatewayClusterError, match="user_max_clusters"):
                gw.new_cluster()
            assert len(gw.list_clusters()) == 1
        finally:
            cluster.shutdown()


@pytest.mark.local_only
def test_idle_timeout_default_options(tmp_path):
    from dask_gateway import BasicAuth, Gateway

    gw = start_gateway(tmp_path, **{"auth.password": "pw"})
    try:
        with Gateway(gw.url, auth=BasicAuth("dave", "pw")) as client:
            assert dict(client.cluster_options()) == {"worker_cores": 1, "worker_memory": 2, "environment": {}, "idle_timeout": 3600}
            cluster = client.new_cluster(idle_timeout=2)
            name = cluster.name
            wait_for(lambda: client.list_clusters() == [], 30, what="idle cluster to stop")
            reason = requests.get(f"{gw.url}/api/v1/clusters/{name}/events", auth=("dave", "pw")).json()["reason"]
            assert "idle" in reason
            cluster.shutdown()  # harmless afterwards
    finally:
        stop_gateway(gw)


@pytest.mark.local_only
def test_killed_scheduler_fails_the_cluster_with_a_reason(gateway, alice):
    import os
    import signal

    cluster = alice.new_cluster()
    workdir = str(gateway.state_dir / "clusters" / cluster.name)
    pids = [int(p) for p in os.listdir("/proc") if p.isdigit() and _cwd(p) == workdir]
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: cluster.name in [c.name for c in alice.list_clusters(status="FAILED")], 30, what="FAILED")
    assert "scheduler" in events(gateway, cluster.name)["reason"]
    cluster.close()


def _cwd(pid):
    try:
        import os
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None


@pytest.mark.local_only
def test_stopping_the_gateway_leaves_no_process(tmp_path):
    from dask_gateway import BasicAuth, Gateway

    gw = start_gateway(tmp_path, **{"auth.password": "pw"})
    with Gateway(gw.url, auth=BasicAuth("erin", "pw")) as client:
        cluster = client.new_cluster()
        cluster.scale(1)
        wait_for(lambda: len(gw.worker_pids(cluster.name)) == 1, 90, what="a worker")
        workdir = str(gw.state_dir / "clusters" / cluster.name)
        stop_gateway(gw)
    time.sleep(0.5)
    import os
    assert [p for p in os.listdir("/proc") if p.isdigit() and _cwd(p) == workdir] == []
