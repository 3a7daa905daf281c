"""Fixtures that run the real gateway (node dist/cli.js) with the local backend, as a user would."""
from __future__ import annotations

import gc
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "dist" / "cli.js"
ARTIFACTS = ROOT / "test-artifacts"

USERS = {"alice": ("alice-pw", False), "bob": ("bob-pw", False), "root": ("root-pw", True)}

# Against a deployed gateway (test/swarm runs this suite against `make up`): its URL and shared password. Only the
# modules below run there, without their tests marked local_only; the others start gateways of their own or look
# at the gateway's local processes and files.
REMOTE_URL = os.environ.get("DGW_TEST_GATEWAY_URL")
REMOTE_MODULES = {"test_api_conformance", "test_lifecycle", "test_options", "test_proxy", "test_protocol_responses"}
if REMOTE_URL:
    USERS = {name: (os.environ["DGW_TEST_GATEWAY_PASSWORD"], admin) for name, (_pw, admin) in USERS.items()}


def pytest_collection_modifyitems(config, items):
    if not REMOTE_URL:
        return
    skip = pytest.mark.skip(reason=f"needs a gateway of its own or its local processes (running against {REMOTE_URL})")
    for item in items:
        if item.module.__name__ not in REMOTE_MODULES or item.get_closest_marker("local_only"):
            item.add_marker(skip)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hash_password(password: str) -> str:
    out = subprocess.run(["node", str(CLI), "hash-password"], input=password + "\n", capture_output=True, text=True, check=True)
    return out.stdout.strip()


@dataclass
class RunningGateway:
    url: str
    port: int
    state_dir: Path
    log_file: Path
    proc: subprocess.Popen
    settings: dict = field(default_factory=dict)

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace")

    def worker_pids(self, cluster_name: str) -> list[int]:
        """Live `dask worker` processes whose working directory is this cluster's directory."""
        workdir = str(self.state_dir / "clusters" / cluster_name)
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmd = (entry / "cmdline").read_bytes().split(b"\0")
                cwd = os.readlink(entry / "cwd")
            except OSError:
                continue
            if cwd == workdir and b"worker" in cmd and b"dask" in b" ".join(cmd) and b"--name" in cmd:
                pids.append(int(entry.name))
        return pids

    def metric(self, name: str, labels: str = "") -> float:
        text = requests.get(f"{self.url}/api/metrics", timeout=10).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and (not labels or labels in line):
                total += float(line.rsplit(" ", 1)[1])
        return total


# Settings that are secrets go through the environment, never the command line (the gateway warns otherwise).
SECRET_SETTINGS = {"auth.password": "DGW_AUTH_PASSWORD"}


class SecretWatch(threading.Thread):
    """Collects, while the tests run, every secret the gateways hold and every process command line.

    test_zz_secrets.py then checks that no secret reached a log, an error message or a command line.
    """

    MIN_LENGTH = 8  # shorter test passwords ("pw") would match ordinary text

    def __init__(self) -> None:
        super().__init__(daemon=True, name="secret-watch")
        self.secrets: dict[str, str] = {}  # secret -> what it is
        self.cmdlines: set[str] = set()
        self.state_dirs: set[Path] = set()
        self.logs: set[Path] = set()
        self.cluster_logs: dict[Path, str] = {}
        self.lock = threading.Lock()

    def add_secret(self, value: str, what: str) -> None:
        if len(value) >= self.MIN_LENGTH:
            with self.lock:
                self.secrets.setdefault(value, what)

    def watch(self, state_dir: Path, log: Path) -> None:
        with self.lock:
            self.state_dirs.add(state_dir)
            self.logs.add(log)
        if not self.is_alive():
            self.start()

    def run(self) -> None:
        for n in itertools.count():
            self.sample()
            if n % 10 == 0:
                self.sample_cluster_logs()
            time.sleep(0.2)

    def sample_cluster_logs(self) -> None:
        """Scheduler and worker logs, kept as last seen: they vanish with their cluster."""
        for state_dir in list(self.state_dirs):
            # Also the scheduler logs kept after a stop (src/logs/archive.ts).
            for log in [*state_dir.glob("clusters/*/logs/*.log"), *state_dir.glob("logs/*.log")]:
                text = _read(log)
                with self.lock:
                    self.cluster_logs[log] = text

    def sample(self) -> None:
        for entry in Path("/proc").iterdir():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            with self.lock:
                self.cmdlines.add(cmd)
        for state_dir in list(self.state_dirs):
            self.add_secret(_read(state_dir / "password").strip(), "a generated shared password")
            for record in (state_dir / "records").glob("*.json"):
                try:
                    data = json.loads(record.read_text())
                except (OSError, ValueError):
                    continue
                self.add_secret(data.get("token", ""), f"the API token of cluster {record.stem}")
                key_lines = data.get("tlsKey", "").splitlines()
                if len(key_lines) > 2:
                    self.add_secret(key_lines[1], f"the TLS key of cluster {record.stem}")


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


SECRET_WATCH = SecretWatch()
for _name, (_password, _admin) in USERS.items():
    SECRET_WATCH.add_secret(_password, f"the password of {_name}")


def start_gateway(tmp: Path, own_session: bool = False, **settings) -> RunningGateway:
    """Starts a gateway with the given settings (flag names as keys) and waits for /api/health; `own_session` runs it
    in a session of its own, as a service runs (Linux then shares the CPU between sessions before processes).
    A free port chosen here can be taken by another process before the gateway listens (a CI run lost a fixture
    so): then the gateway is started again on another one."""
    for attempt in range(3):
        try:
            return _start_gateway_once(tmp, free_port(), own_session, settings)
        except PortTaken:
            if "address" in settings or attempt == 2:
                raise
    raise AssertionError("unreachable")


