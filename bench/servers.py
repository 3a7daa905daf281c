"""The two servers gateway_bench.py compares, started the way a user would start each one, with their process ids."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "test" / "python"))
from conftest import free_port, start_gateway, wait_for  # noqa: E402,F401

VENV_BIN = ROOT / ".venv" / "bin"
DASK = str(VENV_BIN / "dask")
USER, PASSWORD = "bench", "bench-pw"
TICKS = os.sysconf("SC_CLK_TCK")
# Both servers keep their defaults where they agree: 15 s heartbeats, 15 s checks, 300 s session cookies.
HEARTBEAT_PERIOD = 15


@dataclass
class Server:
    label: str
    url: str
    proc: subprocess.Popen
    clusters_dir: Path
    log_file: Path

    def pids(self) -> list[int]:
        """The server's own processes: the gateway and, for the reference, its proxy (a child process)."""
        return [self.proc.pid, *children(self.proc.pid, "dask-gateway-proxy")]

    def rss_mib(self) -> float:
        return sum(rss_mib(p) for p in self.pids())

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(p) for p in self.pids())

    def scheduler_log(self, name: str) -> Path:
        return self.clusters_dir / name / "logs" / "scheduler.log"

    def stop(self, timeout: float = 60) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of a process, all threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def children(parent: int, name_part: str) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and name_part.encode() in cmd:
            out.append(int(entry.name))
    return out


def start_ours(tmp: Path, dask_command: str | None = None, **settings: str) -> Server:
    """This gateway, as the tests start it (local backend, shared password), with the production defaults for timing.
    Its cluster processes run at its own CPU priority, as the reference's do (local.niceness 0, see bench/README.md)."""
    tmp.mkdir(parents=True, exist_ok=True)
    extra = {"local.dask_command": dask_command} if dask_command else {}
    gw = start_gateway(tmp, **{
        "auth.password": PASSWORD, "log.level": "info", "local.niceness": "0",
        "clusters.heartbeat_period": str(HEARTBEAT_PERIOD), "clusters.check_period": str(HEARTBEAT_PERIOD),
        "limits.create_rate": "100000", **extra, **settings,
    })
    return Server("ours", gw.url, gw.proc, gw.state_dir / "clusters", gw.log_file)


REFERENCE_CONFIG = """\
c.DaskGateway.address = "127.0.0.1:{api_port}"
c.Proxy.address = "127.0.0.1:{port}"
c.DaskGateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"
c.DaskGateway.authenticator_class = "dask_gateway_server.auth.SimpleAuthenticator"
c.SimpleAuthenticator.password = {password!r}
c.UnsafeLocalBackend.clusters_directory = {clusters_dir!r}
c.ClusterConfig.scheduler_cmd = [{scheduler_cmd!r}, "scheduler"]
c.ClusterConfig.worker_cmd = [{dask!r}, "worker"]
"""


def start_reference(tmp: Path, dask_command: str | None = None) -> Server:
    """dask-gateway-server with UnsafeLocalBackend (LocalBackend needs root to switch users), its own Go proxy
    on one public port for HTTP and scheduler TLS, and SimpleAuthenticator with a password."""
    tmp.mkdir(parents=True, exist_ok=True)
    port, api_port = free_port(), free_port()
    clusters_dir = tmp / "clusters"
    config = tmp / "dask_gateway_config.py"
    config.write_text(REFERENCE_CONFIG.format(api_port=api_port, port=port, password=PASSWORD, clusters_dir=str(clusters_dir),
                                              scheduler_cmd=dask_command or DASK, dask=DASK))
    log_file = tmp / "reference.log"
    proc = subprocess.Popen([str(VENV_BIN / "dask-gateway-server"), "-f", str(config)], cwd=tmp,
                            stdout=open(log_file, "w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"dask-gateway-server exited: {log_file.read_text()}")
        try:
            return requests.get(f"{url}/api/health", timeout=1).ok
        except requests.RequestException:
            return False

    try:
        wait_for(healthy, timeout=30, interval=0.1, what="dask-gateway-server to become healthy")
    except AssertionError:
        proc.kill()
        raise
    return Server("reference", url, proc, clusters_dir, log_file)


def reference_proxy_binary() -> Path | None:
    """The Go proxy the reference's wheel ships, if it does."""
    import dask_gateway_server.proxy as proxy_pkg

    path = Path(proxy_pkg.__file__).parent / "dask-gateway-proxy"
    return path if path.exists() and os.access(path, os.X_OK) else None
