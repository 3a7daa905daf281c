"""Swarm backend benchmark: new_cluster() to RUNNING and scale(n) to n connected workers on the swarm,
next to the local backend and to the time Swarm itself takes to start a service, in one run.

    .venv/bin/python bench/swarm_bench.py [--rounds 5]

Needs `make up` to have deployed the gateway (it reads the password `make up` stored). Writes
bench/results/swarm.json and bench/results/swarm.md.
"""
from __future__ import annotations

import argparse
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

from dask_gateway import BasicAuth, Gateway  # noqa: E402

from conftest import start_gateway, stop_gateway  # noqa: E402

SWARM_URL = "http://127.0.0.1:8000"


def sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip()


def time_cluster(gw: Gateway, workers: int) -> tuple[float, float]:
    """Seconds from new_cluster() to RUNNING, and from scale(n) to n connected workers."""
    t0 = time.perf_counter()
    cluster = gw.new_cluster()
    started = time.perf_counter() - t0
    client = cluster.get_client()
    t1 = time.perf_counter()
    cluster.scale(workers)
    client.wait_for_workers(workers, timeout=300)
    scaled = time.perf_counter() - t1
    client.close()
    cluster.shutdown()
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


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    password = (Path.home() / ".local/state/dask-gateway-swarm/swarm-password").read_text().strip()
    nodes = sum(1 for line in sh("docker", "node", "ls", "--format", "{{.Status}} {{.Availability}}").splitlines() if line == "Ready Active")
    workers = min(nodes, 3)
    local_gw = start_gateway(Path(tempfile.mkdtemp()), **{"auth.password": "pw", "log.level": "info"})
    results: dict[str, list[float]] = {"swarm_start": [], "swarm_scale": [], "local_start": [], "local_scale": [], "raw_service": []}
    try:
        with Gateway(SWARM_URL, auth=BasicAuth("bench", password)) as swarm, Gateway(local_gw.url, auth=BasicAuth("bench", "pw")) as local:
            for _ in range(args.rounds):  # alternate, so that noise hits both alike
                s, sc = time_cluster(swarm, workers)
                results["swarm_start"].append(s)
                results["swarm_scale"].append(sc)
                s, sc = time_cluster(local, workers)
                results["local_start"].append(s)
                results["local_scale"].append(sc)
                results["raw_service"].append(raw_service_start())
    finally:
        stop_gateway(local_gw)
    stats = {k: summary(v) for k, v in results.items()}
    machine = {"cores": __import__("os").cpu_count(), "platform": platform.platform(), "python": platform.python_version(), "swarm_nodes": nodes}
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "swarm.json").write_text(json.dumps({"machine": machine, "workers": workers, "raw": results, "stats": stats}, indent=2))
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
    (out / "swarm.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
