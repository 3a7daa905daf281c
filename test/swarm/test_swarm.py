"""The gateway deployed on a real Docker swarm with `make up` (gateway in the swarm, client on the host),
then spread over Docker-in-Docker nodes. Run by `make test-swarm` (part of `make test`)."""
from __future__ import annotations

import base64
import importlib.util
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import requests
from dask_gateway import BasicAuth, Gateway
from dask_gateway.client import GatewayWarning

from helpers import ROOT, inspect_services, services, sh, wait_for, worker_nodes

URL = "http://127.0.0.1:8000"
LABEL = "dask-gateway.gateway"


@pytest.fixture(scope="session")
def password():
    # No warm pool but in its own test: on this 2-core manager a warm scheduler reserves half of the CPU, and the
    # tests before the Docker-in-Docker nodes join need the rest for a cluster's scheduler and worker.
    subprocess.run([str(ROOT / "scripts" / "up.sh")], check=True, stdout=subprocess.DEVNULL, env={**os.environ, "POOL_SIZE": "0"})
    return (Path.home() / ".local/state/dask-gateway-swarm/swarm-password").read_text().strip()


@pytest.fixture
def gw(password):
    with Gateway(URL, auth=BasicAuth("alice", password)) as gateway:
        yield gateway
        for report in gateway.list_clusters():
            gateway.stop_cluster(report.name)


def test_create_options_scale_compute_dashboard_shutdown(gw, password):
    assert [f["field"] for f in requests.get(f"{URL}/api/v1/options", auth=("alice", password)).json()["cluster_options"]] == [
        "worker_cores", "worker_memory", "environment", "idle_timeout"]
    cluster = gw.new_cluster(environment={"GREETING": "hi"})
    assert gw.get_cluster(cluster.name).options["environment"] == {"GREETING": "hi"}
    cluster.scale(1)
    client = cluster.get_client()
    client.wait_for_workers(1, timeout=120)
    assert client.submit(lambda x: x + 1, 1).result(timeout=60) == 2
    assert client.run(lambda: __import__("os").environ["GREETING"]) == {w: "hi" for w in client.scheduler_info()["workers"]}
    dash = f"{URL}/clusters/{cluster.name}/status"
    assert requests.get(dash).status_code == 401
    assert requests.get(dash, auth=("bob", password)).status_code == 403
    assert requests.get(dash, auth=("alice", password)).status_code == 200
    client.close()
    cluster.shutdown()
    assert gw.list_clusters() == []
    wait_for(lambda: services(cluster.name) == [], 60, "the cluster's services to go")
    wait_for(lambda: sh("docker", "secret", "ls", "-q", "--filter", f"label=dask-gateway.cluster={cluster.name}") == "", 60, "its secrets to go")


def test_secrets_are_files_not_environment(gw, password):
    cluster = gw.new_cluster()
    try:
        (scheduler,) = services(cluster.name, "scheduler")
        spec = scheduler["Spec"]["TaskTemplate"]["ContainerSpec"]
        env = "\n".join(spec["Env"])
        report = requests.get(f"{URL}/api/v1/clusters/{cluster.name}", auth=("alice", password)).json()
        key_body = report["tls_key"].splitlines()[1]
        assert key_body not in env and key_body not in json.dumps(scheduler)
        assert "DASK_GATEWAY_API_TOKEN=/run/secrets/" in env
        assert {s["File"]["Mode"] for s in spec["Secrets"]} == {0o400}
        assert spec["User"] == "1000:1000"
        assert scheduler["Spec"]["EndpointSpec"]["Mode"] == "dnsrr"
        assert not any(m.get("Source") == "/var/run/docker.sock" for m in spec.get("Mounts", []))
        # The gateway's own service and containers hold no secret either: its password is a Docker secret file.
        inspected = sh("docker", "service", "inspect", "dgw_gateway") + sh("docker", "inspect", *sh("docker", "ps", "-q").split())
        assert password not in inspected and key_body not in inspected
    finally:
        cluster.shutdown()


