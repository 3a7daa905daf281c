"""Data, software stacks and resources per cluster on the local backend, through the unmodified client: allow-listed
mounts (a directory per volume and per user, found through a variable), stacks as Python environments checked
before the scheduler starts, versions in the cluster's events, and cores and memory advertised as Dask resources.
The same features on Docker Swarm are tested in test/swarm/test_data_stacks_gpus.py."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest
import requests
import yaml

from conftest import ROOT, USERS, connect, start_gateway, stop_gateway, wait_for


def fake_stack(path: Path, dask_version: str | None) -> Path:
    """A Python environment (venv) for a stack: without dask at all, or one that reuses the project's packages while
    its own site-packages declares another dask version first (an environment with an old dask, without a download)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    if dask_version is None:
        return path
    site = Path(subprocess.run([str(path / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "project.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    info = site / f"dask-{dask_version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: dask\nVersion: {dask_version}\n")
    dask = path / "bin" / "dask"
    dask.write_text(f"#!{path / 'bin' / 'python'}\nfrom dask.__main__ import main\nmain()\n")
    dask.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def data_gateway(tmp_path_factory, users_file):
    tmp = tmp_path_factory.mktemp("data")
    refs = tmp / "refs"
    refs.mkdir()
    (refs / "README").write_text("reference data\n")
    options = {
        "mounts": [
            {"name": "shared", "type": "volume", "source": "project-data", "target": "/data"},
            {"name": "home", "type": "user_volume", "source": "home-{user}", "target": "/home/dask/persist", "env": "PERSIST_DIR"},
            {"name": "refs", "type": "bind", "source": str(refs), "target": "/refs", "read_only": True},
            {"name": "missing", "type": "bind", "source": str(tmp / "no-such-dir"), "target": "/missing"},
        ],
        "options": [
            {"type": "float", "field": "worker_memory", "default": 0.5, "min": 0.25, "max": 2},
            {"type": "bool", "field": "project_data", "label": "Project data", "target": "mounts.shared"},
            {"type": "select", "field": "data", "label": "My data", "target": "mounts",
             "options": [{"key": "none", "value": []}, {"key": "home", "value": "home"}, {"key": "refs", "value": ["refs"]},
                         {"key": "broken", "value": "missing"}]},
            {"type": "select", "field": "stack", "label": "Software stack", "target": "image",
             "options": [{"key": "default", "value": None},
                         {"key": "no dask", "value": str(fake_stack(tmp / "nodask", None))},
                         {"key": "old dask", "value": str(fake_stack(tmp / "olddask", "2021.1.0"))}]},
            {"type": "int", "field": "worker_gpus", "default": 0, "min": 0, "max": 2, "target": "resources.GPU"},
        ],
    }
    path = tmp / "options.yaml"
    path.write_text(yaml.safe_dump(options))
    gw = start_gateway(tmp, **{"auth.mode": "users", "auth.users_file": str(users_file), "clusters.options_file": str(path),
                               "pool.size": "0"})
    yield gw
    stop_gateway(gw)


def events(gw, name: str, user: str = "alice") -> dict:
    return requests.get(f"{gw.url}/api/v1/clusters/{name}/events", auth=(user, USERS[user][0]), timeout=10).json()


def start_failure(gw, client, **options) -> str:
    """Asks for a cluster that cannot start: the client says only that it failed; /events says why."""
    with pytest.raises(Exception, match="failed to start") as failure:
        client.new_cluster(**options)
    name = re.search(r"Cluster '([0-9a-f]+)' failed to start", str(failure.value)).group(1)
    return events(gw, name)["reason"]


def test_a_volume_is_shared_by_the_scheduler_and_every_worker(data_gateway):
    with connect(data_gateway, "alice") as gw, gw.new_cluster(project_data=True) as cluster:
        cluster.scale(2)
        with cluster.get_client() as client:
            client.wait_for_workers(2, timeout=60)
            a, b = sorted(client.scheduler_info()["workers"])

            def write():
                path = os.path.join(os.environ["DASK_GATEWAY_MOUNT_SHARED"], "from-a.txt")
                with open(path, "w") as f:
                    f.write("hello from a")
                return path

            def read():
                with open(os.path.join(os.environ["DASK_GATEWAY_MOUNT_SHARED"], "from-a.txt")) as f:
                    return f.read()

            written = client.submit(write, workers=[a], pure=False).result(timeout=30)
            assert client.submit(read, workers=[b], pure=False).result(timeout=30) == "hello from a"
            assert client.run_on_scheduler(read) == "hello from a"
    assert written.startswith(str(data_gateway.state_dir / "volumes" / "project-data"))


def test_a_user_volume_persists_across_clusters_and_is_invisible_to_others(data_gateway):
    def keep():
        with open(os.path.join(os.environ["PERSIST_DIR"], "notes.txt"), "a") as f:
            f.write("alice was here\n")
        return os.environ["PERSIST_DIR"]

    def look():
        path = os.path.join(os.environ["PERSIST_DIR"], "notes.txt")
        return os.environ["PERSIST_DIR"], (open(path).read() if os.path.exists(path) else None)

    with connect(data_gateway, "alice") as gw:
        with gw.new_cluster(data="home") as cluster, cluster.get_client() as client:
            alice_dir = client.run_on_scheduler(keep)
        with gw.new_cluster(data="home") as cluster, cluster.get_client() as client:
            assert client.run_on_scheduler(look) == (alice_dir, "alice was here\n")
    with connect(data_gateway, "bob") as gw, gw.new_cluster(data="home") as cluster, cluster.get_client() as client:
        bob_dir, notes = client.run_on_scheduler(look)
    assert notes is None and bob_dir != alice_dir


def test_a_mount_outside_the_allow_list_is_refused_naming_the_field(data_gateway):
    auth = ("alice", USERS["alice"][0])
    for options, field in [({"data": "/etc"}, "data"), ({"stack": "evil:latest"}, "stack")]:
        answer = requests.post(f"{data_gateway.url}/api/v1/clusters/", json={"cluster_options": options}, auth=auth, timeout=10)
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"] == f"{options[field]!r} is not a valid option for {field}"
    listed = requests.get(f"{data_gateway.url}/api/v1/clusters/", auth=auth, timeout=10).json()
    assert listed == {}


def test_a_missing_bind_path_fails_the_start_naming_the_mount(data_gateway):
    with connect(data_gateway, "alice") as gw:
        assert re.search(r"mount 'missing': the path \S+/no-such-dir does not exist", start_failure(data_gateway, gw, data="broken"))


def test_the_cluster_reports_its_versions_and_its_workers_their_resources(data_gateway):
    import dask
    import distributed

    with connect(data_gateway, "alice") as gw, gw.new_cluster() as cluster:
        report = wait_for(lambda: events(data_gateway, cluster.name)["versions"], 30, what="the versions")
        assert report["dask"] == dask.__version__ and report["distributed"] == distributed.__version__
        assert report["python"] == ".".join(map(str, sys.version_info[:3]))
        assert any(e["kind"] == "versions" and f"dask {dask.__version__}" in e["message"] for e in events(data_gateway, cluster.name)["events"])
        cluster.scale(1)
        with cluster.get_client() as client:
            client.wait_for_workers(1, timeout=60)
            resources = list(client.run(lambda dask_worker: dask_worker.state.total_resources).values())
            assert resources == [{"CPU": 1, "MEMORY": 0.5 * 1024**3}]
            assert client.submit(lambda: 42, resources={"CPU": 1}).result(timeout=30) == 42


@pytest.mark.parametrize("stack, reason", [
    ("no dask", r"the Python environment .*nodask has no 'dask' command"),
    ("old dask", r"the Python environment .*olddask cannot run a dask-gateway scheduler: its dask is older than dask 2022\.4\.0"),
])
def test_a_stack_without_a_usable_dask_fails_fast_with_the_reason(data_gateway, stack, reason):
    with connect(data_gateway, "alice") as gw:
        started = time.time()
        assert re.search(reason, start_failure(data_gateway, gw, stack=stack))
        assert time.time() - started < 20, "the stack check fails the start in seconds, not after the start timeout"


def test_a_gpu_request_is_refused_where_no_node_offers_one(data_gateway):
    with connect(data_gateway, "alice") as gw:
        assert "asks for GPU=1, but the local backend has no generic resources" in start_failure(data_gateway, gw, worker_gpus=1)
