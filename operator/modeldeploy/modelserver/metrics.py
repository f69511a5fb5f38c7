"""Prometheus metrics of one replica, in a registry of its own.

A farm runs many replicas in one process, and each must expose only its own
observations, so every replica gets a private `CollectorRegistry` instead of the
process-wide default one.

Feature buckets have bounds 0.0, 0.5, 1.0, ... 8.0 (plus +Inf): 0.5 wide between
0 and 8 cm. The iris training data spans sepal_length 4.3-7.9, sepal_width
2.0-4.4, petal_length 1.0-6.9 and petal_width 0.1-2.5 (cm), so all of it falls
in the finite buckets above 0, while the first (<= 0) and the +Inf (> 8) bucket
stay empty in training and catch impossible or drifted inputs. One shared set of
bounds serves all four features because a labelled histogram has a single
bucket layout; a drift baseline may use any subset of them (for instance every
other bound, for 1.0-wide buckets).

Class buckets 0.5 and 1.5 put class 0, 1 and 2 into the first, second and +Inf
bucket, one class per bucket.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from modeldeploy.modelserver.model import load_model

FEATURE_BUCKETS: tuple[float, ...] = tuple(0.5 * i for i in range(17))
CLASS_BUCKETS: tuple[float, ...] = (0.5, 1.5)
OUTCOMES = ("ok", "bad_request", "unknown_model", "unavailable")

FEATURE_METRIC = "modelserver_feature_value"
CLASS_METRIC = "modelserver_prediction_class"
REQUESTS_METRIC = "modelserver_inference_requests_total"
DURATION_METRIC = "modelserver_request_duration_seconds"
DURATION_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ReplicaMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.features = Histogram(
            FEATURE_METRIC,
            "Input feature values seen by inference requests.",
            ["feature"],
            buckets=FEATURE_BUCKETS,
            registry=self.registry,
        )
        self.classes = Histogram(
            CLASS_METRIC,
            "Predicted class index (0 setosa, 1 versicolor, 2 virginica).",
            buckets=CLASS_BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter(
            REQUESTS_METRIC,
            "Inference requests by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.durations = Histogram(
            DURATION_METRIC,
            "Inference request durations by HTTP status code, as a runtime's request metric.",
            ["code"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        # Create every labelled series up front: a scrape before the first
        # request then shows zero counts rather than no series at all.
        self._feature_children = [self.features.labels(feature=name) for name in load_model().features]
        for outcome in OUTCOMES:
            self.requests.labels(outcome=outcome)

    def observe(self, rows: Sequence[Sequence[float]], predicted: Sequence[int]) -> None:
        for row in rows:
            for child, value in zip(self._feature_children, row, strict=True):
                child.observe(value)
        for cls in predicted:
            self.classes.observe(cls)

    def count(self, outcome: str) -> None:
        self.requests.labels(outcome=outcome).inc()

    def timed(self, code: int, seconds: float) -> None:
        self.durations.labels(code=str(code)).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
