"""Command line entry point: `modeldeploy run | sandbox | modelserver`.

Each sub-command imports its own machinery lazily, so `modeldeploy sandbox up` works
before the operator's heavier imports are needed and `--help` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _sandbox(args: argparse.Namespace) -> int:
    from modeldeploy.sandbox import build, cluster

    if args.action == "build":
        build.build_all(build.ALL + ((build.KSTATUS,) if args.test_tools else ()))
    elif args.action == "up":
        cluster.Sandbox().up(nodes=args.nodes)
    elif args.action == "down":
        cluster.Sandbox().down()
    elif args.action == "status":
        print(cluster.describe())
        return 0 if cluster.Sandbox().healthy() else 1
    return 0


def _run(args: argparse.Namespace) -> int:
    from modeldeploy.runner import run
    from modeldeploy.settings import OperatorSettings

    overrides: dict[str, object] = {}
    if args.namespace:
        overrides["namespaces"] = args.namespace
    if args.kubeconfig:
        overrides["kubeconfig"] = args.kubeconfig
    for name in ("metrics_port", "health_port", "resync_seconds"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    return run(OperatorSettings(**overrides))  # type: ignore[arg-type]


def _demo(args: argparse.Namespace) -> int:
    from modeldeploy.demo import run

    return run(args.action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modeldeploy", description="Ship ML models on Kubernetes.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the operator")
    run.add_argument("--namespace", "-n", action="append", help="serve only this namespace (repeatable); default all")
    run.add_argument("--kubeconfig", help="kubeconfig path (default: in-cluster, then $KUBECONFIG)")
    run.add_argument("--metrics-port", type=int, help="Prometheus metrics port (0 disables)")
    run.add_argument("--health-port", type=int, help="liveness port (0 disables)")
    run.add_argument("--resync-seconds", type=float, help="reconcile every ModelDeployment this often")
    run.set_defaults(handler=_run)

    sandbox = commands.add_parser("sandbox", help="a real control plane on 127.0.0.1 for tests and the demo")
    sandbox.add_argument("action", choices=["build", "up", "down", "status"])
    sandbox.add_argument("--nodes", type=int, default=3, help="kwok nodes to register (default 3)")
    sandbox.add_argument("--test-tools", action="store_true", help="with build: also the kstatus probe the tests use")
    sandbox.set_defaults(handler=_sandbox)
    demo = commands.add_parser("demo", help="the guided demo on the sandbox (what `make demo` runs)")
    demo.add_argument("action", nargs="?", choices=["up", "down"], default="up")
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except RuntimeError as error:
        print(f"modeldeploy: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
