"""Data, software stacks and GPUs per cluster on a real swarm: three Docker-in-Docker nodes that hold no project
image (they pull from the registry), a gateway on the host with an operator's options file.

What stands in for the outside world (scripts/swarm-nodes.sh): the directory /srv/dgw-shared that every node
mounts, as machines mount a network file system, and node 2's engine declaring one GPU as a generic resource.
"""
from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml
from dask_gateway import BasicAuth, Gateway

from helpers import ROOT, sh, wait_for, worker_nodes

URL = "http://127.0.0.1:8000"
SHARED = Path("/srv/dgw-shared")
# make up's gateway id (swarm.gateway_id default), which labels the volumes it creates.
VOLUME_LABEL = "label=dask-gateway.gateway=default"


def engines(nodes: list[str]) -> list[list[str]]:
    """`docker` on the manager and on each node."""
    return [["docker"]] + [["docker", "exec", node, "docker"] for node in nodes]


def remove_volumes(nodes: list[str]) -> None:
    for docker in engines(nodes):
        for volume in sh(*docker, "volume", "ls", "-q", "--filter", VOLUME_LABEL, check=False).split():
            sh(*docker, "volume", "rm", "-f", volume, check=False)


@pytest.fixture(scope="module")
def nodes():
    names = sh(str(ROOT / "scripts" / "swarm-nodes.sh"), "up", "3").split()
    yield names
    remove_volumes(names)
    sh(str(ROOT / "scripts" / "swarm-nodes.sh"), "down", check=False)


OPTIONS = {
    "mounts": [
        {"name": "shared", "type": "volume", "source": "dgw-test-shared", "target": "/data",
         "driver_opts": {"type": "none", "o": "bind", "device": str(SHARED / "data")}},
        {"name": "home", "type": "user_volume", "source": "dgw-test-home-{user}", "target": "/home/dask", "env": "PERSIST_DIR"},
        {"name": "refs", "type": "bind", "source": str(SHARED / "refs"), "target": "/refs", "read_only": True},
        {"name": "scratch", "type": "bind", "source": "/srv/dgw-test-scratch", "target": "/scratch", "workers_only": True},
    ],
    "options": [
        {"type": "float", "field": "worker_memory", "default": 0.5, "min": 0.25, "max": 2},
        {"type": "bool", "field": "project_data", "target": "mounts.shared"},
        {"type": "bool", "field": "scratch", "default": False, "target": "mounts.scratch"},
        {"type": "select", "field": "data", "target": "mounts",
         "options": [{"key": "none", "value": []}, {"key": "home", "value": "home"}, {"key": "refs", "value": "refs"}]},
        {"type": "select", "field": "stack", "target": "image", "options": ["filled in by the fixture"]},
        {"type": "int", "field": "worker_gpus", "default": 0, "min": 0, "max": 4, "target": "resources.GPU"},
    ],
}
PASSWORDS: dict[str, str] = {}


