"""One round's drift verdicts as the status states them, and whether they are worth a write (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from modeldeploy.api.v1alpha1 import DataDriftStatus, DriftSpec, MetricDriftStatus
from modeldeploy.drift.evaluate import DriftResult

SCORE_CHANGE = 0.1  # relative change of a drift score worth a status write
REFRESH_SECONDS = 300.0  # a drift verdict is re-stated at least this often under traffic


class Series(Protocol):
    """A watched histogram series (the prober's `MetricQuery`): a name, its labels, a printable form."""

    @property
    def name(self) -> str: ...

    @property
    def labels(self) -> tuple[tuple[str, str], ...]: ...


@dataclass(frozen=True)
class DataDriftReport:
    status: DataDriftStatus  # status.drift.data
    drifted: bool
    message: str  # the Drifted condition's message
    insufficient: bool = False  # no watched metric has minSamples in its window yet
    unscraped: frozenset[str] = frozenset()  # pods whose metrics could not be read this round


def drift_report(
    drift: DriftSpec,
    results: Sequence[tuple[Series, DriftResult]],
    drifted: bool,
    problems: list[str],
    unscraped: set[str],
    now: datetime,
) -> DataDriftReport:
    """status.drift.data and the Drifted message from one round's verdicts."""
    per_metric: list[MetricDriftStatus] = []
    worst: tuple[float, str] | None = None
    for series, result in results:
        per_metric.append(
            MetricDriftStatus(
                name=series.name,
                labels=dict(series.labels) or None,
                score=round(result.score, 4) if result.score is not None else None,
                samples=int(result.samples),
            )
        )
        if result.drifted and (worst is None or (result.score or 0) > worst[0]):
            worst = (result.score or 0.0, f"{series}: {result.reason} ({int(result.samples)} samples)")
    judged = any(not result.insufficient_samples for _, result in results)
    scores = [m.score for m in per_metric if m.score is not None]
    status = DataDriftStatus(
        method=drift.method,
        score=max(scores) if scores else None,
        threshold=drift.threshold,
        samples=min((m.samples or 0 for m in per_metric), default=0),
        window_seconds=drift.window_seconds,
        last_evaluated=now,
        drifted=drifted,
        metrics=per_metric,
    )
    if drifted and worst is not None:
        message = f"data drift on {worst[1]}"
    elif per_metric:
        message = "; ".join(
            f"{m.name}: {drift.method} {m.score if m.score is not None else 'n/a'} over {m.samples} samples"
            for m in per_metric
        )
    else:
        message = "no drift metrics"
    if problems:
        message += f" (scrape problems: {'; '.join(problems[:3])})"
    if not judged and not drifted:
        message = f"fewer than {drift.min_samples} samples in the window yet: {message}"
    return DataDriftReport(
        status=status, drifted=drifted, message=message, insufficient=not judged, unscraped=frozenset(unscraped)
    )


def meaningfully_different(previous: DataDriftReport, fresh: DataDriftReport, now: datetime) -> bool:
    """Whether the new drift result deserves a status write.

    Under steady traffic the score and sample count move a little every round; writing each
    wiggle would cost a write per ModelDeployment per interval. A change of verdict always
    counts, a score that moved by more than 10% counts, and so does a stale statement. So does a
    replica whose metrics cannot be read, or can again: drift is judged without it meanwhile,
    and the person reading the status needs to know which one and why.
    """
    if (previous.drifted, previous.insufficient) != (fresh.drifted, fresh.insufficient):
        return True
    if previous.unscraped != fresh.unscraped:
        return True
    old, new = previous.status.score, fresh.status.score
    if (old is None) != (new is None):
        return True
    if old is not None and new is not None and abs(new - old) > SCORE_CHANGE * max(abs(old), 0.01):
        return True
    stated = previous.status.last_evaluated
    return stated is None or (now - stated).total_seconds() >= REFRESH_SECONDS
