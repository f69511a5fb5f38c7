"""What the runtimes export about the requests they serve: one histogram each, named as they name it.

Read by the canary's analysis (rollout/evidence) and by the KEDA trigger's default query
(render/keda): both need the same names, and neither may import the other.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RequestMetricName:
    """A runtime's request-duration histogram, the label holding the HTTP status, if any, and the
    label suffixes that keep only inference requests (a histogram of every path counts the probes)."""

    name: str
    status_label: str | None
    only: tuple[tuple[str, str], ...] = ()


KNOWN_REQUEST_METRICS: tuple[RequestMetricName, ...] = (
    RequestMetricName("modelserver_request_duration_seconds", "code"),  # the modeldeploy reference server
    # MLServer's REST server (starlette_exporter, paths grouped as routed: ".../{model_name}/infer")
    RequestMetricName("rest_server_request_duration_seconds", "status_code", (("path", "/infer"),)),
    RequestMetricName("vllm:e2e_request_latency_seconds", None),  # vLLM (errors are not counted there)
)
