"""The REST API as the unmodified dask-gateway client (and the wire) sees it: reference section 1 and 2."""
from __future__ import annotations

import pytest
import requests
from dask_gateway import BasicAuth, Gateway
from dask_gateway.client import ClusterStatus

from conftest import USERS, connect


def test_health_and_version(gateway):
    assert requests.get(f"{gateway.url}/api/health").json() == {"status": "pass"}
    with connect(gateway, "alice") as gw:
        versions = gw.get_versions()
    assert set(versions) == {"client", "server"}
    assert isinstance(versions["server"]["version"], str) and versions["server"]["version"]


def test_missing_credentials_get_a_json_401_challenge(gateway):
    r = requests.get(f"{gateway.url}/api/v1/clusters/")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Basic")
    assert r.json() == {"error": "Authentication required"}


@pytest.mark.parametrize(
    "header",
    ["Basic", "Basic !!!notbase64", "Basic " + "YWxpY2U=", "Bearer abc", "garbage", "Basic YWxpY2U6d3Jvbmc="],
)
def test_malformed_or_wrong_authorization_is_401_not_500(gateway, header):
    r = requests.get(f"{gateway.url}/api/v1/clusters/", headers={"Authorization": header})
    assert r.status_code == 401
    assert r.json() == {"error": "Authentication required"}


def test_list_is_an_object_keyed_by_name_and_sets_cookie(gateway):
    r = requests.get(f"{gateway.url}/api/v1/clusters/", auth=("alice", USERS["alice"][0]))
    assert r.status_code == 200
    assert r.json() == {}
    assert any(c.name.startswith("dask-gateway-") for c in r.cookies)


def test_one_401_per_client_session(gateway):
    before = gateway.metric("dask_gateway_http_requests_total", 'status="401"')
    with connect(gateway, "bob") as gw:
        for _ in range(5):
            gw.list_clusters()
        gw.cluster_options()
    after = gateway.metric("dask_gateway_http_requests_total", 'status="401"')
    assert after - before == 1


def test_wrong_password_fails_and_corrected_one_works_on_same_client(gateway):
    auth = BasicAuth("alice", "wrong")
    with Gateway(gateway.url, auth=auth) as gw:
        with pytest.raises(Exception):
            gw.list_clusters()
        auth.password = USERS["alice"][0]
        assert gw.list_clusters() == []


def test_bad_status_filter(gateway, alice):
    with pytest.raises(ValueError):
        alice.list_clusters(status="bogus")  # rejected by the client itself
    r = requests.get(f"{gateway.url}/api/v1/clusters/?status=bogus", auth=("alice", USERS["alice"][0]))
    assert r.status_code == 422
    assert r.json() == {"error": "'bogus' is not a valid ClusterStatus"}


def test_unknown_cluster_is_404_value_error(alice):
    with pytest.raises(ValueError, match="not found"):
        alice.connect("0" * 32)


def test_delete_of_unknown_cluster_is_204(gateway):
    r = requests.delete(f"{gateway.url}/api/v1/clusters/{'0' * 32}", auth=("alice", USERS["alice"][0]))
    assert r.status_code == 204


@pytest.mark.parametrize(
    "body,content_type,status",
    [
        (b"{not json", "application/json", 400),
        (b"[1, 2]", "application/json", 422),
        (b'{"cluster_options": 5}', "application/json", 422),
        (b'{"cluster_options": {}}', "text/plain", 415),
    ],
)
def test_bad_create_bodies_get_clear_errors_and_create_nothing(gateway, body, content_type, status):
    auth = ("alice", USERS["alice"][0])
    r = requests.post(f"{gateway.url}/api/v1/clusters/", data=body, headers={"Content-Type": content_type}, auth=auth)
    assert r.status_code == status
    assert r.json()["error"]
    assert requests.get(f"{gateway.url}/api/v1/clusters/", auth=auth).json() == {}


def test_body_size_limit(gateway):
    big = b'{"cluster_options": {"environment": {"X": "' + b"a" * 2_000_000 + b'"}}}'
    r = requests.post(f"{gateway.url}/api/v1/clusters/", data=big, headers={"Content-Type": "application/json"},
                      auth=("alice", USERS["alice"][0]))
    assert r.status_code == 413


def test_whoami_extension(gateway):
    assert requests.get(f"{gateway.url}/api/v1/whoami", auth=("root", USERS["root"][0])).json() == {"name": "root", "admin": True}
    assert requests.get(f"{gateway.url}/api/v1/whoami", auth=("bob", USERS["bob"][0])).json() == {"name": "bob", "admin": False}


def test_status_enum_matches_client(gateway):
    assert [s.name for s in ClusterStatus] == ["PENDING", "RUNNING", "STOPPING", "STOPPED", "FAILED"]