def test_dead_scheduler_fails_the_cluster_and_cleans_up(gw, password):
    cluster = gw.new_cluster()
    (scheduler,) = services(cluster.name, "scheduler")
    container = sh("docker", "ps", "-q", "--filter", f"label=com.docker.swarm.service.id={scheduler['ID']}")
    sh("docker", "kill", container)
    wait_for(lambda: cluster.name in [c.name for c in gw.list_clusters(status="FAILED")], 90, "FAILED")
    reason = requests.get(f"{URL}/api/v1/clusters/{cluster.name}/events", auth=("alice", password)).json()["reason"]
    assert "scheduler" in reason
    wait_for(lambda: services(cluster.name) == [], 60, "the cluster's services to go")
    cluster.close()


@pytest.fixture(scope="module")
def three_nodes(password):
    out = sh(str(ROOT / "scripts" / "swarm-nodes.sh"), "up", "3")
    yield out.split()
    sh(str(ROOT / "scripts" / "swarm-nodes.sh"), "down", check=False)


def ready_nodes() -> int:
    return sum(1 for line in sh("docker", "node", "ls", "--format", "{{.Status}} {{.Availability}}").splitlines() if line == "Ready Active")


def test_one_worker_per_node_clamp_drain_and_node_loss(gw, three_nodes):
    nodes = ready_nodes()
    assert nodes == 4  # the manager and three Docker-in-Docker nodes
    cluster = gw.new_cluster()
    client = cluster.get_client()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cluster.scale(nodes + 2)
        assert any(isinstance(w.message, GatewayWarning) and f"Scaling to {nodes} instead" in str(w.message) for w in caught)
        client.wait_for_workers(nodes, timeout=240)
        placed = wait_for(lambda: (n := worker_nodes(cluster.name)) and len(n) == nodes and n, 60, "placement")
        assert len(set(placed)) == nodes, "exactly one worker on each node"

        cluster.scale(nodes - 1)
        wait_for(lambda: len(client.scheduler_info()["workers"]) == nodes - 1, 120, "scale down")
        wait_for(lambda: len(worker_nodes(cluster.name)) == nodes - 1, 60, "worker services removed")
        victim_id = next(n for n in worker_nodes(cluster.name) if n.startswith("dgw-node"))
        sh("docker", "node", "update", "--availability", "drain", victim_id)
        try:
            wait_for(lambda: (n := worker_nodes(cluster.name)) and victim_id not in n and len(n) == nodes - 1, 180, "the drained node's worker to move")
            wait_for(lambda: len(client.scheduler_info()["workers"]) == nodes - 1, 120, "workers reconnected")
            assert client.submit(lambda x: x * 2, 21).result(timeout=60) == 42
        finally:
            sh("docker", "node", "update", "--availability", "active", victim_id)

        lost = next((n for n in worker_nodes(cluster.name) if n.startswith("dgw-node") and n != victim_id), "")
        if lost:
            sh("docker", "stop", lost)
            wait_for(lambda: len(client.scheduler_info()["workers"]) >= nodes - 2, 180, "the cluster to survive a lost node")
            assert client.submit(lambda x: x + 1, 41).result(timeout=120) == 42
            assert [c.name for c in gw.list_clusters()] == [cluster.name]
    finally:
        client.close()
        cluster.shutdown()


def events(cluster: str, password: str) -> list[dict]:
    return requests.get(f"{URL}/api/v1/clusters/{cluster}/events", auth=("alice", password), timeout=10).json()["events"]


def registry_cache_runs_on(node: str) -> bool:
    out = sh("docker", "service", "ps", "--filter", f"node={node}", "--filter", "desired-state=running",
             "--format", "{{.CurrentState}}", "dgw-registry_cache", check=False)
    return any(line.startswith("Running") for line in out.splitlines())


