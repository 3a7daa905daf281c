"""Protocol fuzzing from the single source of truth: schemathesis draws requests for every operation of
protocol/openapi.json and sends each to a real gateway (local backend) as several callers. Every answer must
be declared by the document (status, content type, headers, body schema), never a 5xx, and the gateway must
still be alive and healthy at the end, with every cluster it started stopped and no dask process left.

`make fuzz` runs the same test longer: FUZZ_EXAMPLES examples per operation (default here: 50) and FUZZ_SEED.
"""
from __future__ import annotations

import os
import zlib

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, seed, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from conftest import ROOT, start_gateway, stop_gateway, wait_for, warm_schedulers
from test_authorization_matrix import basic_header, cluster_token, dask_pids_under

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "50"))
SEED = int(os.environ.get("FUZZ_SEED", "20260"))
PASSWORD = "fuzz-pw"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.fixture(scope="module")
def fuzz_gateway(tmp_path_factory):
    """A gateway with small limits, so that whatever the fuzzer creates or scales stays light."""
    gw = start_gateway(tmp_path_factory.mktemp("fuzz"), **{
        "auth.password": PASSWORD,
        "auth.admin_users": "root",
        "limits.user_max_clusters": "2",
        "limits.cluster_max_workers": "1",
        "limits.user_max_workers": "1",
        "limits.create_rate": "1000",
    })
    yield gw
    try:
        assert gw.proc.poll() is None, "the gateway died during fuzzing"
        assert requests.get(f"{gw.url}/api/health", timeout=10).json() == {"status": "pass"}
        root = ("root", PASSWORD)
        every = requests.get(f"{gw.url}/api/v1/admin/clusters?status=pending,running,stopping,stopped,failed", auth=root).json()
        for name in every:
            requests.delete(f"{gw.url}/api/v1/clusters/{name}", auth=root)
        wait_for(lambda: all(c["cluster"]["status"] in ("STOPPED", "FAILED") for c in requests.get(
            f"{gw.url}/api/v1/admin/clusters?status=pending,running,stopping,stopped,failed", auth=root).json().values()),
            120, what="every fuzzed cluster stopped")
        # The pool's warm schedulers are the gateway's own and stay: every other process must be gone.
        wait_for(lambda: not user_cluster_pids(gw), 60, what="no dask process left")
    finally:
        stop_gateway(gw)


def user_cluster_pids(gw) -> list[int]:
    """Processes in the directories of users' clusters (listed before the warm schedulers are read: a warm one's
    record exists before its processes, so none of its processes can be missed)."""
    clusters = gw.state_dir / "clusters"
    pids = {}
    for pid in dask_pids_under(clusters):
        try:
            pids[pid] = os.readlink(f"/proc/{pid}/cwd").removesuffix(" (deleted)")
        except OSError:
            continue  # ended meanwhile
    warm = {str(clusters / name) for name in warm_schedulers(gw.state_dir)}
    return [pid for pid, cwd in pids.items() if cwd not in warm]


@pytest.fixture(scope="module")
def live(fuzz_gateway):
    """Alice's cluster that `{name}` is sometimes replaced by (so real clusters are fuzzed, not only unknown names)."""
    state = {"name": None}

    def name() -> str:
        current = state["name"]
        if current:
            status = requests.get(f"{fuzz_gateway.url}/api/v1/clusters/{current}", auth=("alice", PASSWORD)).json().get("status")
            if status in ("PENDING", "RUNNING"):
                return current
        # Stopped by a fuzzed DELETE (or never made): a new one, after the old ones are out of the way.
        for other in requests.get(f"{fuzz_gateway.url}/api/v1/clusters/", auth=("alice", PASSWORD)).json():
            requests.delete(f"{fuzz_gateway.url}/api/v1/clusters/{other}", auth=("alice", PASSWORD))
        created = requests.post(f"{fuzz_gateway.url}/api/v1/clusters/", json={}, auth=("alice", PASSWORD))
        assert created.status_code == 201, created.text
        state["name"] = created.json()["name"]
        requests.get(f"{fuzz_gateway.url}/api/v1/clusters/{state['name']}?wait", auth=("alice", PASSWORD), timeout=60)
        return state["name"]

    return name


