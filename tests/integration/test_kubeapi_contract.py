"""The KubeApi contract against the real apiserver, with the operator's own client.

The same cases run against the in-memory fake in `tests/unit/test_fakekube_contract.py`: what
the fake answers there is what the apiserver answers here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from modeldeploy import kubeapi
from tests.kubeapi_contract import *  # noqa: F403 - the shared cases

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("crd")]


@pytest.fixture
async def api(sandbox: Any) -> AsyncIterator[kubeapi.KubeClient]:
    client = kubeapi.KubeClient(kubeapi.load_configuration(str(Path(sandbox.kubeconfig))))
    yield client
    await client.aclose()


@pytest.fixture
def ns(namespace: str) -> str:
    return namespace
