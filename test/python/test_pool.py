"""The warm pool (issue 12) with the unmodified client: pre-started schedulers handed out RUNNING at create.

Warm schedulers are invisible through the API by design, so these tests find them where only the gateway's operator
can: the cluster records in the state directory (`pool` set) and /api/metrics.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from dask_gateway import BasicAuth, Gateway, GatewayClusterError

from conftest import start_gateway, stop_gateway, wait_for

PASSWORD = "pool-pw-4b1d"
RUNNING = 3  # Job.RUNNING in src/clusters/model.ts
ALL = "pending,running,stopping,stopped,failed"


def records(gw) -> dict[str, dict]:
    """Every cluster record the gateway keeps, by name."""
    found = {}
    for path in (gw.state_dir / "records").glob("*.json"):
        try:
            found[path.stem] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # being replaced right now
    return found


def warm(gw) -> set[str]:
    """Names of the warm schedulers that are ready to be claimed."""
    return {name for name, r in records(gw).items()
            if r.get("pool") and not r["pool"].get("claiming") and r["status"] == RUNNING and r["target"] == RUNNING}


def ready_metric(gw) -> float:
    return gw.metric("dask_gateway_pool_schedulers", 'state="ready"')


def wait_ready(gw, n: int, timeout: float = 90) -> set[str]:
    """Waits until `n` warm schedulers are ready (the records and the metric agree); answers their names."""
    return wait_for(lambda: (names := warm(gw)) and len(names) == n and ready_metric(gw) == n and names, timeout,
                    what=f"{n} warm schedulers ready")


def processes_in(directory: Path) -> list[int]:
    """Pids whose working directory is `directory` (a cluster's scheduler and workers)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/cwd") in (str(directory), f"{directory} (deleted)"):
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


def claims(gw, result: str) -> float:
    return gw.metric("dask_gateway_pool_claims_total", f'result="{result}"')


@pytest.fixture(scope="module")
def pooled(tmp_path_factory):
    """A gateway with a pool of two warm schedulers of the default options."""
    gw = start_gateway(tmp_path_factory.mktemp("pooled"), **{
        "auth.password": PASSWORD, "auth.admin_users": "root", "pool.size": "2", "limits.create_rate": "1000",
    })
    yield gw
    stop_gateway(gw)


def client(gw, user: str = "alice") -> Gateway:
    return Gateway(gw.url, auth=BasicAuth(user, PASSWORD))


def test_startup_log_shows_the_pool_settings(pooled):
    started = [json.loads(line) for line in pooled.log_text().splitlines() if '"warm pool on"' in line]
    assert started and started[0]["size"] == 2 and started[0]["maxSchedulers"] == 2 and started[0]["maxAge"] == 3600
    assert started[0]["sets"][0]["options"] == {"worker_cores": 1, "worker_memory": 2, "environment": {}, "idle_timeout": 3600}


def test_a_hit_is_running_when_the_create_answers_and_computes(pooled):
    before = wait_ready(pooled, 2)
    hits = claims(pooled, "hit")
    auth = ("alice", PASSWORD)
    started = time.time()
    created = requests.post(f"{pooled.url}/api/v1/clusters/", json={"cluster_options": {"worker_cores": 1}}, auth=auth, timeout=30)
    assert created.status_code == 201 and set(created.json()) == {"name"}
    name = created.json()["name"]
    assert name in before
    # No wait: the very next GET (no ?wait) already shows it RUNNING, exactly as a cold cluster's report looks.
    report = requests.get(f"{pooled.url}/api/v1/clusters/{name}", auth=auth, timeout=30).json()
    assert set(report) == {"name", "dashboard_route", "status", "start_time", "stop_time", "options", "tls_cert", "tls_key"}
    assert report["status"] == "RUNNING" and report["stop_time"] is None
    assert report["tls_cert"].startswith("-----BEGIN CERTIFICATE-----") and report["tls_key"].startswith("-----BEGIN PRIVATE KEY-----")
    assert report["dashboard_route"] == f"/clusters/{name}/status"
    assert report["options"] == {"worker_cores": 1, "worker_memory": 2, "environment": {}, "idle_timeout": 3600}
    assert report["start_time"] >= int(started * 1000) - 5  # its start is the claim, not the scheduler's start
    assert claims(pooled, "hit") == hits + 1
    events = requests.get(f"{pooled.url}/api/v1/clusters/{name}/events", auth=auth, timeout=30).json()["events"]
    # Then "versions": those the warm scheduler reported before the claim (or, just started, reports after it).
    assert [e["kind"] for e in events][:2] == ["created", "running"] and "claimed from the warm pool" in events[1]["message"]
    requests.delete(f"{pooled.url}/api/v1/clusters/{name}", auth=auth, timeout=30)

    # The unmodified client: new_cluster() gets the other warm scheduler, which computes.
    with client(pooled) as gw:
        cluster = gw.new_cluster()
        try:
            assert cluster.name in before and cluster.name != name
            cluster.scale(1)
            with cluster.get_client(set_as_default=False) as dask_client:
                assert dask_client.submit(lambda x: x + 1, 1).result(timeout=120) == 2
        finally:
            cluster.shutdown()
    # Used once: neither name ever comes back to the pool, which refills with new ones.
    again = wait_ready(pooled, 2)
    assert not again & {name, cluster.name}
    wait_for(lambda: not (pooled.state_dir / "clusters" / name).exists(), 60, what="the stopped cluster removed")


def test_worker_options_hit_and_apply_at_the_claim(pooled):
    before = wait_ready(pooled, 2)
    with client(pooled) as gw:
        cluster = gw.new_cluster(worker_cores=2, worker_memory=1.5)
        try:
            assert cluster.name in before
            cluster.scale(1)
            with cluster.get_client(set_as_default=False) as dask_client:
                dask_client.wait_for_workers(1, timeout=120)
                [worker] = dask_client.scheduler_info()["workers"].values()
                assert worker["nthreads"] == 2 and worker["memory_limit"] == int(1.5 * 2**30)
        finally:
            cluster.shutdown()


def test_scheduler_options_miss_and_start_cold(pooled):
    before = wait_ready(pooled, 2)
    misses = claims(pooled, "miss")
    with client(pooled) as gw:
        cluster = gw.new_cluster(environment={"POOL_TEST": "cold"})
        try:
            assert cluster.name not in before
            assert claims(pooled, "miss") == misses + 1
            with cluster.get_client(set_as_default=False) as dask_client:
                assert dask_client.run_on_scheduler(lambda: os.environ.get("POOL_TEST")) == "cold"
                cluster.scale(1)
                assert dask_client.submit(lambda x: x * 2, 21).result(timeout=120) == 42
        finally:
            cluster.shutdown()
    assert warm(pooled) == before  # the pool was not touched


def test_concurrent_creates_get_distinct_clusters(pooled):
    before = wait_ready(pooled, 2)

    def create(i: int) -> str:
        r = requests.post(f"{pooled.url}/api/v1/clusters/", json={}, auth=(f"user{i}", PASSWORD), timeout=60)
        assert r.status_code == 201, r.text
        return r.json()["name"]

    with ThreadPoolExecutor(6) as executor:
        names = list(executor.map(create, range(6)))
    try:
        assert len(set(names)) == 6
        assert len(set(names) & before) == 2  # both warm ones handed out, each once
        for i, name in enumerate(names):
            wait_for(lambda: requests.get(f"{pooled.url}/api/v1/clusters/{name}", auth=(f"user{i}", PASSWORD),
                                          timeout=30).json()["status"] == "RUNNING", 120, what=f"cluster {i} running")
    finally:
        for i, name in enumerate(names):
            requests.delete(f"{pooled.url}/api/v1/clusters/{name}", auth=(f"user{i}", PASSWORD), timeout=30)


def _tls_hello(gw, sni: str) -> bytes:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname=sni) as tls:
                return tls.recv(10)
        except (ssl.SSLError, ConnectionError, OSError):
            return b""


