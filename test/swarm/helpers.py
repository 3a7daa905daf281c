"""Helpers shared by the swarm tests."""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def sh(*args: str, check: bool = True) -> str:
    return subprocess.run(args, check=check, capture_output=True, text=True).stdout.strip()


def wait_for(predicate, timeout=90.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def services(cluster: str, role: str | None = None) -> list[dict]:
    labels = [f"label=dask-gateway.cluster={cluster}"] + ([f"label=dask-gateway.role={role}"] if role else [])
    return inspect_services(sh("docker", "service", "ls", "-q", *sum((["--filter", f] for f in labels), [])).split())


def inspect_services(ids: list[str]) -> list[dict]:
    """The specs of these services; one removed between the listing and the inspection (it answers `[]`) is skipped."""
    found = [subprocess.run(["docker", "service", "inspect", i], capture_output=True, text=True).stdout for i in ids]
    return [spec for text in found if text.strip().startswith("[") for spec in json.loads(text)[:1]]


def worker_nodes(cluster: str) -> list[str]:
    """Hostnames of the nodes running this cluster's workers (tasks come and go: never fail on a vanished one)."""
    nodes = []
    for s in services(cluster, "worker"):
        out = subprocess.run(["docker", "service", "ps", "--filter", "desired-state=running", "--format", "{{.Node}}|{{.CurrentState}}", s["ID"]],
                             capture_output=True, text=True).stdout
        nodes += [line.split("|")[0] for line in out.splitlines() if line.split("|")[1].startswith("Running")]
    return nodes
