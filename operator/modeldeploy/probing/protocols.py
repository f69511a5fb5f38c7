"""What to ask a replica and how to read its answers, per serving protocol, without doing I/O.

Each protocol is a generator ("sans-I/O"): it yields the next `ProbeRequest`,
is sent back the `ProbeResponse`, and finally returns a `Findings`. That
keeps the branching (which request next, what counts as evidence) pure and
testable with canned responses, while the prober owns sockets, timeouts and
concurrency. A transport failure is thrown into the generator as `ProbeFailed`;
the flow then returns what it learned so far with the failure as its error.

Served-version evidence differs between runtimes and is easy to misread: an
empty `versions` list (MLServer) or a null one (KServe) says nothing, which
is different from saying "another version". `served_version` is None and
`version_matches` None when there is no evidence either way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from modeldeploy.probing.targets import ProbeTarget


@dataclass(frozen=True)
class ProbeRequest:
    path: str


@dataclass(frozen=True)
class ProbeResponse:
    status: int
    body: bytes = b""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class ProbeFailed(Exception):
    """No HTTP answer (timeout, refused, connection dropped); the message is shown as is."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Findings:
    """What a replica's own endpoints said; the prober adds who and how fast (`ReplicaProbe`)."""

    live: bool | None = None
    ready: bool | None = None
    model_ready: bool | None = None
    served_version: str | None = None
    # True/False when there is evidence the served version is/is not the expected one.
    version_matches: bool | None = None
    error: str | None = None


ProbeFlow = Generator[ProbeRequest, ProbeResponse, Findings]


class _Notes:
    """What a flow has learned so far; the first error wins, being the likeliest cause."""

    def __init__(self, target: ProbeTarget) -> None:
        self.target = target
        self.live: bool | None = None
        self.ready: bool | None = None
        self.model_ready: bool | None = None
        self.served_version: str | None = None
        self.not_expected = False
        self.error: str | None = None

    def fail(self, message: str) -> None:
        if self.error is None:
            self.error = message

    def status_ok(self, response: ProbeResponse, path: str) -> bool:
        if not response.ok:
            self.fail(f"HTTP {response.status} on {path}")
        return response.ok

    def json(self, response: ProbeResponse, path: str) -> Any:
        """The decoded body of a 2xx answer, or None after noting why not."""
        if not self.status_ok(response, path):
            return None
        try:
            return json.loads(response.body)
        except (ValueError, UnicodeDecodeError):
            self.fail(f"malformed JSON from {path}")
            return None

    def result(self) -> Findings:
        expected = self.target.expected_version
        matches: bool | None = None
        if expected is not None:
            if self.served_version is not None:
                matches = self.served_version == expected
            elif self.not_expected:
                matches = False
        return Findings(
            live=self.live,
            ready=self.ready,
            model_ready=self.model_ready,
            served_version=self.served_version,
            version_matches=matches,
            error=self.error,
        )