def test_warm_schedulers_are_unknown_to_every_user_and_admin(pooled):
    name = sorted(wait_ready(pooled, 2))[0]
    unknown = "0" * 32
    for user in ("alice", "root"):
        auth = (user, PASSWORD)
        for path in ("", "/events"):
            for target in (name, unknown):
                r = requests.get(f"{pooled.url}/api/v1/clusters/{target}{path}", auth=auth, timeout=30)
                assert (r.status_code, r.text.replace(target, "X")) == (404, '{"error":"Cluster X not found"}')
        for op, body in (("scale", {"count": 1}), ("adapt", {"minimum": 0, "maximum": 1, "active": True})):
            assert requests.post(f"{pooled.url}/api/v1/clusters/{name}/{op}", json=body, auth=auth, timeout=30).status_code == 404
        assert requests.get(f"{pooled.url}/clusters/{name}/status", auth=auth, timeout=30).status_code == 404
        assert name not in requests.get(f"{pooled.url}/api/v1/clusters/?status={ALL}", auth=auth, timeout=30).json()
        assert requests.delete(f"{pooled.url}/api/v1/clusters/{name}", auth=auth, timeout=30).status_code == 204
    admin = requests.get(f"{pooled.url}/api/v1/admin/clusters?status={ALL}", auth=("root", PASSWORD), timeout=30).json()
    assert name not in admin
    assert requests.delete(f"{pooled.url}/api/v1/admin/clusters/{name}", auth=("root", PASSWORD), timeout=30).status_code == 204
    # A heartbeat with a wrong token: the same 401 as for a name nobody has.
    for target in (name, unknown):
        r = requests.post(f"{pooled.url}/api/v1/clusters/{target}/heartbeat", json={}, headers={"Authorization": "token nope"}, timeout=30)
        assert (r.status_code, r.headers["WWW-Authenticate"]) == (401, "token")
    # The relay does not reach it either.
    refused = pooled.metric("dask_gateway_connections_total", 'outcome="unknown-cluster"')
    assert _tls_hello(pooled, f"daskgateway-{name}") == b""
    assert pooled.metric("dask_gateway_connections_total", 'outcome="unknown-cluster"') == refused + 1
    time.sleep(2)
    assert name in warm(pooled), "none of the stops above touched it"