schema = schemathesis.openapi.from_path(str(ROOT / "protocol" / "openapi.json"))
schema.config.update(request_timeout=30)
schema.config.generation.update(modes=["positive", "negative"], max_examples=EXAMPLES)


@pytest.mark.timeout(max(900, EXAMPLES * 10))  # per operation
@schema.parametrize()
@seed(SEED)
@settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=False,
          suppress_health_check=list(HealthCheck))
def test_fuzz(case, fuzz_gateway, live):
    declared = {next(iter(s)) for s in case.operation.definition.raw.get("security", [{}]) if s}
    # Half of the cases aim at alice's real cluster instead of the drawn name (unless the drawn name is
    # itself the invalid part of a negative case: the document only asks for a non-empty string).
    drawn_name = case.path_parameters.get("name")
    if isinstance(drawn_name, str) and drawn_name and zlib.crc32(drawn_name.encode()) % 2:
        case.path_parameters = {**case.path_parameters, "name": live()}
    if case.query:
        case.query.pop("follow", None)  # a followed log streams until its component ends: read without following
    drawn = case.headers.get("Authorization")
    callers: list[str | None] = [None, basic_header("alice:" + PASSWORD)]
    if drawn is not None:
        callers.append(drawn)  # whatever credentials the fuzzer drew itself
    if "clusterToken" in declared and "name" in case.path_parameters:
        try:
            callers.append("token " + cluster_token(fuzz_gateway, case.path_parameters["name"]))
        except (OSError, ValueError):
            callers.append("token " + "f" * 32)  # a name without a cluster: a token that matches nothing
    for authorization in callers:
        if authorization is None:
            case.headers.pop("Authorization", None)
        else:
            case.headers["Authorization"] = authorization
        with requests.Session() as session:  # a new session each time: no session cookie carried over
            session.trust_env = False
            case.call_and_validate(base_url=fuzz_gateway.url, session=session, checks=CHECKS)
        if case.method == "POST" and case.path == "/api/v1/clusters/":
            # Clusters the fuzzer made go at once: the machine is shared.
            for name in requests.get(f"{fuzz_gateway.url}/api/v1/clusters/", auth=("alice", PASSWORD)).json():
                if name != live():
                    requests.delete(f"{fuzz_gateway.url}/api/v1/clusters/{name}", auth=("alice", PASSWORD))


# Regressions of what the fuzzer found, pinned with plain requests.

@pytest.mark.parametrize("method", ["TRACE", "PUT", "PATCH"])
def test_other_methods_on_a_known_path_are_a_plain_405_with_allow(fuzz_gateway, method):
    resp = requests.request(method, f"{fuzz_gateway.url}/api/health")
    assert resp.status_code == 405  # TRACE was a 501
    assert resp.headers["Allow"] == "HEAD, GET"
    assert resp.text == "405: Method Not Allowed"  # was the 404 text
    assert requests.get(f"{fuzz_gateway.url}/no/such/path").text == "404: Not Found"


@pytest.mark.parametrize("path", ["/api/v1/clusters/", "/api/v1/clusters/{name}/adapt", "/api/v1/clusters/{name}/scale"])
def test_null_or_missing_bodies_are_refused(fuzz_gateway, live, path):
    url = fuzz_gateway.url + path.replace("{name}", live())
    auth = ("alice", PASSWORD)
    null = requests.post(url, data="null", headers={"Content-Type": "application/json"}, auth=auth)
    assert null.status_code == 422, null.text  # create took a JSON null as {} and made a cluster
    if path != "/api/v1/clusters/":  # the document makes only create's body optional
        missing = requests.post(url, auth=auth)
        assert missing.status_code == 422, missing.text  # adapt took a missing body as {} and answered 200


def test_any_cluster_name_is_a_path_segment(fuzz_gateway):
    auth = ("alice", PASSWORD)
    assert requests.delete(f"{fuzz_gateway.url}/api/v1/clusters/%C2%84x", auth=auth).status_code == 204
    assert requests.get(f"{fuzz_gateway.url}/api/v1/clusters/a%20b", auth=auth).status_code == 404
