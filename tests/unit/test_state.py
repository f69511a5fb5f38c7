"""The controller's shared state: the spec parsed once per generation, for every reader."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from modeldeploy.controller.state import ControllerState


def body(generation: int, resource_version: str, replicas: int = 2, uid: str = "u1") -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "ns",
            "name": "iris",
            "uid": uid,
            "generation": generation,
            "resourceVersion": resource_version,
        },
        "spec": {
            "model": {"name": "iris", "version": "1.0.0"},
            "runtime": {"image": "registry.invalid/m:1"},
            "replicas": replicas,
        },
    }


def test_a_status_write_costs_no_parse_and_a_new_generation_does() -> None:
    state = ControllerState()
    first = state.spec(body(1, "10"))
    assert state.spec(body(1, "11")) is first  # a status write: same generation, same parsed spec
    edited = state.spec(body(2, "12", replicas=3))
    assert edited is not first
    assert edited.replicas == 3


def test_a_recreated_object_of_the_same_name_is_parsed_again() -> None:
    state = ControllerState()
    first = state.spec(body(1, "10"))
    assert state.spec(body(1, "20", replicas=4, uid="u2")) is not first


def test_an_invalid_spec_raises_every_time_and_spec_or_none_says_none() -> None:
    state = ControllerState()
    invalid = body(1, "10", replicas=-1)
    for _ in range(2):
        with pytest.raises(ValidationError):
            state.spec(invalid)
    assert state.spec_or_none(invalid) is None


def test_forgetting_a_model_drops_its_spec() -> None:
    state = ControllerState()
    state.spec(body(1, "10"))
    state.forget(("ns", "iris"))
    assert state.specs == {}
