"""`python -m modeldeploy.crdgen [--output PATH|-] [--check]`, run from the repository root."""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from pathlib import Path

from modeldeploy.crdgen.crd import render_crd_yaml

DEFAULT_OUTPUT = Path("crds/modeldeploy.io_modeldeployments.yaml")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m modeldeploy.crdgen", description="Generate the ModelDeployment CRD from modeldeploy.api."
    )
    parser.add_argument(
        "--output",
        "-o",
        default=str(DEFAULT_OUTPUT),
        help=f"file to write, or - for stdout (default: {DEFAULT_OUTPUT}, relative to the current directory)",
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 with a diff if the file is not up to date"
    )
    args = parser.parse_args(argv)

    rendered = render_crd_yaml()
    if args.output == "-":
        sys.stdout.write(rendered)
        return 0
    output = Path(args.output)
    if args.check:
        return _check(output, rendered)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(rendered, encoding="utf-8")
    print(f"wrote {output} ({len(rendered.encode())} bytes)", file=sys.stderr)
    return 0


def _check(output: Path, rendered: str) -> int:
    current = output.read_text(encoding="utf-8") if output.exists() else ""
    if current == rendered:
        return 0
    diff = difflib.unified_diff(
        current.splitlines(keepends=True),
        rendered.splitlines(keepends=True),
        fromfile=f"{output} (committed)",
        tofile=f"{output} (generated)",
    )
    sys.stdout.writelines(diff)
    print(f"{output} is stale: run `python -m modeldeploy.crdgen`", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
