"""The iris model, request checking and fault parsing, without a server."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest

from modeldeploy.modelserver.__main__ import config_from_env
from modeldeploy.modelserver.faults import Faults, parse_faults
from modeldeploy.modelserver.inference import BadRequest, parse_infer_request, run_inference
from modeldeploy.modelserver.metrics import CLASS_BUCKETS, FEATURE_BUCKETS
from modeldeploy.modelserver.model import load_model, model_document


def test_pure_python_inference_reproduces_scikit_learn() -> None:
    model = load_model()
    checks = model_document()["checks"]
    assert len(checks) == 5
    for check in checks:
        probs = model.predict_proba(check["input"])
        assert probs == pytest.approx(check["probabilities"], abs=2e-6)
        assert math.fsum(probs) == pytest.approx(1.0)


def test_predicts_the_obvious_classes() -> None:
    model = load_model()
    assert model.predict([5.1, 3.5, 1.4, 0.2])[0] == 0  # a typical setosa
    assert model.predict([6.3, 3.3, 6.0, 2.5])[0] == 2  # a typical virginica
    # extreme inputs must not overflow exp()
    cls, probs = model.predict([1e6, -1e6, 1e6, 1e6])
    assert all(math.isfinite(p) for p in probs)
    assert 0 <= cls <= 2


def test_buckets_cover_the_training_ranges() -> None:
    assert FEATURE_BUCKETS[0] == 0.0
    assert FEATURE_BUCKETS[-1] == 8.0
    assert len(FEATURE_BUCKETS) == 17
    assert all(b - a == pytest.approx(0.5) for a, b in itertools.pairwise(FEATURE_BUCKETS))
    assert CLASS_BUCKETS == (0.5, 1.5)
    baseline = model_document()["baseline"]
    assert baseline["bounds"] == list(FEATURE_BUCKETS)
    for proportions in baseline["proportions"].values():
        assert len(proportions) == len(FEATURE_BUCKETS) + 1
        assert math.fsum(proportions) == pytest.approx(1.0, abs=1e-5)
        assert proportions[0] == 0
        assert proportions[-1] == 0


def tensor(**override: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "input-0",
        "shape": [2, 4],
        "datatype": "FP32",
        "data": [[1, 2, 3, 4], [5, 6, 7, 8]],
    }
    base.update(override)
    return {"inputs": [base]}


def test_nested_and_flat_data_are_the_same_request() -> None:
    nested = parse_infer_request(tensor())
    flat = parse_infer_request(tensor(data=[1, 2, 3, 4, 5, 6, 7, 8], datatype="FP64"))
    assert nested.rows == flat.rows == [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "request body must be a JSON object"),
        ({}, "'inputs' must be a non-empty list"),
        ({"inputs": [{}, {}]}, "one input tensor, got 2"),
        (tensor(datatype="INT32"), "datatype must be one of ['FP32', 'FP64']"),
        (tensor(shape=[2, 3]), "shape must be [N, 4]"),
        (tensor(shape=[0, 4], data=[]), "shape must be [N, 4]"),
        (tensor(shape=[True, 4]), "shape must be [N, 4]"),
        (tensor(data=[1, 2, 3]), "must hold 8 numbers"),
        (tensor(data=[[1, 2, 3], [4, 5, 6, 7]]), "inputs[0].data[0] must have 4 numbers"),
        (tensor(data=[[1, 2, 3, "x"], [4, 5, 6, 7]]), "inputs[0].data[0][3] must be a number, got str"),
        (tensor(data=[[1, 2, 3, True], [4, 5, 6, 7]]), "must be a number, got bool"),
        (tensor(name=5), "inputs[0].name must be a string"),
        ({**tensor(), "outputs": [{"name": "logits"}]}, "unknown output(s) ['logits']"),
        ({**tensor(), "id": 7}, "'id' must be a string"),
    ],
)
def test_bad_requests_name_the_problem(body: Any, message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_infer_request(body)
    assert message in str(caught.value)


def test_response_has_requested_outputs_and_echoes_id() -> None:
    request = parse_infer_request({**tensor(), "id": "abc", "outputs": [{"name": "label"}]})
    body, predicted = run_inference(load_model(), request, "iris", "3")
    assert body["id"] == "abc"
    assert body["model_version"] == "3"
    assert [o["name"] for o in body["outputs"]] == ["label"]
    assert len(predicted) == 2


def test_fault_parsing() -> None:
    assert parse_faults("ok") == Faults()
    assert parse_faults("hang") == Faults(mode="hang")
    assert parse_faults("unhealthy, version=2") == Faults(mode="unhealthy", version="2")
    assert parse_faults("slow=0.25") == Faults(delay=0.25)
    assert str(parse_faults("version=2,garbage")) == "garbage,version=2"
    assert str(parse_faults("ok")) == "ok"
    assert parse_faults("metrics=endless,version=2") == Faults(version="2", metrics="endless")
    assert str(parse_faults("metrics=huge")) == "metrics=huge"
    for bad, message in [
        ("explode", "unknown fault 'explode'"),
        ("hang,crash", "exclude each other"),
        ("slow=-1", "non-negative"),
        ("slow=x", "needs seconds"),
        ("version=", "unknown fault"),
        ("metrics=big", "metrics= needs one of huge, endless, trickle"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_faults(bad)


def test_config_from_env() -> None:
    config, host, port = config_from_env({"MODEL_NAME": "flowers", "MODEL_VERSION": "7", "PORT": "9000"})
    assert (config.model_name, config.version, config.faults, host, port) == ("flowers", "7", "ok", "0.0.0.0", 9000)
    with pytest.raises(ValueError, match="PORT must be"):
        config_from_env({"PORT": "0"})
    with pytest.raises(ValueError, match="unknown fault"):
        config_from_env({"MODELSERVER_FAULTS": "bogus"})
