"""Relay benchmark: scheduler traffic through the gateway's SNI relay versus direct TLS to the same scheduler.

    .venv/bin/python bench/relay_bench.py [--rounds 5] [--total-mib 200] [--chunk-mib 8] [--calls 500]

One gateway (local backend, started as the tests start it), one cluster with one worker, two dask clients:
`relayed` goes through the gateway's public port (TLS with SNI `daskgateway-<name>`, relayed byte for byte),
`direct` opens TLS to the scheduler's own address with the cluster's certificate. Each round measures, for
both paths, in an order that alternates from round to round:

* download: `--total-mib` MiB moved scheduler -> client as `--chunk-mib` MiB `run_on_scheduler` results;
* upload: the same amount client -> scheduler as `run_on_scheduler` arguments;
* round trip: `--calls / --rounds` small `run_on_scheduler` calls.

CPU seconds of the gateway, the scheduler and this client process are read from /proc during the transfers,
because on a small machine the relay competes for the same cores as the two ends it connects.
Writes bench/results/relay.json and bench/results/relay.md and prints the markdown.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "test" / "python"))

import requests  # noqa: E402
from dask_gateway import BasicAuth, Gateway  # noqa: E402
from distributed import Client  # noqa: E402
from distributed.security import Security  # noqa: E402

from conftest import free_port, start_gateway, stop_gateway  # noqa: E402

MIB = 1024 * 1024
USER, PASSWORD = "bench", "bench-pw"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of a process, all threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def scheduler_pid(state_dir: Path, name: str) -> int | None:
    workdir = str(state_dir / "clusters" / name)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
            if os.readlink(entry / "cwd") == workdir and b"scheduler" in cmd:
                return int(entry.name)
        except OSError:
            continue
    return None


def direct_client(gw_url: str, name: str, workdir: Path) -> tuple[Client, str]:
    """A dask client on the scheduler's own TLS address, with the cluster's credentials from the REST API."""
    auth = (USER, PASSWORD)
    report = requests.get(f"{gw_url}/api/v1/clusters/{name}", auth=auth, timeout=10).json()
    events = requests.get(f"{gw_url}/api/v1/clusters/{name}/events", auth=auth, timeout=10).json()["events"]
    address = next(re.search(r"scheduler at (tls://[^\s,]+)", e["message"]).group(1) for e in events if e["kind"] == "running")
    cert, key = workdir / "cluster-cert.pem", workdir / "cluster-key.pem"
    cert.write_text(report["tls_cert"])
    key.write_text(report["tls_key"])
    key.chmod(0o600)
    security = Security(tls_ca_file=str(cert), tls_client_cert=str(cert), tls_client_key=str(key), require_encryption=True)
    return Client(address, security=security), address


def download(client: Client, total: int, chunk: int) -> float:
    """Seconds to bring `total` bytes from the scheduler in `chunk`-byte results."""
    t0 = time.perf_counter()
    for _ in range(total // chunk):
        data = client.run_on_scheduler(lambda n: b"x" * n, chunk)
        assert len(data) == chunk
    return time.perf_counter() - t0


def upload(client: Client, total: int, payload: bytes) -> float:
    """Seconds to send `total` bytes to the scheduler as `len(payload)`-byte arguments."""
    t0 = time.perf_counter()
    for _ in range(total // len(payload)):
        assert client.run_on_scheduler(len, payload) == len(payload)
    return time.perf_counter() - t0


def round_trips(client: Client, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        client.run_on_scheduler(int)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


class CpuMeter:
    """Accumulates CPU seconds of some processes over the `with` blocks it is used in."""

    def __init__(self, pids: dict[str, int | None]):
        self.pids = {k: v for k, v in pids.items() if v}
        self.used = {k: 0.0 for k in self.pids}
        self.wall = 0.0

    def __enter__(self):
        self._start = {k: cpu_seconds(p) for k, p in self.pids.items()}
        self._t0 = time.perf_counter()

    def __exit__(self, *exc):
        self.wall += time.perf_counter() - self._t0
        for k, p in self.pids.items():
            self.used[k] += cpu_seconds(p) - self._start[k]

    def percent(self) -> dict[str, float]:
        return {k: round(100 * v / self.wall, 1) for k, v in self.used.items()} if self.wall else {}


def forward(listen_port: int, host: str, port: int) -> None:
    """The reference relay (`--forward`): a plain TCP forwarder, one thread per direction, 1 MiB reads."""

    def pump(src: socket.socket, dst: socket.socket) -> None:
        buf = bytearray(MIB)
        view = memoryview(buf)
        try:
            while n := src.recv_into(buf):
                dst.sendall(view[:n])
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            src.close()
            dst.close()

    server = socket.create_server(("127.0.0.1", listen_port))
    while True:
        client, _ = server.accept()
        upstream = socket.create_connection((host, port))
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
        threading.Thread(target=pump, args=(upstream, client), daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--total-mib", type=int, default=200)
    parser.add_argument("--chunk-mib", type=int, default=8)
    parser.add_argument("--calls", type=int, default=500, help="small calls per path, over all rounds")
    parser.add_argument("--no-reference", action="store_true", help="leave out the reference relay")
    parser.add_argument("--forward", nargs=3, metavar=("LISTEN_PORT", "HOST", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.forward:
        return forward(int(args.forward[0]), args.forward[1], int(args.forward[2]))
    total, chunk = args.total_mib * MIB, args.chunk_mib * MIB
    payload = os.urandom(chunk)
    tmp = Path(tempfile.mkdtemp(prefix="relay-bench-"))
    gw = start_gateway(tmp, **{"auth.password": PASSWORD, "log.level": "warn"})
    paths = ["relayed", "direct"] + ([] if args.no_reference else ["reference"])
    raw: dict[str, dict[str, list[float]]] = {p: {"download_mibps": [], "upload_mibps": [], "rtt_ms": []} for p in paths}
    forwarder = None
    try:
        with Gateway(gw.url, auth=BasicAuth(USER, PASSWORD)) as gateway:
            cluster = gateway.new_cluster()
            cluster.scale(1)
            clients = {"relayed": cluster.get_client()}
            clients["direct"], address = direct_client(gw.url, cluster.name, tmp)
            clients["relayed"].wait_for_workers(1, timeout=120)
            pids = {"gateway": gw.proc.pid, "scheduler": scheduler_pid(gw.state_dir, cluster.name), "client": os.getpid()}
            if "reference" in paths:
                host, port = address[len("tls://"):].rsplit(":", 1)
                listen = free_port()
                forwarder = subprocess.Popen([sys.executable, __file__, "--forward", str(listen), host, port])
                pids["forwarder"] = forwarder.pid
                time.sleep(1)
                clients["reference"] = Client(f"tls://127.0.0.1:{listen}", security=clients["direct"].security)
            meters = {p: CpuMeter(pids) for p in paths}
            for client in clients.values():  # warm up every path (connections, pickling caches)
                download(client, 2 * chunk, chunk)
                upload(client, 2 * chunk, payload)
                round_trips(client, 20)
            for i in range(args.rounds):
                order = paths[i % len(paths):] + paths[: i % len(paths)]  # each path goes first in turn
                for p in order:
                    with meters[p]:
                        raw[p]["download_mibps"].append(args.total_mib / download(clients[p], total, chunk))
                    with meters[p]:
                        raw[p]["upload_mibps"].append(args.total_mib / upload(clients[p], total, payload))
                for p in order:
                    raw[p]["rtt_ms"] += round_trips(clients[p], args.calls // args.rounds)
            for client in clients.values():
                client.close()
            cluster.shutdown()
    finally:
        if forwarder:
            forwarder.kill()
        stop_gateway(gw)
        shutil.rmtree(tmp, ignore_errors=True)

    kinds = ("download_mibps", "upload_mibps")
    med = {p: {k: statistics.median(raw[p][k]) for k in kinds} for p in paths}
    # Paired by round: each ratio compares runs made seconds apart, which cancels slow drifts of the machine's load.
    paired = {p: {k: statistics.median(a / b for a, b in zip(raw[p][k], raw["direct"][k])) for k in kinds} for p in paths}
    rtt = {p: {"p50": pct(raw[p]["rtt_ms"], 50), "p99": pct(raw[p]["rtt_ms"], 99)} for p in paths}
    cpu = {p: meters[p].percent() for p in paths}
    stats = {"throughput_mibps_median": med, "throughput_ratio_to_direct_paired_median": paired, "round_trip_ms": rtt,
             "cpu_percent_during_transfers": cpu}
    machine = {"cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
               "node": subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip(),
               "load_average_after": os.getloadavg()}
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "relay.json").write_text(json.dumps({"machine": machine, "args": vars(args), "scheduler": address,
                                               "stats": stats, "raw": raw}, indent=2) + "\n")

    def row(label: str, values: dict[str, float], digits: int, ratio: dict[str, float] | None = None) -> str:
        cells = [f"{values[p]:.{digits}f}" for p in paths]
        ratios = [f"{(ratio or {})[p] if ratio else values[p] / values['direct']:.2f}" for p in paths if p != "direct"]
        return f"| {label} | " + " | ".join(cells + ratios) + " |"

    others = [p for p in paths if p != "direct"]
    ratio = paired["relayed"]
    worst = min(ratio.values())
    lines = [
        f"Scheduler traffic through the gateway's SNI relay (`relayed`) vs direct TLS to the same scheduler (`direct`)"
        + ("" if args.no_reference else " and vs a minimal reference relay (`reference`: a plain TCP forwarder in "
           "Python, one thread per direction, 1 MiB reads, same TLS end to end)")
        + f". {args.rounds} rounds, paths in rotating order, each moving {args.total_mib} MiB each way in "
        f"{args.chunk_mib} MiB `run_on_scheduler` messages, then {args.calls // args.rounds} small calls per path "
        f"({args.calls} in all); {os.cpu_count()} cores shared by the client, the scheduler and the relay. "
        f"Node {machine['node']}, Python {machine['python']}.",
        "",
        "| figure | " + " | ".join(paths) + " | " + " | ".join(f"{p} / direct" for p in others) + " |",
        "|---|" + "---|" * (len(paths) + len(others)),
        row("download (scheduler → client), MiB/s, median", {p: med[p]["download_mibps"] for p in paths}, 0,
            {p: paired[p]["download_mibps"] for p in paths}),
        row("upload (client → scheduler), MiB/s, median", {p: med[p]["upload_mibps"] for p in paths}, 0,
            {p: paired[p]["upload_mibps"] for p in paths}),
        row("round trip p50, ms", {p: rtt[p]["p50"] for p in paths}, 2),
        row("round trip p99, ms", {p: rtt[p]["p99"] for p in paths}, 2),
        "",
        "Throughput ratios are medians of per-round ratios (each path against the direct run of the same round).",
        "",
        "CPU during the transfers, % of one core (wall-clock average): "
        + "; ".join(f"{p}: " + ", ".join(f"{k} {v:.0f}" for k, v in cpu[p].items() if v >= 0.5) for p in paths) + ".",
        "",
        f"Goal: relayed throughput at least 90 % of direct: {'met' if worst >= 0.9 else 'NOT met'} "
        f"(download {100 * ratio['download_mibps']:.0f} %, upload {100 * ratio['upload_mibps']:.0f} %).",
    ]
    (out / "relay.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
