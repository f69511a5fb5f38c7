"""Generated ModelDeployments through the real apiserver: every one is rejected or judged.

hypothesis draws specs near the edges a user (or a typo) reaches: names in any script and
outside the BMP, versions and images of every length, ports past 65535, env vars whose
`valueFrom` the apiserver refuses with a 500, quantities that do not parse, requests above
limits, paths with `//`, autoscaling bounds crossed, pull secrets that do not exist, pod labels
that fight the selector. Each goes through `kubectl apply`, as a user sends it. Then:

- refused by the apiserver (the CRD's schema or its CEL rules): the error names the field;
- accepted: it ends Ready, or Stalled with a reason and a message, for the generation sent;
- either way: a bounded number of operator writes per object, and no traceback in its log.

`MODELDEPLOY_FAULTS_SPEC_ROUNDS` (default 3) rounds of `MODELDEPLOY_FAULTS_SPEC_BATCH`
(default 25) specs each; every round is applied at once and judged together.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from modeldeploy_dev.sandbox.cluster import Sandbox
from tests.conftest import Kubectl, condition, wait_for
from tests.faults.meters import AuditLog, StartOperator, get_obj, log_lines, tracebacks

pytestmark = [pytest.mark.integration, pytest.mark.faults]

ROUNDS = int(os.environ.get("MODELDEPLOY_FAULTS_SPEC_ROUNDS", "3"))
BATCH = int(os.environ.get("MODELDEPLOY_FAULTS_SPEC_BATCH", "25"))
REJECTED = "rejected by the apiserver"
WRITES_PER_OBJECT = 30  # children, a few status writes, retries of a Stalled apply: never a storm

# Text from every plane, surrogates excepted (JSON cannot carry them); control characters included.
any_text = st.text(st.characters(exclude_categories=("Cs",)), min_size=0, max_size=24)
label_value = st.from_regex(r"\A[A-Za-z0-9]([-A-Za-z0-9_.]{0,20}[A-Za-z0-9])?\Z")
# Each strategy leans towards values the schema accepts, so most specs reach the operator.
model_names = st.one_of(
    label_value,
    label_value,
    any_text,
    st.just("iris-\U0001f99c"),
    st.just("\u6a21\u578b"),
    st.text(st.sampled_from("ab/._-"), min_size=1, max_size=300),
)
versions = st.one_of(label_value, label_value, any_text, st.just("1" * 64), st.just("v1.0.0"))
images = st.one_of(
    st.sampled_from(["registry.invalid/modelserver:1", "registry.invalid/a/b@sha256:" + "a" * 64, "x"]),
    st.sampled_from(["registry.invalid/modelserver:2", "localhost:5000/m"]),
    any_text,
    st.just("registry.invalid/" + "a" * 1100),
)
quantities = st.sampled_from(
    ["100m", "250m", "1", "2", "0.5", "64Mi", "128Mi", "1Gi", "1Ki", "abc", "-1", "1.5.5", "", "1e2m"]
)
value_from = st.sampled_from(
    [
        {"fieldRef": {"fieldPath": "status.podIP"}},
        {"fieldRef": "status.podIP"},  # the apiserver answers 500: fieldRef wants a map
        {"secretKeyRef": {"name": "absent", "key": "k", "optional": True}},
        {"configMapKeyRef": {"name": "absent", "key": "k", "optional": True}},
        {},
        {"bogus": {"a": 1}},
    ]
)
env_vars = st.lists(
    st.fixed_dictionaries(
        {"name": st.one_of(st.sampled_from(["A", "MODEL_NAME", "x=y", "LOG_LEVEL"]), any_text)},
        optional={"value": any_text, "valueFrom": value_from},
    ),
    max_size=3,
)
resources = st.fixed_dictionaries(
    {},
    optional={
        # requests above limits: the schema cannot compare quantities, the apiserver answers 422
        "requests": st.dictionaries(st.sampled_from(["cpu", "memory", "gpu"]), quantities, max_size=2),
        "limits": st.dictionaries(st.sampled_from(["cpu", "memory"]), quantities, max_size=2),
    },
)
autoscaling = st.fixed_dictionaries(
    {"minReplicas": st.integers(-1, 3), "maxReplicas": st.integers(0, 5)},
    optional={"targetCPUUtilizationPercentage": st.integers(-5, 120)},
)
# One edit puts one value at one path of an otherwise valid spec: drawing every field from its
# edges at once would have the schema reject nearly every spec (9 in 10, measured), and the
# operator would only ever see the plain ones.
edits = st.one_of(
    st.tuples(st.just(("model", "name")), model_names),
    st.tuples(st.just(("model", "version")), versions),
    st.tuples(st.just(("runtime", "image")), images),
    st.tuples(st.just(("runtime", "port")), st.sampled_from([0, 1, 80, 8080, 65535, 65536])),
    st.tuples(st.just(("runtime", "env")), env_vars),
    st.tuples(st.just(("runtime", "resources")), resources),
    st.tuples(
        st.just(("runtime", "healthPath")),
        st.sampled_from(["/v2/health/live", "//x", "x", "/a b", "/ok?x=1", "/" + "p" * 300]),
    ),
    st.tuples(st.just(("runtime", "args")), st.lists(any_text, max_size=3)),
    st.tuples(st.just(("replicas",)), st.sampled_from([-1, 0, 1, 2, 3, 1001, 2147483647])),
    st.tuples(st.just(("autoscaling",)), autoscaling),
    st.tuples(
        st.just(("imagePullSecrets",)), st.sampled_from([[{"name": "absent-pull-secret"}], [{"name": "Bad_Name"}]])
    ),
    st.tuples(
        st.just(("podLabels",)),
        st.dictionaries(
            st.sampled_from(["team", "modeldeploy.io/name", "app.kubernetes.io/managed-by", "bad key"]),
            label_value,
            max_size=2,
        ),
    ),
)


def edited(base: dict[str, Any], changes: list[tuple[tuple[str, ...], Any]]) -> dict[str, Any]:
    spec = json.loads(json.dumps(base))
    for path, value in changes:
        target = spec
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = value
    return spec


specs = st.builds(
    edited,
    st.fixed_dictionaries(
        {
            "model": st.fixed_dictionaries({"name": label_value, "version": label_value}),
            "runtime": st.just({"image": "registry.invalid/modelserver:1"}),
            "replicas": st.integers(0, 2),
            "probing": st.just({"enabled": False}),  # replica health has its own scenarios (the farm faults)
        }
    ),
    st.lists(edits, min_size=0, max_size=2),
)
# Always in the first round: the edges that once caused storms or were silently accepted.
KNOWN_EDGES: list[dict[str, Any]] = [
    edited(
        {
            "model": {"name": "iris", "version": "1"},
            "runtime": {"image": "registry.invalid/m:1"},
            "replicas": 1,
            "probing": {"enabled": False},
        },
        [(path, value)],
    )
    for path, value in [
        (("model", "name"), "iris-\U0001f99c"),
        (("runtime", "env"), [{"name": "IP", "valueFrom": {"fieldRef": "status.podIP"}}]),
        (("runtime", "resources"), {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}),
        (("imagePullSecrets",), [{"name": "absent-pull-secret"}]),
        (("replicas",), 2147483647),
        (("runtime", "healthPath"), "//x"),
        (("runtime", "image"), "registry.invalid/" + "a" * 1100),
    ]
]


def judged(md: dict[str, Any]) -> str | None:
    """`Ready`, or `Stalled: <reason>`, once the operator has judged this generation; else None."""
    status = md.get("status") or {}
    if status.get("observedGeneration") != md["metadata"]["generation"]:
        return None
    if condition(md, "Ready").get("status") == "True":
        return "Ready"
    stalled = condition(md, "Stalled")
    if stalled.get("status") == "True":
        assert stalled.get("reason"), stalled
        assert stalled.get("message"), stalled
        return f"Stalled: {stalled['reason']}"
    return None


@pytest.fixture
def rounds() -> list[int]:
    return []


def test_every_generated_spec_is_rejected_with_a_reason_or_ends_ready_or_stalled(
    sandbox: Sandbox,
    crd: Path,
    kubectl: Kubectl,
    namespace: str,
    operators: StartOperator,
    audit: AuditLog,
    rounds: list[int],
) -> None:
    operator = operators(sandbox.kubeconfig, MODELDEPLOY_VERIFY_PULL_SECRETS="true")
    mark = audit.mark()
    outcomes: dict[str, int] = {}

    @settings(
        max_examples=ROUNDS,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @example(KNOWN_EDGES)
    @given(st.lists(specs, min_size=BATCH, max_size=BATCH))
    def one_round(batch: list[dict[str, Any]]) -> None:
        rounds.append(len(rounds))
        accepted: dict[str, dict[str, Any]] = {}
        for index, spec in enumerate(batch):
            name = f"gen-{len(rounds)}-{index}"
            doc = {"apiVersion": "modeldeploy.io/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": name}}
            doc["spec"] = spec
            result = kubectl("apply", "-f", "-", input=json.dumps(doc), check=False)
            if result.returncode != 0:
                assert "spec" in result.stderr, f"{name} refused without naming a field: {result.stderr}"
                outcomes[REJECTED] = outcomes.get(REJECTED, 0) + 1
                continue
            accepted[name] = spec
        verdicts: dict[str, str | None] = {}

        def all_judged() -> bool:
            for name in accepted:
                if verdicts.get(name) is None:
                    verdicts[name] = judged(get_obj(kubectl, "md", name))
            return all(verdicts.get(name) for name in accepted)

        try:
            wait_for(all_judged, timeout=90, interval=1, what="every accepted spec Ready or Stalled")
        except AssertionError:
            stuck = {n: (accepted[n], get_obj(kubectl, "md", n).get("status")) for n in accepted if not verdicts.get(n)}
            pytest.fail(f"accepted but neither Ready nor Stalled: {json.dumps(stuck, ensure_ascii=False)[:4000]}")
        for verdict in verdicts.values():
            assert verdict is not None
            outcomes[verdict] = outcomes.get(verdict, 0) + 1
        kubectl("delete", "md", "--all", "--wait=false")

    started = time.monotonic()
    one_round()
    time.sleep(5)  # a Stalled object's retries keep coming: they count too
    per_object: dict[str, int] = {}
    for entry in audit.operator_writes(mark, namespace):
        if entry.resource != "events":
            per_object[entry.name] = per_object.get(entry.name, 0) + 1
    worst = max(per_object.items(), key=lambda item: item[1], default=("none", 0))
    print(
        f"{len(rounds)} rounds of {BATCH} generated specs in {time.monotonic() - started:.0f}s: {outcomes}; "
        f"most writes for one object: {worst[1]} ({worst[0]})"
    )
    for expected in ("Ready", "Stalled: ApplyRejected", "Stalled: ImagePullSecretNotFound", REJECTED):
        assert outcomes.get(expected), f"no spec ended {expected!r}: {outcomes}"
    assert worst[1] <= WRITES_PER_OBJECT, sorted(per_object.items(), key=lambda item: -item[1])[:5]
    assert tracebacks(operator) == 0, "\n".join(log_lines(operator, "ERROR")[:10])
