"""A pod's model fetch failing, read from the pod's status the way the kubelet writes it, and put on the status."""

from __future__ import annotations

from typing import Any

import pytest

from modeldeploy.controller.cache import slim_pod
from modeldeploy.status.artifacts import fetch_failure, fetch_failures, model_status
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
        ({"state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}, "OOMKilled (exit code 137)"),
        # killed mid-way: FallbackToLogsOnError put the log's tail there, not a reason
        (
            {
                "state": {
                    "terminated": {"exitCode": 137, "reason": "OOMKilled", "message": "fetched 300.0 of 900.0 MiB"}
                }
            },
            "OOMKilled (exit code 137); last output: fetched 300.0 of 900.0 MiB",
        ),
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


def fetched(name: str, report: str, exit_code: int = 0, deleting: bool = False) -> dict[str, Any]:
    done = {"terminated": {"exitCode": exit_code, "reason": "Completed", "message": report}}
    return pod(name, deleting=deleting, state=done)


URI = "s3://models/iris/2.0.0/model.joblib"
DIGEST = "ab" * 32
REPORT = f'{{"uri":"{URI}","sha256":"{DIGEST}","files":1}}'


def test_the_model_section_says_what_every_pod_fetched() -> None:
    pods = [fetched("iris-a", REPORT), slim_pod(fetched("iris-b", REPORT)), fetched("iris-c", REPORT, deleting=True)]
    status = model_status(URI, pods)
    assert status is not None
    assert (status.uri, status.sha256, status.files, status.fetched_replicas) == (URI, DIGEST, 1, 2)


def test_pods_that_disagree_show_no_checksum() -> None:
    other = REPORT.replace(DIGEST, "cd" * 32)
    status = model_status(URI, [fetched("iris-a", REPORT), fetched("iris-b", other)])
    assert status is not None
    assert (status.sha256, status.fetched_replicas) == (None, 2)


@pytest.mark.parametrize(
    "pods",
    [
        [],  # nothing fetched yet
        [pod(state=FAILED)],  # failing pods report nothing
        [fetched("iris-a", REPORT.replace("2.0.0", "1.0.0"))],  # the old version's pods
        [fetched("iris-a", "not json")],  # an older fetcher's message
    ],
)
def test_no_model_section_without_a_report_for_this_uri(pods: list[dict[str, Any]]) -> None:
    assert model_status(URI, pods) is None
    assert model_status(None, [fetched("iris-a", REPORT)]) is None


def test_the_model_section_reaches_the_written_status() -> None:
    status = compute_status(observation(model=model_status(URI, [fetched("iris-a", REPORT)])), now=NOW)
    assert status["model"] == {"uri": URI, "sha256": DIGEST, "files": 1, "fetchedReplicas": 1}


NO_MODELS = "cp: can't stat '/models': No such file or directory"


def test_a_failing_modelcar_copy_is_reported_like_a_failing_fetch() -> None:
    failing = pod()
    failing["status"]["initContainerStatuses"].append(
        {
            "name": "copy-model",
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {
                "terminated": {"exitCode": 1, "message": "cp: can't stat '/models': No such file or directory"}
            },
        }
    )
    assert fetch_failure(failing) == NO_MODELS
    assert fetch_failure(slim_pod(failing)) == fetch_failure(failing)
