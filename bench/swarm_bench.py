"""Swarm backend benchmark: new_cluster() to RUNNING and scale(n) to n connected workers on the swarm,
next to the local backend and to the time Swarm itself takes to start a service, in one run.

    .venv/bin/python bench/swarm_bench.py [--rounds 5]

Needs `make up` to have deployed the gateway (it reads the password `make up` stored). Also measures the
registry: pushing the sidecar to an empty registry and again, and scale(n) on n fresh Docker-in-Docker nodes
that never pulled the image (cold) and then again (warm); `--fresh-nodes 0` skips the nodes. Writes
bench/results/swarm.json and bench/results/swarm.md.
"""
from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "test" / "python"))

import requests  # noqa: E402
from dask_gateway import BasicAuth, Gateway  # noqa: E402

from conftest import start_gateway, stop_gateway  # noqa: E402

SWARM_URL = "http://127.0.0.1:8000"


def sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip()


def time_cluster(gw: Gateway, workers: int, **options) -> tuple[float, float]:
    """Seconds from new_cluster() to RUNNING, and from scale(n) to n connected workers."""
    t0 = time.perf_counter()
    cluster = gw.new_cluster(**options)
    started = time.perf_counter() - t0
    client = cluster.get_client()
    t1 = time.perf_counter()
    cluster.scale(workers)
    client.wait_for_workers(workers, timeout=300)
    scaled = time.perf_counter() - t1
    client.close()
    cluster.shutdown()
    # dask_gateway 2026.3.0's Gateway.__del__ can deadlock the client's event loop when the collector runs on that
    # loop's thread (a run hung in get_client()): collect here, on the main thread (see test/python/conftest.py).
    gc.collect()
    return started, scaled


def raw_service_start() -> float:
    """Seconds for `docker service create` of the sidecar image to a running task (Swarm's own floor)."""
    name = f"dgw-bench-{int(time.time() * 1000)}"
    t0 = time.perf_counter()
    sh("docker", "service", "create", "--detach", "--quiet", "--name", name, "--endpoint-mode", "dnsrr",
       "--constraint", "node.role==manager", "dgw-sidecar:latest", "sleep", "300")
    try:
        while "Running" not in sh("docker", "service", "ps", "--format", "{{.CurrentState}}", name):
            time.sleep(0.05)
        return time.perf_counter() - t0
    finally:
        sh("docker", "service", "rm", name)


def pool_ready() -> float:
    text = requests.get(f"{SWARM_URL}/api/metrics", timeout=30).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("dask_gateway_pool_schedulers{") and 'state="ready"' in line)


def pool_rounds(gw: Gateway, rounds: int) -> dict[str, list[float]]:
    """new_cluster() from the warm pool (refilled before each claim) and the first result: new_cluster(),
    get_client(), scale(1), submit(inc, 1).result()."""
    running, first = [], []
    for _ in range(rounds):
        deadline = time.time() + 120
        while pool_ready() < 1 and time.time() < deadline:
            time.sleep(0.05)
        t0 = time.perf_counter()
        cluster = gw.new_cluster()
        running.append(time.perf_counter() - t0)
        client = cluster.get_client()
        cluster.scale(1)
        assert client.submit(lambda x: x + 1, 1).result(timeout=300) == 2
        first.append(time.perf_counter() - t0)
        client.close()
        cluster.shutdown()
        gc.collect()
    return {"pool_start": running, "pool_first_result": first}


def timed(*args: str, env: dict | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True, text=True, env=env)
    return time.perf_counter() - t0


def registry_push_times() -> dict[str, float]:
    """Seconds to push the sidecar to an empty registry (what the first `make up` pays), and to push it again
    (what every later `make up` pays: nothing is sent). The registry is a throwaway one on this machine."""
    image = sh(str(ROOT / "scripts" / "registry.sh"), "image")
    tag = next(t for t in sh("docker", "image", "ls", "dgw-sidecar", "--format", "{{.Tag}}").split() if t != "latest")
    name = f"dgw-bench-registry-{int(time.time())}"
    sh("docker", "run", "-d", "--name", name, "-p", "127.0.0.1:5099:5000", image)
    env = {**__import__("os").environ, "REGISTRY": "127.0.0.1:5099"}
    push = [str(ROOT / "scripts" / "registry.sh"), "push", f"dgw-sidecar:{tag}"]
    try:
        for _ in range(100):
            if subprocess.run(["curl", "-fs", "http://127.0.0.1:5099/v2/"], capture_output=True).returncode == 0:
                break
            time.sleep(0.2)
        return {"push_cold": timed(*push, env=env), "push_again": timed(*push, env=env),
                "image_mb": int(sh("docker", "image", "inspect", "--format", "{{.Size}}", f"dgw-sidecar:{tag}")) / 1e6}
    finally:
        sh("docker", "rm", "-f", "-v", name)
        sh("docker", "rmi", f"127.0.0.1:5099/dgw-sidecar:{tag}")


