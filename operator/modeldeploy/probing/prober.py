"""Probe many replicas concurrently without letting any one of them slow the rest down.

Isolation is what matters here: a reconcile cycle waits for every replica, so
one wedged pod must cost the cycle at most its own timeout. Three bounds
enforce that: each HTTP request has the spec's timeout; each replica's whole
probe has a deadline (a server that trickles one byte per second never trips a
read timeout, so httpx alone cannot stop it); and a replica's health requests
and its metrics scrape run side by side, so two hanging ports cost one timeout,
not two. A global semaphore bounds how many replicas are probed at once, so a
deployment of thousands does not open thousands of sockets in one burst, and a
replica's deadline only starts once it holds a slot. Connections are pooled
per replica and closed after its probe (see `transport` for why).

Bodies are read up to a size limit: a replica is untrusted and must not be
able to make the operator buffer gigabytes. A metrics body is not buffered at
all: `metrics.scrape_histograms` filters it as it streams in (see there for its
caps). Every body is asked for uncompressed and refused otherwise: httpx
inflates each chunk whole, so 64 KiB of gzip would become 64 MiB in memory
before any size limit could look at it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from types import TracebackType

import httpx

from modeldeploy.api.v1alpha1 import ReplicaHealth
from modeldeploy.probing.metrics import MAX_SCRAPE_BYTES, Buckets, MetricQuery, MetricsError, scrape_histograms
from modeldeploy.probing.protocols import (
    Findings,
    ProbeFailed,
    ProbeFlow,
    ProbeRequest,
    ProbeResponse,
    abandon_flow,
    probe_flow,
)
from modeldeploy.probing.targets import ProbeTarget
from modeldeploy.probing.transport import Origin, OriginPoolTransport

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 256
DEFAULT_TIMEOUT = 2.0
MAX_BODY_BYTES = 1 << 20
_JSON_ACCEPT = "application/json"
# Ask for the classic text format; OpenMetrics is parsed too when a runtime insists.
_METRICS_ACCEPT = "text/plain;version=0.0.4;q=1.0,application/openmetrics-text;q=0.5,*/*;q=0.1"


@dataclass(frozen=True)
class ReplicaProbe:
    """One replica's probe: what its endpoints said, who it is, how long it took, and its histograms."""

    pod: str
    ip: str
    findings: Findings
    # Wall time of this replica's whole probe (health requests and scrape).
    latency_ms: float
    histograms: Mapping[MetricQuery, Buckets | MetricsError] = field(default_factory=dict)
    metrics_error: str | None = None

    @property
    def healthy(self) -> bool:
        found = self.findings
        return bool(found.live and found.ready and found.model_ready) and found.error is None

    def as_status(self, expected_version: str) -> ReplicaHealth:
        """The replica as the status shows it, before the judgement that holds a verdict (status/health.py)."""
        found = self.findings
        served = found.served_version
        if served is None and found.version_matches is False:
            served = f"not {expected_version}"  # evidence of another version, though not which one
        return ReplicaHealth(
            pod=self.pod,
            ip=self.ip,
            live=found.live,
            ready=found.ready,
            model_ready=found.model_ready,
            served_version=served,
            latency_ms=round(self.latency_ms, 1),
            error=found.error,
        )


def _scrape_outcome(
    task: asyncio.Future[tuple[dict[MetricQuery, Buckets | MetricsError], str | None]] | None,
    queries: tuple[MetricQuery, ...],
    late: str,
) -> tuple[dict[MetricQuery, Buckets | MetricsError], str | None]:
    """What the scrape found, or why it found nothing (cut by the deadline, or no port to ask)."""
    if task is None:
        return {}, ("no metrics port configured" if queries else None)
    if task.done() and not task.cancelled():
        return task.result()
    return dict.fromkeys(queries, MetricsError(late)), late


def _duration(seconds: float) -> str:
    return f"{seconds:g}s"


