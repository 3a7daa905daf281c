"""Sustained load on one gateway (local backend), then a leak check.

Simulated users each loop create, scale(1), compute, shutdown with the real dask_gateway client, real
`dask scheduler` and `dask worker` processes, while simulated clusters (a stand-in scheduler created through the
API like any other cluster) only heartbeat at the default period (bench/loadgen.mjs sends the heartbeats).
Afterwards: every cluster stopped, no process left in any cluster directory, the gateway's open files and memory
compared with their starting level. `make soak` runs the full version; test/python/test_soak.py a short one.

    .venv/bin/python test/soak/soak.py [--users 50] [--minutes 10] [--simulated 1000] [--out FILE]
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "test" / "python"))
from conftest import start_gateway, stop_gateway, warm_schedulers  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from servers import rss_mib  # noqa: E402

PASSWORD = "soak-password-7d1e"
HEARTBEAT_PERIOD = 15  # the gateway's default
SIMULATED_ENV = "DGW_SOAK_SIMULATED"
USER_NICENESS = 5  # below the gateway (0), above the clusters (local.niceness 10)

# `local.dask_command` for the soak: clusters created with DGW_SOAK_SIMULATED in their environment option get a
# stand-in scheduler that records its name, token and API URL for the heartbeat generator, then sleeps until the
# gateway stops it; every other cluster runs the real dask command.
DASK_WRAPPER = """#!/bin/sh
if [ -n "${env}" ]; then
  token="$DASK_GATEWAY_API_TOKEN"
  case "$token" in */*) token=$(cat "$token");; esac
  printf '%s %s %s\\n' "$DASK_GATEWAY_CLUSTER_NAME" "$token" "$DASK_GATEWAY_API_URL" >> {spool}
  exec sleep 100000
fi
exec {dask} "$@"
"""


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def processes_under(directory: Path) -> dict[int, str]:
    """Pids whose working directory is inside `directory`, with the name of the subdirectory (the cluster) they are in."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cwd = os.readlink(f"/proc/{entry}/cwd").removesuffix(" (deleted)")
            except OSError:
                continue
            if cwd.startswith(str(directory) + "/"):
                found[int(entry)] = Path(cwd).relative_to(directory).parts[0]
    return found


def user_loop(url: str, user: str, seconds: float) -> dict:
    """create, scale(1), compute, shutdown for `seconds`; every exception is a failure. Runs in its own process:
    one process per user, as users are, and no GIL shared between fifty clients."""
    from dask_gateway import BasicAuth, Gateway

    # dask_gateway 2026.3.0's Gateway.__del__ closes the client synchronously on its own event loop; if the cycle
    # collector ran on that loop's thread, the loop would wait for itself forever. So it runs here, between loops.
    gc.disable()
    deadline = time.time() + seconds
    result: dict = {"loops": 0, "seconds": [], "failures": []}
    with Gateway(url, auth=BasicAuth(user, PASSWORD)) as gateway:
        while time.time() < deadline:
            started = time.time()
            try:
                cluster = gateway.new_cluster()
                try:
                    cluster.scale(1)
                    with cluster.get_client(set_as_default=False) as client:
                        client.wait_for_workers(1, timeout=300)
                        assert client.submit(sum, [1, 2, 3], pure=False).result(timeout=120) == 6
                finally:
                    cluster.shutdown()
                result["loops"] += 1
                result["seconds"].append(time.time() - started)
            except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
                result["failures"].append(f"{user}: {exc!r}"[:300])
            gc.collect()
    return result


def start_user(url: str, user: str, seconds: float) -> subprocess.Popen:
    """A user's process, at a lower CPU priority than the gateway and the heartbeat generator: users run on their
    own machines, and here they must not starve what is measured. All users share this script's session: with Linux
    scheduler autogroups the CPU is shared between sessions first, and fifty sessions of users would take it from
    their own clusters (a run so made had workers wait over 300 s to start)."""
    return subprocess.Popen([sys.executable, __file__, "--user", user, "--url", url, "--seconds", str(seconds)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, preexec_fn=lambda: os.nice(USER_NICENESS))


def create_simulated(url: str, count: int) -> list[str]:
    def create(i: int) -> str:
        r = requests.post(f"{url}/api/v1/clusters/", json={"cluster_options": {"environment": {SIMULATED_ENV: "1"}}},
                          auth=(f"sim-{i % 20}", PASSWORD), timeout=120)
        r.raise_for_status()
        return r.json()["name"]

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(create, range(count)))


def stop_all(url: str, names: list[str]) -> None:
    def stop(name: str) -> None:
        requests.delete(f"{url}/api/v1/admin/clusters/{name}", auth=("soak-admin", PASSWORD), timeout=60).raise_for_status()

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(stop, names))


def active_count(url: str) -> int:
    """Clusters not yet STOPPED or FAILED (the default listing leaves out those already stopping)."""
    return len(requests.get(f"{url}/api/v1/admin/clusters", params={"status": "PENDING,RUNNING,STOPPING"},
                            auth=("soak-admin", PASSWORD), timeout=60).json())


def gateway_view(url: str) -> dict:
    """The gateway's own figures from /api/metrics: how it answered heartbeats, how it closed connections, and how
    late its event loop ran. They tell the gateway's share apart from the load generator's and the clients'."""
    text = requests.get(f"{url}/api/metrics", timeout=60).text
    view: dict = {"connections": {}, "heartbeat_buckets": {}}
    for line in text.splitlines():
        if line.startswith("dask_gateway_connections_total{"):
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            view["connections"][outcome] = int(float(line.rsplit(" ", 1)[1]))
        elif line.startswith("dask_gateway_http_request_duration_seconds_bucket{") and "heartbeat" in line:
            le = line.split('le="', 1)[1].split('"', 1)[0]
            view["heartbeat_buckets"][le] = int(float(line.rsplit(" ", 1)[1]))
        elif line.startswith("dask_gateway_pool_claims_total{"):
            result = line.split('result="', 1)[1].split('"', 1)[0]
            view.setdefault("pool_claims", {})[result] = int(float(line.rsplit(" ", 1)[1]))
        elif line.startswith(("dask_gateway_nodejs_eventloop_lag_max_seconds ", "dask_gateway_nodejs_eventloop_lag_p99_seconds ")):
            view[line.split()[0].replace("dask_gateway_nodejs_", "")] = float(line.split()[1])
    return view


def run(users: int, seconds: float, simulated: int, tmp: Path, log=print) -> dict:
    """Runs the soak and answers its figures; `failures` and `leaks` must both be empty for a pass."""
    spool = tmp / "simulated.txt"
    spool.touch()
    wrapper = tmp / "dask-wrapper"
    wrapper.write_text(DASK_WRAPPER.format(env=SIMULATED_ENV, spool=spool, dask=ROOT / ".venv" / "bin" / "dask"))
    wrapper.chmod(0o755)
    # The gateway and the heartbeat generator each in a session of their own, as services run.
    gw = start_gateway(tmp, own_session=True, **{
        "auth.password": PASSWORD, "auth.admin_users": "soak-admin", "local.dask_command": str(wrapper),
        "clusters.heartbeat_period": str(HEARTBEAT_PERIOD), "limits.create_rate": "100000", "log.level": "info",
    })
    pid = gw.proc.pid
    start = {"rss_mib": rss_mib(pid), "open_files": open_files(pid)}
    peak_rss = start["rss_mib"]
    report: dict = {"users": users, "seconds": seconds, "simulated": simulated, "start": start}
    procs: list[subprocess.Popen] = []
    try:
        t0 = time.time()
        sim_names = create_simulated(gw.url, simulated)
        report["simulated_create_seconds"] = round(time.time() - t0, 1)
        log(f"soak: {simulated} simulated clusters created in {report['simulated_create_seconds']} s")
        deadline = time.time() + 120
        while len(spool.read_text().splitlines()) < simulated:
            if time.time() > deadline:
                raise RuntimeError(f"only {len(spool.read_text().splitlines())} of {simulated} simulated schedulers started")
            time.sleep(0.2)
        targets = tmp / "targets.json"
        targets.write_text(json.dumps([dict(zip(("name", "token", "api_url"), line.split())) for line in spool.read_text().splitlines()]))
        beats = subprocess.Popen(["node", str(ROOT / "bench" / "loadgen.mjs"), "heartbeats", str(targets), str(HEARTBEAT_PERIOD),
                                  str(seconds), "0", str(HEARTBEAT_PERIOD)], stdout=subprocess.PIPE, text=True,
                                 start_new_session=True)
        for i in range(users):
            procs.append(start_user(gw.url, f"soak-{i}", seconds))
            time.sleep(0.2)  # a ramp, not a thundering herd
        while beats.poll() is None:
            peak_rss = max(peak_rss, rss_mib(pid))
            time.sleep(1)
        heartbeats = json.loads(beats.communicate()[0])
        report["gateway_view"] = gateway_view(gw.url)
        # Stopped as soon as their heartbeats end (the users may still be finishing a loop), so that none times out.
        stop_all(gw.url, sim_names)
        results = []
        for proc in procs:
            out, _ = proc.communicate()
            results.append(json.loads(out) if proc.returncode == 0 else {"loops": 0, "seconds": [], "failures": [f"user process exited {proc.returncode}"]})
        loop_seconds = sorted(t for r in results for t in r["seconds"])
        report["loops"] = sum(r["loops"] for r in results)
        report["loop_seconds_median"] = round(loop_seconds[len(loop_seconds) // 2], 1) if loop_seconds else None
        report["heartbeats"] = {k: heartbeats[k] for k in ("requests", "errors", "p50_ms", "p99_ms", "max_ms", "statuses")}
        failures = [f for r in results for f in r["failures"]]
        if heartbeats["errors"] or set(heartbeats["statuses"]) - {"200"}:
            failures.append(f"heartbeats: {heartbeats['errors']} errors, statuses {heartbeats['statuses']}")
        report["failures"] = failures
        log(f"soak: {report['loops']} user loops, {len(failures)} failures, {heartbeats['requests']} heartbeats")

        deadline = time.time() + 120
        while active_count(gw.url) and time.time() < deadline:
            time.sleep(1)
        time.sleep(3)  # lets closed connections and timers settle before measuring
        end = {"rss_mib": rss_mib(pid), "open_files": open_files(pid)}
        report["end"] = end
        report["peak_rss_mib"] = round(peak_rss, 1)
        leaks = []
        if active_count(gw.url):
            leaks.append(f"{active_count(gw.url)} clusters still active")
        # The warm pool's schedulers are the gateway's own, kept ready on purpose: everything else must be gone.
        # (Listed before the warm ones are read: a warm scheduler's record exists before its directory and processes.)
        clusters_dir = gw.state_dir / "clusters"
        running, dirs = processes_under(clusters_dir), list(clusters_dir.glob("*"))
        warm = warm_schedulers(gw.state_dir)
        left_procs = [pid for pid, cluster in running.items() if cluster not in warm]
        if left_procs:
            leaks.append(f"processes left in cluster directories: {left_procs}")
        left = [d for d in dirs if d.name not in warm]
        if left:
            leaks.append(f"{len(left)} cluster directories left")
        report["warm_schedulers_at_end"] = len(warm)
        if end["open_files"] > start["open_files"] + 5:
            leaks.append(f"open files grew from {start['open_files']} to {end['open_files']}")
        report["leaks"] = leaks
        return report
    finally:
        for proc in procs:
            proc.kill()  # only those still running after an error: the others have exited
        stop_gateway(gw)


def markdown(report: dict) -> str:
    """The report as the table committed in bench/results/soak.md."""
    beats = report["heartbeats"]
    rows = [
        ("users looping create, scale(1), compute, shutdown", report["users"]),
        ("duration, s", report["seconds"]),
        ("completed user loops", report["loops"]),
        ("median loop, s", report["loop_seconds_median"]),
        ("simulated clusters (heartbeat only, every 15 s)", report["simulated"]),
        ("creating the simulated clusters, s", report["simulated_create_seconds"]),
        ("heartbeats answered / failed (client side)", f"{beats['requests']} / {beats['errors']}"),
        ("heartbeat p50 / p99 / max, ms", f"{beats['p50_ms']:.1f} / {beats['p99_ms']:.1f} / {beats['max_ms']:.1f}"),
        ("failed user loops or requests", len(report["failures"])),
        ("gateway: heartbeats answered within 10 ms / 100 ms / total",
         " / ".join(str(report["gateway_view"]["heartbeat_buckets"].get(le, 0)) for le in ("0.01", "0.1", "+Inf"))),
        ("gateway: event loop lag p99 / max, ms", f"{1000 * report['gateway_view'].get('eventloop_lag_p99_seconds', 0):.0f} / "
                                                  f"{1000 * report['gateway_view'].get('eventloop_lag_max_seconds', 0):.0f}"),
        ("gateway: connections by outcome", ", ".join(f"{k} {v}" for k, v in sorted(report["gateway_view"]["connections"].items()))),
        ("gateway: creates by warm-pool result", ", ".join(f"{k} {v}" for k, v in sorted(report["gateway_view"].get("pool_claims", {}).items())) or "pool off"),
        ("gateway memory at start / peak / end, MiB",
         f"{report['start']['rss_mib']:.0f} / {report['peak_rss_mib']:.0f} / {report['end']['rss_mib']:.0f}"),
        ("gateway open files at start / end", f"{report['start']['open_files']} / {report['end']['open_files']}"),
        ("leaks (processes, directories, clusters, files)", "; ".join(report["leaks"]) or "none"),
    ]
    lines = ["| figure | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
    if report["failures"]:
        lines += ["", "Failures (first 10):", "", *(f"- `{f}`" for f in report["failures"][:10])]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--simulated", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=ROOT / "test-artifacts" / "soak.json")
    parser.add_argument("--user", help=argparse.SUPPRESS)  # internal: one user's loop, in its own process
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.user:
        print(json.dumps(user_loop(args.url, args.user, args.seconds)))
        return 0
    with tempfile.TemporaryDirectory(prefix="dgw-soak-") as tmp:
        report = run(args.users, args.minutes * 60, args.simulated, Path(tmp))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    return 1 if report["failures"] or report["leaks"] else 0


if __name__ == "__main__":
    sys.exit(main())
