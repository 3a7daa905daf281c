"""Fixtures for every swarm test."""
from __future__ import annotations

import gc

import pytest


@pytest.fixture(autouse=True)
def _collect_garbage_on_the_main_thread():
    """As in test/python/conftest.py: dask_gateway's Gateway.__del__ can deadlock when the cycle collector runs on the
    client's loop thread (a swarm run hung after refused new_cluster() calls), so collection happens here."""
    gc.disable()
    yield
    gc.collect()
