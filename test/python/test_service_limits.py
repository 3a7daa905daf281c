"""Limits that protect the service: creation rate per user, silent connections, body size (issue 6)."""
from __future__ import annotations

import socket
import time

import pytest
import requests

from conftest import start_gateway, stop_gateway


@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    gw = start_gateway(tmp_path_factory.mktemp("strict"), **{"auth.password": "pw", "limits.create_rate": "2", "limits.hello_timeout": "1"})
    yield gw
    stop_gateway(gw)


def test_creation_rate_per_user(strict):
    url = f"{strict.url}/api/v1/clusters/"
    names = []
    for _ in range(2):
        r = requests.post(url, json={}, auth=("ursula", "pw"))
        assert r.status_code == 201
        names.append(r.json()["name"])
    refused = requests.post(url, json={}, auth=("ursula", "pw"))
    assert refused.status_code == 429
    assert "limits.create_rate" in refused.json()["error"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60  # when the first of the two leaves the minute
    assert requests.post(url, json={}, auth=("victor", "pw")).status_code == 201  # per user
    for name in names:
        requests.delete(f"{url}{name}", auth=("ursula", "pw"))
    for name, report in requests.get(url, auth=("victor", "pw")).json().items():
        requests.delete(f"{url}{name}", auth=("victor", "pw"))


def test_silent_connection_is_closed_after_the_hello_timeout(strict):
    with socket.create_connection(("127.0.0.1", strict.port), timeout=10) as s:
        started = time.time()
        assert s.recv(10) == b""  # closed by the gateway, not by our timeout
        assert 0.5 < time.time() - started < 5
    assert strict.metric("dask_gateway_connections_total", 'outcome="timeout"') >= 1


def test_oversized_headers_are_refused_with_431(strict):
    huge = requests.get(f"{strict.url}/api/v1/clusters/", headers={"X-Padding": "x" * 20_000}, auth=("ursula", "pw"))
    assert huge.status_code == 431
    assert requests.get(f"{strict.url}/api/health").ok