@pytest.mark.timeout(600)  # a back-off, image pulls into fresh nodes' vfs storage
def test_fresh_node_gets_workers_and_a_node_that_cannot_pull_is_avoided(gw, password, three_nodes):
    """A machine joins while a cluster computes, holding nothing but Docker (and the registry image that stands in
    for Docker Hub). With its path to the registry cut, its worker is rejected: the node is avoided, the event names
    it with Docker's reason, and the cluster keeps every healthy worker and computes. Once the path is back, the
    node gets its worker after the back-off (swarm.node_backoff), pulling the image from the registry."""
    sh(str(ROOT / "scripts" / "swarm-nodes.sh"), "up", "3")  # an earlier test stopped a node
    cluster = gw.new_cluster()
    client = cluster.get_client()
    fresh = "dgw-node4"
    cut = ["iptables", "OUTPUT", "-p", "tcp", "--dport", "5000", "-j", "REJECT", "--reject-with", "tcp-reset"]
    try:
        nodes = ready_nodes()
        cluster.scale(nodes)
        client.wait_for_workers(nodes, timeout=300)
        healthy = set(client.scheduler_info()["workers"])

        assert sh(str(ROOT / "scripts" / "swarm-nodes.sh"), "up", "4").split()[-1] == fresh
        assert "dgw-sidecar" not in sh("docker", "exec", fresh, "docker", "image", "ls", "--format", "{{.Repository}}")
        wait_for(lambda: registry_cache_runs_on(fresh), 120, "the registry cache on the new node")
        sh("docker", "exec", fresh, cut[0], "-I", *cut[1:])
        cluster.scale(nodes + 1)
        failed = wait_for(lambda: [e for e in events(cluster.name, password) if e["kind"] == "worker-failed" and fresh in e["message"]],
                          180, "a worker-failed event naming the node")
        assert gw.get_cluster(cluster.name).status.name == "RUNNING"
        assert healthy <= set(client.scheduler_info()["workers"]), "no healthy worker was removed"
        assert client.submit(lambda x: x * 2, 21).result(timeout=60) == 42
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cluster.scale(nodes + 1)
        assert any(fresh in str(w.message) for w in caught), [str(w.message) for w in caught]

        sh("docker", "exec", fresh, cut[0], "-D", *cut[1:])
        wait_for(lambda: fresh in worker_nodes(cluster.name), 300, "a worker on the recovered node")
        client.wait_for_workers(nodes + 1, timeout=300)
        assert client.submit(lambda x: x + 1, 41).result(timeout=60) == 42
        print("worker-failed event:", failed[0]["message"])
    finally:
        sh("docker", "exec", fresh, cut[0], "-D", *cut[1:], check=False)
        client.close()
        cluster.shutdown()


def test_make_up_again_pushes_nothing_and_keeps_the_gateway(password):
    task = sh("docker", "service", "ps", "-q", "--filter", "desired-state=running", "dgw_gateway")
    again = subprocess.run([str(ROOT / "scripts" / "up.sh")], capture_output=True, text=True, check=True, env={**os.environ, "POOL_SIZE": "0"})
    assert "pushing" not in again.stderr and again.stderr.count("already in the registry") == 2, again.stderr
    assert sh("docker", "service", "ps", "-q", "--filter", "desired-state=running", "dgw_gateway") == task


