"""Run one replica: `python -m modeldeploy.modelserver`.

Configuration comes from the environment because that is how a pod template
passes it: MODEL_NAME (default iris), MODEL_VERSION (default 1),
MODELSERVER_HOST (default 0.0.0.0), PORT (default 8080) and MODELSERVER_FAULTS
(default ok; see `modeldeploy.modelserver.faults`), the last so a sandbox can
deploy a deliberately broken version.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from aiohttp import web

from modeldeploy.modelserver.app import create_app
from modeldeploy.modelserver.faults import parse_faults
from modeldeploy.modelserver.replica import Replica, ReplicaConfig, ReplicaRegistry


def config_from_env(env: Mapping[str, str]) -> tuple[ReplicaConfig, str, int]:
    faults = env.get("MODELSERVER_FAULTS", "ok")
    parse_faults(faults)  # fail at start, not on the first request
    config = ReplicaConfig(
        model_name=env.get("MODEL_NAME", "iris"),
        version=env.get("MODEL_VERSION", "1"),
        faults=faults,
    )
    port = int(env.get("PORT", "8080"))
    if not 0 < port < 65536:
        raise ValueError(f"PORT must be 1-65535, got {port}")
    return config, env.get("MODELSERVER_HOST", "0.0.0.0"), port


def main() -> int:
    try:
        config, host, port = config_from_env(os.environ)
    except ValueError as exc:
        print(f"modelserver: {exc}", file=sys.stderr)
        return 2
    app = create_app(ReplicaRegistry(default=Replica(config)))
    print(f"modelserver: serving {config.model_name} version {config.version} on {host}:{port}", flush=True)
    web.run_app(app, host=host, port=port, access_log=None, print=None, handler_cancellation=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
