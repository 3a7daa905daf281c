"""Failed sign-ins are throttled per client address and user name (auth.max_failures, auth.failure_window): after too
many wrong passwords that pair gets 429 with Retry-After, the right password included, until the window has passed;
another user from the same address, and the same user from another address, go on. The real dask-gateway client
sees the refusal as an HTTP error."""
from __future__ import annotations

import base64
import http.client
import json
import time

import aiohttp
import pytest
import requests
from dask_gateway import BasicAuth, Gateway

from conftest import start_gateway, stop_gateway

pytestmark = pytest.mark.local_only
PASSWORD = "throttle-pw"
MAX_FAILURES = 3
WINDOW = 5  # seconds: long enough for the checks made while refused, short enough to wait for


@pytest.fixture(scope="module")
def throttled(tmp_path_factory):
    gw = start_gateway(tmp_path_factory.mktemp("throttle"), **{
        "auth.password": PASSWORD, "auth.max_failures": str(MAX_FAILURES), "auth.failure_window": str(WINDOW),
    })
    yield gw
    stop_gateway(gw)


def whoami_from(gw, source: str, user: str, password: str, forwarded: str | None = None) -> int:
    """The status of GET /api/v1/whoami sent from the loopback address `source` (127.0.0.0/8 is all this machine)."""
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10, source_address=(source, 0))
    try:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        headers = {"Authorization": f"Basic {token}", **({"X-Forwarded-For": forwarded} if forwarded else {})}
        conn.request("GET", "/api/v1/whoami", headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


def test_wrong_passwords_then_429_until_the_window_has_passed(throttled):
    url = f"{throttled.url}/api/v1/clusters/"
    for _ in range(MAX_FAILURES):
        assert requests.get(url, auth=("alice", "wrong")).status_code == 401
    refused = requests.get(url, auth=("alice", PASSWORD))  # the right password, refused all the same
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= WINDOW
    assert refused.json() == {"error": f"too many failed sign-ins for this user name from your address; try again in {refused.headers['Retry-After']} s"}
    with Gateway(throttled.url, auth=BasicAuth("alice", PASSWORD)) as gw:
        with pytest.raises(aiohttp.ClientResponseError) as info:
            gw.list_clusters()
    assert info.value.status == 429

    # Nobody else is affected: another user from this address, alice from another one.
    with Gateway(throttled.url, auth=BasicAuth("bob", PASSWORD)) as gw:
        assert gw.list_clusters() == []
    assert whoami_from(throttled, "127.0.0.2", "alice", PASSWORD) == 200

    last = requests.get(url, auth=("alice", PASSWORD))
    if last.status_code == 429:  # else the window is already over
        time.sleep(int(last.headers["Retry-After"]))
    with Gateway(throttled.url, auth=BasicAuth("alice", PASSWORD)) as gw:
        assert gw.list_clusters() == []

    # One warning naming the user and the address (never a password), and the counters.
    warnings = [json.loads(line) for line in throttled.log_text().splitlines() if "too many wrong passwords" in line]
    assert [(w["user"], w["address"], w["level"]) for w in warnings] == [("alice", "127.0.0.1", 40)]
    assert "password" not in warnings[0] and PASSWORD not in throttled.log_text()
    assert throttled.metric("dask_gateway_auth_failures_total") == MAX_FAILURES
    assert throttled.metric("dask_gateway_auth_throttled_total") >= 2


def test_a_success_resets_the_count(throttled):
    url = f"{throttled.url}/api/v1/whoami"
    for _ in range(3):
        for _ in range(MAX_FAILURES - 1):
            assert requests.get(url, auth=("carol", "wrong")).status_code == 401
        assert requests.get(url, auth=("carol", PASSWORD)).status_code == 200


def test_x_forwarded_for_counts_only_from_a_trusted_proxy(throttled, tmp_path):
    # Without trusted_proxies, a client cannot escape its count by claiming to forward for others.
    for i in range(MAX_FAILURES):
        assert whoami_from(throttled, "127.0.0.4", "eve", "wrong", forwarded=f"198.51.100.{i}") == 401
    assert whoami_from(throttled, "127.0.0.4", "eve", PASSWORD, forwarded="198.51.100.99") == 429

    # Behind a trusted proxy (127.0.0.3 stands for it), each client is counted under the address it forwards.
    gw = start_gateway(tmp_path, **{"auth.password": PASSWORD, "auth.max_failures": str(MAX_FAILURES), "trusted_proxies": "127.0.0.3"})
    try:
        for _ in range(MAX_FAILURES):
            assert whoami_from(gw, "127.0.0.3", "dora", "wrong", forwarded="203.0.113.9") == 401
        assert whoami_from(gw, "127.0.0.3", "dora", PASSWORD, forwarded="203.0.113.9") == 429
        assert whoami_from(gw, "127.0.0.3", "dora", PASSWORD, forwarded="192.0.2.1, 203.0.113.9") == 429  # the client's own entry is not believed
        assert whoami_from(gw, "127.0.0.3", "dora", PASSWORD, forwarded="203.0.113.10") == 200  # another client behind the proxy
        warnings = [json.loads(line) for line in gw.log_text().splitlines() if "too many wrong passwords" in line]
        assert [(w["user"], w["address"]) for w in warnings] == [("dora", "203.0.113.9")]
    finally:
        stop_gateway(gw)