class PortTaken(RuntimeError):
    """The gateway exited because its address was already in use."""


def _start_gateway_once(tmp: Path, port: int, own_session: bool, settings: dict) -> RunningGateway:
    state = tmp / "state"
    state.mkdir(parents=True, exist_ok=True)
    defaults = {
        "address": f"127.0.0.1:{port}",
        "state_dir": str(state),
        "log.format": "json",
        "log.level": "debug",
        "clusters.heartbeat_period": "1",
        "clusters.check_period": "1",
    }
    merged = {**defaults, **settings}
    port = int(str(merged["address"]).rsplit(":", 1)[1])
    args = ["node", str(CLI)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DGW_")}
    for key, value in merged.items():
        if key in SECRET_SETTINGS:
            env[SECRET_SETTINGS[key]] = str(value)
            SECRET_WATCH.add_secret(str(value), f"the {key} setting")
        else:
            args += [f"--{key}", str(value)]
    log_file = tmp / "gateway.log"
    SECRET_WATCH.watch(state, log_file)
    proc = subprocess.Popen(args, stdout=open(tmp / "gateway.out", "w"), stderr=open(log_file, "w"), env=env,
                            start_new_session=own_session)
    url = f"http://127.0.0.1:{port}"
    last_error = None
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            log = log_file.read_text()
            raise (PortTaken if "EADDRINUSE" in log else RuntimeError)(f"gateway exited: {log}")
        try:
            if requests.get(f"{url}/api/health", timeout=1).ok:
                return RunningGateway(url, port, state, log_file, proc, merged)
        except requests.RequestException as exc:
            last_error = exc
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"gateway did not become healthy: {last_error!r}")


def stop_gateway(gw: RunningGateway) -> None:
    gw.proc.send_signal(signal.SIGTERM)
    try:
        gw.proc.wait(60)
    except subprocess.TimeoutExpired:
        gw.proc.kill()
        gw.proc.wait()
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"gateway-{gw.port}.log").write_text(gw.log_text())


@pytest.fixture(autouse=True)
def _collect_garbage_here():
    """dask_gateway 2026.3.0's Gateway.__del__ closes the client synchronously on its own event loop, so when the
    cycle collector happens to run on that loop's thread the loop waits for itself forever (seen after a refused
    new_cluster()). Automatic collection is off during the tests; garbage is collected here, on the main thread."""
    gc.disable()
    yield
    gc.collect()


@pytest.fixture(scope="session")
def users_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("users") / "users.json"
    users = {name: {"password": hash_password(pw), "admin": admin} for name, (pw, admin) in USERS.items()}
    path.write_text(json.dumps({"users": users}))
    return path


SIX_OPTIONS = {
    "options": [
        {"type": "int", "field": "worker_cores", "label": "Worker cores", "default": 1, "min": 1, "max": 4},
        {"type": "float", "field": "worker_memory", "label": "Worker memory (GiB)", "default": 0.5, "min": 0.25, "max": 8},
        {"type": "mapping", "field": "environment", "default": {"FROM_DEFAULT": "yes"}},
        {"type": "string", "field": "greeting", "default": "hello", "target": "environment.GREETING"},
        {"type": "bool", "field": "debug", "default": False, "target": "environment.DEBUG_MODE"},
        {"type": "select", "field": "profile", "label": "Profile", "default": "small",
         "options": [{"key": "small", "value": 1}, {"key": "large", "value": 2}], "target": "worker_threads"},
    ]
}


@pytest.fixture(scope="session")
def gateway(tmp_path_factory, users_file) -> RunningGateway:
    """The main test gateway: a users file (alice, bob, admin root) and options of all six types."""
    if REMOTE_URL:
        yield RunningGateway(REMOTE_URL, int(REMOTE_URL.rsplit(":", 1)[1]), Path("/nonexistent"), Path("/dev/null"), None)
        return
    gw = start_main_gateway(tmp_path_factory.mktemp("gateway"), users_file)
    yield gw
    stop_gateway(gw)


def start_main_gateway(tmp: Path, users_file: Path, **settings) -> RunningGateway:
    """A gateway set up as the session's main one (users file, options of all six types), plus `settings`."""
    options = tmp / "options.json"
    options.write_text(json.dumps(SIX_OPTIONS))
    return start_gateway(tmp, **{"auth.mode": "users", "auth.users_file": str(users_file), "clusters.options_file": str(options),
                                 **settings})


@pytest.fixture
def alice(gateway):
    from dask_gateway import BasicAuth, Gateway

    with Gateway(gateway.url, auth=BasicAuth("alice", USERS["alice"][0])) as gw:
        yield gw
        for report in gw.list_clusters():
            gw.stop_cluster(report.name)


def connect(gateway: RunningGateway, user: str, password: str | None = None):
    from dask_gateway import BasicAuth, Gateway

    return Gateway(gateway.url, auth=BasicAuth(user, password if password is not None else USERS[user][0]))


def warm_schedulers(state_dir: Path) -> set[str]:
    """Names of the warm pool's schedulers (records with `pool` set that are not stopping): the gateway's own, never a
    user's, so checks for what stopped clusters left behind leave them out."""
    names = set()
    for path in (state_dir / "records").glob("*.json"):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if record.get("pool") and record.get("target") == 3:  # Job.RUNNING
            names.add(path.stem)
    return names


def wait_for(predicate, timeout: float = 60, interval: float = 0.2, what: str = "condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


sys.path.insert(0, str(Path(__file__).parent))