def python_suite_options() -> dict:
    """SIX_OPTIONS of test/python/conftest.py: the one definition of the options the conformance tests expect."""
    spec = importlib.util.spec_from_file_location("python_suite_conftest", ROOT / "test" / "python" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.SIX_OPTIONS


def test_conformance_suite_runs_against_the_stack(password, three_nodes, tmp_path):
    """test/python's conformance tests, unchanged, against the gateway that `make up` deployed; options of all six
    types and an admin are configured as an operator would: a Docker config and the service's environment."""
    options = tmp_path / "options.json"
    options.write_text(json.dumps(python_suite_options()))
    config = f"dgw-test-options-{int(time.time())}"
    sh("docker", "config", "create", config, str(options))
    # Workers only on the Docker-in-Docker nodes, so the 2-core manager keeps room for the schedulers of the two
    # clusters some tests hold at once (Swarm reserves each scheduler's and worker's cores).
    workers = sh("docker", "node", "ls", "-q", "--filter", "role=worker").split()
    for node in workers:
        sh("docker", "node", "update", "--label-add", "dgw.test-worker=1", node)
    update = ["docker", "service", "update", "--quiet", "dgw_gateway"]
    sh(*update, "--config-add", f"source={config},target=/etc/dgw/options.json,mode=0444",
       "--env-add", "DGW_CLUSTERS_OPTIONS_FILE=/etc/dgw/options.json", "--env-add", "DGW_AUTH_ADMIN_USERS=root",
       "--env-add", "DGW_SWARM_WORKER_NODE_LABEL=dgw.test-worker")
    try:
        wait_for(lambda: requests.get(f"{URL}/api/health", timeout=2).ok if _up() else False, 120, "the reconfigured gateway")
        env = {**os.environ, "DGW_TEST_GATEWAY_URL": URL, "DGW_TEST_GATEWAY_PASSWORD": password}
        # A failure is run once more (--last-failed) and reported as flaky, so that a one-off on the shared 2 cores
        # is told apart from a broken test; both runs are kept in test-artifacts/.
        cache = ["-o", f"cache_dir={tmp_path / 'pytest-cache'}"]
        runs = []
        for extra in ([], ["--last-failed"]):
            run = subprocess.run([sys.executable, "-m", "pytest", "-q", *cache, *extra, "test/python"],
                                 cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
            runs.append(run)
            if run.returncode == 0:
                break
        (ROOT / "test-artifacts").mkdir(exist_ok=True)
        (ROOT / "test-artifacts" / "swarm-conformance.log").write_text("\n\n=== rerun ===\n\n".join(r.stdout for r in runs))
        if len(runs) > 1:
            warnings.warn(f"flaky on the swarm (passed when run again): {[l for l in runs[0].stdout.splitlines() if l.startswith('FAILED')]}")
        assert runs[-1].returncode == 0, "see test-artifacts/swarm-conformance.log:\n" + runs[-1].stdout[-4000:]
    finally:
        sh(*update, "--config-rm", config, "--env-rm", "DGW_CLUSTERS_OPTIONS_FILE", "--env-rm", "DGW_AUTH_ADMIN_USERS",
           "--env-rm", "DGW_SWARM_WORKER_NODE_LABEL", check=False)
        for node in workers:
            sh("docker", "node", "update", "--label-rm", "dgw.test-worker", node, check=False)
        wait_for(lambda: requests.get(f"{URL}/api/health", timeout=2).ok if _up() else False, 120, "the gateway as deployed")
        sh("docker", "config", "rm", config, check=False)


def test_cluster_keeps_computing_across_a_gateway_restart(gw):
    cluster = gw.new_cluster()
    cluster.scale(1)
    client = cluster.get_client()
    client.wait_for_workers(1, timeout=120)
    assert client.submit(lambda x: x + 1, 1).result(timeout=60) == 2
    sh("docker", "service", "update", "--quiet", "--force", "dgw_gateway")
    wait_for(lambda: requests.get(f"{URL}/api/health", timeout=2).ok if _up() else False, 120, "the gateway to come back")
    assert [(r.name, r.status.name) for r in gw.list_clusters()] == [(cluster.name, "RUNNING")]
    assert client.submit(lambda x: x * 3, 5, pure=False).result(timeout=120) == 15
    client.close()
    cluster.shutdown()


def test_gateway_moved_to_another_manager_readopts_its_clusters(gw, password):
    """A gateway moved to another manager starts there with an empty state volume. Cluster records live in the swarm
    (encrypted Docker configs, replicated to every manager), so it re-adopts a running cluster, and the same client
    object goes on computing. The move is made on this manager by giving the gateway a new, empty volume: promoting
    Docker-in-Docker nodes to managers broke the swarm's Raft on the project's 2-core machine (members could not
    join, "data store lock held too long"), and a swarm without quorum would take every later test with it."""
    cluster = gw.new_cluster()
    cluster.scale(1)
    client = cluster.get_client()
    client.wait_for_workers(1, timeout=180)
    assert client.submit(lambda x: x + 1, 1).result(timeout=60) == 2

    (record,) = json.loads(sh("docker", "config", "inspect", *sh("docker", "config", "ls", "-q", "--filter",
                                                                  f"label=dask-gateway.record-of={cluster.name}").split()))
    stored = base64.b64decode(record["Spec"]["Data"]).decode()
    tls_key = requests.get(f"{URL}/api/v1/clusters/{cluster.name}", auth=("alice", password)).json()["tls_key"]
    assert tls_key.splitlines()[1] not in stored and "alice" not in stored, "records are encrypted"

    update = ["docker", "service", "update", "--quiet", "dgw_gateway", "--mount-rm", "/var/lib/dgw", "--mount-add"]
    fresh = f"dgw-test-moved-{int(time.time())}"
    sh(*update, f"type=volume,source={fresh},target=/var/lib/dgw")
    try:
        wait_for(_up, 180, "the gateway with an empty state volume")
        container = sh("docker", "ps", "-q", "--filter", "label=com.docker.swarm.service.name=dgw_gateway")
        assert sh("docker", "exec", container, "ls", "-A", "/var/lib/dgw/records") == "", "nothing came from the volume"
        assert [(r.name, r.status.name) for r in gw.list_clusters()] == [(cluster.name, "RUNNING")]
        assert client.submit(lambda x: x * 3, 5, pure=False).result(timeout=120) == 15
        client.close()
        cluster.shutdown()
        wait_for(lambda: services(cluster.name) == [], 90, "the cluster's services to go")
    finally:
        sh(*update, "type=volume,source=dgw_dgw-state,target=/var/lib/dgw", check=False)
        wait_for(_up, 180, "the gateway as deployed")
        sh("docker", "volume", "rm", fresh, check=False)


def warm_services(gw: Gateway) -> dict[str, str]:
    """The warm pool's scheduler services: cluster name -> service id. They were started for no user (an empty user
    label, which a claimed one keeps: its owner is in the gateway's record), so alice's own clusters are left out."""
    ids = sh("docker", "service", "ls", "-q", "--filter", "label=dask-gateway.role=scheduler").split()
    specs = inspect_services(ids)
    mine = {c.name for c in gw.list_clusters()}
    return {s["Spec"]["Labels"]["dask-gateway.cluster"]: s["ID"] for s in specs
            if s["Spec"]["Labels"].get("dask-gateway.user") == "" and s["Spec"]["Labels"]["dask-gateway.cluster"] not in mine}


def ready_warm(password: str) -> int:
    text = requests.get(f"{URL}/api/metrics", timeout=10).text
    return sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines()
               if line.startswith("dask_gateway_pool_schedulers{") and 'state="ready"' in line)


@pytest.fixture
def pooled_stack(password, three_nodes):
    """The stack with one warm scheduler (make up's default), workers on the Docker-in-Docker nodes only: the 2-core
    manager has room for two schedulers (the claimed one and its replacement), not for a worker too."""
    update = ["docker", "service", "update", "--quiet", "dgw_gateway"]
    sh(*update, "--env-add", "DGW_POOL_SIZE=1", "--env-add", "DGW_SWARM_WORKER_NODE_LABEL=dgw.dind")
    wait_for(_up, 120, "the gateway with a pool")
    yield
    sh(*update, "--env-add", "DGW_POOL_SIZE=0", "--env-rm", "DGW_SWARM_WORKER_NODE_LABEL", check=False)
    wait_for(_up, 120, "the gateway as deployed")


@pytest.mark.timeout(600)  # a back-off, image pulls into fresh nodes' vfs storage
def test_warm_pool_on_the_swarm(gw, password, pooled_stack):
    """make up keeps one warm scheduler service (pool.size 1): a create claims it and computes, the pool refills, a
    killed warm scheduler is replaced, and a restarted gateway neither leaks nor loses its warm scheduler."""
    wait_for(lambda: ready_warm(password) == 1, 120, "a ready warm scheduler")
    (warm,) = warm_services(gw)
    cluster = gw.new_cluster()
    assert cluster.name == warm, "the create was answered with the warm scheduler"
    assert gw.get_cluster(cluster.name).status.name == "RUNNING"
    cluster.scale(1)
    client = cluster.get_client()
    client.wait_for_workers(1, timeout=180)
    assert client.submit(lambda x: x + 1, 1).result(timeout=60) == 2

    refilled = wait_for(lambda: (w := warm_services(gw)) and ready_warm(password) == 1 and w, 120, "the pool to refill")
    (name, service) = next(iter(refilled.items()))
    assert name != cluster.name
    container = wait_for(lambda: sh("docker", "ps", "-q", "--filter", f"label=com.docker.swarm.service.id={service}"), 30, "its container")
    sh("docker", "kill", container)
    replaced = wait_for(lambda: (w := warm_services(gw)) and name not in w and ready_warm(password) == 1 and w, 180, "a replacement")
    assert len(replaced) == 1

    sh("docker", "service", "update", "--quiet", "--force", "dgw_gateway")
    wait_for(_up, 120, "the gateway to come back")
    wait_for(lambda: ready_warm(password) == 1, 120, "the adopted warm scheduler ready")
    assert warm_services(gw) == replaced, "the same warm scheduler, adopted: none leaked, none lost"
    assert [(r.name, r.status.name) for r in gw.list_clusters()] == [(cluster.name, "RUNNING")], "no user sees it"
    assert client.submit(lambda x: x * 3, 5, pure=False).result(timeout=120) == 15
    client.close()
    cluster.shutdown()
    second = gw.new_cluster()
    assert second.name in replaced, "the adopted one is handed out once"
    second.shutdown()


def _up(url: str = URL) -> bool:
    try:
        return requests.get(f"{url}/api/health", timeout=2).ok
    except requests.RequestException:
        return False


def registry_objects() -> list[str]:
    return (sh("docker", "service", "ls", "-q", "--filter", "label=dask-gateway.registry").split()
            + [v for v in sh("docker", "volume", "ls", "-q").split() if v.startswith("dgw-registry_")])


def test_zz_down_leaves_nothing_behind(password):
    # A cluster still running (its service uses the network the stack made, as a warm scheduler's does) must not
    # stop `make down` halfway: it used to fail on removing the stack's network.
    with Gateway(URL, auth=BasicAuth("alice", password)) as gateway:
        gateway.new_cluster(shutdown_on_close=False)
    subprocess.run([str(ROOT / "scripts" / "down.sh")], check=True, env={**os.environ, "KEEP_REGISTRY": "1"})
    assert len(registry_objects()) >= 3, "KEEP_REGISTRY=1 keeps the registry's services and images"
    subprocess.run([str(ROOT / "scripts" / "down.sh")], check=True)
    assert registry_objects() == []
    assert sh("docker", "service", "ls", "-q", "--filter", f"label={LABEL}") == ""
    assert sh("docker", "secret", "ls", "-q", "--filter", f"label={LABEL}") == ""
    assert sh("docker", "config", "ls", "-q", "--filter", f"label={LABEL}") == ""
    assert "dgw" not in sh("docker", "network", "ls", "--format", "{{.Name}}").split()
