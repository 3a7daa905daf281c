"""Cluster options (reference section 3) through the unmodified client."""
from __future__ import annotations

import pytest
import requests
from dask_gateway.options import Bool, Float, Integer, Mapping, Select, String

from conftest import SIX_OPTIONS, USERS


def test_spec_json_has_exactly_the_reference_keys(gateway):
    spec = requests.get(f"{gateway.url}/api/v1/options", auth=("alice", USERS["alice"][0])).json()["cluster_options"]
    assert [f["field"] for f in spec] == [o["field"] for o in SIX_OPTIONS["options"]]
    for f in spec:
        assert set(f) == {"field", "label", "default", "spec"}
    by_field = {f["field"]: f for f in spec}
    assert by_field["worker_cores"]["spec"] == {"type": "int", "min": 1, "max": 4}
    assert by_field["worker_memory"]["spec"] == {"type": "float", "min": 0.25, "max": 8}
    assert by_field["environment"]["spec"] == {"type": "mapping"}
    assert by_field["greeting"]["spec"] == {"type": "string"}
    assert by_field["debug"]["spec"] == {"type": "bool"}
    assert by_field["profile"]["spec"] == {"type": "select", "options": ["small", "large"]}
    assert by_field["greeting"]["label"] == "greeting"  # the label defaults to the field name


def test_client_round_trips_all_six_types(alice):
    options = alice.cluster_options()
    kinds = {name: type(options._fields[name]) for name in options}
    assert kinds == {
        "worker_cores": Integer, "worker_memory": Float, "environment": Mapping,
        "greeting": String, "debug": Bool, "profile": Select,
    }
    assert dict(options) == {
        "worker_cores": 1, "worker_memory": 0.5, "environment": {"FROM_DEFAULT": "yes"},
        "greeting": "hello", "debug": False, "profile": "small",
    }


def test_new_cluster_echoes_normalized_options(alice):
    options = alice.cluster_options()
    options.worker_cores = 2
    options.profile = "large"
    options.debug = True
    cluster = alice.new_cluster(options)
    try:
        report = alice.get_cluster(cluster.name)
        assert report.options == {
            "worker_cores": 2, "worker_memory": 0.5, "environment": {"FROM_DEFAULT": "yes"},
            "greeting": "hello", "debug": True, "profile": "large",
        }
    finally:
        cluster.shutdown()


def test_kwargs_only_are_filled_with_defaults(alice):
    cluster = alice.new_cluster(greeting="hi")
    try:
        report = alice.get_cluster(cluster.name)
        assert report.options["greeting"] == "hi"
        assert report.options["worker_cores"] == 1
        assert report.options["profile"] == "small"
    finally:
        cluster.shutdown()


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        ({"unknown_field": 1}, "unknown_field"),
        ({"profile": "medium"}, "profile"),
        ({"worker_cores": 99}, "worker_cores"),
        ({"worker_cores": "two"}, "worker_cores"),
        ({"debug": "yes"}, "debug"),
        ({"environment": {"A": {"nested": 1}}}, "environment"),
    ],
)
def test_invalid_options_raise_value_error_naming_the_field(gateway, alice, kwargs, needle):
    # Bypass client-side validation so the server's answer is what is tested.
    r = requests.post(f"{gateway.url}/api/v1/clusters/", json={"cluster_options": kwargs}, auth=("alice", USERS["alice"][0]))
    assert r.status_code == 422
    assert needle in r.json()["error"]
    with pytest.raises(ValueError, match=needle):
        alice.submit(**kwargs)  # kwargs alone are sent as they are, so the server decides
    assert alice.list_clusters() == []


def test_server_error_texts_match_reference(gateway):
    auth = ("alice", USERS["alice"][0])
    post = lambda opts: requests.post(f"{gateway.url}/api/v1/clusters/", json={"cluster_options": opts}, auth=auth).json()["error"]
    assert post({"b": 1, "a": 2}) == "Unknown fields ['a', 'b']"
    assert post({"profile": "medium"}) == "'medium' is not a valid option for profile"
    assert post({"worker_cores": 0}) == "worker_cores must be >= 1.000000, got 0"
    assert post({"greeting": 1}) == "greeting must be a string, got 1"
