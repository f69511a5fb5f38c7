"""`modeldeploy rollout status|history`: what a person reads, for each state of the object."""

from __future__ import annotations

from typing import Any

import pytest

from modeldeploy.cli import build_parser
from modeldeploy.cli_rollout import DONE, NOT_DONE, action_patch, action_refusal, history_table, rollout_status

Obj = dict[str, Any]
ROLLING = "rolling out: 1/3 replicas updated"
NO_RUNTIME = "no runtime selects model.format 'onnx'"


def md(generation: int = 2, observed: int | None = 2, **conditions: tuple[str, str, str]) -> Obj:
    status: Obj = {
        "replicas": 3,
        "readyReplicas": 3,
        "conditions": [{"type": t, "status": s, "reason": r, "message": m} for t, (s, r, m) in conditions.items()],
        "history": [{"revision": 4, "version": "2.0.0", "outcome": "Promoted"}],
    }
    if observed is not None:
        status["observedGeneration"] = observed
    return {
        "metadata": {"name": "iris", "generation": generation},
        "spec": {"model": {"version": "2.0.0"}},
        "status": status,
    }


@pytest.mark.parametrize(
    ("obj", "code", "text", "worth_waiting"),
    [
        (
            md(Ready=("True", "Ready", "ok")),
            DONE,
            "modeldeployment 'iris' successfully rolled out: revision 4, version 2.0.0 on 3/3 replicas",
            False,
        ),
        (
            md(observed=1, Ready=("True", "Ready", "ok")),
            NOT_DONE,
            "waiting for the operator to observe generation 2 of modeldeployment 'iris'",
            True,
        ),
        (
            md(
                Ready=("False", "RollingOut", "x"),
                Reconciling=("True", "RollingOut", "rolling out: 1/3 replicas updated"),
            ),
            NOT_DONE,
            "waiting for modeldeployment 'iris' (revision 4, version 2.0.0): rolling out: 1/3 replicas updated",
            True,
        ),
        (
            md(
                Ready=("False", "Stalled", "x"), Stalled=("True", "NoRuntime", "no runtime selects model.format 'onnx'")
            ),
            NOT_DONE,
            "modeldeployment 'iris' is stalled (NoRuntime): no runtime selects model.format 'onnx'",
            False,
        ),
    ],
    ids=["rolled-out", "not-observed", "rolling", "stalled"],
)
def test_rollout_status(obj: Obj, code: int, text: str, worth_waiting: bool) -> None:
    assert rollout_status(obj) == (code, text, worth_waiting)


def test_history_is_a_table_newest_first() -> None:
    obj = md()
    obj["status"]["history"] = [
        {"revision": 2, "version": "2.0.0", "outcome": "Promoted", "image": "i:2", "started": "T2", "served": "T3"},
        {
            "revision": 1,
            "version": "1.0.0",
            "outcome": "Superseded",
            "runtime": "mlserver-sklearn",
            "image": "i:1",
            "started": "T0",
            "served": "T1",
            "finished": "T2",
            "reason": "replaced by revision 2",
        },
    ]
    lines = history_table(obj).splitlines()
    assert lines[0].split() == [
        "REVISION",
        "VERSION",
        "OUTCOME",
        "RUNTIME",
        "IMAGE",
        "STARTED",
        "SERVED",
        "FINISHED",
        "REASON",
    ]
    assert lines[1].split() == ["2", "2.0.0", "Promoted", "-", "i:2", "T2", "T3", "-", "-"]
    assert lines[2].split()[:8] == ["1", "1.0.0", "Superseded", "mlserver-sklearn", "i:1", "T0", "T1", "T2"]
    assert lines[2].endswith("replaced by revision 2")
    assert "no revisions yet" in history_table({"metadata": {"name": "iris"}, "status": {}})


def test_the_command_line_takes_kubectls_flags() -> None:
    args = build_parser(setting_flags=False).parse_args(
        ["rollout", "status", "iris", "-n", "team", "--wait", "--timeout", "30", "--kubeconfig", "k", "--context", "c"]
    )
    assert (args.action, args.name, args.namespace, args.wait, args.timeout) == ("status", "iris", "team", True, 30.0)
    assert (args.kubeconfig, args.context) == ("k", "c")


def _with_rollout(phase: str | None, steps: int | None = 2) -> dict[str, object]:
    status: dict[str, object] = {"rollout": {"phase": phase, "steps": steps}} if phase else {}
    return {"apiVersion": "modeldeploy.io/v1alpha1", "metadata": {"name": "iris", "namespace": "ml"}, "status": status}


@pytest.mark.parametrize(
    ("verb", "phase", "refused"),
    [
        ("promote", "Progressing", None),
        ("abort", "Progressing", None),
        ("retry", "RolledBack", None),
        ("promote", "RolledBack", "its rollout is RolledBack; promote needs a rollout that is Progressing"),
        ("retry", "Promoted", "its rollout is Promoted; retry needs a rollout that is RolledBack"),
        ("abort", None, "it has no canary or watched rollout"),
    ],
)
def test_actions_are_asked_only_of_a_rollout_that_can_take_them(
    verb: str, phase: str | None, refused: str | None
) -> None:
    refusal = action_refusal(_with_rollout(phase), verb)
    if refused is None:
        assert refusal is None
    else:
        assert refusal is not None
        assert refusal.startswith(f"cannot {verb} modeldeployment 'iris': ")
        assert refused in refusal


def test_a_watched_rolling_update_can_be_aborted_not_promoted() -> None:
    assert action_refusal(_with_rollout("Progressing", steps=None), "abort") is None
    refusal = action_refusal(_with_rollout("Progressing", steps=None), "promote")
    assert refusal is not None
    assert "a rolling update has no steps to skip" in refusal


def test_an_action_is_one_annotation_applied_never_the_status_or_the_spec() -> None:
    body = action_patch(_with_rollout("Progressing"), "promote", "123")
    assert body == {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {
            "name": "iris",
            "namespace": "ml",
            "annotations": {"modeldeploy.io/rollout-action": "promote/123"},
        },
    }
