"""HTTPS on the public port beside scheduler passthrough, and a separate scheduler port."""
from __future__ import annotations

import os
import subprocess
import sys

import requests

from conftest import free_port, start_gateway, stop_gateway

CLIENT = """
from dask_gateway import Gateway, BasicAuth
import sys
address, proxy = sys.argv[1], sys.argv[2] or None
with Gateway(address, proxy_address=proxy, auth=BasicAuth("tina", "pw")) as gw:
    cluster = gw.new_cluster()
    with cluster.get_client() as client:
        assert client.run_on_scheduler(lambda: 41 + 1) == 42
    cluster.shutdown()
    assert gw.list_clusters() == []
print("OK")
"""


def run_client(address: str, proxy: str = "", env: dict | None = None) -> str:
    out = subprocess.run([sys.executable, "-c", CLIENT, address, proxy], capture_output=True, text=True, timeout=120,
                         env={**os.environ, **(env or {})})
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip()


def test_https_api_and_scheduler_tls_share_the_port(tmp_path):
    cert, key = tmp_path / "pub.crt", tmp_path / "pub.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-days", "1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    gw = start_gateway(tmp_path, **{"auth.password": "pw", "tls.cert": str(cert), "tls.key": str(key)})
    try:
        https = gw.url.replace("http://", "https://")
        assert requests.get(f"{https}/api/health", verify=str(cert)).json() == {"status": "pass"}
        # The client verifies the gateway's certificate with the default CA store, here pointed at ours.
        assert run_client(https, env={"SSL_CERT_FILE": str(cert)}) == "OK"
    finally:
        stop_gateway(gw)


def test_separate_scheduler_port(tmp_path):
    port = free_port()
    gw = start_gateway(tmp_path, **{"auth.password": "pw", "scheduler_address": f"127.0.0.1:{port}"})
    try:
        assert run_client(gw.url, f"gateway://127.0.0.1:{port}") == "OK"
        # Plain HTTP is not served on the scheduler port.
        try:
            r = requests.get(f"http://127.0.0.1:{port}/api/health", timeout=5)
            assert r.status_code != 200
        except requests.RequestException:
            pass
    finally:
        stop_gateway(gw)
