"""Who may call what: every operation of protocol/openapi.json, plus the dashboard and its WebSocket,
against every kind of caller, with the expected status of each cell written down below.

The operations are read from the document, so an endpoint added to it without a row here fails
`test_every_operation_has_rows`. Real clusters: one of alice's (the target of every `{name}`) and one of
bob's (whose token is the "foreign" token); a name nobody has is the second target.
"""
from __future__ import annotations

import base64
import json
import os
import socket
from pathlib import Path

import pytest
import requests

from conftest import ROOT, USERS, wait_for

DOC = json.loads((ROOT / "protocol" / "openapi.json").read_text())
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
DOCUMENT_OPERATIONS = [(m.upper(), path) for path, item in DOC["paths"].items() for m in item if m in HTTP_METHODS]
# Outside the API document: the dashboard route (reference section 6) and its Bokeh WebSocket.
DASHBOARD_OPERATIONS = [("GET", "/clusters/{name}/status"), ("WS", "/clusters/{name}/status/ws")]
UNKNOWN = "0" * 32


def basic_header(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


# Callers, in the order of the table's columns. A value is the Authorization header, or the name of a
# header to compute from the clusters.
CALLERS = {
    "anonymous": None,
    "wrong_password": basic_header("alice:not-her-password"),
    "bad_base64": "Basic !!not*base64!!",
    "no_colon": basic_header("alice" + USERS["alice"][0]),
    "unknown_scheme": "Bearer " + USERS["alice"][0],
    "empty": "",
    "owner": basic_header("alice:" + USERS["alice"][0]),
    "other_user": basic_header("bob:" + USERS["bob"][0]),
    "admin": basic_header("root:" + USERS["root"][0]),
    "foreign_token": "token-of:bob",
    "own_token": "token-of:alice",
}

# (method, path, target) -> one status per caller, in CALLERS order. Target "alice" is alice's running
# cluster, "unknown" a name no cluster has, "-" an operation without a name.
#   anon  wrong b64  colon scheme empty  owner other admin  foreign own
A = 401  # every caller without valid user credentials (and a cluster token where no token is accepted)
EXPECTED: dict[tuple[str, str, str], tuple[int, ...]] = {
    ("GET", "/api/health", "-"):                          (200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200),
    ("GET", "/api/version", "-"):                         (200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200),
    ("GET", "/api/metrics", "-"):                         (200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200),
    ("GET", "/api/v1/options", "-"):                      (A, A, A, A, A, A, 200, 200, 200, A, A),
    ("GET", "/api/v1/clusters/", "-"):                    (A, A, A, A, A, A, 200, 200, 200, A, A),
    ("POST", "/api/v1/clusters/", "-"):                   (A, A, A, A, A, A, 201, 201, 201, A, A),
    ("GET", "/api/v1/whoami", "-"):                       (A, A, A, A, A, A, 200, 200, 200, A, A),
    ("GET", "/api/v1/admin/clusters", "-"):               (A, A, A, A, A, A, 403, 403, 200, A, A),
    # Reference 1.3: the lookup (404) comes before the permission check (403). Admins act on any
    # cluster (README: auth.admin_users).
    ("GET", "/api/v1/clusters/{name}", "alice"):          (A, A, A, A, A, A, 200, 403, 200, A, A),
    ("GET", "/api/v1/clusters/{name}", "unknown"):        (A, A, A, A, A, A, 404, 404, 404, A, A),
    ("GET", "/api/v1/clusters/{name}/events", "alice"):   (A, A, A, A, A, A, 200, 403, 200, A, A),
    ("GET", "/api/v1/clusters/{name}/events", "unknown"): (A, A, A, A, A, A, 404, 404, 404, A, A),
    ("POST", "/api/v1/clusters/{name}/scale", "alice"):   (A, A, A, A, A, A, 200, 403, 200, A, A),
    ("POST", "/api/v1/clusters/{name}/scale", "unknown"): (A, A, A, A, A, A, 404, 404, 404, A, A),
    ("POST", "/api/v1/clusters/{name}/adapt", "alice"):   (A, A, A, A, A, A, 200, 403, 200, A, A),
    ("POST", "/api/v1/clusters/{name}/adapt", "unknown"): (A, A, A, A, A, A, 404, 404, 404, A, A),
    # Reference 2.3: only the cluster's own token; user credentials never. The body sent is deliberately
    # incomplete, so the one accepted caller gets 422 instead of feeding the gateway a made-up heartbeat.
    ("POST", "/api/v1/clusters/{name}/heartbeat", "alice"):   (A, A, A, A, A, A, A, A, A, A, 422),
    ("POST", "/api/v1/clusters/{name}/heartbeat", "unknown"): (A, A, A, A, A, A, A, A, A, A, A),
    # README: dashboards for the owner and admins only (401 with a Basic challenge, or 403); 404 when unknown.
    ("GET", "/clusters/{name}/status", "alice"):          (A, A, A, A, A, A, 200, 403, 200, A, A),
    ("GET", "/clusters/{name}/status", "unknown"):        (A, A, A, A, A, A, 404, 404, 404, A, A),
    ("WS", "/clusters/{name}/status/ws", "alice"):        (A, A, A, A, A, A, 101, 403, 101, A, A),
    ("WS", "/clusters/{name}/status/ws", "unknown"):      (A, A, A, A, A, A, 404, 404, 404, A, A),
    # Extensions: logs for the owner and admins (the component is `scheduler`); operators' views for admins only.
    ("GET", "/api/v1/clusters/{name}/logs", "alice"):     (A, A, A, A, A, A, 200, 403, 200, A, A),
    ("GET", "/api/v1/clusters/{name}/logs", "unknown"):   (A, A, A, A, A, A, 404, 404, 404, A, A),
    ("GET", "/api/v1/clusters/{name}/logs/{component}", "alice"):   (A, A, A, A, A, A, 200, 403, 200, A, A),
    ("GET", "/api/v1/clusters/{name}/logs/{component}", "unknown"): (A, A, A, A, A, A, 404, 404, 404, A, A),
    ("GET", "/api/v1/admin/nodes", "-"):                  (A, A, A, A, A, A, 403, 403, 200, A, A),
    ("GET", "/api/v1/admin/pool", "-"):                   (A, A, A, A, A, A, 403, 403, 200, A, A),
    ("GET", "/api/v1/admin/usage", "-"):                  (A, A, A, A, A, A, 403, 403, 200, A, A),
    # Destructive rows last: the first accepted DELETE stops alice's cluster; the record stays, so the
    # later cells see the same answers. Reference 1.3 and 2.3: 204 even for an unknown name; a token of
    # another cluster falls through to user authentication (401 Basic).
    ("DELETE", "/api/v1/admin/clusters/{name}", "unknown"): (A, A, A, A, A, A, 403, 403, 204, A, A),
    ("DELETE", "/api/v1/clusters/{name}", "unknown"):     (A, A, A, A, A, A, 204, 204, 204, A, A),
    ("DELETE", "/api/v1/clusters/{name}", "alice"):       (A, A, A, A, A, A, 204, 403, 204, A, 204),
    ("DELETE", "/api/v1/admin/clusters/{name}", "alice"): (A, A, A, A, A, A, 403, 403, 204, A, A),
}

# Bodies for the operations that take one: valid, so an accepted caller gets the operation's success.
BODIES = {
    "/api/v1/clusters/": {"cluster_options": {}},
    "/api/v1/clusters/{name}/scale": {"count": 0},
    "/api/v1/clusters/{name}/adapt": {"minimum": 0, "maximum": 0, "active": False},
    "/api/v1/clusters/{name}/heartbeat": {},
}


def targets_of(path: str) -> tuple[str, ...]:
    return ("alice", "unknown") if "{name}" in path else ("-",)


def test_every_operation_has_rows():
    """A new endpoint in the document (or the dashboard) cannot go without its rows, nor a row outlive its endpoint."""
    wanted = {(m, p, t) for m, p in DOCUMENT_OPERATIONS + DASHBOARD_OPERATIONS for t in targets_of(p)}
    assert not wanted - EXPECTED.keys(), f"operations without a row in EXPECTED: {sorted(wanted - EXPECTED.keys())}"
    assert not EXPECTED.keys() - wanted, f"rows for operations not in the document: {sorted(EXPECTED.keys() - wanted)}"
    assert all(len(row) == len(CALLERS) for row in EXPECTED.values())


def _cells():
    # Every (operation, target) of the document and the dashboard; one without a row becomes a failing cell.
    keys = list(EXPECTED) + [
        (m, p, t) for m, p in DOCUMENT_OPERATIONS + DASHBOARD_OPERATIONS for t in targets_of(p) if (m, p, t) not in EXPECTED
    ]
    for key in keys:
        for caller in CALLERS:
            yield pytest.param(key, caller, id=f"{key[0]} {key[1]} [{key[2]}] as {caller}")


def cluster_token(gateway, name: str) -> str:
    """The cluster token, as the local backend hands it to the scheduler: a file in the cluster's directory."""
    return (gateway.state_dir / "clusters" / name / ".certs" / "token").read_text().strip()


def dask_pids_under(directory: Path) -> list[int]:
    """Live processes whose working directory is inside `directory` (schedulers and workers of its clusters)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "cwd").startswith(str(directory) + os.sep):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.fixture(scope="module")
def world(gateway):
    """Alice's and bob's running clusters and their tokens; everything stopped at the end."""
    made: list[tuple[str, str]] = []

    def create(user: str) -> str:
        auth = (user, USERS[user][0])
        name = requests.post(f"{gateway.url}/api/v1/clusters/", json={"cluster_options": {}}, auth=auth).json()["name"]
        made.append((user, name))
        return name

    names = {user: create(user) for user in ("alice", "bob")}
    for user, name in names.items():
        status = requests.get(f"{gateway.url}/api/v1/clusters/{name}?wait", auth=(user, USERS[user][0]), timeout=60).json()["status"]
        wait_for(lambda: requests.get(f"{gateway.url}/api/v1/clusters/{name}", auth=(user, USERS[user][0])).json()["status"] == "RUNNING",
                 60, what=f"{user}'s cluster running (was {status})")
    world = {"names": names, "tokens": {u: cluster_token(gateway, n) for u, n in names.items()}, "made": made}
    yield world
    root = ("root", USERS["root"][0])
    for _, name in made:
        requests.delete(f"{gateway.url}/api/v1/clusters/{name}", auth=root)
    clusters_dir = gateway.state_dir / "clusters"
    for _, name in made:
        wait_for(lambda: requests.get(f"{gateway.url}/api/v1/clusters/{name}", auth=root).json()["status"] in ("STOPPED", "FAILED"),
                 60, what=f"cluster {name} stopped")
    wait_for(lambda: not [p for _, n in made for p in dask_pids_under(clusters_dir / n)], 30, what="no dask process left")


def _header(world, caller: str) -> str | None:
    value = CALLERS[caller]
    if value is not None and value.startswith("token-of:"):
        return "token " + world["tokens"][value.split(":", 1)[1]]
    return value


def _websocket_status(gateway, path: str, authorization: str | None, bokeh_token: str) -> int:
    """The status of a raw WebSocket handshake (101 when the dashboard accepted it)."""
    lines = [
        f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{gateway.port}", "Upgrade: websocket", "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13",
        f"Sec-WebSocket-Protocol: bokeh, {bokeh_token}",
    ]
    if authorization is not None:
        lines.append(f"Authorization: {authorization}")
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=30) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                break
            head += chunk
    return int(head.split(b" ", 2)[1])


def _bokeh_token(gateway, name: str) -> str:
    import re

    html = requests.get(f"{gateway.url}/clusters/{name}/status", auth=("alice", USERS["alice"][0])).text
    found = re.search(r'token":"([^"]+)"', html)
    return found.group(1) if found else "no-token"


@pytest.mark.parametrize(("key", "caller"), list(_cells()))
def test_cell(gateway, world, key, caller):
    assert key in EXPECTED, f"{key[0]} {key[1]} has no row in EXPECTED: add one"
    method, path, target = key
    expected = EXPECTED[key][list(CALLERS).index(caller)]
    name = world["names"]["alice"] if target == "alice" else UNKNOWN
    url_path = path.replace("{name}", name).replace("{component}", "scheduler")
    authorization = _header(world, caller)
    if method == "WS":
        bokeh_token = _bokeh_token(gateway, world["names"]["alice"])
        assert _websocket_status(gateway, url_path, authorization, bokeh_token) == expected
        return
    headers = {} if authorization is None else {"Authorization": authorization}
    with requests.Session() as s:
        s.trust_env = False  # no ~/.netrc credentials
        resp = s.request(method, gateway.url + url_path, headers=headers, json=BODIES.get(path), allow_redirects=False, timeout=60)
    if resp.status_code == 201 and path == "/api/v1/clusters/":
        world["made"].append((caller, resp.json()["name"]))
        requests.delete(f"{gateway.url}/api/v1/clusters/{resp.json()['name']}", auth=("root", USERS["root"][0]))
    assert resp.status_code == expected, resp.text[:300]
    if expected == 401:
        assert resp.headers.get("WWW-Authenticate") in ("Basic", "token", 'Basic realm="dask-gateway", charset="UTF-8"')