@pytest.fixture(scope="module")
def gateway_url(nodes, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("data-options")
    """The gateway `make up` deploys, reconfigured as an operator would: the options file as a Docker config."""
    subprocess.run([str(ROOT / "scripts" / "up.sh")], check=True, stdout=subprocess.DEVNULL, env={**os.environ, "POOL_SIZE": "0"})
    password = (Path.home() / ".local/state/dask-gateway-swarm/swarm-password").read_text().strip()
    # A plain Python image, as an operator might list by mistake: it has no dask.
    sh(str(ROOT / "scripts" / "registry.sh"), "push", "dgw-base-python:bookworm")
    remove_volumes(nodes)
    (SHARED / "data").mkdir(parents=True, exist_ok=True)
    os.chmod(SHARED / "data", 0o777)  # the dask user (uid 1000) writes there
    (SHARED / "refs").mkdir(exist_ok=True)
    (SHARED / "refs" / "README").write_text("reference data\n")
    # The sidecar as the README's stack example lists it: the image make up pinned (pushed by its hash tag only).
    env = sh("docker", "service", "inspect", "dgw_gateway", "--format", "{{range .Spec.TaskTemplate.ContainerSpec.Env}}{{println .}}{{end}}")
    sidecar = next(line.split("=", 1)[1] for line in env.splitlines() if line.startswith("DGW_SWARM_IMAGE="))
    stacks = [{"key": "dask (sidecar)", "value": sidecar}, {"key": "plain python", "value": "dgw-base-python:bookworm"}]
    options = tmp_path / "options.yaml"
    options.write_text(yaml.safe_dump({**OPTIONS, "options": [
        {**o, "options": stacks} if o["field"] == "stack" else o for o in OPTIONS["options"]]}))
    config = f"dgw-test-data-options-{int(time.time())}"
    sh("docker", "config", "create", config, str(options))
    update = ["docker", "service", "update", "--quiet", "dgw_gateway"]
    sh(*update, "--config-add", f"source={config},target=/etc/dgw/options.yaml,mode=0444",
       "--env-add", "DGW_CLUSTERS_OPTIONS_FILE=/etc/dgw/options.yaml")
    try:
        wait_for(lambda: healthy() and requests.get(f"{URL}/api/v1/options", auth=("alice", password), timeout=5).json()["cluster_options"][-1]["field"] == "worker_gpus",
                 120, "the reconfigured gateway")
        PASSWORDS["password"] = password
        yield URL
    finally:
        sh(*update, "--config-rm", config, "--env-rm", "DGW_CLUSTERS_OPTIONS_FILE", check=False)
        wait_for(healthy, 120, "the gateway as deployed")
        sh("docker", "config", "rm", config, check=False)


def healthy() -> bool:
    try:
        return requests.get(f"{URL}/api/health", timeout=2).ok
    except requests.RequestException:
        return False


@pytest.fixture
def alice(gateway_url):
    with Gateway(gateway_url, auth=BasicAuth("alice", PASSWORDS["password"])) as gw:
        yield gw
        for report in gw.list_clusters():
            gw.stop_cluster(report.name)


def events(url: str, name: str, user: str = "alice") -> dict:
    return requests.get(f"{url}/api/v1/clusters/{name}/events", auth=(user, PASSWORDS["password"]), timeout=10).json()


def workers_on(client, count: int) -> list[str]:
    client.wait_for_workers(count, timeout=240)
    return sorted(client.scheduler_info()["workers"])


@pytest.mark.timeout(600)
def test_a_volume_is_shared_by_the_scheduler_and_workers_on_different_nodes(alice):
    with alice.new_cluster(project_data=True) as cluster:
        cluster.scale(2)
        with cluster.get_client() as client:
            a, b = workers_on(client, 2)
            assert len(set(worker_nodes(cluster.name))) == 2

            def write():
                with open(os.path.join(os.environ["DASK_GATEWAY_MOUNT_SHARED"], "from-a.txt"), "w") as f:
                    f.write("hello from a")

            def read():
                with open(os.path.join(os.environ["DASK_GATEWAY_MOUNT_SHARED"], "from-a.txt")) as f:
                    return f.read()

            client.submit(write, workers=[a], pure=False).result(timeout=60)
            assert client.submit(read, workers=[b], pure=False).result(timeout=60) == "hello from a"
            assert client.run_on_scheduler(read) == "hello from a"
    assert (SHARED / "data" / "from-a.txt").read_text() == "hello from a"


@pytest.mark.timeout(600)
def test_a_user_volume_persists_across_clusters_and_is_invisible_to_another_user(alice, gateway_url):
    def keep():
        with open(os.path.join(os.environ["PERSIST_DIR"], "notes.txt"), "a") as f:
            f.write("alice was here\n")

    def look():
        path = os.path.join(os.environ["PERSIST_DIR"], "notes.txt")
        return open(path).read() if os.path.exists(path) else None

    with alice.new_cluster(data="home") as cluster, cluster.get_client() as client:
        client.run_on_scheduler(keep)
    with alice.new_cluster(data="home") as cluster, cluster.get_client() as client:
        assert client.run_on_scheduler(look) == "alice was here\n"
    with Gateway(gateway_url, auth=BasicAuth("bob", PASSWORDS["password"])) as bob:
        with bob.new_cluster(data="home") as cluster, cluster.get_client() as client:
            assert client.run_on_scheduler(look) is None
    volumes = sh("docker", "volume", "ls", "-q", "--filter", VOLUME_LABEL).split()
    assert {"dgw-test-home-alice", "dgw-test-home-bob"} <= set(volumes)


@pytest.mark.timeout(600)
def test_a_read_only_bind_mount_can_be_read_not_written(alice):
    with alice.new_cluster(data="refs") as cluster:
        cluster.scale(1)
        with cluster.get_client() as client:
            workers_on(client, 1)

            def try_write():
                try:
                    open("/refs/new.txt", "w").close()
                    return "written"
                except OSError as err:
                    return err.strerror

            assert client.submit(lambda: open("/refs/README").read()).result(timeout=60) == "reference data\n"
            assert client.submit(try_write, pure=False).result(timeout=60) == "Read-only file system"
    assert not (SHARED / "refs" / "new.txt").exists()


@pytest.mark.timeout(600)
def test_a_bind_path_missing_on_a_node_fails_its_worker_with_dockers_reason_and_the_node_is_avoided(alice, gateway_url, nodes):
    """The scratch mount's path exists on one node only, as a local disk one machine has: Docker rejects the workers
    placed on the others, the worker-failed events give its reason, and those nodes are avoided; the worker on the
    node that has the path runs and writes there."""
    has_path = nodes[0]
    sh("docker", "exec", has_path, "mkdir", "-p", "-m", "777", "/srv/dgw-test-scratch")
    try:
        with alice.new_cluster(scratch=True) as cluster:
            cluster.scale(len(nodes) + 1)  # one worker per node: the manager and the three nodes
            with cluster.get_client() as client:
                (worker,) = workers_on(client, 1)
                assert worker_nodes(cluster.name) == [has_path]
                failed = wait_for(lambda: [e["message"] for e in events(gateway_url, cluster.name)["events"]
                                           if e["kind"] == "worker-failed" and "bind source path does not exist" in e["message"]],
                                  120, "worker-failed events with Docker's reason")
                assert not any(has_path in message for message in failed), failed
                with pytest.warns(Warning, match="avoids .*bind source path does not exist"):
                    cluster.scale(len(nodes) + 1)
                assert client.submit(lambda: open("/scratch/out.txt", "w").write("kept"), pure=False).result(timeout=60) == 4
                assert client.run_on_scheduler(os.path.exists, "/scratch") is False  # a workers-only mount
        assert sh("docker", "exec", has_path, "cat", "/srv/dgw-test-scratch/out.txt") == "kept"
    finally:
        sh("docker", "exec", has_path, "rm", "-rf", "/srv/dgw-test-scratch", check=False)


def test_a_mount_or_image_outside_the_allow_list_is_refused_naming_the_field(gateway_url):
    for options, field in [({"data": "/etc"}, "data"), ({"stack": "alpine:latest"}, "stack")]:
        answer = requests.post(f"{gateway_url}/api/v1/clusters/", json={"cluster_options": options}, auth=("alice", PASSWORDS["password"]), timeout=10)
        assert answer.status_code == 422 and answer.json()["error"] == f"{options[field]!r} is not a valid option for {field}"


def test_an_image_of_the_allow_list_runs_and_reports_its_versions(alice, gateway_url):
    with alice.new_cluster(stack="dask (sidecar)") as cluster:
        versions = wait_for(lambda: events(gateway_url, cluster.name)["versions"], 30, "the versions")
        assert set(versions) == {"python", "dask", "distributed", "dask-gateway"}
        assert any(e["kind"] == "versions" for e in events(gateway_url, cluster.name)["events"])


def test_an_image_without_dask_fails_fast_with_the_reason(alice, gateway_url):
    started = time.time()
    with pytest.raises(Exception, match="failed to start") as failure:
        alice.new_cluster(stack="plain python")
    assert time.time() - started < 30
    name = re.search(r"Cluster '([0-9a-f]+)'", str(failure.value)).group(1)
    reason = events(gateway_url, name)["reason"]
    assert re.search(r"the image \S+dgw-base-python\S* has no 'dask' command: a cluster's image needs dask, distributed and dask-gateway", reason), reason


@pytest.mark.timeout(600)
def test_gpu_tasks_run_only_on_the_node_that_offers_a_gpu(alice, gateway_url):
    with alice.new_cluster(worker_gpus=1) as cluster:
        cluster.scale(3)  # only one node offers a GPU: the scale is clamped, with the reason
        with cluster.get_client() as client:
            (gpu_worker,) = workers_on(client, 1)
            assert worker_nodes(cluster.name) == ["dgw-node2"]
            resources = client.run(lambda dask_worker: dask_worker.state.total_resources)
            assert resources[gpu_worker]["GPU"] == 1 and resources[gpu_worker]["CPU"] >= 1
            assert client.submit(lambda: "on a GPU", resources={"GPU": 1}, pure=False).result(timeout=60) == "on a GPU"
            # An update of the node keeps the GPU worker (a Swarm reservation of the node's last GPU would not).
            sh("docker", "node", "update", "--label-add", "dgw.test-probe=1", "dgw-node2")
            try:
                time.sleep(5)
                assert list(client.scheduler_info()["workers"]) == [gpu_worker]
                assert worker_nodes(cluster.name) == ["dgw-node2"]
            finally:
                sh("docker", "node", "update", "--label-rm", "dgw.test-probe", "dgw-node2", check=False)
    with alice.new_cluster() as plain:
        plain.scale(1)
        with plain.get_client() as client:
            (worker,) = workers_on(client, 1)
            assert "GPU" not in client.run(lambda dask_worker: dask_worker.state.total_resources)[worker]
            future = client.submit(lambda: "never", resources={"GPU": 1}, pure=False)
            time.sleep(3)
            assert future.status == "pending"  # no worker of this cluster has a GPU


def test_more_gpus_than_any_node_offers_are_refused_with_the_reason(alice, gateway_url):
    with pytest.raises(Exception, match="failed to start") as failure:
        alice.new_cluster(worker_gpus=2)
    name = re.search(r"Cluster '([0-9a-f]+)'", str(failure.value)).group(1)
    reason = events(gateway_url, name)["reason"]
    assert "each worker asks for GPU=2, more than any eligible swarm node offers (GPU: at most 1 (dgw-node2))" in reason, reason
