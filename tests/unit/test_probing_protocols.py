"""Protocol flows against canned answers: what is asked, and what the answers are taken to mean."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from modeldeploy.probing.protocols import (
    Findings,
    ProbeFailed,
    ProbeRequest,
    ProbeResponse,
    abandon_flow,
    probe_flow,
    run_flow,
)
from modeldeploy.probing.targets import CustomPaths, ProbeTarget, ProtocolName

Answer = ProbeResponse | ProbeFailed


def target(protocol: ProtocolName = "v2", expected: str | None = "1", **kw: Any) -> ProbeTarget:
    return ProbeTarget(
        pod="p", ip="127.0.60.1", port=8080, model_name="iris", protocol=protocol, expected_version=expected, **kw
    )


def js(body: Any, status: int = 200) -> ProbeResponse:
    return ProbeResponse(status, json.dumps(body).encode())


OK = ProbeResponse(200)


def run(t: ProbeTarget, answers: Mapping[str, Answer]) -> tuple[Findings, list[str]]:
    asked: list[str] = []

    def respond(request: ProbeRequest) -> ProbeResponse:
        asked.append(request.path)
        answer = answers.get(request.path, ProbeResponse(404))
        if isinstance(answer, ProbeFailed):
            raise answer
        return answer

    return run_flow(probe_flow(t), respond), asked


V2_UP = {
    "/v2/health/live": OK,
    "/v2/health/ready": OK,
    "/v2/models/iris/ready": OK,
}


def test_v2_healthy_with_versioned_readiness() -> None:
    health, asked = run(
        target(),
        {**V2_UP, "/v2/models/iris/versions/1/ready": OK, "/v2/models/iris": js({"name": "iris", "versions": ["1"]})},
    )
    assert health == Findings(
        live=True, ready=True, model_ready=True, served_version="1", version_matches=True, error=None
    )
    # a ready server is live, a ready version is a ready model: three requests on the healthy path
    assert asked == ["/v2/health/ready", "/v2/models/iris/versions/1/ready", "/v2/models/iris"]


def test_v2_a_server_not_ready_is_asked_whether_it_is_live() -> None:
    answers = {**V2_UP, "/v2/health/ready": ProbeResponse(503), "/v2/models/iris/versions/1/ready": OK}
    answers["/v2/models/iris"] = js({"name": "iris", "versions": ["1"]})
    health, asked = run(target(), answers)
    assert (health.live, health.ready, health.model_ready) == (True, False, True)
    assert asked[:2] == ["/v2/health/ready", "/v2/health/live"]
    assert health.error == "HTTP 503 on /v2/health/ready"


def test_v2_a_dead_server_reports_liveness_first() -> None:
    answers = {"/v2/health/ready": ProbeResponse(503), "/v2/health/live": ProbeResponse(500)}
    health, _ = run(target(), answers)
    assert (health.live, health.ready) == (False, False)
    assert health.error == "HTTP 500 on /v2/health/live"


def test_v2_versioned_404_then_metadata_names_the_actual_version() -> None:
    health, _ = run(
        target(),
        {
            **V2_UP,
            "/v2/models/iris/versions/1/ready": ProbeResponse(404),
            "/v2/models/iris": js({"versions": ["2"]}),
            "/v2/models/iris/versions/2/ready": ProbeResponse(200),  # the runtime confirms its claim
        },
    )
    assert health.served_version == "2"
    assert health.version_matches is False
    assert health.error is None


def test_v2_a_listed_version_the_runtime_does_not_confirm_is_not_believed() -> None:
    # MLServer lists library versions ("sklearn/1.9.1") in `versions`; it answers 404 for them.
    health, _ = run(
        target(),
        {
            **V2_UP,
            "/v2/models/iris/versions/1/ready": ProbeResponse(404),
            "/v2/models/iris": js({"versions": ["sklearn/1.9.1"]}),
            "/v2/models/iris/versions/sklearn%2F1.9.1/ready": ProbeResponse(404),
        },
    )
    assert health.served_version is None
    assert health.version_matches is False


def test_v2_versioned_404_with_empty_versions_is_a_mismatch_of_unknown_version() -> None:
    # MLServer-style [] says nothing, but the 404 already said "not version 1".
    health, _ = run(
        target(),
        {**V2_UP, "/v2/models/iris/versions/1/ready": ProbeResponse(404), "/v2/models/iris": js({"versions": []})},
    )
    assert health.served_version is None
    assert health.version_matches is False


def test_v2_versioned_404_while_model_not_ready_is_no_evidence() -> None:
    answers = {
        **V2_UP,
        "/v2/models/iris/ready": ProbeResponse(503),
        "/v2/models/iris/versions/1/ready": ProbeResponse(404),
        "/v2/models/iris": js({"versions": None}),
    }
    health, _ = run(target(), answers)
    assert health.model_ready is False
    assert health.version_matches is None
    assert health.error == "HTTP 503 on /v2/models/iris/ready"


@pytest.mark.parametrize(
    ("metadata", "served"),
    [
        ({"versions": None}, None),  # KServe: null is absent evidence
        ({"versions": []}, None),  # MLServer
        ({"versions": ["1", "2"]}, None),  # several loaded: says nothing about which answers
        ({"versions": [], "model_version": "7"}, "7"),
        ({"versions": [3]}, "3"),
        ({"versions": [True]}, None),
    ],
)
def test_v2_metadata_version_evidence_when_versioned_endpoint_is_unsupported(
    metadata: dict[str, Any], served: str | None
) -> None:
    answers = {**V2_UP, "/v2/models/iris/versions/1/ready": ProbeResponse(501), "/v2/models/iris": js(metadata)}
    health, _ = run(target(), answers)
    assert health.served_version == served
    assert health.version_matches is (None if served is None else served == "1")


def test_v2_without_expected_version_skips_versioned_check() -> None:
    health, asked = run(target(expected=None), {**V2_UP, "/v2/models/iris": js({"versions": ["4"]})})
    assert health.served_version == "4"
    assert health.version_matches is None
    assert not any("/versions/" in p for p in asked)


def test_v2_unhealthy_reports_first_failing_endpoint() -> None:
    answers = {
        "/v2/health/live": OK,
        "/v2/health/ready": ProbeResponse(503),
        "/v2/models/iris/ready": ProbeResponse(503),
        "/v2/models/iris": js({"versions": ["1"]}),
    }
    health, _ = run(target(expected=None), answers)
    assert (health.live, health.ready, health.model_ready) == (True, False, False)
    assert health.error == "HTTP 503 on /v2/health/ready"


def test_v2_malformed_metadata_is_an_error_even_when_health_is_200() -> None:
    answers = {**V2_UP, "/v2/models/iris/versions/1/ready": OK, "/v2/models/iris": ProbeResponse(200, b"<html>oops")}
    health, _ = run(target(), answers)
    assert health.error == "malformed JSON from /v2/models/iris"
    assert health.served_version == "1"  # the versioned endpoint still counts


def test_v2_metadata_for_another_model_is_an_error() -> None:
    answers = {**V2_UP, "/v2/models/iris": js({"name": "mnist", "versions": ["1"]})}
    health, _ = run(target(expected=None), answers)
    assert health.error == "/v2/models/iris describes model 'mnist'"


def test_transport_failure_stops_the_flow_and_keeps_it_as_error() -> None:
    health, asked = run(target(), {"/v2/health/ready": ProbeFailed("timeout after 2s on /v2/health/ready")})
    assert asked == ["/v2/health/ready"]
    assert health == Findings(error="timeout after 2s on /v2/health/ready")


def test_failure_midway_keeps_what_was_learned() -> None:
    health, _ = run(target(), {**V2_UP, "/v2/models/iris/ready": ProbeFailed("connection closed")})
    assert (health.live, health.ready, health.model_ready) == (True, True, None)
    assert health.error == "connection closed"


def test_abandon_flow_keeps_partial_findings() -> None:
    flow = probe_flow(target())
    assert next(flow) == ProbeRequest("/v2/health/ready")
    assert flow.send(OK) == ProbeRequest("/v2/models/iris/versions/1/ready")
    health = abandon_flow(flow, "deadline of 4s exceeded")
    assert (health.live, health.ready) == (True, True)
    assert health.model_ready is None
    assert health.error == "deadline of 4s exceeded"
    # a flow that never started knows nothing
    assert abandon_flow(probe_flow(target()), "late") == Findings(error="late")


def test_v1_tensorflow_serving_versions() -> None:
    status = {
        "model_version_status": [
            {"version": "1", "state": "AVAILABLE"},
            {"version": "2", "state": "AVAILABLE"},
            {"version": "3", "state": "LOADING"},
        ]
    }
    health, asked = run(target("v1", expected="2"), {"/v1/models/iris": js(status)})
    assert asked == ["/v1/models/iris"]
    assert (health.live, health.ready, health.model_ready) == (True, True, True)
    assert health.served_version == "2"
    assert health.version_matches is True

    one = {"model_version_status": [{"version": 3, "state": "AVAILABLE"}]}
    health, _ = run(target("v1", expected="2"), {"/v1/models/iris": js(one)})
    assert (health.served_version, health.version_matches) == ("3", False)

    loading = {"model_version_status": [{"version": "2", "state": "LOADING"}]}
    health, _ = run(target("v1", expected="2"), {"/v1/models/iris": js(loading)})
    assert health.model_ready is False
    assert health.error == "no AVAILABLE version in /v1/models/iris"


def test_v1_kserve_ready_flag() -> None:
    health, _ = run(target("v1"), {"/v1/models/iris": js({"name": "iris", "ready": True})})
    assert (health.live, health.ready, health.model_ready, health.served_version) == (True, True, True, None)
    health, _ = run(target("v1"), {"/v1/models/iris": js({"name": "iris", "ready": False})})
    assert health.model_ready is False
    assert health.error == "/v1/models/iris says the model is not ready"


def test_v1_not_found() -> None:
    health, _ = run(target("v1"), {})
    assert (health.live, health.model_ready) == (True, False)
    assert health.error == "HTTP 404 on /v1/models/iris"


def test_openai_lists_the_model() -> None:
    listing = {"object": "list", "data": [{"id": "other"}, {"id": "iris"}]}
    health, asked = run(target("openai"), {"/health": OK, "/v1/models": js(listing)})
    assert asked == ["/health", "/v1/models"]
    assert (health.live, health.ready, health.model_ready, health.error) == (True, True, True, None)

    health, _ = run(target("openai"), {"/health": OK, "/v1/models": js({"data": [{"id": "other"}]})})
    assert health.model_ready is False
    assert health.error == "model 'iris' not listed by /v1/models"

    health, _ = run(target("openai"), {"/health": OK, "/v1/models": ProbeResponse(200, b"{")})
    assert health.error == "malformed JSON from /v1/models"


def test_custom_paths() -> None:
    paths = CustomPaths(health="/healthz", readiness="/readyz", version="/version")
    t = target("custom", expected="5", custom_paths=paths)
    health, asked = run(t, {"/healthz": OK, "/readyz": ProbeResponse(204), "/version": js({"model_version": 5})})
    assert asked == ["/healthz", "/readyz", "/version"]
    assert (health.live, health.ready, health.model_ready) == (True, True, True)
    assert (health.served_version, health.version_matches) == ("5", True)

    health, _ = run(t, {"/healthz": OK, "/readyz": ProbeResponse(500), "/version": js({"version": "4"})})
    assert health.ready is False
    assert health.error == "HTTP 500 on /readyz"
    assert health.version_matches is False


def test_custom_without_paths_knows_nothing() -> None:
    health, asked = run(target("custom"), {})
    assert asked == []
    assert health == Findings()


# Every path a flow asks for goes through ProbeTarget.url, which applies the spec's path rule
# (modeldeploy.api.rules); the standard paths, built from the model name and version, must pass
# it for any name and version the spec admits, or the prober would fail on a valid spec.
AWKWARD_NAMES = ["iris", "org/model+v", "my model", "caf\u00e9", "a%b", "x?y#z", "~_.-", "\\\\"]


@pytest.mark.parametrize("protocol", ["v2", "v1", "openai"])
@pytest.mark.parametrize("name", AWKWARD_NAMES)
def test_standard_paths_pass_the_shared_path_rule(protocol: ProtocolName, name: str) -> None:
    probe = ProbeTarget(
        pod="p", ip="127.0.60.1", port=8080, model_name=name, protocol=protocol, expected_version="1.0_rc-1.A"
    )
    asked: list[str] = []

    def respond(request: ProbeRequest) -> ProbeResponse:
        asked.append(probe.url(request.path))  # raises ValueError for a path the rule refuses
        if request.path.endswith("/ready") or request.path in ("/health", "/v2/health/live"):
            return OK
        return js({"name": name, "versions": ["2"], "model_version_status": [{"version": 2, "state": "AVAILABLE"}]})

    run_flow(probe_flow(probe), respond)
    assert asked
    assert all(url.startswith("http://127.0.60.1:8080/") for url in asked)
