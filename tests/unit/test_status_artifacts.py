"""A pod's model fetch failing, read from the pod's status the way the kubelet writes it, and put on the status."""

from __future__ import annotations

from typing import Any

import pytest

from modeldeploy.controller.cache import slim_pod
from modeldeploy.status.artifacts import fetch_failure, fetch_failures
from tests.unit.test_status_compute import NOW, compute_status, observation, triple

REASON = "s3://models/iris/2.0.0: NoSuchKey (no object there, and none under it as a prefix)"


def pod(name: str = "iris-a", deleting: bool = False, **fetch: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": "team"}
    if deleting:
        metadata["deletionTimestamp"] = "2026-11-29T03:00:00Z"
    statuses = [{"name": "istio-init", "state": {"terminated": {"exitCode": 1, "message": "not ours"}}}]
    if fetch:
        statuses.append({"name": "fetch-model", **fetch})
    return {"metadata": metadata, "status": {"phase": "Pending", "initContainerStatuses": statuses}}


FAILED = {"terminated": {"exitCode": 1, "reason": "Error", "message": REASON}}


@pytest.mark.parametrize(
    ("fetch", "reason"),
    [
        ({}, None),  # no fetcher: the model is in the image
        ({"state": {"running": {}}}, None),  # first run, under way
        ({"state": FAILED}, REASON),
        # the kubelet waits out its backoff, then retries: the last run's reason stands meanwhile
        ({"state": {"waiting": {"reason": "CrashLoopBackOff"}}, "lastState": FAILED}, REASON),
        ({"state": {"running": {}}, "lastState": FAILED}, REASON),
        ({"state": {"terminated": {"exitCode": 0}}, "lastState": FAILED}, None),  # fixed: fetched at last
        ({"state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}, "exit code 137"),
        ({"state": {"terminated": {"exitCode": 1, "message": "line one\nthe reason\n"}}}, "the reason"),
    ],
)
def test_what_the_kubelet_says_of_the_fetcher(fetch: dict[str, Any], reason: str | None) -> None:
    assert fetch_failure(pod(**fetch)) == reason
    assert fetch_failure(slim_pod(pod(**fetch))) == reason, "the pod cache keeps what the reading needs"


def test_the_pod_cache_keeps_nothing_of_other_init_containers() -> None:
    slim = slim_pod(pod(state=FAILED))
    assert [c["name"] for c in slim["status"]["initContainerStatuses"]] == ["fetch-model"]
    assert "initContainerStatuses" not in slim_pod(pod())["status"]


def test_failing_pods_in_order_and_deleted_ones_left_out() -> None:
    pods = [pod("iris-b", state=FAILED), pod("iris-a", state=FAILED), pod("iris-c", deleting=True, state=FAILED)]
    assert fetch_failures(pods) == (("iris-a", REASON), ("iris-b", REASON))


def test_a_failing_fetch_is_stalled_with_the_fetchers_reason_and_recovers() -> None:
    failing = compute_status(observation(fetch_failures=(("iris-a", REASON), ("iris-b", REASON))), now=NOW)
    assert triple(failing, "Stalled") == ("True", "ModelFetchFailed")
    assert triple(failing, "Ready") == ("False", "Stalled")
    message = next(c["message"] for c in failing["conditions"] if c["type"] == "Stalled")
    assert message == f"{REASON} (pod iris-a and 1 more)"
    fixed = compute_status(observation(previous_status=failing), now=NOW)
    assert triple(fixed, "Stalled") == ("False", "NoErrors")
    assert triple(fixed, "Ready") == ("True", "Ready")