def test_a_killed_warm_scheduler_is_replaced(pooled):
    before = wait_ready(pooled, 2)
    died = pooled.metric("dask_gateway_pool_recycled_total", 'reason="died"')
    victim = sorted(before)[0]
    workdir = pooled.state_dir / "clusters" / victim
    pids = processes_in(workdir)
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    after = wait_for(lambda: (names := warm(pooled)) and len(names) == 2 and victim not in names and names, 90,
                     what="a replacement")
    assert after - before and before - after == {victim}
    wait_for(lambda: not workdir.exists() and victim not in records(pooled), 30, what="the dead one removed")
    assert pooled.metric("dask_gateway_pool_recycled_total", 'reason="died"') == died + 1


def test_metrics_show_the_pool(pooled):
    wait_ready(pooled, 2)
    text = requests.get(f"{pooled.url}/api/metrics", timeout=30).text
    assert 'dask_gateway_pool_schedulers{key="' in text and 'state="ready"} 2' in text and 'state="starting"}' in text
    for result in ("hit", "miss"):
        assert f'dask_gateway_pool_claims_total{{result="{result}"}}' in text
        assert f'dask_gateway_pool_claim_seconds_count{{result="{result}"}}' in text
    assert "# TYPE dask_gateway_pool_recycled_total counter" in text
    # Warm schedulers are not clusters of anyone's yet.
    running = [line for line in text.splitlines() if line.startswith('dask_gateway_clusters{status="RUNNING"}')]
    assert running == ['dask_gateway_clusters{status="RUNNING"} 0']


def test_idle_timeout_counts_from_the_claim(tmp_path):
    gw = start_gateway(tmp_path, **{"auth.password": PASSWORD})
    try:
        [name] = wait_ready(gw, 1)
        born = records(gw)[name]["startTime"] / 1000
        wait_for(lambda: time.time() - born > 8, 30, what="the warm scheduler to wait in the pool longer than the idle timeout")
        with client(gw, "ida") as c:
            asked = time.time()  # the claim comes after this
            cluster = c.new_cluster(idle_timeout=4)
            assert cluster.name == name
            # Idle since its start for over 8 s: a scheduler counting from its own start would stop at once.
            time.sleep(2.5)
            assert [r.name for r in c.list_clusters()] == [name]
            wait_for(lambda: c.list_clusters() == [], 30, what="the idle cluster to stop")
            stopped_after = time.time() - asked
            reason = requests.get(f"{gw.url}/api/v1/clusters/{name}/events", auth=("ida", PASSWORD), timeout=30).json()["reason"]
            assert "idle" in reason
            assert stopped_after >= 4, stopped_after
            cluster.close()
    finally:
        stop_gateway(gw)


