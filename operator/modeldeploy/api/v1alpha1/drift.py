"""The `spec.drift` section: which histograms to watch and the distribution they should follow.

The baseline is declared as Prometheus histogram buckets so it can be compared with what the
model server exports without any binning step in between.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Literal, Self

from pydantic import ConfigDict, Field, StrictStr, model_validator

from modeldeploy.api.base import CelRule, SpecModel, cel

DriftMethod = Literal["psi", "ks", "jsd"]

METRIC_NAME_PATTERN = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"
LABEL_NAME_PATTERN = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
PROPORTIONS_TOLERANCE = 0.01
MAX_BOUNDS = 64
MAX_DRIFT_METRICS = 16
MAX_LABEL_VALUE_LENGTH = 1024
"""Prometheus allows any label value; a selector value longer than this is a mistake."""
MAX_WINDOW_SECONDS = 86400
"""The window lives in the operator's memory, one entry per replica scrape: a day is plenty."""

ONE_MORE_PROPORTION = CelRule(
    rule="size(self.proportions) == size(self.bounds) + 1",
    message="drift.metrics[].baseline.proportions must have one more item than bounds (the last is the +Inf bucket)",
    field_path=".proportions",
)
BOUNDS_INCREASING = CelRule(
    rule="self.bounds.isSorted() && self.bounds.all(b, self.bounds.exists_one(c, c == b))",
    message="drift.metrics[].baseline.bounds must be strictly increasing (bucket upper bounds, without +Inf)",
    field_path=".bounds",
)
PROPORTIONS_SUM_TO_ONE = CelRule(
    rule=(
        f"self.proportions.sum() >= {1 - PROPORTIONS_TOLERANCE} "
        f"&& self.proportions.sum() <= {1 + PROPORTIONS_TOLERANCE}"
    ),
    message=f"drift.metrics[].baseline.proportions must sum to 1 (within {PROPORTIONS_TOLERANCE})",
    field_path=".proportions",
)
LABEL_NAMES_VALID = CelRule(
    rule=f"self.all(k, k.matches('{LABEL_NAME_PATTERN}'))",
    message="drift.metrics[].labels keys must be Prometheus label names matching " + LABEL_NAME_PATTERN,
)

FiniteBound = Annotated[float, Field(allow_inf_nan=False)]
Proportion = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


class HistogramBaseline(SpecModel):
    """The expected distribution, bucket by bucket, of one histogram."""

    model_config = ConfigDict(json_schema_extra=cel(ONE_MORE_PROPORTION, BOUNDS_INCREASING, PROPORTIONS_SUM_TO_ONE))

    bounds: list[FiniteBound] = Field(
        min_length=1,
        max_length=MAX_BOUNDS,
        description=(
            "Finite bucket upper bounds, strictly increasing, as in the histogram's 'le' labels "
            "(the +Inf bucket is implied)."
        ),
    )
    proportions: list[Proportion] = Field(
        min_length=2,
        max_length=MAX_BOUNDS + 1,
        description=(
            "Expected share of observations per bucket: one item per bound plus a last one for the +Inf "
            f"bucket; each >= 0, summing to 1 (within {PROPORTIONS_TOLERANCE}). Not cumulative."
        ),
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if any(lower >= upper for lower, upper in zip(self.bounds, self.bounds[1:], strict=False)):
            raise ValueError(BOUNDS_INCREASING.message)
        if len(self.proportions) != len(self.bounds) + 1:
            raise ValueError(ONE_MORE_PROPORTION.message)
        if not math.isclose(math.fsum(self.proportions), 1.0, abs_tol=PROPORTIONS_TOLERANCE):
            raise ValueError(PROPORTIONS_SUM_TO_ONE.message)
        return self


class DriftMetric(SpecModel):
    """One watched histogram series and its baseline."""

    name: str = Field(
        pattern=METRIC_NAME_PATTERN,
        max_length=256,
        description=(
            "Prometheus histogram exported by the model server, without the _bucket suffix, "
            "e.g. modelserver_feature_value."
        ),
    )
    labels: dict[str, Annotated[StrictStr, Field(max_length=MAX_LABEL_VALUE_LENGTH)]] | None = Field(
        default=None,
        max_length=16,
        description=(
            "Label values that select one series of the histogram, matched exactly, e.g. {feature: petal_length}. "
            "Series matching these labels are summed."
        ),
        json_schema_extra=cel(LABEL_NAMES_VALID),
    )
    baseline: HistogramBaseline = Field(description="Expected distribution of the histogram.")

    @model_validator(mode="after")
    def _label_names(self) -> Self:
        if self.labels and not all(re.fullmatch(LABEL_NAME_PATTERN, key) for key in self.labels):
            raise ValueError(LABEL_NAMES_VALID.message)
        return self


class DriftSpec(SpecModel):
    """Data-drift detection: compare live histograms with their baselines over a sliding window."""

    method: DriftMethod = Field(
        default="psi",
        description=(
            "Distance between live and baseline distributions: psi (population stability index), "
            "ks (Kolmogorov-Smirnov statistic) or jsd (Jensen-Shannon distance)."
        ),
    )
    threshold: float = Field(
        default=0.2,
        gt=0,
        allow_inf_nan=False,
        description="Score above which a metric counts as drifted (0.2 is the usual PSI alarm level).",
    )
    min_samples: int = Field(
        default=100,
        ge=1,
        description="Observations needed in the window before a score is computed; fewer leave Drifted Unknown.",
    )
    window_seconds: int = Field(
        default=3600,
        ge=1,
        le=MAX_WINDOW_SECONDS,
        description=f"Length of the sliding window of live observations, in seconds (1-{MAX_WINDOW_SECONDS}).",
    )
    metrics: list[DriftMetric] = Field(
        min_length=1,
        max_length=MAX_DRIFT_METRICS,
        description="Histograms to watch; the deployment is drifted when any of them is.",
    )
