"""Open Inference Protocol v2 request checking and response shaping, free of HTTP.

Kept apart from the handlers so every way a body can be wrong is tested without
a server, and so the error a client sees names the exact field at fault.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from modeldeploy.modelserver.model import N_FEATURES, IrisModel

DATATYPES = frozenset({"FP32", "FP64"})
OUTPUTS = ("predict", "probabilities", "label")
# Bounds the work one request can cause; the farm runs thousands of replicas in one process.
MAX_ROWS = 10_000


class BadRequest(ValueError):
    """The request body does not follow the protocol; the message is shown to the client."""


@dataclass(frozen=True)
class InferRequest:
    rows: list[list[float]]
    request_id: str | None
    outputs: tuple[str, ...]


def _number(value: Any, where: str) -> float:
    # bool is an int subclass, but true/false are not feature values.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"{where} must be a number, got {type(value).__name__}")
    out = float(value)
    if not math.isfinite(out):
        raise BadRequest(f"{where} must be finite")
    return out


def _rows(data: Any, n: int) -> list[list[float]]:
    if not isinstance(data, list):
        raise BadRequest("inputs[0].data must be a list")
    if len(data) == n and all(isinstance(r, list) for r in data) and n > 0:
        rows = data
    elif len(data) == n * N_FEATURES and not any(isinstance(v, list) for v in data):
        rows = [data[i : i + N_FEATURES] for i in range(0, len(data), N_FEATURES)]
    else:
        raise BadRequest(f"inputs[0].data must hold {n * N_FEATURES} numbers, flat or as {n} rows of {N_FEATURES}")
    out: list[list[float]] = []
    for i, row in enumerate(rows):
        if len(row) != N_FEATURES:
            raise BadRequest(f"inputs[0].data[{i}] must have {N_FEATURES} numbers, got {len(row)}")
        out.append([_number(v, f"inputs[0].data[{i}][{j}]") for j, v in enumerate(row)])
    return out


def parse_infer_request(body: Any) -> InferRequest:
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest("'inputs' must be a non-empty list")
    if len(inputs) != 1:
        raise BadRequest(f"this model takes one input tensor, got {len(inputs)}")
    tensor = inputs[0]
    if not isinstance(tensor, dict):
        raise BadRequest("inputs[0] must be an object")
    if not isinstance(tensor.get("name"), str):
        raise BadRequest("inputs[0].name must be a string")
    datatype = tensor.get("datatype")
    if datatype not in DATATYPES:
        raise BadRequest(f"inputs[0].datatype must be one of {sorted(DATATYPES)}, got {datatype!r}")
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape)
        or shape[1] != N_FEATURES
        or not 1 <= shape[0] <= MAX_ROWS
    ):
        raise BadRequest(f"inputs[0].shape must be [N, {N_FEATURES}] with 1 <= N <= {MAX_ROWS}, got {shape!r}")
    rows = _rows(tensor.get("data"), shape[0])

    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest("'id' must be a string")
    outputs = _requested_outputs(body.get("outputs"))
    return InferRequest(rows=rows, request_id=request_id, outputs=outputs)


def _requested_outputs(requested: Any) -> tuple[str, ...]:
    if requested is None:
        return OUTPUTS
    if not isinstance(requested, list) or not all(isinstance(o, dict) for o in requested):
        raise BadRequest("'outputs' must be a list of objects")
    names = tuple(o.get("name") for o in requested)
    unknown = [n for n in names if n not in OUTPUTS]
    if unknown:
        raise BadRequest(f"unknown output(s) {unknown}: this model has {list(OUTPUTS)}")
    return tuple(str(n) for n in names)


def run_inference(
    model: IrisModel, req: InferRequest, model_name: str, model_version: str
) -> tuple[dict[str, Any], list[int]]:
    """Build the response body; also return the predicted classes for the metrics."""
    predicted: list[int] = []
    probabilities: list[float] = []
    for row in req.rows:
        cls, probs = model.predict(row)
        predicted.append(cls)
        probabilities.extend(probs)
    n = len(req.rows)
    tensors: dict[str, dict[str, Any]] = {
        "predict": {"name": "predict", "datatype": "INT64", "shape": [n], "data": predicted},
        "probabilities": {
            "name": "probabilities",
            "datatype": "FP64",
            "shape": [n, len(model.classes)],
            "data": probabilities,
        },
        "label": {"name": "label", "datatype": "BYTES", "shape": [n], "data": [model.classes[c] for c in predicted]},
    }
    body: dict[str, Any] = {
        "model_name": model_name,
        "model_version": model_version,
        "outputs": [tensors[name] for name in req.outputs],
    }
    if req.request_id is not None:
        body["id"] = req.request_id
    return body, predicted


def model_metadata(model: IrisModel, name: str, version: str) -> dict[str, Any]:
    return {
        "name": name,
        "versions": [version],
        "platform": "modeldeploy-python-logreg",
        "inputs": [{"name": "input-0", "datatype": "FP32", "shape": [-1, N_FEATURES]}],
        "outputs": [
            {"name": "predict", "datatype": "INT64", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP64", "shape": [-1, len(model.classes)]},
            {"name": "label", "datatype": "BYTES", "shape": [-1]},
        ],
        "parameters": {"features": list(model.features), "classes": list(model.classes)},
    }
