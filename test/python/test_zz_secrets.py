"""Runs last: no secret any gateway held during the run reached a log, an error message or a command line."""
from __future__ import annotations

from conftest import ARTIFACTS, SECRET_WATCH

import pytest


def places() -> dict[str, str]:
    """Every text a secret must never appear in, by where it came from."""
    SECRET_WATCH.sample()
    SECRET_WATCH.sample_cluster_logs()
    found = {f"command line: {cmd[:80]}": cmd for cmd in SECRET_WATCH.cmdlines}
    logs = set(SECRET_WATCH.logs) | set(ARTIFACTS.glob("gateway-*.log"))
    for log in logs:
        if log.exists():
            found[f"gateway log {log}"] = log.read_text(errors="replace")
    for log, text in SECRET_WATCH.cluster_logs.items():
        found[f"cluster log {log}"] = text
    return found


def test_no_secret_in_logs_errors_or_command_lines():
    if not SECRET_WATCH.state_dirs:
        pytest.skip("no gateway ran in this session")
    secrets = dict(SECRET_WATCH.secrets)
    assert any("API token" in what for what in secrets.values()), "the watch saw no cluster: it checks nothing"
    leaks = [f"{what} in {where}" for where, text in places().items() for secret, what in secrets.items() if secret in text]
    assert leaks == [], "\n".join(leaks)
    print(f"checked {len(secrets)} secrets against {len(places())} logs and command lines")
