"""kopf wiring only: the operator's lifecycle (start, stop, credentials) runs in kopf's reactor.

No kopf watching handlers are registered: the controller's informers list and watch the
cluster themselves (see `controller.informer` for why). So kopf stores no progress, no diff
base and no finalizer on our objects, and a ModelDeployment stays exactly as its author wrote it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import kopf

from modeldeploy.controller.manager import Controller


def register(
    registry: kopf.OperatorRegistry,
    controller: Controller,
    begin: Callable[[], None] | None = None,
    release: Callable[[], Awaitable[object]] | None = None,
) -> None:
    """Attach the handlers to `registry`; the controller is captured, not a module global.

    `begin` starts the work once kopf is configured: by default the controller itself, or a
    leader election that starts it when this replica holds the Lease. Watching starts at once
    either way, so a standby's caches are warm when it takes over. `release` gives leadership
    up on a graceful stop, once the work has stopped and before the API client closes.
    """

    @kopf.on.startup(registry=registry)
    async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.enabled = False  # we post our own Events, deliberately
        settings.peering.standalone = True
        # No cluster-wide watching of CRDs and Namespaces: the resources and namespaces we serve
        # are fixed at start, and least-privilege RBAC (modeldeploy.rbac) grants neither.
        settings.scanning.disabled = True
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
        controller.start_watching()
        (begin or controller.start)()

    @kopf.on.cleanup(registry=registry)
    async def shutdown(**_: Any) -> None:
        await controller.stop(release=release)
