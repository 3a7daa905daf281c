"""A short soak (the full one is `make soak`): users looping create, scale, compute, shutdown beside simulated
clusters that only heartbeat; no failed request, no leaked process, directory or file descriptor."""
from __future__ import annotations

import json
import sys

from conftest import ARTIFACTS, ROOT

sys.path.insert(0, str(ROOT / "test" / "soak"))
from soak import run  # noqa: E402


def test_short_soak(tmp_path):
    report = run(users=3, seconds=45, simulated=200, tmp=tmp_path)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "soak-short.json").write_text(json.dumps(report, indent=2))
    assert report["failures"] == []
    assert report["leaks"] == []
    assert report["loops"] >= 3
    print(f"{report['loops']} loops; memory {report['start']['rss_mib']:.0f} -> {report['end']['rss_mib']:.0f} MiB "
          f"(peak {report['peak_rss_mib']:.0f}); open files {report['start']['open_files']} -> {report['end']['open_files']}")
