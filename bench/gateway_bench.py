"""Gateway benchmark: this gateway against the reference dask-gateway-server, side by side in one run (`make bench`).

    .venv/bin/python bench/gateway_bench.py [--quick] [--only start,api,relay,scale,scaleout]

Both servers run at the same time on this machine, each with its local backend and a shared password, and the
same client code drives them in alternating order. The sections (bench/README.md explains each method):

1. start:    `new_cluster()` to RUNNING, and a bare `dask scheduler` with the preload to its first heartbeat;
2. api:      requests per second and latency of the cluster list and one cluster, 1/16/64 clients, 100 clusters;
3. relay:    scheduler traffic through each gateway, and direct TLS to the same scheduler (relay_bench's method);
4. scale:    `scale(8)` until the client sees eight connected workers;
5. memory:   resident memory of each server (the reference's gateway plus its proxy), idle and with 100 clusters;
6. scaleout: this gateway alone, 1,000 and 10,000 simulated clusters heartbeating every 15 s.

Writes bench/results/gateway.json (raw numbers, machine), gateway.md (the table) and gateway.png (the chart).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import requests  # noqa: E402
from dask_gateway import BasicAuth, Gateway  # noqa: E402
from distributed import Client  # noqa: E402

import report  # noqa: E402
from relay_bench import CpuMeter, download, pct, round_trips, scheduler_pid, upload  # noqa: E402
from servers import (DASK, HEARTBEAT_PERIOD, PASSWORD, ROOT, USER, Server, cpu_seconds, free_port,  # noqa: E402
                     reference_proxy_binary, start_ours, start_reference, wait_for)

MIB = 1024 * 1024
LABELS = ("ours", "reference")
FAKE_SCHEDULER = """#!/bin/sh
# Stands in for `dask scheduler`: records its cluster's name, API token and API URL for the heartbeat
# simulator (bench/loadgen.mjs), then sleeps until the gateway stops it.
token="$DASK_GATEWAY_API_TOKEN"
case "$token" in */*) token=$(cat "$token");; esac
printf '%s %s %s\\n' "$DASK_GATEWAY_CLUSTER_NAME" "$token" "$DASK_GATEWAY_API_URL" >> {spool}
exec sleep 100000
"""


def _quiet_client_finalizer(hook_args: "sys.UnraisableHookArgs") -> None:
    """dask_gateway's Gateway.__del__ raises on an already closed Gateway (a client quirk, harmless): not shown."""
    if not (isinstance(hook_args.exc_value, RuntimeError) and "Gateway.__del__" in repr(hook_args.object)):
        sys.__unraisablehook__(hook_args)


sys.unraisablehook = _quiet_client_finalizer


PEAK_LOAD = [0.0]


def log(msg: str) -> None:
    PEAK_LOAD[0] = max(PEAK_LOAD[0], os.getloadavg()[0])
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def rotated(items: list[str], i: int) -> list[str]:
    return items[i % len(items):] + items[: i % len(items)]


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "p95": pct(values, 95), "min": min(values), "max": max(values), "n": len(values)}


def gateway(server: Server) -> Gateway:
    return Gateway(server.url, auth=BasicAuth(USER, PASSWORD))


def wait_stopped(gw: Gateway, name: str, timeout: float = 60) -> None:
    wait_for(lambda: gw.get_cluster(name).status.name in ("STOPPED", "FAILED"), timeout, 0.1, f"cluster {name} to stop")


def fake_scheduler(tmp: Path, label: str) -> tuple[str, Path]:
    spool = tmp / f"spool-{label}.txt"
    spool.touch()
    script = tmp / f"fake-dask-{label}"
    script.write_text(FAKE_SCHEDULER.format(spool=spool))
    script.chmod(0o755)
    return str(script), spool


def spool_targets(spool: Path) -> list[dict[str, str]]:
    out = []
    for line in spool.read_text().splitlines():
        name, token, api_url = line.split()
        out.append({"name": name, "token": token, "api_url": api_url})
    return out


def loadgen(*args: str | int | float) -> subprocess.Popen:
    return subprocess.Popen(["node", str(BENCH / "loadgen.mjs"), *map(str, args)], stdout=subprocess.PIPE, text=True)


def loadgen_result(proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"loadgen failed ({proc.returncode})")
    return json.loads(out)


# ---- 1. cluster start -------------------------------------------------------------------------------------------


class HeartbeatCatcher:
    """A stand-in gateway API that only notes when each cluster's first heartbeat arrives."""

    def __init__(self) -> None:
        self.first: dict[str, float] = {}
        catcher = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                name = self.path.split("/")[-2]
                catcher.first.setdefault(name, time.perf_counter())
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def floor_once(catcher: HeartbeatCatcher, tmp: Path, i: int) -> float:
    """Seconds from spawning a bare `dask scheduler` (TLS, the gateway preload, as the local backends run it)
    to its first heartbeat."""
    from dask_gateway_server.tls import new_keypair

    cert, key = tmp / "floor.crt", tmp / "floor.pem"
    if not cert.exists():
        c, k = new_keypair("floor")
        cert.write_bytes(c)
        key.write_bytes(k)
    name = f"floor{i}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}
    env.update({
        "DASK_GATEWAY_API_URL": f"http://127.0.0.1:{catcher.port}/api", "DASK_GATEWAY_CLUSTER_NAME": name,
        "DASK_GATEWAY_API_TOKEN": "floor-token", "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True",
        "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(cert), "DASK_DISTRIBUTED__COMM__TLS__SCHEDULER__CERT": str(cert),
        "DASK_DISTRIBUTED__COMM__TLS__SCHEDULER__KEY": str(key),
    })
    args = [DASK, "scheduler", "--protocol", "tls", "--port", "0", "--host", "127.0.0.1", "--dashboard-address",
            "127.0.0.1:0", "--preload", "dask_gateway.scheduler_preload", "--dg-api-address", "127.0.0.1:0",
            "--dg-heartbeat-period", str(HEARTBEAT_PERIOD)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = t0 + 60
        while name not in catcher.first:
            if time.perf_counter() > deadline or proc.poll() is not None:
                raise RuntimeError("bare scheduler sent no heartbeat")
            time.sleep(0.005)
        return catcher.first[name] - t0
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)


def start_once(gw: Gateway) -> float:
    t0 = time.perf_counter()
    cluster = gw.new_cluster()
    seconds = time.perf_counter() - t0
    name = cluster.name
    cluster.shutdown()
    wait_stopped(gw, name)
    return seconds


def section_start(servers: dict[str, Server], tmp: Path, n: int) -> dict:
    catcher = HeartbeatCatcher()
    gws = {k: gateway(s) for k, s in servers.items()}
    raw: dict[str, list[float]] = {"ours": [], "reference": [], "floor": []}
    for i in range(n + 1):  # round 0 warms up every path (imports, page cache) and is not counted
        for kind in rotated(list(raw), i):
            seconds = floor_once(catcher, tmp, i) if kind == "floor" else start_once(gws[kind])
            if i > 0:
                raw[kind].append(seconds)
        log(f"start round {i}/{n}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in raw.items() if v))
    catcher.server.shutdown()
    for gw in gws.values():
        gw.close()
    return {"raw_seconds": raw, "stats": {k: summary(v) for k, v in raw.items()}}


# ---- 1b. the warm pool --------------------------------------------------------------------------------------------


def pool_ready(server: Server) -> float:
    """Ready warm schedulers, from /api/metrics (dask_gateway_pool_schedulers{key=...,state="ready"})."""
    text = requests.get(f"{server.url}/api/metrics", timeout=30).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("dask_gateway_pool_schedulers{") and 'state="ready"' in line)


def first_result_once(gw: Gateway) -> tuple[float, float]:
    """Seconds to RUNNING (`new_cluster()`) and to the first result (then `get_client()`, `scale(1)`,
    `submit(inc, 1).result()`: a result needs a worker, which starts only once the cluster is asked for one)."""
    t0 = time.perf_counter()
    cluster = gw.new_cluster()
    running = time.perf_counter() - t0
    client = cluster.get_client()
    cluster.scale(1)
    assert client.submit(lambda x: x + 1, 1).result(timeout=120) == 2
    first = time.perf_counter() - t0
    client.close()
    name = cluster.name
    cluster.shutdown()
    wait_stopped(gw, name)
    # dask_gateway 2026.3.0's finalizers can deadlock the client's event loop when the collector runs on that loop's
    # thread (a run hung here): collect on the main thread instead (main() turns automatic collection off).
    gc.collect()
    return running, first


def section_pool(servers: dict[str, Server], tmp: Path, n: int) -> dict:
    """A pool hit (this gateway with its default pool, refilled before each claim) beside this gateway started with
    pool.size 0 and the reference, which start every cluster cold."""
    pooled = start_ours(tmp / "pooled")
    kinds = {"pool": pooled, "ours cold": servers["ours"], "reference": servers["reference"]}
    gws = {k: gateway(s) for k, s in kinds.items()}
    raw: dict[str, dict[str, list[float]]] = {k: {"running": [], "first_result": []} for k in kinds}
    try:
        for i in range(n + 1):  # round 0 warms up and is not counted
            for kind in rotated(list(kinds), i):
                if kind == "pool":
                    deadline = time.time() + 60
                    while pool_ready(pooled) < 1 and time.time() < deadline:
                        time.sleep(0.05)
                running, first = first_result_once(gws[kind])
                if i > 0:
                    raw[kind]["running"].append(running)
                    raw[kind]["first_result"].append(first)
            if i > 0:
                log(f"pool round {i}/{n}: " + ", ".join(f"{k} {v['running'][-1]:.3f}/{v['first_result'][-1]:.2f} s" for k, v in raw.items()))
    finally:
        for gw in gws.values():
            gw.close()
        pooled.stop()
    return {"raw_seconds": raw, "stats": {k: {m: summary(v) for m, v in r.items()} for k, r in raw.items()}}


# ---- 3. relay ---------------------------------------------------------------------------------------------------


def scheduler_address(server: Server, name: str) -> str:
    """The scheduler's own TLS address, from its log in the cluster's work directory (same for both servers)."""
    for line in server.scheduler_log(name).read_text().splitlines():
        if "Scheduler at:" in line:
            return line.split("Scheduler at:")[1].strip()
    raise RuntimeError(f"no scheduler address in {server.scheduler_log(name)}")


def section_relay(servers: dict[str, Server], rounds: int, total_mib: int, chunk_mib: int, calls: int) -> dict:
    total, chunk = total_mib * MIB, chunk_mib * MIB
    payload = os.urandom(chunk)
    gws = {k: gateway(s) for k, s in servers.items()}
    clusters = {k: gws[k].new_cluster() for k in LABELS}
    clients: dict[str, Client] = {}
    pids: dict[str, int | None] = {"client": os.getpid()}
    for k in LABELS:
        clients[f"{k} relayed"] = clusters[k].get_client()
        clients[f"{k} direct"] = Client(scheduler_address(servers[k], clusters[k].name), security=clusters[k].security)
        for j, pid in enumerate(servers[k].pids()):
            pids[f"{k} {'gateway' if j == 0 else 'proxy'}"] = pid
        pids[f"{k} scheduler"] = scheduler_pid(servers[k].clusters_dir.parent, clusters[k].name)
    paths = list(clients)
    raw: dict[str, dict[str, list[float]]] = {p: {"download_mibps": [], "upload_mibps": [], "rtt_ms": []} for p in paths}
    meters = {p: CpuMeter(pids) for p in paths}
    try:
        for client in clients.values():  # warm up every path
            download(client, 2 * chunk, chunk)
            upload(client, 2 * chunk, payload)
            round_trips(client, 20)
        for i in range(rounds):
            order = rotated(paths, i)
            for p in order:
                with meters[p]:
                    raw[p]["download_mibps"].append(total_mib / download(clients[p], total, chunk))
                with meters[p]:
                    raw[p]["upload_mibps"].append(total_mib / upload(clients[p], total, payload))
            for p in order:
                raw[p]["rtt_ms"] += round_trips(clients[p], calls // rounds)
            log(f"relay round {i + 1}/{rounds}: " + ", ".join(f"{p} {raw[p]['download_mibps'][-1]:.0f}/{raw[p]['upload_mibps'][-1]:.0f} MiB/s" for p in paths))
    finally:
        for client in clients.values():
            client.close()
        for k in LABELS:
            clusters[k].shutdown()
            gws[k].close()

    def paired(a: str, b: str, kind: str) -> float:
        return statistics.median(x / y for x, y in zip(raw[a][kind], raw[b][kind]))

    kinds = ("download_mibps", "upload_mibps")
    return {
        "raw": raw,
        "median_mibps": {p: {k: statistics.median(raw[p][k]) for k in kinds} for p in paths},
        "rtt_ms": {p: {"p50": pct(raw[p]["rtt_ms"], 50), "p99": pct(raw[p]["rtt_ms"], 99)} for p in paths},
        "relayed_over_direct": {k: {kind: paired(f"{k} relayed", f"{k} direct", kind) for kind in kinds} for k in LABELS},
        "ours_over_reference_relayed": {kind: paired("ours relayed", "reference relayed", kind) for kind in kinds},
        "cpu_percent": {p: meters[p].percent() for p in paths},
        "args": {"rounds": rounds, "total_mib": total_mib, "chunk_mib": chunk_mib, "calls": calls},
    }


# ---- 4. scale ---------------------------------------------------------------------------------------------------


def scale_once(gw: Gateway, workers: int) -> float:
    cluster = gw.new_cluster()
    client = cluster.get_client()
    try:
        t0 = time.perf_counter()
        cluster.scale(workers)
        client.wait_for_workers(workers, timeout=180)
        return time.perf_counter() - t0
    finally:
        client.close()
        name = cluster.name
        cluster.shutdown()
        wait_stopped(gw, name, timeout=120)


def section_scale(servers: dict[str, Server], rounds: int, workers: int) -> dict:
    gws = {k: gateway(s) for k, s in servers.items()}
    raw: dict[str, list[float]] = {k: [] for k in LABELS}
    for i in range(rounds):
        for k in rotated(list(LABELS), i):
            raw[k].append(scale_once(gws[k], workers))
        log(f"scale round {i + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in raw.items()))
    for gw in gws.values():
        gw.close()
    return {"workers": workers, "raw_seconds": raw, "stats": {k: summary(v) for k, v in raw.items()}}


# ---- 2 and 5. API under load, memory ------------------------------------------------------------------------------


def section_api(tmp: Path, clusters: int, seconds: float, concurrencies: list[int]) -> dict:
    fakes = {k: fake_scheduler(tmp, k) for k in LABELS}
    servers: dict[str, Server] = {}
    beats = None
    try:
        servers["ours"] = start_ours(tmp / "api-ours", dask_command=fakes["ours"][0])
        servers["reference"] = start_reference(tmp / "api-reference", dask_command=fakes["reference"][0])
        time.sleep(3)
        memory = {"idle_mib": {k: s.rss_mib() for k, s in servers.items()}}
        gws = {k: gateway(s) for k, s in servers.items()}
        create_seconds = {}
        for k in LABELS:  # one server at a time: creation makes a key pair per cluster on each server
            t0 = time.perf_counter()
            for _ in range(clusters):
                gws[k].submit()
            create_seconds[k] = time.perf_counter() - t0
            log(f"api: {k} accepted {clusters} cluster requests in {create_seconds[k]:.1f} s")
        wait_for(lambda: all(len(spool_targets(fakes[k][1])) >= clusters for k in LABELS), 120, 0.2, "the fake schedulers")
        targets = tmp / "api-targets.json"
        targets.write_text(json.dumps([t for k in LABELS for t in spool_targets(fakes[k][1])]))
        beats = loadgen("heartbeats", targets, HEARTBEAT_PERIOD, 3600, 0, 1)
        wait_for(lambda: all(sum(r.status.name == "RUNNING" for r in gws[k].list_clusters()) >= clusters for k in LABELS),
                 120, 0.2, "every cluster to be RUNNING")
        time.sleep(2)
        memory["clusters_mib"] = {k: s.rss_mib() for k, s in servers.items()}
        one = {k: gws[k].list_clusters()[0].name for k in LABELS}
        endpoints = {"list": lambda k: f"{servers[k].url}/api/v1/clusters/", "one": lambda k: f"{servers[k].url}/api/v1/clusters/{one[k]}"}
        results: dict[str, dict[str, dict[str, dict]]] = {e: {str(c): {} for c in concurrencies} for e in endpoints}
        i = 0
        for endpoint, url in endpoints.items():
            for c in concurrencies:
                for k in rotated(list(LABELS), i):
                    cpu0, t0 = servers[k].cpu_seconds(), time.perf_counter()
                    res = loadgen_result(loadgen("get", url(k), c, seconds, USER, PASSWORD))
                    res["server_cpu_percent"] = 100 * (servers[k].cpu_seconds() - cpu0) / (time.perf_counter() - t0)
                    results[endpoint][str(c)][k] = res
                i += 1
                log(f"api {endpoint} x{c}: " + ", ".join(f"{k} {r['per_second']:.0f}/s p99 {r['p99_ms']:.1f} ms"
                                                       for k, r in results[endpoint][str(c)].items()))
        memory["clusters_after_load_mib"] = {k: s.rss_mib() for k, s in servers.items()}
        list_bytes = {k: len(requests.get(endpoints["list"](k), auth=(USER, PASSWORD), timeout=30).content) for k in LABELS}
        for gw in gws.values():
            gw.close()
    finally:
        if beats:
            beats.kill()
            beats.wait()
        for s in servers.values():
            s.stop()
    return {"clusters": clusters, "seconds_per_run": seconds, "create_seconds": create_seconds, "results": results,
            "list_response_bytes": list_bytes, "memory": memory}


# ---- 6. scale-out simulation (this gateway alone) ----------------------------------------------------------------


def section_scaleout(tmp: Path, counts: list[int], warmup: float, seconds: float) -> dict:
    """Cluster records as a restarted gateway finds them in its state directory, all RUNNING, each with its own
    name and token, adopted at start; one shared `sleep` process stands for every scheduler's pid."""
    script, spool = fake_scheduler(tmp, "scaleout")
    template_server = start_ours(tmp / "scaleout-template", dask_command=script)
    try:
        with gateway(template_server) as gw:
            name = gw.submit()
        records = tmp / "scaleout-template" / "state" / "records"
        template = json.loads((records / f"{name}.json").read_text())
    finally:
        template_server.stop()
    sleeper = subprocess.Popen(["sleep", "100000"])
    out = {}
    try:
        for n in counts:
            d = tmp / f"scaleout-{n}"
            rec_dir = d / "state" / "records"
            rec_dir.mkdir(parents=True)
            targets = []
            now = int(time.time() * 1000)
            for _ in range(n):
                cname, token = secrets.token_hex(16), secrets.token_hex(16)
                rec = {**template, "name": cname, "token": token, "status": 3, "target": 3, "startTime": now,
                       "schedulerAddress": "tls://127.0.0.1:9", "dashboardAddress": "", "apiAddress": "http://127.0.0.1:9",
                       "lastHeartbeat": None, "state": {"pid": sleeper.pid, "workdir": str(d / "state" / "clusters" / cname)},
                       "workers": []}
                (rec_dir / f"{cname}.json").write_text(json.dumps(rec))
                targets.append({"name": cname, "token": token})
            t0 = time.perf_counter()
            server = start_ours(d, dask_command=script, **{"clusters.stop_on_shutdown": "false", "log.level": "warn"})
            ready_seconds = time.perf_counter() - t0
            try:
                for t in targets:
                    t["api_url"] = f"{server.url}/api"
                (d / "targets.json").write_text(json.dumps(targets))
                rss_start = server.rss_mib()
                beats = loadgen("heartbeats", d / "targets.json", HEARTBEAT_PERIOD, warmup + seconds, warmup, HEARTBEAT_PERIOD)
                time.sleep(warmup)
                cpu0, gen_cpu0, t0 = server.cpu_seconds(), cpu_seconds(beats.pid), time.perf_counter()
                rss = []
                while time.perf_counter() - t0 < seconds - 1:
                    rss.append(server.rss_mib())
                    time.sleep(1)
                cpu_percent = 100 * (server.cpu_seconds() - cpu0) / (time.perf_counter() - t0)
                gen_cpu_percent = 100 * (cpu_seconds(beats.pid) - gen_cpu0) / (time.perf_counter() - t0)
                res = loadgen_result(beats)
                running = metric(server, 'dask_gateway_clusters{status="RUNNING"}')
            finally:
                server.proc.kill()  # its records are throw-away; a kill skips saving 10,000 of them on the way out
                server.proc.wait()
            out[str(n)] = {"heartbeats": res, "gateway_cpu_percent": cpu_percent, "loadgen_cpu_percent": gen_cpu_percent,
                           "rss_mib_at_start": rss_start, "rss_mib_max": max(rss), "rss_mib_median": statistics.median(rss),
                           "running_after": running, "seconds_to_healthy": ready_seconds}
            log(f"scaleout {n}: cpu {cpu_percent:.1f} %, rss {max(rss):.0f} MiB, heartbeat p99 {res['p99_ms']:.1f} ms, "
                f"{res['errors']} errors, {running:.0f} running")
            shutil.rmtree(d, ignore_errors=True)
    finally:
        sleeper.kill()
        sleeper.wait()
    return {"warmup_seconds": warmup, "seconds": seconds, "period": HEARTBEAT_PERIOD, "results": out}


def metric(server: Server, name: str) -> float:
    for line in requests.get(f"{server.url}/api/metrics", timeout=30).text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return float("nan")


# ---- main --------------------------------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    from importlib.metadata import version

    pkg = json.loads((ROOT / "package.json").read_text())
    out = {"this gateway": pkg.get("version", "?"), "node": subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip(),
           "python": platform.python_version(),
           "this gateway commit": subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True,
                                                 text=True).stdout.strip(),
           "this gateway src/ changed since the commit": bool(subprocess.run(["git", "status", "--porcelain", "src"], cwd=ROOT,
                                                                            capture_output=True, text=True).stdout.strip())}
    for dist in ("dask-gateway-server", "dask-gateway", "dask", "distributed"):
        out[dist] = version(dist)
    return out


def relay_path(server) -> str:
    """The relay path this gateway logged at start (`splice` or `js`, see the setting `relay`)."""
    for line in server.log_file.read_text().splitlines():
        if line.startswith("{") and '"relay":' in line:
            return json.loads(line)["relay"]
    return "unknown"


def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "unknown")
    mem_kib = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")))
    return {"cores": os.cpu_count(), "cpu_model": model, "memory_gib": round(mem_kib / 1024 / 1024, 1),
            "kernel": platform.release(), "platform": platform.platform(), "load_average_before": os.getloadavg()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few iterations, to check the program (results not for keeping)")
    parser.add_argument("--only", default="start,pool,api,relay,scale,scaleout", help="comma-separated sections to run")
    parser.add_argument("--out", default=str(BENCH / "results"), help="directory for gateway.{json,md,png}")
    parser.add_argument("--relay-rounds", type=int, default=10, help="rounds of section 3 (each takes about 2 s; more rounds, steadier ratios)")
    args = parser.parse_args()
    gc.disable()  # collected on the main thread between clusters (first_result_once)
    only = set(args.only.split(","))
    q = args.quick
    t_begin = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    data: dict = {"machine": machine(), "versions": versions(), "quick": q, "sections": sorted(only),
                  "heartbeat_period": HEARTBEAT_PERIOD, "unmeasured": {}}
    proxy = reference_proxy_binary()
    data["reference_proxy_binary"] = str(proxy) if proxy else None
    try:
        if only & {"start", "pool", "relay", "scale"}:
            # Cold against cold: this gateway's warm pool is measured on its own (section 1b).
            servers: dict[str, Server] = {}
            try:
                # One at a time inside the try: a reference that cannot start must not leave this gateway running.
                servers["ours"] = start_ours(tmp / "ours", **{"pool.size": "0"})
                servers["reference"] = start_reference(tmp / "reference")
                data["relay_path"] = relay_path(servers["ours"])
                if "start" in only:
                    log("section 1: cluster start")
                    data["start"] = section_start(servers, tmp, 3 if q else 20)
                if "pool" in only:
                    log("section 1b: the warm pool")
                    data["pool"] = section_pool(servers, tmp, 3 if q else 20)
                if "relay" in only:
                    if proxy is None:
                        data["unmeasured"]["relay (reference)"] = "the dask-gateway-server wheel ships no dask-gateway-proxy binary"
                    log("section 3: relay")
                    data["relay"] = section_relay(servers, 1 if q else args.relay_rounds, 16 if q else 96, 8, 60 if q else 300)
                if "scale" in only:
                    log("section 4: scale(8)")
                    data["scale"] = section_scale(servers, 1 if q else 2, 8)
            finally:
                for s in servers.values():
                    s.stop()
        if "api" in only:
            log("sections 2 and 5: API under load, memory")
            data["api"] = section_api(tmp, 20 if q else 100, 1.5 if q else 4, [1, 16, 64])
        if "scaleout" in only:
            log("section 6: scale-out simulation")
            data["scaleout"] = section_scaleout(tmp, [200, 1000] if q else [1000, 10000], 5 if q else HEARTBEAT_PERIOD,
                                                8 if q else 2 * HEARTBEAT_PERIOD)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    data["machine"]["load_average_after"] = os.getloadavg()
    data["machine"]["load_average_1min_peak_seen"] = max(PEAK_LOAD[0], os.getloadavg()[0])
    data["total_seconds"] = time.perf_counter() - t_begin
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gateway.json").write_text(json.dumps(data, indent=2) + "\n")
    markdown = report.markdown(data)
    (out / "gateway.md").write_text(markdown)
    report.chart(data, out / "gateway.png")
    print(markdown)
    log(f"done in {data['total_seconds']:.0f} s")


if __name__ == "__main__":
    main()
