"""The KubeApi contract against the in-memory fake; `tests/integration/test_kubeapi_contract.py` runs it for real."""

from __future__ import annotations

import pytest

from tests.fakekube import FakeKube
from tests.kubeapi_contract import *  # noqa: F403 - the shared cases


@pytest.fixture
def api() -> FakeKube:
    return FakeKube()


@pytest.fixture
def ns() -> str:
    return "contract"