def _version_text(value: Any) -> str | None:
    """Versions are strings in v2 and numbers in some runtimes; anything else is not a version."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int):
        return str(value)
    return None


def _v2(target: ProbeTarget) -> ProbeFlow:
    found = _Notes(target)
    model = f"/v2/models/{target.quoted_model}"
    try:
        # Every round asks each replica, so each question costs: a ready server is a live one,
        # and a ready version is a ready model. A healthy replica answers in three requests
        # (server ready, version ready, metadata); the others are asked only to say what is wrong.
        ready = yield ProbeRequest("/v2/health/ready")
        if ready.ok:
            found.live = found.ready = True
        else:
            found.live = found.status_ok((yield ProbeRequest("/v2/health/live")), "/v2/health/live")
            found.ready = found.status_ok(ready, "/v2/health/ready")

        expected = target.expected_version
        versioned = False
        version_status: int | None = None
        if expected is not None:
            path = f"{model}/versions/{_quote_segment(expected)}/ready"
            version_status = (yield ProbeRequest(path)).status
            if version_status == 200:
                found.model_ready = True
                found.served_version = expected
                versioned = True
        if not versioned:
            found.model_ready = found.status_ok((yield ProbeRequest(f"{model}/ready")), f"{model}/ready")
            if version_status == 404 and found.model_ready:
                # The model is up but this version of it is not: another version is served.
                found.not_expected = True
            # 501 (not implemented), 400 (Triton-style unknown version) or others: no evidence.

        yield from _v2_metadata(found, model, versioned)
    except ProbeFailed as failure:
        found.fail(failure.message)
    return found.result()


def _v2_metadata(found: _Notes, model: str, versioned: bool) -> Generator[ProbeRequest, ProbeResponse, None]:
    """Metadata is read even when the versioned check settled the version: it is the only JSON
    a healthy v2 replica must return, so it is where a runtime answering 200 with nonsense shows itself.
    """
    target, expected = found.target, found.target.expected_version
    metadata = found.json((yield ProbeRequest(model)), model)
    if isinstance(metadata, dict):
        name = metadata.get("name")
        if isinstance(name, str) and name != target.model_name:
            found.fail(f"{model} describes model {name!r}")
        if not versioned:
            claimed = _v2_metadata_version(metadata, expected, found.not_expected)
            listed = metadata.get("versions")
            if claimed is not None and found.not_expected and isinstance(listed, list) and len(listed) == 1:
                # A runtime that answers versioned readiness can confirm its own claim. MLServer
                # lists library versions ("sklearn/1.9.1") there, which it does not serve.
                path = f"{model}/versions/{_quote_segment(claimed)}/ready"
                confirmed = (yield ProbeRequest(path)).status == 200
                claimed = claimed if confirmed else None
            found.served_version = claimed
    elif metadata is not None:
        found.fail(f"unexpected JSON from {model}: not an object")


def _v2_metadata_version(metadata: dict[str, Any], expected: str | None, not_expected: bool) -> str | None:
    versions = metadata.get("versions")
    version: str | None = None
    # [] (MLServer) and null (KServe) are absent evidence; several versions say
    # what is available, not which one answers.
    if isinstance(versions, list) and len(versions) == 1:
        version = _version_text(versions[0])
    if version is None:
        version = _version_text(metadata.get("model_version"))
    if version is not None and not_expected and version == expected:
        # The versioned endpoint denied what metadata claims: trust neither.
        return None
    return version


def _v1(target: ProbeTarget) -> ProbeFlow:
    found = _Notes(target)
    path = f"/v1/models/{target.quoted_model}"
    try:
        response = yield ProbeRequest(path)
        # v1 has no separate liveness endpoint; any HTTP answer shows the process is up.
        found.live = True
        body = found.json(response, path)
        if isinstance(body, dict):
            _read_v1_status(found, body, path)
        elif body is not None:
            found.fail(f"unexpected JSON from {path}: not an object")
        if found.model_ready is None:
            found.model_ready = False if not response.ok else None
        found.ready = found.model_ready
    except ProbeFailed as failure:
        found.fail(failure.message)
    return found.result()


def _read_v1_status(found: _Notes, body: dict[str, Any], path: str) -> None:
    statuses = body.get("model_version_status")
    if isinstance(statuses, list):
        # TensorFlow Serving: one entry per loaded version, usable when AVAILABLE.
        available = [
            v
            for s in statuses
            if isinstance(s, dict) and s.get("state") == "AVAILABLE" and (v := _version_text(s.get("version")))
        ]
        found.model_ready = bool(available)
        expected = found.target.expected_version
        if expected is not None and expected in available:
            found.served_version = expected
        elif len(available) == 1:
            found.served_version = available[0]
        elif available and expected is not None:
            found.not_expected = True
        if not available:
            found.fail(f"no AVAILABLE version in {path}")
    elif isinstance(body.get("ready"), bool):
        # KServe v1: {"name": ..., "ready": true}; it reports no version.
        found.model_ready = body["ready"]
        if not found.model_ready:
            found.fail(f"{path} says the model is not ready")
    else:
        found.fail(f"{path} has neither model_version_status nor ready")


def _openai(target: ProbeTarget) -> ProbeFlow:
    found = _Notes(target)
    try:
        found.live = found.status_ok((yield ProbeRequest("/health")), "/health")
        found.ready = found.live
        listing = found.json((yield ProbeRequest("/v1/models")), "/v1/models")
        if listing is not None:
            data = listing.get("data") if isinstance(listing, dict) else None
            if not isinstance(data, list):
                found.fail("unexpected JSON from /v1/models: no data list")
                found.model_ready = False
            else:
                ids = {m.get("id") for m in data if isinstance(m, dict)}
                found.model_ready = target.model_name in ids
                if not found.model_ready:
                    found.fail(f"model {target.model_name!r} not listed by /v1/models")
        else:
            found.model_ready = False
    except ProbeFailed as failure:
        found.fail(failure.message)
    return found.result()


def _custom(target: ProbeTarget) -> ProbeFlow:
    found = _Notes(target)
    paths = target.custom_paths
    try:
        if paths.health is not None:
            found.live = found.status_ok((yield ProbeRequest(paths.health)), paths.health)
        if paths.readiness is not None:
            found.ready = found.status_ok((yield ProbeRequest(paths.readiness)), paths.readiness)
        else:
            found.ready = found.live
        if paths.metadata is not None:
            found.model_ready = found.status_ok((yield ProbeRequest(paths.metadata)), paths.metadata)
        else:
            found.model_ready = found.ready
        if paths.version is not None:
            body = found.json((yield ProbeRequest(paths.version)), paths.version)
            if isinstance(body, dict):
                found.served_version = _version_text(body.get("version")) or _version_text(body.get("model_version"))
            elif body is not None:
                found.fail(f"unexpected JSON from {paths.version}: not an object")
    except ProbeFailed as failure:
        found.fail(failure.message)
    return found.result()


def _quote_segment(text: str) -> str:
    return quote(text, safe="")


FLOWS: dict[str, Callable[[ProbeTarget], ProbeFlow]] = {"v2": _v2, "v1": _v1, "openai": _openai, "custom": _custom}


def probe_flow(target: ProbeTarget) -> ProbeFlow:
    return FLOWS[target.protocol](target)


def run_flow(flow: ProbeFlow, responses: Callable[[ProbeRequest], ProbeResponse]) -> Findings:
    """Drive a flow synchronously; for tests and for callers that already hold the answers.

    `responses` may raise ProbeFailed to simulate a transport failure.
    """
    try:
        request = next(flow)
        while True:
            try:
                response = responses(request)
            except ProbeFailed as failure:
                request = flow.throw(failure)
            else:
                request = flow.send(response)
    except StopIteration as done:
        health: Findings = done.value
        return health


def abandon_flow(flow: ProbeFlow, message: str) -> Findings:
    """End a flow that ran out of time, keeping what it had learned."""
    try:
        flow.throw(ProbeFailed(message))
    except StopIteration as done:
        health: Findings = done.value
        return health
    except ProbeFailed:
        # The flow had not started: it knows nothing yet.
        return Findings(error=message)
    # A flow never yields after a failure; treat one that does as having learned nothing.
    flow.close()
    return Findings(error=message)
