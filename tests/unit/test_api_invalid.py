"""Python rejects what the apiserver rejects (and accepts what it accepts), case by case.

The same tables drive tests/integration/test_crd_apiserver.py against a real kube-apiserver.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from modeldeploy.api import ModelDeployment
from tests.fixtures.invalid import InvalidCase, edge_valid_manifests, invalid_cases, merge_patch

INVALID = invalid_cases()
EDGE_VALID = edge_valid_manifests()


def test_the_table_is_big_enough() -> None:
    assert len(INVALID) >= 15
    assert len({case.name for case in INVALID}) == len(INVALID)


@pytest.mark.parametrize("case", INVALID, ids=[case.name for case in INVALID])
def test_invalid_manifest_is_rejected(case: InvalidCase) -> None:
    with pytest.raises(ValidationError) as raised:
        ModelDeployment.model_validate(case.manifest)
    assert case.python in str(raised.value)


@pytest.mark.parametrize("manifest", EDGE_VALID.values(), ids=list(EDGE_VALID))
def test_edge_manifest_is_accepted(manifest: dict[str, Any]) -> None:
    ModelDeployment.model_validate(manifest)


def test_merge_patch_semantics() -> None:
    assert merge_patch({"a": {"b": 1, "c": 2}, "l": [1]}, {"a": {"b": None, "d": 3}, "l": [2]}) == {
        "a": {"c": 2, "d": 3},
        "l": [2],
    }