def test_per_user_limits_are_unchanged_and_a_refused_create_uses_nothing(tmp_path):
    gw = start_gateway(tmp_path, **{"auth.password": PASSWORD, "limits.user_max_clusters": "1", "limits.create_rate": "2"})
    try:
        first = wait_ready(gw, 1)
        with client(gw, "lima") as c:
            cluster = c.new_cluster()
            assert cluster.name in first
            second = wait_ready(gw, 1)
            refused = claims(gw, "refused")
            with pytest.raises(GatewayClusterError, match="user_max_clusters"):
                c.new_cluster()
            assert [r.name for r in c.list_clusters()] == [cluster.name]
            assert claims(gw, "refused") == refused + 1
            assert warm(gw) == second, "the refused create took nothing from the pool"
            cluster.shutdown()
            # The rate: this user's second create in the minute (a refused one does not count) is its last.
            c.stop_cluster(c.new_cluster().name)
            r = requests.post(f"{gw.url}/api/v1/clusters/", json={}, auth=("lima", PASSWORD), timeout=30)
            assert r.status_code == 429 and "limits.create_rate" in r.json()["error"]
            assert claims(gw, "refused") == refused + 2
        # The warm scheduler ready at the refusals went to the next create that was allowed, and to nobody else.
        assert second <= {n for n, r in records(gw).items() if r.get("user") == "lima"}
    finally:
        stop_gateway(gw)


def test_a_restarted_gateway_neither_leaks_nor_loses_warm_schedulers(tmp_path):
    settings = {"auth.password": PASSWORD, "pool.size": "2", "clusters.stop_on_shutdown": "false"}
    gw = start_gateway(tmp_path, **settings)
    settings["address"] = gw.settings["address"]
    clusters_dir = gw.state_dir / "clusters"
    # One claimed cluster computing, and two warm schedulers (the pool refilled after the claim).
    first = wait_ready(gw, 2)
    rita = client(gw, "rita")
    claimed = rita.new_cluster()
    assert claimed.name in first
    dask_client = claimed.get_client(set_as_default=False)
    assert dask_client.run_on_scheduler(lambda: 41 + 1) == 42
    names = wait_ready(gw, 2)
    assert claimed.name not in names
    pids = {name: sorted(processes_in(clusters_dir / name)) for name in names | {claimed.name}}
    assert all(pids.values())
    os.kill(gw.proc.pid, signal.SIGKILL)
    gw.proc.wait()

    gw2 = start_gateway(tmp_path, **settings)
    try:
        assert wait_ready(gw2, 2) == names
        time.sleep(3)  # a few heartbeats and checks: nothing more is started, nothing is lost
        assert warm(gw2) == names
        assert {p.name for p in clusters_dir.iterdir()} == names | {claimed.name}, "no other scheduler was started"
        assert {name: sorted(processes_in(clusters_dir / name)) for name in pids} == pids, "the same processes, adopted"
        assert any('"adopted"' in line and name in line for line in gw2.log_text().splitlines() for name in names)
        # The claimed one is still rita's (never back in the pool), and the same client computes through the new relay.
        assert [(r.name, r.status.name) for r in rita.list_clusters()] == [(claimed.name, "RUNNING")]
        assert dask_client.run_on_scheduler(lambda: 6 * 7) == 42
        dask_client.close()
        claimed.shutdown()
        # Each warm one is handed out once, then the pool refills with new ones.
        got = {rita.new_cluster().name, rita.new_cluster().name}
        assert got == names
        for cluster in rita.list_clusters():
            rita.stop_cluster(cluster.name)
        refilled = wait_ready(gw2, 2)
        assert not refilled & (names | {claimed.name})
    finally:
        rita.close()
        stop_gateway(gw2)  # clusters.stop_on_shutdown false: the warm schedulers outlive it
    # A gateway without a pool adopts them, stops them (its configuration keeps none) and leaves nothing behind.
    gw3 = start_gateway(tmp_path, **{**settings, "pool.size": "0", "clusters.stop_on_shutdown": "true"})
    try:
        wait_for(lambda: not any(r.get("pool") for r in records(gw3).values()), 60, what="the warm schedulers stopped")
        assert gw3.metric("dask_gateway_pool_recycled_total", 'reason="config_changed"') == 2
        wait_for(lambda: not list(clusters_dir.iterdir()), 60, what="their directories removed")
    finally:
        stop_gateway(gw3)
    assert not [p for name in names | refilled for p in processes_in(clusters_dir / name)]


def test_an_invalid_option_set_is_a_configuration_error_naming_it(tmp_path):
    with pytest.raises(RuntimeError, match=r"pool\.option_sets\[1\] .*Unknown fields \['nope'\]"):
        start_gateway(tmp_path, **{"auth.password": PASSWORD, "pool.option_sets": '[{}, {"nope": 1}]'})
