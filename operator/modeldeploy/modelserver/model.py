"""The iris classifier: multinomial logistic regression evaluated in pure Python.

Weights come from `iris_model.json` (written by `scripts/train_iris.py`), so the
server needs no numpy or scikit-learn and starts in milliseconds, which matters
when a farm starts thousands of replicas.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

N_FEATURES = 4


@dataclass(frozen=True)
class IrisModel:
    features: tuple[str, ...]
    classes: tuple[str, ...]
    coefficients: tuple[tuple[float, ...], ...]
    intercepts: tuple[float, ...]

    def predict_proba(self, row: Sequence[float]) -> list[float]:
        logits = [
            b + math.fsum(w * x for w, x in zip(ws, row, strict=True))
            for ws, b in zip(self.coefficients, self.intercepts, strict=True)
        ]
        # Subtract the max before exp so large inputs cannot overflow.
        top = max(logits)
        exps = [math.exp(z - top) for z in logits]
        total = math.fsum(exps)
        return [e / total for e in exps]

    def predict(self, row: Sequence[float]) -> tuple[int, list[float]]:
        probs = self.predict_proba(row)
        return max(range(len(probs)), key=probs.__getitem__), probs


def model_document() -> dict[str, Any]:
    """The raw weights file, including training checks and the baseline proportions."""
    text = resources.files(__package__).joinpath("iris_model.json").read_text()
    doc: dict[str, Any] = json.loads(text)
    return doc


@cache
def load_model() -> IrisModel:
    doc = model_document()
    model = IrisModel(
        features=tuple(doc["features"]),
        classes=tuple(doc["classes"]),
        coefficients=tuple(tuple(float(w) for w in row) for row in doc["coefficients"]),
        intercepts=tuple(float(b) for b in doc["intercepts"]),
    )
    if len(model.features) != N_FEATURES or any(len(r) != N_FEATURES for r in model.coefficients):
        raise ValueError("iris_model.json must have 4 features")
    if len(model.classes) != len(model.coefficients) or len(model.intercepts) != len(model.classes):
        raise ValueError("iris_model.json: one coefficient row and intercept per class")
    return model
