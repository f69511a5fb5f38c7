"""A canary's weights on the user's HTTPRoute (controller/routes.py): only our backendRefs change."""

from __future__ import annotations

from typing import Any

import pytest

from modeldeploy.controller.routes import weighted_rules

OTHER = {"name": "legacy", "port": 80, "weight": 5}


def rule(*refs: dict[str, Any]) -> dict[str, Any]:
    return {"matches": [{"path": {"type": "PathPrefix", "value": "/v2"}}], "backendRefs": list(refs)}


@pytest.mark.parametrize(
    ("refs", "weight", "expected"),
    [
        (
            [{"name": "iris", "port": 8080}],
            10,
            [{"name": "iris-stable", "port": 8080, "weight": 90}, {"name": "iris-canary", "port": 8080, "weight": 10}],
        ),
        (
            [{"name": "iris-stable", "port": 8080, "weight": 90}, {"name": "iris-canary", "port": 8080, "weight": 10}],
            50,
            [{"name": "iris-stable", "port": 8080, "weight": 50}, {"name": "iris-canary", "port": 8080, "weight": 50}],
        ),
        (
            [{"name": "iris-stable", "port": 8080, "weight": 50}, {"name": "iris-canary", "port": 8080, "weight": 50}],
            None,
            [{"name": "iris", "port": 8080}],
        ),
        (
            [OTHER, {"name": "iris", "port": 8080}],
            0,
            [
                OTHER,
                {"name": "iris-stable", "port": 8080, "weight": 100},
                {"name": "iris-canary", "port": 8080, "weight": 0},
            ],
        ),
    ],
    ids=["first-step", "next-step", "restored", "other-backends-kept"],
)
def test_our_refs_become_the_stable_and_the_canary_and_back(
    refs: list[dict[str, Any]], weight: int | None, expected: list[dict[str, Any]]
) -> None:
    (out,) = weighted_rules([rule(*refs)], "iris", weight)
    assert out["backendRefs"] == expected
    assert out["matches"] == rule()["matches"], "the rest of the rule is the owner's"


def test_rules_and_refs_that_are_not_ours_are_left_alone() -> None:
    foreign = [
        rule({"name": "iris", "port": 8080, "namespace": "elsewhere"}),
        rule({"name": "iris", "port": 8080, "kind": "ServiceImport", "group": "multicluster.x-k8s.io"}),
        rule({"name": "iris-full", "port": 8080}),
    ]
    assert weighted_rules(foreign, "iris", 30) == foreign