class Prober:
    """Owns the HTTP client and the concurrency bound; create one per operator and share it."""

    def __init__(
        self,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        max_metrics_bytes: int = MAX_SCRAPE_BYTES,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.timeout = timeout
        self.max_body_bytes = max_body_bytes
        self.max_metrics_bytes = max_metrics_bytes
        self._semaphore = asyncio.Semaphore(concurrency)
        # Without an injected transport (tests inject one), each replica gets a
        # pool of its own for the length of its probe; see `transport`.
        self._pools = OriginPoolTransport() if transport is None else None
        self._client = httpx.AsyncClient(
            transport=self._pools if transport is None else transport,
            timeout=timeout,
            # Never a proxy from the environment, never a redirect: requests go
            # to the pod IP the target names and nowhere else.
            trust_env=False,
            follow_redirects=False,
            headers={"User-Agent": "modeldeploy-prober", "Accept-Encoding": "identity"},
        )

    async def __aenter__(self) -> Prober:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def probe_replicas(
        self,
        targets: Sequence[ProbeTarget],
        *,
        request_timeout: float | None = None,
        deadline: float | None = None,
        metrics: Sequence[MetricQuery] = (),
    ) -> list[ReplicaProbe]:
        """Probe every target; results come back in the targets' order, one per target.

        `request_timeout` bounds each request (default: the prober's). `deadline` bounds
        one replica's whole probe (default: twice the timeout, so a replica slow
        on one call still reports). `metrics` names histograms to scrape from
        each target's metrics endpoint; targets without one skip the scrape.
        """
        timeout_s = self.timeout if request_timeout is None else request_timeout
        replica_deadline = 2 * timeout_s if deadline is None else deadline
        return list(
            await asyncio.gather(
                *(self._probe_guarded(t, timeout_s, replica_deadline, tuple(metrics)) for t in targets)
            )
        )

    async def _probe_guarded(
        self, target: ProbeTarget, request_timeout: float, deadline: float, queries: tuple[MetricQuery, ...]
    ) -> ReplicaProbe:
        async with self._semaphore, self._lease(target):
            started = time.perf_counter()
            try:
                return await self._probe(target, request_timeout, deadline, queries, started)
            except Exception as exc:
                # A bug in reading one replica's answers must not lose the whole cycle.
                log.exception("probing %s (%s) failed", target.pod, target.ip)
                return ReplicaProbe(
                    pod=target.pod,
                    ip=target.ip,
                    findings=Findings(error=f"internal error while probing: {type(exc).__name__}"),
                    latency_ms=(time.perf_counter() - started) * 1000,
                )

    def _lease(self, target: ProbeTarget) -> AbstractAsyncContextManager[None]:
        if self._pools is None:
            return nullcontext()
        origins: list[Origin] = []
        for port in {target.port, target.metrics_port}:
            if port is not None:
                url = httpx.URL(f"http://{target.host}:{port}/")
                origins.append((url.scheme, url.host, port))
        return self._pools.lease(origins)

    async def _probe(
        self,
        target: ProbeTarget,
        request_timeout: float,
        deadline: float,
        queries: tuple[MetricQuery, ...],
        started: float,
    ) -> ReplicaProbe:
        flow = probe_flow(target)
        health_task = asyncio.ensure_future(self._drive(flow, target, request_timeout))
        scrape_task = (
            asyncio.ensure_future(self._scrape(target, queries, request_timeout))
            if queries and target.metrics_port is not None
            else None
        )
        tasks = [t for t in (health_task, scrape_task) if t is not None]
        late = f"deadline of {_duration(deadline)} exceeded"
        try:
            async with asyncio.timeout(deadline):
                await asyncio.gather(*tasks)
        except TimeoutError:
            # gather was cancelled and took its unfinished tasks with it.
            pass
        finally:
            for task in tasks:
                task.cancel()

        if health_task.done() and not health_task.cancelled():
            health = health_task.result()
        else:
            health = abandon_flow(flow, late)
        histograms, metrics_error = _scrape_outcome(scrape_task, queries, late)
        return ReplicaProbe(
            pod=target.pod,
            ip=target.ip,
            findings=health,
            latency_ms=(time.perf_counter() - started) * 1000,
            histograms=histograms,
            metrics_error=metrics_error,
        )

    async def _drive(self, flow: ProbeFlow, target: ProbeTarget, request_timeout: float) -> Findings:
        step = _start(flow)
        while isinstance(step, ProbeRequest):
            try:
                response = await self._get(target, target.url(step.path), step.path, request_timeout)
            except ProbeFailed as failure:
                step = _throw(flow, failure)
            else:
                step = _send(flow, response)
        return step

    async def _scrape(
        self, target: ProbeTarget, queries: tuple[MetricQuery, ...], request_timeout: float
    ) -> tuple[dict[MetricQuery, Buckets | MetricsError], str | None]:
        url = target.metrics_url()
        assert url is not None  # checked by the caller
        path = target.metrics_path
        try:
            async with self._exchange(target, url, path, request_timeout, _METRICS_ACCEPT) as response:
                if not 200 <= response.status_code < 300:
                    message = f"HTTP {response.status_code} on {path}"
                    return dict.fromkeys(queries, MetricsError(message)), message
                scrape = await scrape_histograms(
                    response.aiter_bytes(),
                    queries,
                    response.headers.get("content-type", ""),
                    max_bytes=self.max_metrics_bytes,
                )
        except ProbeFailed as failure:
            return dict.fromkeys(queries, MetricsError(failure.message)), failure.message
        return scrape.histograms, None if scrape.error is None else scrape.error.message

    async def _get(self, target: ProbeTarget, url: str, path: str, request_timeout: float) -> ProbeResponse:
        limit = self.max_body_bytes
        async with self._exchange(target, url, path, request_timeout, _JSON_ACCEPT) as response:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > limit:
                    raise ProbeFailed(f"response from {path} is larger than {limit} bytes")
            return ProbeResponse(response.status_code, bytes(body))

    @asynccontextmanager
    async def _exchange(
        self, target: ProbeTarget, url: str, path: str, request_timeout: float, accept: str
    ) -> AsyncIterator[httpx.Response]:
        """A streamed GET whose transport errors, while connecting or reading the body, become `ProbeFailed`.

        A compressed body is refused before any of it is read, so httpx never inflates one.
        """
        try:
            async with self._client.stream("GET", url, timeout=request_timeout, headers={"Accept": accept}) as response:
                encoding = response.headers.get("content-encoding", "identity").strip().lower()
                if encoding not in ("", "identity"):
                    raise ProbeFailed(f"response from {path} is {encoding}-encoded; the prober asks for identity")
                yield response
        except httpx.TimeoutException:
            raise ProbeFailed(f"timeout after {_duration(request_timeout)} on {path}") from None
        except httpx.ConnectError as exc:
            raise ProbeFailed(f"cannot connect to {target.host}:{_port_of(url)}: {_connect_reason(exc)}") from None
        except httpx.RemoteProtocolError as exc:
            if "without sending" in str(exc) or "disconnected" in str(exc).lower():
                raise ProbeFailed(f"connection closed without a response on {path}") from None
            raise ProbeFailed(f"malformed HTTP response on {path}") from None
        except httpx.HTTPError as exc:
            raise ProbeFailed(f"{type(exc).__name__} on {path}") from None


def _connect_reason(exc: BaseException) -> str:
    """The OS's reason behind httpx's wrapping ("All connection attempts failed" says nothing)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror.lower()
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    return "connection refused" if "refused" in text.lower() else text or type(exc).__name__


def _port_of(url: str) -> str:
    return url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]


# A coroutine may not let StopIteration escape (it would become RuntimeError),
# so the generator protocol is unwrapped here.
def _start(flow: ProbeFlow) -> ProbeRequest | Findings:
    try:
        return next(flow)
    except StopIteration as done:
        result: Findings = done.value
        return result


def _send(flow: ProbeFlow, response: ProbeResponse) -> ProbeRequest | Findings:
    try:
        return flow.send(response)
    except StopIteration as done:
        result: Findings = done.value
        return result


def _throw(flow: ProbeFlow, failure: ProbeFailed) -> ProbeRequest | Findings:
    try:
        return flow.throw(failure)
    except StopIteration as done:
        result: Findings = done.value
        return result


async def probe_replicas(
    targets: Sequence[ProbeTarget],
    *,
    prober: Prober | None = None,
    request_timeout: float = DEFAULT_TIMEOUT,
    deadline: float | None = None,
    metrics: Sequence[MetricQuery] = (),
) -> list[ReplicaProbe]:
    """Probe with a shared `prober` if given, else with a temporary one closed afterwards."""
    if prober is not None:
        return await prober.probe_replicas(targets, request_timeout=request_timeout, deadline=deadline, metrics=metrics)
    async with Prober(timeout=request_timeout) as own:
        return await own.probe_replicas(targets, deadline=deadline, metrics=metrics)
