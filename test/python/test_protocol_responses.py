"""Responses on the wire validate against protocol/openapi.json, the single source of truth."""
from __future__ import annotations

import json

import pytest
import requests
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from conftest import ROOT, USERS

DOC = json.loads((ROOT / "protocol" / "openapi.json").read_text())
REGISTRY = Registry().with_resource("urn:openapi", Resource.opaque(DOC))


def check(schema_name: str, value) -> None:
    schema = {"$ref": f"urn:openapi#/components/schemas/{schema_name}"}
    errors = list(Draft202012Validator(schema, registry=REGISTRY).iter_errors(value))
    assert not errors, [e.message for e in errors]


@pytest.fixture(scope="module")
def session(gateway):
    with requests.Session() as s:
        s.auth = ("alice", USERS["alice"][0])
        yield s


def test_responses_match_the_document(gateway, session, alice):
    url = gateway.url
    check("Health", requests.get(f"{url}/api/health").json())
    check("Version", requests.get(f"{url}/api/version").json())
    check("Error", requests.get(f"{url}/api/v1/clusters/").json())
    check("OptionsResponse", session.get(f"{url}/api/v1/options").json())
    created = session.post(f"{url}/api/v1/clusters/", json={"cluster_options": {}})
    assert created.status_code == 201
    check("CreateClusterResponse", created.json())
    name = created.json()["name"]
    try:
        check("Cluster", session.get(f"{url}/api/v1/clusters/{name}").json())  # PENDING
        check("Cluster", session.get(f"{url}/api/v1/clusters/{name}?wait").json())  # RUNNING
        check("ClusterList", session.get(f"{url}/api/v1/clusters/").json())
        check("ScaleResponse", session.post(f"{url}/api/v1/clusters/{name}/scale", json={"count": 0}).json())
        check("ScaleResponse", session.post(f"{url}/api/v1/clusters/{name}/adapt", json={"minimum": 0, "maximum": 1, "active": False}).json())
        check("ClusterEvents", session.get(f"{url}/api/v1/clusters/{name}/events").json())
        check("WhoAmI", session.get(f"{url}/api/v1/whoami").json())
        check("Error", session.post(f"{url}/api/v1/clusters/{name}/scale", json={"count": "x"}).json())
        admin = requests.get(f"{url}/api/v1/admin/clusters", auth=("root", USERS["root"][0])).json()
        check("AdminClusterList", admin)
    finally:
        session.delete(f"{url}/api/v1/clusters/{name}")
    check("ClusterList", session.get(f"{url}/api/v1/clusters/?status=STOPPING,STOPPED").json())
