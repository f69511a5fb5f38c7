"""Command line of the development tooling: `modeldeploy-dev sandbox | demo`.

Each sub-command imports its own machinery lazily, so `--help` stays instant. The operator's
own command line (`modeldeploy run`) lives in `modeldeploy.cli`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _sandbox(args: argparse.Namespace) -> int:
    from modeldeploy_dev.sandbox import build, cluster

    if args.action == "build":
        build.build_all(build.ALL + (build.TEST_TOOLS if args.test_tools else ()))
    elif args.action == "up":
        cluster.Sandbox().up(nodes=args.nodes)
    elif args.action == "down":
        cluster.Sandbox().down()
    elif args.action == "status":
        print(cluster.describe())
        return 0 if cluster.Sandbox().healthy() else 1
    return 0


def _demo(args: argparse.Namespace) -> int:
    from modeldeploy_dev.demo import run

    return run(args.action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modeldeploy-dev", description="Development tooling for modeldeploy: the sandbox and the demo."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    sandbox = commands.add_parser("sandbox", help="a real control plane on 127.0.0.1 for tests and the demo")
    sandbox.add_argument("action", choices=["build", "up", "down", "status"])
    sandbox.add_argument("--nodes", type=int, default=3, help="kwok nodes to register (default 3)")
    sandbox.add_argument(
        "--test-tools",
        action="store_true",
        help="with build: also the test tools (kstatus probe, Argo CD's Lua runtime, promtool)",
    )
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
        print(f"modeldeploy-dev: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
