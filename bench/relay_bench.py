"""Relay benchmark: scheduler traffic through the gateway's SNI relay versus direct TLS to the same scheduler,
alternating rounds in one run. Goal: relayed throughput at least 90 % of direct.

    .venv/bin/python bench/relay_bench.py [--rounds 6] [--mib 64]

Writes bench/results/relay.json and bench/results/relay.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "test" / "python"))

import requests  # noqa: E402
from dask_gateway import BasicAuth, Gateway  # noqa: E402
from distributed import Client  # noqa: E402
from distributed.security import Security  # noqa: E402

from conftest import start_gateway, stop_gateway  # noqa: E402


def direct_client(gw_url: str, name: str, workdir: Path) -> Client:
    report = requests.get(f"{gw_url}/api/v1/clusters/{name}", auth=("bench", "pw")).json()
    events = requests.get(f"{gw_url}/api/v1/clusters/{name}/events", auth=("bench", "pw")).json()["events"]
    address = next(re.search(r"scheduler at (\S+),", e["message"]).group(1) for e in events if e["kind"] == "running")
    cert, key = workdir / "c.pem", workdir / "k.pem"
    cert.write_text(report["tls_cert"])
    key.write_text(report["tls_key"])
    security = Security(tls_ca_file=str(cert), tls_client_cert=str(cert), tls_client_key=str(key), require_encryption=True)
    return Client(address, security=security)


def throughput(client: Client, mib: int) -> float:
    """MiB/s of a payload made on the scheduler and sent to the client."""
    t0 = time.perf_counter()
    data = client.run_on_scheduler(lambda n: b"x" * n, mib * 1024 * 1024)
    elapsed = time.perf_counter() - t0
    assert len(data) == mib * 1024 * 1024
    return mib / elapsed


def latencies(client: Client, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        client.run_on_scheduler(lambda: 1)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--mib", type=int, default=64)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    gw = start_gateway(tmp, **{"auth.password": "pw", "log.level": "warn"})
    raw = {"relayed_mibps": [], "direct_mibps": [], "relayed_ms": [], "direct_ms": []}
    try:
        with Gateway(gw.url, auth=BasicAuth("bench", "pw")) as gateway:
            cluster = gateway.new_cluster()
            relayed = cluster.get_client()
            direct = direct_client(gw.url, cluster.name, tmp)
            throughput(relayed, 8), throughput(direct, 8)  # warm up both paths
            for _ in range(args.rounds):
                raw["relayed_mibps"].append(throughput(relayed, args.mib))
                raw["direct_mibps"].append(throughput(direct, args.mib))
                raw["relayed_ms"] += latencies(relayed, 100)
                raw["direct_ms"] += latencies(direct, 100)
            relayed.close()
            direct.close()
            cluster.shutdown()
    finally:
        stop_gateway(gw)
    r, d = statistics.median(raw["relayed_mibps"]), statistics.median(raw["direct_mibps"])
    stats = {
        "throughput_mibps": {"relayed": r, "direct": d, "ratio": r / d},
        "latency_ms": {k: {"p50": pct(raw[f"{k}_ms"], 50), "p99": pct(raw[f"{k}_ms"], 99)} for k in ("relayed", "direct")},
    }
    machine = {"cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "relay.json").write_text(json.dumps({"machine": machine, "args": vars(args), "stats": stats, "raw": raw}, indent=2))
    lat = stats["latency_ms"]
    lines = [
        f"Scheduler traffic through the gateway's relay vs direct TLS to the same scheduler; {args.rounds} alternating rounds "
        f"of a {args.mib} MiB transfer and 100 small calls each, {os.cpu_count()} cores.", "",
        "| figure | relayed | direct | relayed / direct |", "|---|---|---|---|",
        f"| throughput, MiB/s (median) | {r:.0f} | {d:.0f} | {r / d:.2f} |",
        f"| round trip p50, ms | {lat['relayed']['p50']:.2f} | {lat['direct']['p50']:.2f} | {lat['relayed']['p50'] / lat['direct']['p50']:.2f} |",
        f"| round trip p99, ms | {lat['relayed']['p99']:.2f} | {lat['direct']['p99']:.2f} | {lat['relayed']['p99'] / lat['direct']['p99']:.2f} |",
        "", f"Goal: relayed throughput at least 90 % of direct: {'met' if r / d >= 0.9 else 'NOT met'} ({100 * r / d:.0f} %).",
    ]
    (out / "relay.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
