"""`make up REGISTRY=...` against a private registry that needs a login, as an operator's own registry would.

The registry stands in for the outside world: a container of the registry image on this machine, serving TLS
with a certificate of a CA that the engines trust (`/etc/docker/certs.d/<host:port>/ca.crt`, what an operator
sets up for a private registry) and refusing anonymous pulls (htpasswd). A fresh Docker-in-Docker node that holds
no project image must pull the sidecar from it with the credentials the gateway passes on; the password must appear
in no log, label, environment or service spec. Runs after test_swarm.py, whose last test took the stack down.
"""
from __future__ import annotations

import base64
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import bcrypt
import pytest
from dask_gateway import BasicAuth, Gateway

from helpers import ROOT, sh, wait_for, worker_nodes

PORT = 5443
USER = "operator"
PASSWORD = "reg-pw-7f3c91e2d4"
PREFIX = "team/dask"


def docker0() -> str:
    """The host's address on Docker's default bridge, which the Docker-in-Docker nodes reach it by."""
    return sh("docker", "info", "--format", "{{.Swarm.NodeAddr}}")  # the swarm advertises it (scripts/docker-engine.sh)


def make_certificate(directory: Path, ip: str) -> None:
    """A CA and a server certificate for the registry's address."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=dgw test CA", "-keyout", "ca.key", "-out", "ca.crt")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={ip}", "-keyout", "server.key", "-out", "server.csr")
    (directory / "ext.cnf").write_text(f"subjectAltName=IP:{ip}\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
            "-extfile", "ext.cnf", "-out", "server.crt")


def trust(ca: Path, address: str, node: str | None = None) -> None:
    """What an operator does for a private CA: the engine trusts it for that registry (read at each pull)."""
    target = f"/etc/docker/certs.d/{address}"
    if node is None:
        os.makedirs(target, exist_ok=True)
        shutil.copy(ca, f"{target}/ca.crt")
    else:
        sh("docker", "exec", node, "mkdir", "-p", target)
        subprocess.run(["docker", "exec", "-i", node, "sh", "-c", f"cat > {target}/ca.crt"], input=ca.read_bytes(), check=True)


@pytest.fixture(scope="module")
def private_registry():
    ip = docker0()
    address = f"{ip}:{PORT}"
    work = Path(tempfile.mkdtemp(prefix="dgw-auth-registry-"))
    make_certificate(work, ip)
    (work / "htpasswd").write_text(f"{USER}:{bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=5)).decode()}\n")
    image = sh(str(ROOT / "scripts" / "registry.sh"), "image")
    name = "dgw-test-private-registry"
    sh("docker", "rm", "-f", name, check=False)
    sh("docker", "run", "-d", "--name", name, "-p", f"{address}:5000", "-v", f"{work}:/auth:ro",
       "-e", "REGISTRY_AUTH=htpasswd", "-e", "REGISTRY_AUTH_HTPASSWD_REALM=dgw-test", "-e", "REGISTRY_AUTH_HTPASSWD_PATH=/auth/htpasswd",
       "-e", "REGISTRY_HTTP_TLS_CERTIFICATE=/auth/server.crt", "-e", "REGISTRY_HTTP_TLS_KEY=/auth/server.key", image)
    trust(work / "ca.crt", address)
    wait_for(lambda: subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", str(work / "ca.crt"),
                                     f"https://{address}/v2/"], capture_output=True, text=True).stdout == "401", 60, "the private registry")
    subprocess.run(["docker", "login", "--username", USER, "--password-stdin", address], input=PASSWORD, text=True,
                   check=True, capture_output=True)
    yield {"address": address, "ca": work / "ca.crt"}
    sh("docker", "logout", address, check=False)
    sh("docker", "rm", "-f", name, check=False)
    shutil.rmtree(f"/etc/docker/certs.d/{address}", ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def fresh_node(private_registry):
    (node,) = sh(str(ROOT / "scripts" / "swarm-nodes.sh"), "up", "1").split()
    trust(private_registry["ca"], private_registry["address"], node)
    yield node
    sh(str(ROOT / "scripts" / "swarm-nodes.sh"), "down", check=False)


@pytest.fixture(scope="module")
def deployed(private_registry, fresh_node):
    registry = f"{private_registry['address']}/{PREFIX}"
    up = subprocess.run([str(ROOT / "scripts" / "up.sh")], env={**os.environ, "REGISTRY": registry, "POOL_SIZE": "0"}, capture_output=True, text=True)
    assert up.returncode == 0, up.stderr[-3000:]
    password = (Path.home() / ".local/state/dask-gateway-swarm/swarm-password").read_text().strip()
    yield {"registry": registry, "password": password, "log": up.stdout + up.stderr}
    subprocess.run([str(ROOT / "scripts" / "down.sh")], check=True, capture_output=True)


@pytest.mark.timeout(600)  # a back-off, image pulls into fresh nodes' vfs storage
def test_private_registry_credentials_reach_fresh_nodes_and_no_log(deployed, fresh_node):
    assert PASSWORD not in deployed["log"]
    gateway_image = sh("docker", "service", "inspect", "dgw_gateway", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}")
    assert gateway_image.startswith(f"{deployed['registry']}/dgw-gateway@sha256:"), gateway_image
    assert sh("docker", "exec", fresh_node, "docker", "image", "ls", "-q", "--filter", "reference=*/*/dgw-sidecar") == "", \
        "the node starts with no project image"
    with Gateway("http://127.0.0.1:8000", auth=BasicAuth("alice", deployed["password"])) as gw:
        cluster = gw.new_cluster()
        try:
            cluster.scale(2)  # the manager and the fresh node
            client = cluster.get_client()
            client.wait_for_workers(2, timeout=300)
            assert fresh_node in wait_for(lambda: worker_nodes(cluster.name), 60, "worker placement")
            assert client.submit(lambda x: x + 1, 1).result(timeout=60) == 2
            # While the cluster runs: every service (specs, labels, environment) and container, here and on the node.
            # (One that goes between the listing and the inspection is skipped, not a failure.)
            seen = sh("docker", "service", "inspect", *sh("docker", "service", "ls", "-q").split(), check=False)
            seen += sh("docker", "inspect", *sh("docker", "ps", "-aq").split(), check=False)
            seen += sh("docker", "exec", fresh_node, "sh", "-c", "docker inspect $(docker ps -aq)")
            client.close()
        finally:
            cluster.shutdown()
    seen += subprocess.run(["docker", "service", "logs", "--raw", "dgw_gateway"], capture_output=True, text=True).stdout
    assert f"{deployed['registry']}/dgw-sidecar@sha256:" in seen, "the services name the image by digest in the registry"
    for form in (PASSWORD, base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()):  # as given, as `docker login` keeps it
        assert form not in seen
