"""Train a tiny iris classifier and write an MLServer model folder; run with the MLServer venv's python.

    python train.py <folder> --name iris --version 1.0.0 [--dependency-version sklearn/1.9.1]

Writes <folder>/model.joblib and <folder>/model-settings.json. The model is trained at test
time, with the scikit-learn that MLServer will load it with, so no binary is committed and no
pickle crosses scikit-learn versions. Iris ships inside scikit-learn: nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import joblib  # type: ignore[import-untyped, import-not-found, unused-ignore]
from sklearn.datasets import load_iris  # type: ignore[import-untyped, import-not-found, unused-ignore]
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped, import-not-found, unused-ignore]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--name", default="iris")
    parser.add_argument("--version", default="1.0.0", help="parameters.version; an empty string leaves it out")
    parser.add_argument(
        "--dependency-version",
        action="append",
        dest="dependency_versions",
        help="an entry of model-settings' `versions`, which MLServer documents as library versions",
    )
    args = parser.parse_args()
    folder: Path = args.folder
    folder.mkdir(parents=True, exist_ok=True)

    features, labels = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(features, labels)
    accuracy = float(model.score(features, labels))
    if accuracy < 0.9:
        raise SystemExit(f"the iris model trained badly: accuracy {accuracy:.3f}")
    joblib.dump(model, folder / "model.joblib")

    parameters = {"uri": "./model.joblib"}
    if args.version:
        parameters["version"] = args.version
    settings: dict[str, object] = {
        "name": args.name,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": parameters,
    }
    if args.dependency_versions:
        settings["versions"] = args.dependency_versions
    (folder / "model-settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    print(json.dumps({"folder": str(folder), "accuracy": round(accuracy, 4), **settings}))


if __name__ == "__main__":
    main()
