"""Faults a replica can be told to show, so tests can watch the operator cope with them.

A fault is given as text, as a test or the sandbox farm would write it:

- ``ok``: behave.
- ``unhealthy``: health and readiness endpoints (and inference) answer 503.
- ``hang``: every request is accepted and never answered, until the fault changes
  or the replica is removed (a wedged process).
- ``garbage``: every request gets 200 with a body that is neither JSON nor
  Prometheus text (a proxy or a broken runtime answering for the model).
- ``crash``: the connection is closed without any answer (a process dying mid-request).
- ``slow=<seconds>``: answers normally after a delay.
- ``version=<v>``: claims to serve version ``v`` instead of the configured one
  (a replica that lies about, or was rolled back to, another version).
- ``errors=<share>``: that share (0-1) of inference requests is answered 500, at random
  (a version that fails on some inputs); health stays fine.
- ``latency=<seconds>``: inference requests, and only they, answer after that delay
  (a slower model; the probes still answer at once).
- ``shift=<cm>``: the model sees every feature moved by that much before it predicts, so
  its predictions shift while the inputs it records stay as they came (a retrained model
  that learned something else).
- ``metrics=<body>``: the metrics endpoint turns hostile while health stays fine:
  ``huge`` announces 64 MiB and sends it, ``endless`` streams other families
  forever, ``trickle`` sends one valid line every 50 ms forever (a scraper that
  reads whole bodies, or has no deadline, is what these find).

``version=``, ``slow=``, ``errors=``, ``latency=``, ``shift=`` and ``metrics=`` combine with one of
the others, separated by commas, e.g. ``unhealthy,version=2``. Setting ``ok`` clears everything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, cast, get_args

Mode = Literal["ok", "unhealthy", "hang", "garbage", "crash"]
MODES: tuple[str, ...] = get_args(Mode)
MetricsBody = Literal["huge", "endless", "trickle"]
METRICS_BODIES: tuple[str, ...] = get_args(MetricsBody)


@dataclass(frozen=True)
class Faults:
    mode: Mode = "ok"
    version: str | None = None
    delay: float = 0.0
    metrics: MetricsBody | None = None
    error_share: float = 0.0
    latency: float = 0.0
    shift: float = 0.0

    def __str__(self) -> str:
        extras = self.version or self.delay or self.metrics or self.error_share or self.latency or self.shift
        parts: list[str] = [] if self.mode == "ok" and extras else [self.mode]
        if self.version is not None:
            parts.append(f"version={self.version}")
        if self.delay:
            parts.append(f"slow={self.delay:g}")
        if self.metrics is not None:
            parts.append(f"metrics={self.metrics}")
        if self.error_share:
            parts.append(f"errors={self.error_share:g}")
        if self.latency:
            parts.append(f"latency={self.latency:g}")
        if self.shift:
            parts.append(f"shift={self.shift:g}")
        return ",".join(parts)


def _number(key: str, value: str, *, low: float, high: float) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{key}= needs a number, got {value!r}") from None
    if not math.isfinite(number) or not low <= number <= high:
        raise ValueError(f"{key}= needs a number from {low:g} to {high:g}, got {value!r}")
    return number


def parse_faults(text: str) -> Faults:
    """Read a fault description; raise ValueError naming the part that is wrong."""
    mode: Mode = "ok"
    version: str | None = None
    delay = 0.0
    metrics: MetricsBody | None = None
    numbers: dict[str, float] = {}
    ranges = {"errors": (0.0, 1.0), "latency": (0.0, 3600.0), "shift": (-100.0, 100.0)}
    for raw in text.split(","):
        part = raw.strip()
        key, sep, value = part.partition("=")
        if sep and key == "version" and value:
            version = value
        elif sep and key == "slow":
            try:
                delay = float(value)
            except ValueError:
                raise ValueError(f"slow= needs seconds, got {value!r}") from None
            if not math.isfinite(delay) or delay < 0:
                raise ValueError(f"slow= needs a non-negative number of seconds, got {value!r}")
        elif sep and key in ranges:
            numbers[key] = _number(key, value, low=ranges[key][0], high=ranges[key][1])
        elif sep and key == "metrics":
            if value not in METRICS_BODIES:
                raise ValueError(f"metrics= needs one of {', '.join(METRICS_BODIES)}, got {value!r}")
            metrics = cast(MetricsBody, value)
        elif not sep and part in MODES:
            if mode != "ok" and part != mode:
                raise ValueError(f"faults {mode!r} and {part!r} exclude each other")
            mode = cast(Mode, part)
        else:
            raise ValueError(
                f"unknown fault {part!r}: use one of {', '.join(MODES)}, slow=<s>, version=<v>, metrics=<body>, "
                "errors=<share>, latency=<s>, shift=<cm>"
            )
    return Faults(
        mode=mode,
        version=version,
        delay=delay,
        metrics=metrics,
        error_share=numbers.get("errors", 0.0),
        latency=numbers.get("latency", 0.0),
        shift=numbers.get("shift", 0.0),
    )
