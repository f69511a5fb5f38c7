"""The aiohttp application: OIP v2 endpoints, Prometheus metrics and fault behaviour.

Every handler gets its replica from a middleware that looks up the request's
local socket address, so one application serves any number of replicas.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from modeldeploy.modelserver.inference import BadRequest, model_metadata, parse_infer_request, run_inference
from modeldeploy.modelserver.model import load_model
from modeldeploy.modelserver.replica import Replica, ReplicaRegistry

REPLICA_KEY = web.AppKey("replica_registry", ReplicaRegistry)
_REPLICA = web.RequestKey("replica", Replica)
GARBAGE = b'<html>\x00\xff this is not what you asked for {"truncated'
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _replica(request: web.Request) -> Replica:
    return request[_REPLICA]


async def _drop_connection(request: web.Request) -> web.StreamResponse:
    """Close the socket without a response, as a dying process would."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    # The application runs with handler cancellation, so losing the connection
    # cancels this wait; the sleep only bounds it should that ever not happen.
    await asyncio.sleep(3600)
    raise web.HTTPServiceUnavailable()


@web.middleware
async def replica_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    registry = request.app[REPLICA_KEY]
    transport = request.transport
    replica = registry.find(transport.get_extra_info("sockname") if transport is not None else None)
    if replica is None or replica.closed:
        return await _drop_connection(request)
    await replica.wait_while_hung()
    if replica.closed:
        return await _drop_connection(request)
    faults = replica.faults
    if faults.delay:
        await asyncio.sleep(faults.delay)
    if faults.mode == "crash":
        return await _drop_connection(request)
    if faults.mode == "garbage":
        return web.Response(body=GARBAGE, content_type="text/plain")
    request[_REPLICA] = replica
    return await handler(request)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _unhealthy(replica: Replica) -> web.Response | None:
    if replica.faults.mode == "unhealthy":
        return _error(503, "replica is unhealthy (injected fault)")
    return None


def _check_model(replica: Replica, request: web.Request) -> web.Response | None:
    name = request.match_info["name"]
    if name != replica.config.model_name:
        return _error(404, f"model {name!r} is not served here; this server serves {replica.config.model_name!r}")
    return None


async def live(request: web.Request) -> web.Response:
    return _unhealthy(_replica(request)) or web.json_response({"live": True})


async def ready(request: web.Request) -> web.Response:
    return _unhealthy(_replica(request)) or web.json_response({"ready": True})


async def server_metadata(request: web.Request) -> web.Response:
    return web.json_response({"name": "modeldeploy-modelserver", "version": "0.1.0", "extensions": []})


async def model_ready(request: web.Request) -> web.Response:
    replica = _replica(request)
    return (
        _check_model(replica, request)
        or _unhealthy(replica)
        or web.json_response({"name": replica.config.model_name, "ready": True})
    )


def _check_version(replica: Replica, request: web.Request) -> web.Response | None:
    version = request.match_info["version"]
    if version != replica.served_version:
        return _error(404, f"version {version!r} of model {replica.config.model_name!r} is not served here")
    return None


async def version_ready(request: web.Request) -> web.Response:
    replica = _replica(request)
    return (
        _check_model(replica, request)
        or _check_version(replica, request)
        or _unhealthy(replica)
        or web.json_response({"name": replica.config.model_name, "ready": True})
    )


async def metadata(request: web.Request) -> web.Response:
    replica = _replica(request)
    if "version" in request.match_info:
        bad = _check_model(replica, request) or _check_version(replica, request)
    else:
        bad = _check_model(replica, request)
    return bad or web.json_response(model_metadata(load_model(), replica.config.model_name, replica.served_version))


async def infer(request: web.Request) -> web.Response:
    """Answer, and time the answer by status code in the request histogram, as runtimes do."""
    replica = _replica(request)
    started = time.perf_counter()
    response = await _infer(request, replica)
    replica.metrics.timed(response.status, time.perf_counter() - started)
    return response


