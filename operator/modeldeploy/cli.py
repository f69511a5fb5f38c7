"""Command line entry point: `modeldeploy run`, the operator; `modeldeploy fetch`, its storage initializer;
`modeldeploy rollout status|history`, for people (also `kubectl modeldeploy ...`, see cli_rollout.py).

The other production entry points are modules: `python -m modeldeploy.modelserver` (the
reference model server) and `python -m modeldeploy.crdgen` (the CRD from the API types). The
sandbox and the demo are development tooling, in the separate `modeldeploy_dev` package
(`modeldeploy-dev sandbox | demo`), which this package never imports.

The operator's machinery is imported lazily, so `--help` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Literal, get_args, get_origin


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


def _fetch(args: argparse.Namespace) -> int:
    from pathlib import Path

    from modeldeploy.storage.fetch import run

    return run(args.uri, Path(args.dest), args.sha256, args.termination_log)


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


def build_parser(*, setting_flags: bool = True) -> argparse.ArgumentParser:
    """The whole command line; `setting_flags=False` leaves out `run`'s flags (and the settings import)."""
    parser = argparse.ArgumentParser(prog="modeldeploy", description="Ship ML models on Kubernetes.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "run",
        help="run the operator",
        description="Every flag can also be set as MODELDEPLOY_<FLAG> (e.g. MODELDEPLOY_LOG_FORMAT).",
    )
    run.add_argument("--namespace", "-n", action="append", help="serve only this namespace (repeatable); default all")
    if setting_flags:
        _setting_flags(run)
    run.set_defaults(handler=_run)

    fetch = commands.add_parser(
        "fetch",
        help="fetch a model artifact into a folder (the storage initializer of a model pod)",
        description=(
            "Fetch URI (s3://, gs://, az://, azure://, http(s)://: one object, or every object under a prefix) "
            "into DEST/model, whole or not at all. Credentials and endpoints come from the environment "
            "(AWS_*, GOOGLE_*, AZURE_*). On failure the reason is written to the termination log."
        ),
    )
    fetch.add_argument("uri")
    fetch.add_argument("dest", help="folder that receives model/ (the pod's shared volume)")
    fetch.add_argument("--sha256", help="expected SHA-256 of a single-file artifact")
    fetch.add_argument("--termination-log", default="/dev/termination-log", help="where a failure's reason goes")
    fetch.set_defaults(handler=_fetch)

    from modeldeploy.cli_rollout import add_rollout_commands

    add_rollout_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    # `fetch` starts in every model pod before its runtime: it skips the operator's settings
    # (pydantic and the API models, a third of a second) that only `run` needs.
    args = build_parser(setting_flags=arguments[:1] != ["fetch"]).parse_args(arguments)
    try:
        return int(args.handler(args))
    except RuntimeError as error:
        print(f"modeldeploy: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
