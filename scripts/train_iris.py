"""Fit the reference model server's iris classifier and write its weights as JSON.

The model server ships these weights so it needs neither scikit-learn nor numpy at
run time; this script is kept so the weights can be reproduced. It needs
scikit-learn (and so numpy), which the project does not depend on: run it from a
throwaway virtualenv, e.g.

    python -m venv /tmp/train && /tmp/train/bin/pip install scikit-learn
    /tmp/train/bin/python scripts/train_iris.py

The iris data set ships inside scikit-learn, so nothing is downloaded.

Besides the weights, the file records the training data's per-feature bucket
proportions on the model server's histogram bounds, so a drift baseline for the
examples can be copied from it instead of being computed by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import sklearn
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

OUT = Path(__file__).resolve().parent.parent / "operator" / "modeldeploy" / "modelserver" / "iris_model.json"
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
# Must equal modeldeploy.modelserver.metrics.FEATURE_BUCKETS: bounds 0.0, 0.5, ... 8.0.
BOUNDS = [round(0.5 * i, 1) for i in range(17)]
DIGITS = 6


def proportions(values: np.ndarray) -> list[float]:
    """Share of values per bucket (le semantics, as Prometheus counts them)."""
    counts = [0] * (len(BOUNDS) + 1)
    for v in values:
        idx = next((i for i, b in enumerate(BOUNDS) if v <= b), len(BOUNDS))
        counts[idx] += 1
    return [round(c / len(values), DIGITS) for c in counts]


def main() -> int:
    data = load_iris()
    x, y = data.data, data.target
    model = LogisticRegression(max_iter=1000, C=1.0, random_state=0)
    model.fit(x, y)
    accuracy = float(model.score(x, y))
    doc = {
        "name": "iris-logreg",
        "features": FEATURES,
        "classes": [str(c) for c in data.target_names],
        "coefficients": [[round(float(w), DIGITS) for w in row] for row in model.coef_],
        "intercepts": [round(float(b), DIGITS) for b in model.intercept_],
        "training": {
            "samples": len(y),
            "accuracy": round(accuracy, 4),
            "sklearn_version": sklearn.__version__,
            "solver": model.solver,
            "C": model.C,
        },
        # Rows with scikit-learn's own probabilities: the server's pure-Python
        # inference is tested against them.
        "checks": [
            {
                "input": [float(v) for v in x[i]],
                "probabilities": [round(float(p), DIGITS) for p in model.predict_proba(x[i : i + 1])[0]],
            }
            for i in (0, 60, 75, 120, 149)
        ],
        "baseline": {
            "bounds": BOUNDS,
            "proportions": {name: proportions(x[:, i]) for i, name in enumerate(FEATURES)},
        },
    }
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {OUT} (training accuracy {accuracy:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