async def _infer(request: web.Request, replica: Replica) -> web.Response:
    faults = replica.faults
    if faults.latency:
        await asyncio.sleep(faults.latency)
    bad = _check_model(replica, request)
    if bad is None and "version" in request.match_info:
        bad = _check_version(replica, request)
    if bad is not None:
        replica.metrics.count("unknown_model")
        return bad
    unhealthy = _unhealthy(replica)
    if unhealthy is not None:
        replica.metrics.count("unavailable")
        return unhealthy
    try:
        body: Any = json.loads(await request.read())
        parsed = parse_infer_request(body)
    except (ValueError, UnicodeDecodeError) as exc:
        # BadRequest is a ValueError; json's decode error too.
        message = str(exc) if isinstance(exc, BadRequest) else f"request body is not valid JSON: {exc}"
        replica.metrics.count("bad_request")
        return _error(400, message)
    if faults.error_share and random.random() < faults.error_share:
        replica.metrics.count("unavailable")
        return _error(500, "inference failed (injected fault)")
    seen = parsed
    if faults.shift:  # the model predicts from moved features; the inputs are recorded as they came
        seen = dataclasses.replace(parsed, rows=[[v + faults.shift for v in row] for row in parsed.rows])
    response, predicted = run_inference(load_model(), seen, replica.config.model_name, replica.served_version)
    replica.metrics.observe(parsed.rows, predicted)
    replica.metrics.count("ok")
    return web.json_response(response)


# Lines of a family nobody asks for, and one of the drift histogram the operator does ask for.
_OTHER_LINE = b'hostile_filler_total{shard="0000000000000000000000000000000000000000"} 1\n'
_HUGE_BYTES = 64 * 1024 * 1024


async def _hostile_metrics(request: web.Request, body: str) -> web.StreamResponse:
    """A metrics endpoint that tries to make its scraper read forever or hold everything."""
    response = web.StreamResponse(headers={"Content-Type": CONTENT_TYPE_LATEST})
    if body == "huge":
        response.content_length = _HUGE_BYTES
    await response.prepare(request)
    block = _OTHER_LINE * (65536 // len(_OTHER_LINE))
    sent = 0
    while body != "huge" or sent + len(block) <= _HUGE_BYTES:
        if body == "trickle":
            await response.write(_OTHER_LINE)
            await asyncio.sleep(0.05)
            continue
        await response.write(block)
        sent += len(block)
    await response.write(b"#" * (_HUGE_BYTES - sent - 1) + b"\n")
    await response.write_eof()
    return response


async def metrics(request: web.Request) -> web.StreamResponse:
    hostile = _replica(request).faults.metrics
    if hostile is not None:
        return await _hostile_metrics(request, hostile)
    response = web.Response(body=_replica(request).metrics.render())
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


def create_app(registry: ReplicaRegistry) -> web.Application:
    app = web.Application(middlewares=[replica_middleware])
    app[REPLICA_KEY] = registry
    app.router.add_get("/v2", server_metadata)
    app.router.add_get("/v2/health/live", live)
    app.router.add_get("/v2/health/ready", ready)
    app.router.add_get("/v2/models/{name}", metadata)
    app.router.add_get("/v2/models/{name}/ready", model_ready)
    app.router.add_get("/v2/models/{name}/versions/{version}", metadata)
    app.router.add_get("/v2/models/{name}/versions/{version}/ready", version_ready)
    app.router.add_post("/v2/models/{name}/infer", infer)
    app.router.add_post("/v2/models/{name}/versions/{version}/infer", infer)
    app.router.add_get("/metrics", metrics)
    return app


def create_runner(registry: ReplicaRegistry) -> web.AppRunner:
    """A runner whose handlers are cancelled when their client goes away.

    Without that, every probe that timed out on a `hang` replica would leave a
    handler waiting for as long as the fault lasts.
    """
    return web.AppRunner(create_app(registry), handle_signals=False, access_log=None, handler_cancellation=True)
