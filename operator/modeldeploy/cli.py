"""Command line entry point: `modeldeploy run | sandbox | modelserver`.

Each sub-command imports its own machinery lazily, so `modeldeploy sandbox up` works
before the operator's heavier imports are needed and `--help` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Literal, get_args, get_origin


def _sandbox(args: argparse.Namespace) -> int:
    from modeldeploy.sandbox import build, cluster

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


def _run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from modeldeploy.runner import run
    from modeldeploy.settings import OperatorSettings

    overrides: dict[str, object] = {}
    if args.namespace:
        overrides["namespaces"] = args.namespace
    for name in OperatorSettings.model_fields:
        if name != "namespaces" and getattr(args, name, None) is not None:
            overrides[name] = getattr(args, name)
    try:
        settings = OperatorSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise RuntimeError(f"invalid setting: {error}") from None
    return run(settings)


def _demo(args: argparse.Namespace) -> int:
    from modeldeploy.demo import run

    return run(args.action)


def _setting_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per operator setting, from the settings model, so no setting is environment-only."""
    from modeldeploy.settings import OperatorSettings

    for name, field in OperatorSettings.model_fields.items():
        if name == "namespaces":
            continue
        flag = "--" + name.replace("_", "-")
        env = f"MODELDEPLOY_{name.upper()}"
        default = field.get_default(call_default_factory=True)
        text = f"{field.description or name} (env {env}; default {default})"
        choices = get_args(field.annotation) if get_origin(field.annotation) is Literal else None
        if field.annotation is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif field.annotation is int:
            parser.add_argument(flag, type=int, help=text)
        elif field.annotation is float:
            parser.add_argument(flag, type=float, help=text)
        else:
            parser.add_argument(flag, choices=choices, help=text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modeldeploy", description="Ship ML models on Kubernetes.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "run",
        help="run the operator",
        description="Every flag can also be set as MODELDEPLOY_<FLAG> (e.g. MODELDEPLOY_LOG_FORMAT).",
    )
    run.add_argument("--namespace", "-n", action="append", help="serve only this namespace (repeatable); default all")
    _setting_flags(run)
    run.set_defaults(handler=_run)

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
        print(f"modeldeploy: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