def fresh_node_scale(gw: Gateway, nodes: int, rounds: int) -> dict[str, list[float]]:
    """scale(n) to n connected workers on n Docker-in-Docker nodes that have never pulled the image (cold: each
    node's registry cache fetches it from the primary, the node pulls it from its cache), then again (warm)."""
    swarm_nodes = str(ROOT / "scripts" / "swarm-nodes.sh")
    update = ["docker", "service", "update", "--quiet", "dgw_gateway"]
    sh(swarm_nodes, "down")
    sh(swarm_nodes, "up", str(nodes))
    sh(*update, "--env-add", "DGW_SWARM_WORKER_NODE_LABEL=dgw.dind")
    try:
        wait_healthy()
        cold = [time_cluster(gw, nodes)[1]]
        warm = [time_cluster(gw, nodes)[1] for _ in range(rounds)]
        return {"fresh_scale_cold": cold, "fresh_scale_warm": warm}
    finally:
        sh(*update, "--env-rm", "DGW_SWARM_WORKER_NODE_LABEL")
        wait_healthy()
        sh(swarm_nodes, "down")


def wait_healthy() -> None:
    for _ in range(240):
        if subprocess.run(["curl", "-fs", f"{SWARM_URL}/api/health"], capture_output=True).returncode == 0:
            return
        time.sleep(0.5)
    raise RuntimeError("the gateway did not come back")


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--fresh-nodes", type=int, default=3, help="Docker-in-Docker nodes for the cold/warm scale (0: skip)")
    args = parser.parse_args()
    gc.disable()
    password = (Path.home() / ".local/state/dask-gateway-swarm/swarm-password").read_text().strip()
    nodes = sum(1 for line in sh("docker", "node", "ls", "--format", "{{.Status}} {{.Availability}}").splitlines() if line == "Ready Active")
    workers = min(nodes, 3)
    # Cold starts on both (the warm pool is measured on its own): the local gateway without a pool, and on the
    # swarm an environment that no pool option set has, so that every create misses the pool.
    local_gw = start_gateway(Path(tempfile.mkdtemp()), **{"auth.password": "pw", "log.level": "info", "pool.size": "0"})
    results: dict[str, list[float]] = {"swarm_start": [], "swarm_scale": [], "local_start": [], "local_scale": [], "raw_service": []}
    try:
        with Gateway(SWARM_URL, auth=BasicAuth("bench", password)) as swarm, Gateway(local_gw.url, auth=BasicAuth("bench", "pw")) as local:
            for _ in range(args.rounds):  # alternate, so that noise hits both alike
                s, sc = time_cluster(swarm, workers, environment={"DGW_BENCH": "cold"})
                results["swarm_start"].append(s)
                results["swarm_scale"].append(sc)
                s, sc = time_cluster(local, workers)
                results["local_start"].append(s)
                results["local_scale"].append(sc)
                results["raw_service"].append(raw_service_start())
    finally:
        stop_gateway(local_gw)
    with Gateway(SWARM_URL, auth=BasicAuth("bench", password)) as swarm:
        results.update(pool_rounds(swarm, max(args.rounds, 5)))
    push = registry_push_times()
    if args.fresh_nodes:
        with Gateway(SWARM_URL, auth=BasicAuth("bench", password)) as swarm:
            results.update(fresh_node_scale(swarm, args.fresh_nodes, min(args.rounds, 3)))
    stats = {k: summary(v) for k, v in results.items()}
    machine = {"cores": __import__("os").cpu_count(), "platform": platform.platform(), "python": platform.python_version(), "swarm_nodes": nodes}
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "swarm.json").write_text(json.dumps({"machine": machine, "workers": workers, "raw": results, "stats": stats, "registry": push}, indent=2))
    rows = [
        ("new_cluster() to RUNNING", "swarm_start", "local_start"),
        (f"scale({workers}) to {workers} connected workers", "swarm_scale", "local_scale"),
    ]
    lines = [f"Swarm backend vs local backend, {args.rounds} alternating rounds, {nodes} swarm node(s), median seconds (min-max).", "",
             "| figure | swarm | local | swarm / local |", "|---|---|---|---|"]
    fmt = lambda k: f"{stats[k]['median']:.2f} ({stats[k]['min']:.2f}-{stats[k]['max']:.2f})"
    for label, a, b in rows:
        lines.append(f"| {label} | {fmt(a)} | {fmt(b)} | {stats[a]['median'] / stats[b]['median']:.2f} |")
    lines.append(f"| `docker service create` to a running task (Swarm's floor) | {fmt('raw_service')} | | |")
    lines += ["", "The warm pool on the swarm (pool.size 1, refilled before each claim), median seconds (min-max):", "",
              "| figure | seconds |", "|---|---|",
              f"| new_cluster() to RUNNING from the pool | {fmt('pool_start')} |",
              f"| first result: new_cluster(), get_client(), scale(1), submit(inc, 1).result() | {fmt('pool_first_result')} |"]
    lines += ["", f"Images through the registry: the sidecar ({push['image_mb']:.0f} MB) pushed by `make up`, and scale(n) on nodes that never pulled it.", "",
              "| figure | seconds |", "|---|---|",
              f"| push to an empty registry (first `make up`) | {push['push_cold']:.1f} |",
              f"| push again (every later `make up`: nothing sent) | {push['push_again']:.1f} |"]
    if args.fresh_nodes:
        n = args.fresh_nodes
        lines += [f"| scale({n}) to {n} connected workers on {n} fresh nodes (cold: each pulls through its registry cache) | {fmt('fresh_scale_cold')} |",
                  f"| the same again (warm: the image is on the nodes) | {fmt('fresh_scale_warm')} |"]
    (out / "swarm.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
