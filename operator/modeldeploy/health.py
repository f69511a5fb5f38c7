"""The liveness endpoint: 200 while the controller can do its job, 503 with the reason when not.

kopf's own endpoint reports only that the process answers; an operator whose work loop died
or whose watches stopped kept answering 200 there, so Kubernetes never restarted it. This one
asks the controller. No access log: a probe every few seconds is not news.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web

log = logging.getLogger("modeldeploy.health")


async def serve_liveness(host: str, port: int, check: Callable[[], str | None]) -> web.AppRunner:
    """Start serving `/healthz` on host:port; `check` returns why the process is unfit, or None."""

    async def healthz(_: web.Request) -> web.Response:
        problem = check()
        if problem is None:
            return web.Response(text="ok\n")
        log.error("liveness failing: %s", problem)
        return web.Response(status=503, text=f"{problem}\n")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
